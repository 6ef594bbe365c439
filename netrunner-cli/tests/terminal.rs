//! `netrunner run` from an interactive shell: the command owns the terminal
//! for its run, Ctrl-C reaches it, and the shell can use its terminal again
//! afterwards — also when the run ends by timeout.

use std::time::Duration;

use netrunner_tests::TtySession;

const BIN: &str = env!("CARGO_BIN_EXE_netrunner");
const LIMIT: Duration = Duration::from_secs(10);

/// Runs `netrunner run ARGS... -- sh -c INNER` from a session-leading shell,
/// which prints netrunner's exit code and then reads one more line.
fn session(run_args: &str, inner: &str) -> TtySession {
    TtySession::start(
        &format!(
            "\"$1\" run {run_args} -- sh -c \"$2\"; echo \"rc=$?\"; read y; echo \"after=$y\""
        ),
        &[BIN, inner],
    )
}

/// After the run: the shell is in the foreground and can read its terminal.
fn shell_has_its_terminal_back(tty: &mut TtySession) {
    assert!(
        TtySession::in_foreground(tty.shell()),
        "{}",
        tty.transcript()
    );
    tty.type_in(b"ok\n");
    tty.wait_for("after=ok", LIMIT);
}

#[test]
fn an_interactive_command_reads_the_terminal() {
    let mut tty = session("", "read x; echo \"got $x\"");
    tty.type_in(b"hi\n");
    let text = tty.wait_for("rc=", LIMIT);
    assert!(text.contains("got hi") && text.contains("rc=0"), "{text:?}");
    shell_has_its_terminal_back(&mut tty);
}

#[test]
fn ctrl_c_ends_the_command_with_sigint() {
    let mut tty = session("", "echo \"pid=$$\"; exec sleep 100");
    tty.foreground_command(LIMIT);
    tty.type_in(b"\x03");
    let text = tty.wait_for("rc=", LIMIT);
    assert!(text.contains("rc=130"), "128 + SIGINT: {text:?}");
    shell_has_its_terminal_back(&mut tty);
}

#[test]
fn a_timeout_gives_the_terminal_back_too() {
    let mut tty = session("--timeout 300ms --kill-timeout 200ms", "read x");
    let text = tty.wait_for("rc=", LIMIT);
    assert!(text.contains("rc=124"), "{text:?}");
    shell_has_its_terminal_back(&mut tty);
}

#[test]
fn a_command_that_ran_its_own_foreground_job_gives_the_terminal_back_on_timeout() {
    // bash with job control puts `sleep` in a process group of its own and
    // makes that the foreground group; the timeout kills both. The
    // terminal must not stay with the dead job's group.
    let mut tty = session(
        "--timeout 500ms --kill-timeout 200ms",
        "exec bash -c 'set -m; sleep 100; echo never'",
    );
    let text = tty.wait_for("rc=", LIMIT);
    assert!(text.contains("rc=124"), "{text:?}");
    shell_has_its_terminal_back(&mut tty);
}
