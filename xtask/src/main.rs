//! `cargo xtask`: the project's automation, so CI and developers run the same thing.
//!
//! - `cargo xtask ci`: formatting, clippy (`-D warnings`), every test, tidy,
//!   and the external-crate check. Exactly what `.ci/run` runs.
//! - `cargo xtask tidy`: the source rules (also a `#[test]`).
//! - `cargo xtask external`: a throw-away crate outside the workspace that
//!   depends on `netrunner-blocking` by path runs `echo`, with no configuration.
#![forbid(unsafe_code)]

mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("tidy") => tidy_cmd(&root),
        Some("external") => external(&root),
        _ => {
            eprintln!("usage: cargo xtask <ci | tidy | external>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_owned()
}

fn run(root: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("running {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn has_nextest(root: &Path) -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .current_dir(root)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ci(root: &Path) -> Result<(), String> {
    run(root, "cargo", &["fmt", "--all", "--", "--check"])?;
    tidy_cmd(root)?;
    run(
        root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    if has_nextest(root) {
        // One process per test: process-level checks (fd counts, children)
        // never see another test's processes.
        run(
            root,
            "cargo",
            &["nextest", "run", "--workspace", "--no-fail-fast"],
        )?;
        run(root, "cargo", &["test", "--workspace", "--doc"])?;
    } else {
        run(root, "cargo", &["test", "--workspace", "--no-fail-fast"])?;
    }
    external(root)?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

fn tidy_cmd(root: &Path) -> Result<(), String> {
    let problems = tidy::check(root);
    if problems.is_empty() {
        eprintln!("tidy: ok");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    Err(format!("{} tidy problem(s)", problems.len()))
}

/// Builds and runs a fresh crate outside the workspace that depends on
/// `netrunner-blocking` by path and uses it with no configuration at all.
fn external(root: &Path) -> Result<(), String> {
    let dir = root.join("target").join("external-smoke");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    let manifest = format!(
        "[package]\nname = \"external-smoke\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nnetrunner-blocking = {{ path = {:?} }}\n\n[workspace]\n",
        root.join("netrunner-blocking")
    );
    let main = r#"fn main() {
    let out = netrunner_blocking::Command::new("echo").arg("hello").output().expect("echo runs");
    assert_eq!(out.stdout, b"hello\n", "stdout: {:?}", out.stdout);
    assert!(out.status.success());
    println!("external-smoke: ok ({})", out.status);
}
"#;
    std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    std::fs::write(src.join("main.rs"), main).map_err(|e| e.to_string())?;
    // Same dependency versions as the workspace.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).map_err(|e| e.to_string())?;
    eprintln!("$ cargo run (external crate in {})", dir.display());
    let status = Command::new("cargo")
        .args(["run", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env_remove("NETRUNNER_SHEPHERD")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("external crate failed ({status})"))
    }
}
