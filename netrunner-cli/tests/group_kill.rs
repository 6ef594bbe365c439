//! `netrunner run` killed with its whole process group, as job control or a
//! CI runner does it: the command's tree follows, escapees included.

use std::time::Duration;

use netrunner_blocking::Signal;
use netrunner_tests::{assert_group_kill_leaves_nothing, ESCAPING_TREE, STUBBORN_TREE};

fn cli_killed_by_group_signal(sig: Signal) {
    let make = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_netrunner"));
        cmd.args([
            "run",
            "--kill-timeout",
            "300ms",
            "--",
            "sh",
            "-c",
            "sh -c \"$1\" & sh -c \"$2\" & wait",
            "sh",
            STUBBORN_TREE,
            ESCAPING_TREE,
        ]);
        cmd
    };
    assert_group_kill_leaves_nothing("netrunner", make, sig, Duration::from_millis(300));
}

#[test]
fn cli_killed_by_group_sigkill() {
    cli_killed_by_group_signal(Signal::KILL);
}

#[test]
fn cli_killed_by_group_sigquit() {
    cli_killed_by_group_signal(Signal::QUIT);
}

#[test]
fn cli_killed_by_group_sighup() {
    cli_killed_by_group_signal(Signal::HUP);
}
