//! 1,000 children alive at once on one multi-thread runtime.

use std::time::Duration;

use netrunner_tests::{alive, open_fds, raise_fd_limit, wait_gone};
use netrunner_tokio::{Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHILDREN: usize = 1000;

#[test]
fn one_thousand_concurrent_children() {
    // Each child holds three descriptors here (socket, stdin, stdout).
    assert!(
        raise_fd_limit() >= 4 * CHILDREN as u64,
        "the hard fd limit is too low for this test"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Warm up: the shepherd memfd, and the reaper (a dropped running child
        // hands its shepherd over), so the baseline includes one-time state.
        drop(
            Command::new("sleep")
                .arg("100")
                .kill_timeout(Duration::ZERO)
                .spawn()
                .unwrap(),
        );
        assert!(netrunner_tests::settle());
        let baseline = open_fds();

        let mut children = Vec::with_capacity(CHILDREN);
        for _ in 0..CHILDREN {
            children.push(
                Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
        assert!(
            pids.iter().all(|&p| alive(p)),
            "all {CHILDREN} run at the same time"
        );

        let tasks: Vec<_> = children
            .into_iter()
            .enumerate()
            .map(|(i, mut child)| {
                tokio::spawn(async move {
                    let mut stdin = child.stdin.take().unwrap();
                    stdin
                        .write_all(format!("child {i}\n").as_bytes())
                        .await
                        .unwrap();
                    drop(stdin);
                    let mut out = String::new();
                    child
                        .stdout
                        .take()
                        .unwrap()
                        .read_to_string(&mut out)
                        .await
                        .unwrap();
                    let status = child.wait().await.unwrap();
                    (i, out, status)
                })
            })
            .collect();
        for task in tasks {
            let (i, out, status) = task.await.unwrap();
            assert_eq!(out, format!("child {i}\n"));
            assert!(status.success());
        }
        assert!(wait_gone(&pids, Duration::from_secs(2)).is_empty());
        netrunner_tests::assert_back_to_baseline(baseline, Duration::from_secs(5));
    });
}
