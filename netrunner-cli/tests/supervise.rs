//! `netrunner supervise`, run as a user would run it.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_netrunner");

#[test]
fn a_crash_loop_prints_its_events_and_exits_with_the_last_code() {
    let out = Command::new(BIN)
        .args([
            "supervise",
            "--backoff",
            "50ms..200ms",
            "--max-restarts",
            "3/10s",
            "--",
            "sh",
            "-c",
            "echo run; exit 3",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "run\n".repeat(4));
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("exited with exit code 3") && l.contains("; restarting in "))
            .count(),
        3,
        "{log}"
    );
    assert!(log.contains("(restart 3)"), "{log}");
    assert!(log.contains("giving up after 3 restarts"), "{log}");
}

#[test]
fn restart_never_exits_like_run() {
    let out = Command::new(BIN)
        .args([
            "supervise",
            "--restart",
            "never",
            "--",
            "sh",
            "-c",
            "exit 7",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
}

#[test]
fn sigterm_stops_gracefully_exits_0_and_leaves_nothing() {
    let mut child = Command::new(BIN)
        .args([
            "supervise",
            "--kill-timeout",
            "500ms",
            "--ready-line",
            "up",
            "--",
            "sh",
            "-c",
            "trap '' TERM; sleep 1000 & echo $!; echo up; wait",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let sleeper: u32 = line.trim().parse().unwrap();
    let mut guard = netrunner_tests::KillOnDrop::new("sleep");
    guard.add([sleeper]);
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no ready line");
        if line.contains("is ready") {
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        netrunner_tests::wait_gone(&[sleeper], Duration::from_secs(3)).is_empty(),
        "the daemon's tree outlived a graceful stop"
    );
}
