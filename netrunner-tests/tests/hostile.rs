//! Hostile conditions: exhausted resources must not turn a drop into a wait.

use std::time::{Duration, Instant};

use netrunner_blocking::Command;
use netrunner_tests::{eventually, wait_dead, zombie_children};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// A command that ignores SIGTERM: only the end of its 10 s grace period
/// (SIGKILL) ends it, so a drop that waited for it would take 10 s.
const STUBBORN: &str = "trap '' TERM; echo started; while :; do sleep 0.1; done";

#[test]
fn a_drop_with_no_descriptor_left_does_not_wait_for_the_command() {
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(64),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let mut child = Command::new("sh")
        .args(["-c", STUBBORN])
        .stdout(netrunner_blocking::Stdio::piped())
        .kill_timeout(Duration::from_secs(10))
        .spawn()
        .unwrap();
    assert_eq!(netrunner_tests::first_line(&mut child), "started\n");
    let pid = child.id();

    // No descriptor left: the reaper thread cannot make its wake-up pipe.
    let mut filler = Vec::new();
    while let Ok(fd) = netrunner_sys::fd::open_dev_null() {
        filler.push(fd);
    }
    let began = Instant::now();
    drop(child);
    let took = began.elapsed();
    drop(filler);
    setrlimit(Resource::Nofile, limit).unwrap();

    // The bound is the grace period, which a blocking drop would sit out.
    assert!(
        took < Duration::from_secs(5),
        "the drop waited {took:?} for the command"
    );
    assert!(
        wait_dead(&[pid], Duration::from_secs(12)).is_empty(),
        "the command outlived its grace period"
    );
    // The shepherd's zombie goes at the next netrunner call.
    assert!(eventually(Duration::from_secs(12), || {
        Command::new("true").status().unwrap();
        zombie_children().is_empty()
    }));
}

#[test]
fn a_zero_timeout_is_refused_every_time_before_anything_starts() {
    for _ in 0..20 {
        let err = Command::new("true")
            .timeout(Duration::ZERO)
            .output()
            .unwrap_err();
        assert!(
            matches!(err, netrunner_blocking::Error::InvalidInput { .. }),
            "{err:?}"
        );
    }
    assert!(netrunner_tests::children_except_spare().is_empty());
}

#[test]
fn an_oversized_request_is_argument_list_too_long_before_anything_starts() {
    let huge = "x".repeat(netrunner_proto::MAX_FRAME_LEN + 1);
    let err = Command::new("true").arg(&huge).output().unwrap_err();
    match &err {
        netrunner_blocking::Error::Spawn { source, .. } => {
            assert_eq!(
                source.kind(),
                std::io::ErrorKind::ArgumentListTooLong,
                "{err}"
            )
        }
        other => panic!("{other:?}"),
    }
    // No shepherd was started for it (a spare may exist from nothing else:
    // this is the process's first spawn).
    assert!(netrunner_tests::children_except_spare().is_empty());
    assert!(netrunner_core::spare::spare_pid().is_none());
}

#[test]
fn wait_timeout_of_duration_max_waits_instead_of_panicking() {
    let mut child = Command::new("true").spawn().unwrap();
    let status = child.wait_timeout(Duration::MAX).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
