//! A command on its owner's terminal runs in the foreground, as under a
//! job-control shell, and the owner gets the terminal back afterwards.
//!
//! The "owner" is `tty-owner`, a terminal program calling `status()`, run
//! from a shell that leads the session of a pty made by the test.

use std::time::Duration;

use netrunner_tests::TtySession;

const LIMIT: Duration = Duration::from_secs(10);

/// Reports the command's own process group and the terminal's foreground
/// group, from its `/proc` stat.
const REPORT_GROUPS: &str = "set -- $(sed 's/.*) //' /proc/$$/stat); echo \"pgrp=$3 tpgid=$6\"";

/// Runs `tty-owner sh -c INNER` from a session-leading shell that then
/// reads one more line, to show it can use its terminal again.
fn session(inner: &str) -> TtySession {
    TtySession::start(
        "\"$1\" sh -c \"$2\"; read y; echo \"after=$y\"",
        &[env!("CARGO_BIN_EXE_tty-owner"), inner],
    )
}

fn groups_line(text: &str) -> (String, String) {
    let line = text
        .lines()
        .find(|l| l.starts_with("pgrp="))
        .unwrap_or_else(|| panic!("no pgrp line in {text:?}"));
    let mut parts = line.trim().split(' ');
    let pgrp = parts.next().unwrap().trim_start_matches("pgrp=").to_owned();
    let tpgid = parts
        .next()
        .unwrap()
        .trim_start_matches("tpgid=")
        .to_owned();
    (pgrp, tpgid)
}

#[test]
fn status_gives_the_command_the_terminal_and_takes_it_back() {
    let mut tty = session(&format!("read x; echo \"got $x\"; {REPORT_GROUPS}"));
    // Typed before the command runs: the line waits in the terminal.
    tty.type_in(b"hi\n");
    let text = tty.wait_for("status=", LIMIT);
    assert!(text.contains("got hi"), "{text:?}");
    let (pgrp, tpgid) = groups_line(&text);
    assert_eq!(pgrp, tpgid, "the command's group was in the foreground");
    let text = tty.wait_for("fg=", LIMIT);
    assert!(text.contains("status=0 fg=true"), "{text:?}");
    assert!(
        TtySession::in_foreground(tty.shell()),
        "the shell has it back"
    );
    tty.type_in(b"ok\n");
    tty.wait_for("after=ok", LIMIT);
}

#[test]
fn ctrl_c_at_the_terminal_reaches_the_command_not_its_owner() {
    let mut tty = session("echo \"pid=$$\"; exec sleep 100");
    tty.foreground_command(LIMIT);
    tty.type_in(b"\x03");
    let text = tty.wait_for("fg=", LIMIT);
    assert!(
        text.contains("status=signal 2 fg=true"),
        "ended by SIGINT, owner in the foreground: {text:?}"
    );
    tty.type_in(b"ok\n");
    tty.wait_for("after=ok", LIMIT);
}

#[test]
fn a_command_not_on_the_terminal_stays_in_the_background() {
    // The owner's streams are the terminal, the command's are not.
    let mut tty = TtySession::start(
        "\"$1\" sh -c \"$2 >&2\" </dev/null 2>&1 | cat; read y; echo \"after=$y\"",
        &[env!("CARGO_BIN_EXE_tty-owner"), REPORT_GROUPS],
    );
    let text = tty.wait_for("status=", LIMIT);
    let (pgrp, tpgid) = groups_line(&text);
    assert_ne!(pgrp, tpgid, "the command did not take the terminal");
    tty.type_in(b"ok\n");
    tty.wait_for("after=ok", LIMIT);
}

#[test]
fn dropping_the_child_gives_the_terminal_back_at_once() {
    // The command ignores SIGTERM, so its tree is still in its 3 s grace
    // period when the owner checks: the owner took the terminal back
    // itself, on drop, without waiting for the tree. (The command does not
    // read: a read already blocked on a terminal keeps reading after the
    // foreground moves, under any shell.)
    let mut tty = TtySession::start(
        "\"$1\" --drop-after 300 sh -c \"trap '' TERM; sleep 100\"; read y; echo \"after=$y\"",
        &[env!("CARGO_BIN_EXE_tty-owner")],
    );
    let text = tty.wait_for("dropped fg=", LIMIT);
    assert!(text.contains("dropped fg=true"), "{text:?}");
    tty.type_in(b"ok\n");
    tty.wait_for("after=ok", LIMIT);
}

#[test]
fn foreground_false_keeps_the_terminal_with_the_owner() {
    let mut tty = TtySession::start(
        "\"$1\" --keep-terminal sh -c \"$2\"; read y; echo \"after=$y\"",
        &[env!("CARGO_BIN_EXE_tty-owner"), REPORT_GROUPS],
    );
    let text = tty.wait_for("status=", LIMIT);
    let (pgrp, tpgid) = groups_line(&text);
    assert_ne!(pgrp, tpgid, "the command stayed in the background");
    assert!(text.contains("status=0 fg=true"), "{text:?}");
    tty.type_in(b"ok\n");
    tty.wait_for("after=ok", LIMIT);
}
