//! Cancellation kills: dropped children, futures and streams, and a killed owner.

use std::time::Duration;

use netrunner_tests::{
    next, on_both_runtimes, pids_in, read_pid_lines_async, wait_gone, KillOnDrop, STUBBORN_TREE,
};
use netrunner_tokio::{Command, Stdio};

const GRACE: Duration = Duration::from_millis(500);

#[test]
fn owner_killed_with_sigkill_takes_every_descendant_along() {
    let left =
        netrunner_tests::owner_death_leftovers(env!("CARGO_BIN_EXE_hold-tree"), "tokio", GRACE);
    assert!(
        left.is_empty(),
        "still present after owner SIGKILL: {left:?}"
    );
}

#[test]
fn dropping_a_child_kills_its_tree() {
    on_both_runtimes(|| async {
        let mut guard = KillOnDrop::new("sleep");
        let mut all = Vec::new();
        for (script, n) in netrunner_tests::TREES {
            let mut child = Command::new("sh")
                .args(["-c", script])
                .stdout(Stdio::piped())
                .kill_timeout(GRACE)
                .spawn()
                .unwrap();
            let pids = read_pid_lines_async(&mut child, n).await;
            guard.add(pids.clone());
            assert!(!child.timed_out());
            drop(child);
            all.extend(pids);
        }
        let left = wait_gone(&all, GRACE + Duration::from_secs(2));
        assert!(left.is_empty(), "still present after drop: {left:?}");
    });
}

#[test]
fn dropping_an_output_future_kills_its_tree() {
    on_both_runtimes(|| async {
        let mut guard = KillOnDrop::new("sleep");
        let marker = std::env::temp_dir().join(format!("netrunner-cancel-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        // The tree writes its pids to a file because the output is never
        // collected: the future is cancelled by tokio's timeout.
        let script = format!("{{ {STUBBORN_TREE}; }} > '{}'", marker.display());
        let fut = Command::new("sh")
            .args(["-c", &script])
            .kill_timeout(GRACE)
            .output();
        assert!(
            tokio::time::timeout(Duration::from_millis(500), fut)
                .await
                .is_err(),
            "cancelled"
        );
        let pids = pids_in(&std::fs::read(&marker).unwrap());
        guard.add(pids.clone());
        assert_eq!(pids.len(), 4);
        let left = wait_gone(&pids, GRACE + Duration::from_secs(2));
        assert!(
            left.is_empty(),
            "still present after cancelling output(): {left:?}"
        );
        std::fs::remove_file(&marker).unwrap();
    });
}

#[test]
fn dropping_a_stream_early_kills_yes() {
    on_both_runtimes(|| async {
        let mut stream = Command::new("yes").stream().unwrap();
        let pid = stream.id();
        assert!(next(&mut stream)
            .await
            .unwrap()
            .unwrap()
            .starts_with(b"y\n"));
        drop(stream);
        assert!(wait_gone(&[pid], Duration::from_secs(7)).is_empty());
    });
}

#[test]
fn timeout_holds_even_if_nobody_polls() {
    on_both_runtimes(|| async {
        let mut guard = KillOnDrop::new("sleep");
        let mut child = Command::new("sh")
            .args(["-c", STUBBORN_TREE])
            .stdout(Stdio::piped())
            .timeout(Duration::from_millis(200))
            .kill_timeout(GRACE)
            .spawn()
            .unwrap();
        let pids = read_pid_lines_async(&mut child, 4).await;
        guard.add(pids.clone());
        // Block this thread: the shepherd enforces the timeout by itself.
        let left = wait_gone(
            &pids,
            Duration::from_millis(200) + GRACE + Duration::from_secs(2),
        );
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(
            child.wait().await.unwrap().signal(),
            Some(netrunner_tokio::Signal::KILL)
        );
    });
}
