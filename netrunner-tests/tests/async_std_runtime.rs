//! netrunner driven by async-std through netrunner-core's `Runtime` trait,
//! with no tokio involved.

use std::time::Duration;

use netrunner_core::aio::{self, AsyncChild};
use netrunner_core::launch::StdioPlan;
use netrunner_core::{Command, Stdio};
use netrunner_tests::async_std_rt::AsyncStdRuntime;

#[test]
fn cat_write_read_wait_on_async_std() {
    async_std::task::block_on(async {
        let rt = AsyncStdRuntime;
        let mut cmd = Command::<()>::new("cat");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = AsyncChild::spawn(&rt, &cmd, StdioPlan::for_spawn(&cmd)).unwrap();
        child
            .stdin
            .as_ref()
            .unwrap()
            .write_all(b"through async-std\n")
            .await
            .unwrap();
        drop(child.stdin.take());
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = child.stdout.as_ref().unwrap().read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, b"through async-std\n");
        assert!(child.wait().await.unwrap().success());
        assert_eq!(child.link.stats().bytes_in, 18);

        // The shared output() with a timeout, on the same runtime.
        let mut slow = Command::<()>::new("sleep");
        slow.arg("100").timeout(Duration::from_millis(200));
        assert!(matches!(
            aio::output(&rt, &slow).await,
            Err(netrunner_core::Error::Timeout { .. })
        ));
        let mut echo = Command::<()>::new("echo");
        echo.arg("hi");
        assert_eq!(aio::output(&rt, &echo).await.unwrap().stdout, b"hi\n");
    });
}

#[test]
fn owner_death_on_async_std() {
    let left = netrunner_tests::owner_death_leftovers(
        env!("CARGO_BIN_EXE_hold-tree"),
        "async-std",
        Duration::from_millis(500),
    );
    assert!(
        left.is_empty(),
        "still present after owner SIGKILL: {left:?}"
    );
}
