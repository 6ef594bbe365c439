//! A signal to the owner's whole process group — job control, a CI runner's
//! group kill, Ctrl-\ — ends in the usual escalation, never in orphans.
//!
//! Each owner runs in a process group of its own and holds two trees: one
//! with background sleeps under a shell that ignores SIGTERM, one with a
//! `setsid` escapee and a double-forked one. Twenty owners are killed at
//! once per case; nothing may be left `kill_timeout` + 1 s later.

use std::time::Duration;

use netrunner_blocking::Signal;
use netrunner_tests::{group_kill_leftovers, TREES_PIDS};

const GRACE: Duration = Duration::from_millis(300);
const OWNERS: usize = 20;

fn owners_killed_by_group_signal(mode: &str, sig: Signal) {
    let make = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hold-tree"));
        cmd.args([mode, &GRACE.as_millis().to_string()]);
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
        "{sig} to the owners' groups ({mode}) left {} of {} processes: {left:?}",
        left.len(),
        OWNERS * TREES_PIDS
    );
}

#[test]
fn blocking_owners_killed_by_group_sigkill() {
    owners_killed_by_group_signal("blocking", Signal::KILL);
}

#[test]
fn blocking_owners_killed_by_group_sigquit() {
    owners_killed_by_group_signal("blocking", Signal::QUIT);
}

#[test]
fn blocking_owners_killed_by_group_sighup() {
    owners_killed_by_group_signal("blocking", Signal::HUP);
}

#[test]
fn blocking_owners_killed_by_group_sigterm_and_sigint() {
    owners_killed_by_group_signal("blocking", Signal::TERM);
    owners_killed_by_group_signal("blocking", Signal::INT);
}

#[test]
fn tokio_owners_killed_by_group_sigkill() {
    owners_killed_by_group_signal("tokio", Signal::KILL);
}

#[test]
fn tokio_owners_killed_by_group_sigquit() {
    owners_killed_by_group_signal("tokio", Signal::QUIT);
}

#[test]
fn tokio_owners_killed_by_group_sighup() {
    owners_killed_by_group_signal("tokio", Signal::HUP);
}
