//! 300 async spawn/wait cycles leave no descriptor and no zombie behind.

use std::time::Duration;

use netrunner_tests::open_fds;
use netrunner_tokio::{Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn three_hundred_cycles_leak_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        drop(
            Command::new("sleep")
                .arg("100")
                .kill_timeout(Duration::ZERO)
                .spawn()
                .unwrap(),
        );
        assert!(netrunner_tests::settle());
        let baseline = open_fds();
        eprintln!("baseline fds: {:?}", netrunner_tests::fd_targets());
        for i in 0..300 {
            let mut child = Command::new("sh")
                .args(["-c", "read line; echo \"$line\""])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .as_mut()
                .unwrap()
                .write_all(format!("{i}\n").as_bytes())
                .await
                .unwrap();
            assert!(child.wait().await.unwrap().success());
            let mut out = String::new();
            child
                .stdout
                .as_mut()
                .unwrap()
                .read_to_string(&mut out)
                .await
                .unwrap();
            assert_eq!(out, format!("{i}\n"));
        }
        netrunner_tests::assert_back_to_baseline(baseline, Duration::from_secs(10));
    });
}
