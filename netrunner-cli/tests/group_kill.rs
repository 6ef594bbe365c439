//! `netrunner run` killed with its whole process group, as job control or a
//! CI runner does it: the command's tree follows, escapees included.

use std::time::Duration;

use netrunner_blocking::Signal;
use netrunner_tests::{group_kill_leftovers, ESCAPING_TREE, STUBBORN_TREE, TREES_PIDS};

const GRACE: Duration = Duration::from_millis(300);
const OWNERS: usize = 20;

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
    let (left, _guard) = group_kill_leftovers(
        make,
        OWNERS,
        TREES_PIDS,
        sig,
        GRACE + Duration::from_secs(1),
    );
    assert!(
        left.is_empty(),
        "{sig} to netrunner's group left {} of {} processes: {left:?}",
        left.len(),
        OWNERS * TREES_PIDS
    );
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
