//! Builds the `netrunner-shepherd` binary so the library can embed it.
//!
//! A nested `cargo build` of the shepherd crate (found through the
//! `MANIFEST_DIR` const it exports) into a directory beside the outer target
//! directory, shared by every profile and tool (build, test, clippy) so the
//! release build of the shepherd happens once.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let shepherd_dir = PathBuf::from(netrunner_shepherd::MANIFEST_DIR);
    let mut watched = vec![shepherd_dir.clone()];
    // Inside the workspace the shepherd's path dependencies sit beside it.
    if let Some(parent) = shepherd_dir.parent() {
        for sibling in ["netrunner-sys", "netrunner-proto"] {
            let dir = parent.join(sibling);
            if dir.exists() {
                watched.push(dir);
            }
        }
    }
    for dir in &watched {
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let host = env::var("HOST").expect("cargo sets HOST");
    let target_dir =
        shared_target_dir(&out_dir, &target).unwrap_or_else(|| out_dir.join("shepherd-target"));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .args(["--bin", netrunner_shepherd::BIN_NAME])
        .arg("--manifest-path")
        .arg(shepherd_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // A small, self-contained binary: it is copied into every program
        // that links netrunner.
        .args(["--config", "profile.release.strip=true"])
        .args(["--config", "profile.release.panic=\"abort\""]);
    if target != host {
        cmd.args(["--target", &target]);
    }
    // The outer build's wrappers and flags are for the crates being checked,
    // not for this helper binary (clippy sets RUSTC_WORKSPACE_WRAPPER).
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .expect("failed to run cargo to build netrunner-shepherd");
    if !output.status.success() {
        panic!(
            "building netrunner-shepherd failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut built = target_dir.clone();
    if target != host {
        built.push(&target);
    }
    built.push("release");
    built.push(netrunner_shepherd::BIN_NAME);
    let embedded = out_dir.join(netrunner_shepherd::BIN_NAME);
    std::fs::copy(&built, &embedded).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    println!(
        "cargo:rustc-env=NETRUNNER_SHEPHERD_EMBEDDED={}",
        embedded.display()
    );
}

/// `<target>/netrunner-shepherd`, from `OUT_DIR` =
/// `<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`.
fn shared_target_dir(out_dir: &Path, triple: &str) -> Option<PathBuf> {
    let build = out_dir.ancestors().nth(2)?;
    if build.file_name()? != "build" {
        return None;
    }
    let mut target = build.parent()?.parent()?;
    if target.file_name()? == triple {
        target = target.parent()?;
    }
    Some(target.join("netrunner-shepherd"))
}
