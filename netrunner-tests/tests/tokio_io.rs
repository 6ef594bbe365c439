//! The tokio front end against real programs, on both runtime flavours.

use std::time::Duration;

use netrunner_tests::{next, on_both_runtimes};
use netrunner_tokio::{Command, Error, Signal, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

#[test]
fn round_trips_and_exit_statuses() {
    on_both_runtimes(|| async {
        let out = Command::new("echo").arg("hello").output().await.unwrap();
        assert_eq!(out.stdout, b"hello\n");
        assert!(out.status.success());

        let out = Command::new("sort")
            .input("pear\napple\nfig\n")
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"apple\nfig\npear\n");

        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        assert_eq!(
            Command::new("cat")
                .input(data.clone())
                .output()
                .await
                .unwrap()
                .stdout,
            data
        );

        let out = Command::new("true").output().await.unwrap();
        assert!(out.stdout.is_empty() && out.stderr.is_empty());

        for code in [0, 1, 255] {
            assert_eq!(
                sh(&format!("exit {code}")).status().await.unwrap().code(),
                Some(code)
            );
        }
        let killed = sh("kill -TERM $$").status().await.unwrap();
        assert_eq!((killed.signal(), killed.code()), (Some(Signal::TERM), None));
        let code143 = sh("exit 143").status().await.unwrap();
        assert_eq!((code143.signal(), code143.code()), (None, Some(143)));
    });
}

#[test]
fn sixty_four_mib_through_cat_is_exact() {
    on_both_runtimes(|| async {
        let mut data = vec![0u8; 64 << 20];
        let mut x: u32 = 0x9e37_79b9;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let out = Command::new("cat")
            .input(data.clone())
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), data.len());
        assert!(out.stdout == data, "bytes differ");
        assert_eq!(out.stats.bytes_out, data.len() as u64);
    });
}

#[test]
fn both_streams_at_once_do_not_deadlock_and_merge_works() {
    on_both_runtimes(|| async {
        let script = "head -c 4194304 /dev/zero; head -c 4194304 /dev/zero >&2; cat >/dev/null";
        let out = sh(script).input(vec![1u8; 4 << 20]).output().await.unwrap();
        assert_eq!((out.stdout.len(), out.stderr.len()), (4 << 20, 4 << 20));

        let out = sh("echo one; echo two >&2; echo three")
            .stderr_to_stdout()
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"one\ntwo\nthree\n");
    });
}

#[test]
fn closing_stdin_delivers_eof_while_output_is_read() {
    on_both_runtimes(|| async {
        let mut child = sh("cat >/dev/null; echo saw-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"some input\n").await.unwrap();
        assert!(child.try_wait().unwrap().is_none());
        drop(stdin);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out, "saw-eof\n");
        assert!(child.wait().await.unwrap().success());
        assert_eq!(child.stats().bytes_in, 11);
    });
}

#[test]
fn env_cwd_stats_and_pid() {
    on_both_runtimes(|| async {
        let out = sh("echo \"$K\"; pwd")
            .env("K", "V")
            .current_dir("/tmp")
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"V\n/tmp\n");

        let out = sh("head -c 100000 /dev/zero").output().await.unwrap();
        assert_eq!(out.stats.bytes_out, 100_000);
        assert!(out.stats.max_rss > 0 && out.stats.duration > Duration::ZERO);

        let mut child = sh("echo $$").stdout(Stdio::piped()).spawn().unwrap();
        let mut pid = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut pid)
            .await
            .unwrap();
        assert_eq!(pid.trim().parse::<u32>().unwrap(), child.id());
        child.wait().await.unwrap();
    });
}

#[test]
fn signals_terminate_kill_and_try_wait() {
    on_both_runtimes(|| async {
        let mut child = Command::new("sleep").arg("100").spawn().unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        child.terminate().unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(Signal::TERM));
        child.kill().unwrap();

        let mut child = Command::new("sleep").arg("100").spawn().unwrap();
        child.kill().unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(Signal::KILL));

        let mut child =
            sh("trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 0.05; done")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut ready = [0u8; 6];
        stdout.read_exact(&mut ready).await.unwrap();
        child.signal(Signal::USR1).unwrap();
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "got-usr1\n");
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
    });
}

#[test]
fn timeout_and_kill_timeout() {
    on_both_runtimes(|| async {
        let started = std::time::Instant::now();
        match sh("echo before; exec sleep 100")
            .timeout(Duration::from_millis(300))
            .output()
            .await
        {
            Err(Error::Timeout { partial }) => {
                assert_eq!(partial.stdout, b"before\n");
                assert_eq!(partial.status.signal(), Some(Signal::TERM));
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(2300),
            "{elapsed:?}"
        );

        let started = std::time::Instant::now();
        let err = sh("trap '' TERM; sleep 100")
            .timeout(Duration::from_millis(200))
            .kill_timeout(Duration::from_millis(400))
            .status()
            .await
            .unwrap_err();
        match err {
            Error::Timeout { partial } => assert_eq!(partial.status.signal(), Some(Signal::KILL)),
            other => panic!("expected Timeout, got {other:?}"),
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(600) && elapsed < Duration::from_millis(2600),
            "{elapsed:?}"
        );
    });
}

#[test]
fn max_output_and_streams() {
    on_both_runtimes(|| async {
        match Command::new("yes").max_output(100_000).output().await {
            Err(Error::OutputLimit { partial }) => assert_eq!(partial.stdout.len(), 100_000),
            other => panic!("expected OutputLimit, got {other:?}"),
        }

        let mut stream = Command::new("seq").args(["1", "20000"]).stream().unwrap();
        let mut all = Vec::new();
        while let Some(chunk) = next(&mut stream).await {
            all.extend_from_slice(&chunk.unwrap());
        }
        let expected: String = (1..=20000).map(|i| format!("{i}\n")).collect();
        assert_eq!(all, expected.as_bytes());
        assert!(stream.finish().await.unwrap().success());

        let mut stream = Command::new("yes").max_output(1000).stream().unwrap();
        let (mut total, mut saw_limit) = (0, false);
        while let Some(chunk) = next(&mut stream).await {
            match chunk {
                Ok(c) => total += c.len(),
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
                    saw_limit = true;
                }
            }
        }
        assert_eq!((total, saw_limit), (1000, true));
        assert!(matches!(
            stream.finish().await,
            Err(Error::OutputLimit { .. })
        ));
    });
}

#[test]
fn pty_mode_on_tokio() {
    on_both_runtimes(|| async {
        let out = Command::new("echo")
            .arg("hi")
            .pty(true)
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"hi\r\n");

        let script = "stty size; trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done";
        let mut child = sh(script).pty_size(30, 100).spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("30 100\r\nready\r\n") {
            let n = out.read(&mut buf).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        child.set_window_size(40, 120).unwrap();
        while !String::from_utf8_lossy(&seen).contains("40 120\r\n") {
            let n = out.read(&mut buf).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        child.kill().unwrap();
        child.wait().await.unwrap();

        let mut plain = Command::new("sleep").arg("100").spawn().unwrap();
        assert!(matches!(plain.set_window_size(1, 1), Err(Error::NotPty)));
        plain.kill().unwrap();
        plain.wait().await.unwrap();
    });
}

#[test]
fn cgroup_on_tokio() {
    on_both_runtimes(|| async {
        let name = format!(
            "netrunner-test-tokio-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        );
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let out = sh("cat /proc/self/cgroup")
            .cgroup(&name)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{name}"))),
            "{text}"
        );
        let mount = netrunner_core::cgroup::cgroup2_mount().unwrap();
        let current = netrunner_core::cgroup::current_cgroup().unwrap();
        assert!(!mount
            .join(current.trim_start_matches('/'))
            .join(&name)
            .exists());
    });
}
