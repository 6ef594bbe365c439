//! Children dropped while running leave no zombie shepherd behind.

use std::time::Duration;

use netrunner_blocking::Command;
use netrunner_tests::{eventually, wait_gone, zombie_children};

#[test]
fn dropped_children_leave_no_zombies() {
    let grace = Duration::from_millis(200);
    let mut pids = Vec::new();
    for _ in 0..20 {
        let child = Command::new("sleep")
            .arg("1000")
            .kill_timeout(grace)
            .spawn()
            .unwrap();
        pids.push(child.id());
        drop(child);
    }
    // sleep obeys SIGTERM, so each tree is gone almost at once; the shepherds
    // then exit and must be reaped within about a second.
    assert!(wait_gone(&pids, grace + Duration::from_secs(2)).is_empty());
    let clean = eventually(Duration::from_millis(1500), || {
        zombie_children().is_empty() && netrunner_tests::children_except_spare().is_empty()
    });
    assert!(clean, "zombies: {:?}", zombie_children());
}
