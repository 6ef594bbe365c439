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
    let target_dir =
        shared_target_dir(&out_dir, &target).unwrap_or_else(|| out_dir.join("shepherd-target"));

    // Statically linked where the target allows it: a static shepherd
    // starts without the dynamic loader, which is most of what running an
    // extra process costs on every spawn. If static linking is unavailable
    // (no libc.a on the machine), fall back to an ordinary build.
    let static_ok = target.contains("-linux-");
    let built = static_ok
        .then(|| build_shepherd(&shepherd_dir, &target_dir, &target, true).ok())
        .flatten()
        .unwrap_or_else(|| {
            build_shepherd(&shepherd_dir, &target_dir, &target, false)
                .unwrap_or_else(|stderr| panic!("building netrunner-shepherd failed:\n{stderr}"))
        });
    let embedded = out_dir.join(netrunner_shepherd::BIN_NAME);
    std::fs::copy(&built, &embedded).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    println!(
        "cargo:rustc-env=NETRUNNER_SHEPHERD_EMBEDDED={}",
        embedded.display()
    );
}

/// Runs the nested `cargo build`; returns the built binary's path, or
/// cargo's stderr on failure.
fn build_shepherd(
    shepherd_dir: &Path,
    target_dir: &Path,
    target: &str,
    static_link: bool,
) -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Separate directories: the two variants must not overwrite each other.
    let target_dir = target_dir.join(if static_link { "static" } else { "dynamic" });
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .args(["--bin", netrunner_shepherd::BIN_NAME])
        .arg("--manifest-path")
        .arg(shepherd_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Always an explicit target, so the flags below reach only the
        // shepherd and never build scripts or proc-macros of the host.
        .args(["--target", target])
        // A small, self-contained binary: it is copied into every program
        // that links netrunner.
        .args(["--config", "profile.release.strip=true"])
        .args(["--config", "profile.release.panic=\"abort\""]);
    // The outer build's wrappers and flags are for the crates being checked,
    // not for this helper binary (clippy sets RUSTC_WORKSPACE_WRAPPER).
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    if static_link {
        cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static");
    }
    let output = cmd
        .output()
        .map_err(|e| format!("failed to run cargo: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(target_dir
        .join(target)
        .join("release")
        .join(netrunner_shepherd::BIN_NAME))
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
