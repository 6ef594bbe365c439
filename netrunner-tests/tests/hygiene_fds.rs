//! 300 spawn/wait cycles leave no descriptor and no zombie behind.

use std::time::Duration;

use netrunner_blocking::{Command, Stdio};
use netrunner_tests::{eventually, open_fds, zombie_children};

#[test]
fn three_hundred_cycles_leak_nothing() {
    // One-time, process-wide state (the shepherd memfd, the orphan reaper)
    // exists before the baseline is taken.
    Command::new("true").status().unwrap();
    assert!(eventually(Duration::from_secs(2), || zombie_children().is_empty()));
    netrunner_tests::warm_up_one_time_state();
    let baseline = open_fds();

    for i in 0..300 {
        let mut child = Command::new("sh")
            .args(["-c", "read line; echo \"$line\""])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), format!("{i}\n").as_bytes())
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success());
        let mut out = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert_eq!(out, format!("{i}\n"));
    }

    netrunner_tests::assert_back_to_baseline(baseline, Duration::from_secs(10));
}
