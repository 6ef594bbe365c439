//! A signal to the owner's whole process group — job control, a CI runner's
//! group kill, Ctrl-\ — ends in the usual escalation, never in orphans.
//!
//! Each owner runs in a process group of its own and holds two trees: one
//! with background sleeps under a shell that ignores SIGTERM, one with a
//! `setsid` escapee and a double-forked one. Twenty owners are killed at
//! once per case; nothing may be left `kill_timeout` + 1 s later.

use std::time::Duration;

use netrunner_blocking::Signal;
use netrunner_tests::{assert_group_kill_leaves_nothing, TREES_PIDS};

const GRACE: Duration = Duration::from_millis(300);

fn owners_killed_by_group_signal(mode: &str, sig: Signal) {
    let make = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hold-tree"));
        cmd.args([mode, &GRACE.as_millis().to_string()]);
        cmd
    };
    assert_group_kill_leaves_nothing(&format!("{mode} owners"), make, sig, GRACE);
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

#[test]
fn a_sighup_to_the_group_of_a_nohup_owner_leaves_its_commands_running() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    // The owner ignores SIGHUP (nohup), so a hangup must not end its
    // commands behind its back: the shepherd is not in the owner's group.
    let mut owner = std::process::Command::new("nohup")
        .args([env!("CARGO_BIN_EXE_hold-tree"), "blocking", "300"])
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start nohup hold-tree");
    let mut guard = netrunner_tests::KillOnDrop::new("sleep");
    let mut lines = std::io::BufReader::new(owner.stdout.take().unwrap()).lines();
    let mut pids = Vec::new();
    while pids.len() < TREES_PIDS {
        let line = lines.next().expect("hold-tree output").unwrap();
        pids.extend(line.trim().parse::<u32>().ok());
    }
    guard.add(pids.clone());
    let pgid = netrunner_sys::process::Pid::from_raw(owner.id() as i32).unwrap();
    netrunner_sys::process::kill_process_group(pgid, Signal::HUP).unwrap();
    std::thread::sleep(GRACE + Duration::from_millis(700));
    assert_eq!(owner.try_wait().unwrap(), None, "the owner ignored SIGHUP");
    let running = pids.iter().filter(|&&p| netrunner_tests::alive(p)).count();
    assert_eq!(running, TREES_PIDS, "every command survived the hangup");
    // Its death still takes them along.
    owner.kill().unwrap();
    owner.wait().unwrap();
    let left = netrunner_tests::wait_gone(&pids, GRACE + Duration::from_secs(2));
    assert!(left.is_empty(), "{left:?}");
}
