//! A stalled consumer stalls the command; memory stays flat.

use std::time::Duration;

use netrunner_tests::{alive, next, rss_kib};
use netrunner_tokio::Command;

#[test]
fn a_stalled_stream_consumer_keeps_memory_flat() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // `yes` writes as fast as it can, forever.
        let mut stream = Command::new("yes").stream().unwrap();
        let first = next(&mut stream).await.unwrap().unwrap();
        assert!(!first.is_empty());
        let before = rss_kib();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib();
        // Nothing was read while stalled: only the pipe's 64 KiB are pending.
        assert!(alive(stream.id()), "the command is stalled, not dead");
        let stats = stream.stats();
        assert_eq!(
            stats.bytes_out,
            first.len() as u64,
            "no read-ahead beyond the chunk taken"
        );
        assert!(
            after < before + 4096,
            "RSS grew from {before} KiB to {after} KiB"
        );
        // And it resumes on demand.
        let resumed = next(&mut stream).await.unwrap().unwrap();
        assert!(!resumed.is_empty() && resumed.iter().all(|b| matches!(b, b'y' | b'\n')));
    });
}
