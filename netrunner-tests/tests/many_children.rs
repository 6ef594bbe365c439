//! 100 children alive at once: all answer correctly and all are reaped.

use std::io::{Read, Write};
use std::time::Duration;

use netrunner_blocking::{Command, Stdio};
use netrunner_tests::{alive, open_fds, wait_gone};

#[test]
fn one_hundred_concurrent_children() {
    Command::new("true").status().unwrap();
    // One-time state (the memfd, and the reaper if anything was handed to
    // it) settles before measuring.
    assert!(netrunner_tests::settle());
    let baseline = open_fds();
    let mut children: Vec<_> = (0..100)
        .map(|_| {
            Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    assert!(
        pids.iter().all(|&p| alive(p)),
        "all 100 run at the same time"
    );

    for (i, child) in children.iter_mut().enumerate() {
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(format!("child {i}\n").as_bytes())
            .unwrap();
        drop(child.stdin.take());
    }
    for (i, child) in children.iter_mut().enumerate() {
        let mut out = String::new();
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, format!("child {i}\n"));
        assert!(child.wait().unwrap().success());
    }
    drop(children);
    assert!(wait_gone(&pids, Duration::from_secs(2)).is_empty());
    netrunner_tests::assert_back_to_baseline(baseline, Duration::from_secs(10));
}
