//! Whole-tree cleanup: owner death, drop, timeouts, and leaders that exit early.

use std::io::Read;
use std::time::Duration;

use netrunner_blocking::{Command, Stdio};
use netrunner_tests::{pids_in, read_pid_lines, shepherd_of, wait_gone, KillOnDrop, STUBBORN_TREE};

const GRACE: Duration = Duration::from_millis(500);

#[test]
fn owner_killed_with_sigkill_takes_every_descendant_along() {
    let left =
        netrunner_tests::owner_death_leftovers(env!("CARGO_BIN_EXE_hold-tree"), "blocking", GRACE);
    assert!(
        left.is_empty(),
        "still present after owner SIGKILL: {left:?}"
    );
}

#[test]
fn dropping_a_child_kills_its_tree_including_setsid_escapees() {
    let mut guard = KillOnDrop::new("sleep");
    let mut all = Vec::new();
    for (script, n) in netrunner_tests::TREES {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .kill_timeout(GRACE)
            .spawn()
            .unwrap();
        let pids = read_pid_lines(&mut child, n);
        guard.add(pids.clone());
        assert!(pids.iter().all(|&p| netrunner_tests::alive(p)));
        drop(child);
        all.extend(pids);
    }
    let left = wait_gone(&all, GRACE + Duration::from_secs(2));
    assert!(left.is_empty(), "still present after drop: {left:?}");
}

#[test]
fn dropping_a_stream_early_kills_yes() {
    let mut stream = Command::new("yes").stream().unwrap();
    let pid = stream.child().id();
    let first = stream.next().unwrap().unwrap();
    assert!(first.starts_with(b"y\n"));
    drop(stream);
    assert!(wait_gone(&[pid], Duration::from_secs(2) + Duration::from_secs(5)).is_empty());
}

#[test]
fn background_jobs_die_when_the_leader_exits_so_output_never_hangs() {
    let mut guard = KillOnDrop::new("sleep");
    // The background sleep holds stdout open; std's output() would wait 1000 s.
    let out = Command::new("sh")
        .args(["-c", "sleep 1000 & echo $!"])
        .output()
        .unwrap();
    let pids = pids_in(&out.stdout);
    guard.add(pids.clone());
    assert_eq!(pids.len(), 1);
    assert!(out.status.success());
    assert!(wait_gone(&pids, Duration::from_secs(2)).is_empty());

    // Even a background job that ignores SIGTERM: SIGKILL after the grace.
    let out = Command::new("sh")
        .args(["-c", "trap '' TERM; sleep 1000 & echo $!"])
        .kill_timeout(GRACE)
        .output()
        .unwrap();
    let pids = pids_in(&out.stdout);
    guard.add(pids.clone());
    assert!(wait_gone(&pids, GRACE + Duration::from_secs(2)).is_empty());
}

#[test]
fn timeout_kills_grandchildren_too() {
    let mut guard = KillOnDrop::new("sleep");
    let mut child = Command::new("sh")
        .args(["-c", STUBBORN_TREE])
        .stdout(Stdio::piped())
        .timeout(Duration::from_millis(200))
        .kill_timeout(GRACE)
        .spawn()
        .unwrap();
    let pids = read_pid_lines(&mut child, 4);
    guard.add(pids.clone());
    // Nobody waits: the shepherd enforces the timeout on its own.
    let left = wait_gone(
        &pids,
        Duration::from_millis(200) + GRACE + Duration::from_secs(2),
    );
    assert!(left.is_empty(), "{left:?}");
    assert!(!child.timed_out(), "not known before the exit is reported");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(netrunner_blocking::Signal::KILL));
    assert!(child.timed_out());
    let mut rest = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut rest).unwrap();
}

#[test]
fn sigterm_to_the_shepherd_escalates_instead_of_orphaning() {
    let mut guard = KillOnDrop::new("sleep");
    let mut child = Command::new("sh")
        .args(["-c", STUBBORN_TREE])
        .stdout(Stdio::piped())
        .kill_timeout(GRACE)
        .spawn()
        .unwrap();
    let pids = read_pid_lines(&mut child, 4);
    guard.add(pids.clone());
    let shepherd = shepherd_of(child.id());
    let shepherd_pid = netrunner_sys::process::Pid::from_raw(shepherd as i32).unwrap();
    netrunner_sys::process::kill(shepherd_pid, netrunner_blocking::Signal::TERM).unwrap();
    // The shepherd survives its SIGTERM long enough to take the tree down
    // and report: sh ignores TERM, so it dies by SIGKILL after the grace.
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(netrunner_blocking::Signal::KILL));
    assert!(wait_gone(&pids, Duration::from_secs(2)).is_empty());
    assert!(
        wait_gone(&[shepherd], Duration::from_secs(2)).is_empty(),
        "shepherd reaped"
    );
}

#[test]
fn a_shepherd_killed_outright_takes_its_child_along_and_is_reported() {
    let mut guard = KillOnDrop::new("sleep");
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id();
    guard.add([pid]);
    let shepherd = netrunner_sys::process::Pid::from_raw(shepherd_of(pid) as i32).unwrap();
    netrunner_sys::process::kill(shepherd, netrunner_blocking::Signal::KILL).unwrap();
    // PR_SET_PDEATHSIG delivers SIGKILL to the command.
    assert!(wait_gone(&[pid], Duration::from_secs(2)).is_empty());
    match child.wait() {
        Err(netrunner_blocking::Error::Shepherd(netrunner_blocking::ShepherdError::Lost)) => {}
        other => panic!("expected a lost shepherd, got {other:?}"),
    }
}
