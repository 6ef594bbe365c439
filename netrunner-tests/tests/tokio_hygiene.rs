//! 300 async spawn/wait cycles leave no descriptor and no zombie behind.

use std::time::Duration;

use netrunner_tests::{eventually, open_fds, zombie_children};
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
        let settled = eventually(Duration::from_secs(3), || {
            netrunner_tests::settle() && open_fds() == baseline && zombie_children().is_empty()
        });
        assert!(
            settled,
            "fds {} vs {baseline}; zombies {:?}",
            open_fds(),
            zombie_children()
        );
    });
}
