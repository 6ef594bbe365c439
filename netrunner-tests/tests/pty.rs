//! PTY mode against real programs: terminals, sizes, echo, interactive shells.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use netrunner_blocking::{Command, Error};
use netrunner_tests::{wait_gone, KillOnDrop, STUBBORN_TREE};

/// Reads from `r` until `needle` has appeared, or panics after 10 s.
fn read_until(r: &mut impl Read, seen: &mut Vec<u8>, needle: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        assert!(
            Instant::now() < deadline,
            "never saw {:?} in {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(seen)
        );
        let n = r.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "EOF before {:?} in {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn the_command_has_a_terminal() {
    let out = Command::new("tty").pty(true).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    assert!(
        text.ends_with("\r\n"),
        "terminal output processing: {text:?}"
    );

    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; print(sys.stdin.isatty(), sys.stdout.isatty())",
        ])
        .pty(true)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"True True\r\n");
    assert!(out.stderr.is_empty(), "stderr is the terminal too");

    let out = Command::new("echo").arg("hi").pty(true).output().unwrap();
    assert_eq!(out.stdout, b"hi\r\n");
}

#[test]
fn initial_size_and_resize_with_sigwinch() {
    let script = "stty size; trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done";
    let mut child = Command::new("sh")
        .args(["-c", script])
        .pty_size(30, 100)
        .kill_timeout(Duration::from_millis(200))
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    read_until(&mut out, &mut seen, b"30 100\r\nready\r\n");
    child.set_window_size(40, 120).unwrap();
    read_until(&mut out, &mut seen, b"40 120\r\n");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_interactive_shell_session() {
    let mut child = Command::new("sh")
        .arg("-i")
        .env("PS1", "$ ")
        .pty(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    read_until(&mut out, &mut seen, b"$ ");
    stdin.write_all(b"echo $((6 * 7))\n").unwrap();
    // Echo is on: the command line shows up, then its output.
    read_until(&mut out, &mut seen, b"echo $((6 * 7))\r\n42\r\n");
    stdin.write_all(b"exit 3\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
}

#[test]
fn echo_can_be_turned_off() {
    let mut child = Command::new("sh")
        .args(["-c", "read line; echo \"got $line\""])
        .pty_echo(false)
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"secret\n")
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "got secret\r\n", "the typed line is not echoed");
    assert!(child.wait().unwrap().success());
}

#[test]
fn no_output_is_lost_when_the_command_exits_at_once() {
    for run in 0..500 {
        let out = Command::new("sh")
            .args(["-c", "printf 'x%.0s' $(seq 1 5000)"])
            .pty(true)
            .output()
            .unwrap();
        assert_eq!(out.stdout.len(), 5000, "run {run}");
        assert!(out.stdout.iter().all(|&b| b == b'x'), "run {run}");
    }
}

#[test]
fn dropping_a_pty_child_kills_its_tree() {
    let mut guard = KillOnDrop::new("sleep");
    let mut child = Command::new("sh")
        .args(["-c", STUBBORN_TREE])
        .pty(true)
        .kill_timeout(Duration::from_millis(300))
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut out = child.stdout.take().unwrap();
    while seen.iter().filter(|&&b| b == b'\n').count() < 4 {
        let mut buf = [0u8; 256];
        let n = out.read(&mut buf).unwrap();
        seen.extend_from_slice(&buf[..n]);
    }
    let pids = netrunner_tests::pids_in(&seen);
    assert_eq!(pids.len(), 4);
    guard.add(pids.clone());
    drop(child);
    let left = wait_gone(&pids, Duration::from_millis(300) + Duration::from_secs(2));
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn resizing_a_child_without_a_pty_is_an_error() {
    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    assert!(matches!(child.set_window_size(10, 10), Err(Error::NotPty)));
    child.kill().unwrap();
    child.wait().unwrap();
}
