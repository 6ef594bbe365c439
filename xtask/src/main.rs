//! `cargo xtask`: the project's automation, so CI and developers run the same thing.
//!
//! - `cargo xtask ci`: formatting, clippy (`-D warnings`), every test, tidy,
//!   and the external-crate check. Exactly what `.ci/run` runs.
//! - `cargo xtask tidy`: the source rules (also a `#[test]`).
//! - `cargo xtask external`: a throw-away crate outside the workspace that
//!   depends on `netrunner-blocking` by path runs `echo`, with no configuration.
//! - `cargo xtask bench [--quick]`: the side-by-side benchmark table
//!   (netrunner vs std::process vs tokio::process); `--quick` is CI's smoke run.
//! - `cargo xtask fuzz [SECONDS]`: every cargo-fuzz target in `fuzz/` for
//!   SECONDS each (default 60), growing the corpus in `fuzz/corpus`;
//!   `--smoke` runs 15 s each without touching the corpus (CI).
//! - `cargo xtask soak [--quick]`: the soak (`netrunner-tests`' `soak`
//!   binary), survivors and leaks counted; `--quick` is CI's.
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
        Some("bench") => bench(&root, args.iter().any(|a| a == "--quick")),
        Some("fuzz") => {
            let smoke = args.iter().any(|a| a == "--smoke");
            let seconds = args.iter().find_map(|a| a.parse().ok());
            fuzz(&root, seconds.unwrap_or(if smoke { 15 } else { 60 }), smoke)
        }
        Some("soak") => soak(&root, args.iter().any(|a| a == "--quick")),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | tidy | external | bench [--quick] | fuzz [SECONDS] [--smoke] | soak [--quick]>"
            );
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
    let clippy = [
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ];
    run(root, "cargo", &clippy)?;
    let counts = if has_nextest(root) {
        run(root, "cargo", &["test", "--workspace", "--doc"])?;
        // One process per test: process-level checks (fd counts, children)
        // never see another test's processes.
        run_counting(root, &["nextest", "run", "--workspace", "--no-fail-fast"])?
    } else {
        run_counting(root, &["test", "--workspace", "--no-fail-fast"])?
    };
    external(root)?;
    // Benchmarks are not tests: the smoke run only proves they still build
    // and run, and nothing is compared against a threshold.
    bench(root, true)?;
    fuzz(root, 15, true)?;
    soak(root, true)?;
    // One plain closing line for whoever reads the log last.
    println!(
        "xtask ci: {} passed, {} failed",
        counts.passed, counts.failed
    );
    Ok(())
}

#[derive(Default)]
struct Counts {
    passed: u64,
    failed: u64,
}

/// Runs `cargo ARGS`, echoing its output, and adds up the pass/fail counts
/// that nextest's summary or libtest's `test result:` lines report.
fn run_counting(root: &Path, args: &[&str]) -> Result<Counts, String> {
    use std::io::{BufRead, BufReader};
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(args)
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running cargo: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let echo_err = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            lines.push(line);
        }
        lines
    });
    let mut lines = Vec::new();
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        lines.push(line);
    }
    lines.extend(echo_err.join().unwrap_or_default());
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut counts = Counts::default();
    for line in &lines {
        counts.passed += number_before(line, " passed").unwrap_or(0);
        counts.failed += number_before(line, " failed").unwrap_or(0);
    }
    if status.success() {
        Ok(counts)
    } else {
        Err(format!(
            "`cargo {}` failed ({status}); {} passed, {} failed",
            args.join(" "),
            counts.passed,
            counts.failed
        ))
    }
}

/// The number right before `word` in a summary line such as
/// `Summary [ 3.8s] 73 tests run: 73 passed, 0 skipped` or
/// `test result: ok. 5 passed; 0 failed; ...`.
fn number_before(line: &str, word: &str) -> Option<u64> {
    // nextest echoes each failing binary's libtest summary indented; count
    // only unindented libtest lines and nextest's own summary.
    if !(line.contains("tests run:") || line.starts_with("test result:")) {
        return None;
    }
    let at = line.find(word)?;
    line[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn bench(root: &Path, quick: bool) -> Result<(), String> {
    let mut args = vec!["bench", "-p", "netrunner-bench", "--bench", "compare", "--"];
    if quick {
        args.push("--quick");
    }
    run(root, "cargo", &args)
}

/// The cargo-fuzz targets in `fuzz/`.
const FUZZ_TARGETS: [&str; 3] = [
    "decode_to_shepherd",
    "decode_from_shepherd",
    "request_stream",
];

/// Runs every fuzz target for `seconds`. A smoke run writes what it finds
/// to a scratch directory; a full run grows the corpus in the repository.
/// A crash, a timeout or an allocation over 64 MiB fails it.
fn fuzz(root: &Path, seconds: u64, smoke: bool) -> Result<(), String> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        return Err("cargo-fuzz is missing: cargo install cargo-fuzz --locked".into());
    }
    let dir = root.join("fuzz");
    let mut total = 0u64;
    for target in FUZZ_TARGETS {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        let scratch = root.join("target").join("fuzz-smoke").join(target);
        let mut dirs = Vec::new();
        if smoke {
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
            dirs.push(scratch.clone());
        }
        dirs.push(corpus);
        let time = format!("-max_total_time={seconds}");
        eprintln!("$ cargo fuzz run -s none {target} ({seconds} s)");
        let out = Command::new("cargo")
            .args(["fuzz", "run", "-s", "none", target])
            .args(&dirs)
            .args([
                "--",
                &time,
                "-malloc_limit_mb=64",
                "-rss_limit_mb=1024",
                "-timeout=10",
            ])
            .arg("-print_final_stats=1")
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("running cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse::<u64>().ok());
        if !out.status.success() || runs.is_none() {
            eprintln!("{log}");
            return Err(format!("fuzz target {target} failed ({})", out.status));
        }
        let runs = runs.unwrap_or(0);
        total += runs;
        eprintln!("fuzz: {target}: {runs} executions, no crash, hang or oversized allocation");
    }
    eprintln!("fuzz: {total} executions in all");
    Ok(())
}

/// Builds and runs the soak binary (release), `--quick` for CI.
fn soak(root: &Path, quick: bool) -> Result<(), String> {
    run(
        root,
        "cargo",
        &["build", "--release", "-p", "netrunner-tests", "--bins"],
    )?;
    let bin = root.join("target").join("release").join("soak");
    let mut args = Vec::new();
    if quick {
        args.push("--quick");
    }
    run(root, &bin.to_string_lossy(), &args)
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

#[cfg(test)]
mod tests {
    use super::number_before;

    #[test]
    fn reads_runner_summaries() {
        let nextest = "     Summary [   3.868s] 73 tests run: 73 passed, 0 skipped";
        assert_eq!(number_before(nextest, " passed"), Some(73));
        assert_eq!(number_before(nextest, " failed"), None);
        let libtest = "test result: FAILED. 5 passed; 2 failed; 0 ignored";
        assert_eq!(number_before(libtest, " passed"), Some(5));
        assert_eq!(number_before(libtest, " failed"), Some(2));
        assert_eq!(number_before("3 passed elsewhere", " passed"), None);
        assert_eq!(
            number_before("    test result: FAILED. 0 passed; 1 failed;", " failed"),
            None
        );
    }
}
