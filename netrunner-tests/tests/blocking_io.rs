//! Output, input and exit statuses through the blocking API, against real programs.

use std::io::{Read, Write};
use std::time::Duration;

use netrunner_blocking::{Command, Error, Signal, Stdio};

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

#[test]
fn echo_cat_and_sort_round_trip() {
    let out = Command::new("echo").arg("hello").output().unwrap();
    assert_eq!(out.stdout, b"hello\n");
    assert!(out.stderr.is_empty());
    assert!(out.status.success());

    let out = Command::new("cat").input("some bytes").output().unwrap();
    assert_eq!(out.stdout, b"some bytes");

    let out = Command::new("sort")
        .input("pear\napple\nfig\n")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"apple\nfig\npear\n");
}

#[test]
fn sixty_four_mib_through_cat_is_exact() {
    let mut data = vec![0u8; 64 << 20];
    let mut x: u32 = 0x1234_5678;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let out = Command::new("cat").input(data.clone()).output().unwrap();
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "bytes differ");
    assert_eq!(out.stats.bytes_in, data.len() as u64);
    assert_eq!(out.stats.bytes_out, data.len() as u64);
}

#[test]
fn nul_and_high_bytes_round_trip() {
    let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let out = Command::new("cat").input(data.clone()).output().unwrap();
    assert_eq!(out.stdout, data);
}

#[test]
fn empty_output_is_empty() {
    let out = Command::new("true").output().unwrap();
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert!(out.status.success());
}

#[test]
fn exit_codes_are_reported_exactly() {
    for code in [0, 1, 255] {
        let status = sh(&format!("exit {code}")).status().unwrap();
        assert_eq!(status.code(), Some(code));
        assert_eq!(status.signal(), None);
        assert_eq!(status.success(), code == 0);
    }
}

#[test]
fn death_by_signal_is_not_an_exit_code() {
    let status = sh("kill -TERM $$").status().unwrap();
    assert_eq!(status.signal(), Some(Signal::TERM));
    assert_eq!(status.code(), None);
    assert_eq!(status.to_string(), "killed by SIGTERM");

    let status = sh("exit 143").status().unwrap();
    assert_eq!(status.code(), Some(143));
    assert_eq!(status.signal(), None);
    assert_eq!(status.to_string(), "exit code 143");
}

#[test]
fn stderr_is_separate_or_merged() {
    let out = sh("echo out; echo err >&2").output().unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );

    let out = sh("echo one; echo two >&2; echo three")
        .stderr_to_stdout()
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"one\ntwo\nthree\n");
    assert!(out.stderr.is_empty());
    assert_eq!(out.stats.bytes_err, 0);
}

#[test]
fn big_stdout_and_stderr_at_once_do_not_deadlock() {
    // 8 MiB on each stream, far beyond both pipe buffers, while 8 MiB of
    // input is still being written.
    let script = "head -c 8388608 /dev/zero; head -c 8388608 /dev/zero >&2; cat >/dev/null";
    let out = sh(script).input(vec![7u8; 8 << 20]).output().unwrap();
    assert_eq!(out.stdout.len(), 8 << 20);
    assert_eq!(out.stderr.len(), 8 << 20);
    assert!(out.status.success());
}

#[test]
fn closing_stdin_delivers_eof_while_output_is_read() {
    let mut child = sh("cat >/dev/null; echo saw-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"some input\n").unwrap();
    // The command is still running: it is waiting for EOF.
    assert!(child.try_wait().unwrap().is_none());
    drop(stdin);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "saw-eof\n");
    assert!(child.wait().unwrap().success());
    assert_eq!(child.stats().bytes_in, 11);
}

#[test]
fn env_and_cwd_are_applied() {
    let out = sh("echo \"$K|${GONE-unset}\"; pwd")
        .env("K", "V")
        .env("GONE", "x")
        .env_remove("GONE")
        .current_dir("/tmp")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"V|unset\n/tmp\n");

    let out = Command::new("env")
        .env_clear()
        .env("ONLY", "1")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"ONLY=1\n");
}

#[test]
fn stats_count_io_and_cpu() {
    let out = sh("head -c 100000 /dev/zero; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
        .output()
        .unwrap();
    let s = out.stats;
    assert_eq!(s.bytes_out, 100_000);
    assert!(s.read_count >= 1);
    assert!(s.duration > Duration::ZERO);
    assert!(s.user_time + s.system_time > Duration::ZERO, "{s:?}");
    assert!(s.max_rss > 0, "{s:?}");
}

#[test]
fn wait_timeout_try_wait_and_signals() {
    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    assert_eq!(
        child.wait_timeout(Duration::from_millis(100)).unwrap(),
        None
    );
    assert_eq!(child.try_wait().unwrap(), None);
    child.terminate().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::TERM));
    // Signalling an exited child is a no-op, as in std.
    child.kill().unwrap();
    child.signal(Signal::HUP).unwrap();

    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));

    let mut child =
        sh("trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 0.05; done")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    stdout.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    child.signal(Signal::USR1).unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got-usr1\n");
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

#[test]
fn pid_is_the_commands_not_the_shepherds() {
    let mut child = sh("echo $$").stdout(Stdio::piped()).spawn().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out.trim().parse::<u32>().unwrap(), child.id());
    child.wait().unwrap();
}

#[test]
fn timeout_terminates_and_returns_partial_output() {
    let started = std::time::Instant::now();
    let err = sh("echo before; exec sleep 100")
        .timeout(Duration::from_millis(300))
        .output()
        .unwrap_err();
    let elapsed = started.elapsed();
    match err {
        Error::Timeout { partial } => {
            assert_eq!(partial.stdout, b"before\n");
            assert_eq!(partial.status.signal(), Some(Signal::TERM));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    // Liveness bound: timeout + default kill_timeout (unused: sleep obeys TERM) + 2 s.
    assert!(
        elapsed < Duration::from_millis(300) + Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_kill_timeout() {
    let started = std::time::Instant::now();
    let err = sh("trap '' TERM; sleep 100")
        .timeout(Duration::from_millis(200))
        .kill_timeout(Duration::from_millis(500))
        .status()
        .unwrap_err();
    let elapsed = started.elapsed();
    match err {
        Error::Timeout { partial } => assert_eq!(partial.status.signal(), Some(Signal::KILL)),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(700),
        "grace was honoured: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(700) + Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[test]
fn max_output_keeps_exactly_the_cap() {
    match Command::new("yes").max_output(100_000).output() {
        Err(Error::OutputLimit { partial }) => {
            assert_eq!(partial.stdout.len() + partial.stderr.len(), 100_000);
            assert!(partial.stdout.chunks(2).all(|c| c == b"y\n"));
        }
        other => panic!("expected OutputLimit, got {other:?}"),
    }
    // Output of exactly the cap is not over it.
    let out = Command::new("printf")
        .arg("12345")
        .max_output(5)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"12345");
}

#[test]
fn stream_yields_stdout_in_order_and_finishes() {
    let mut stream = Command::new("seq").args(["1", "20000"]).stream().unwrap();
    let mut all = Vec::new();
    for chunk in &mut stream {
        all.extend(chunk.unwrap());
    }
    let expected: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    assert_eq!(all, expected.as_bytes());
    assert!(stream.finish().unwrap().success());
}

#[test]
fn stream_stops_at_max_output() {
    let mut stream = Command::new("yes").max_output(1000).stream().unwrap();
    let mut total = 0;
    let mut saw_limit = false;
    for chunk in &mut stream {
        match chunk {
            Ok(c) => total += c.len(),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
                saw_limit = true;
            }
        }
    }
    assert_eq!(total, 1000);
    assert!(saw_limit);
    assert!(matches!(stream.finish(), Err(Error::OutputLimit { .. })));
}

#[test]
fn large_input_to_a_command_that_stops_reading_does_not_hang() {
    // More input than a pipe holds, and the command closes its stdin unread:
    // the writer sees EPIPE and gives up; output() returns normally.
    let out = sh("exec 0<&-; echo done")
        .input(vec![b'x'; 4 << 20])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"done\n");
    assert!(out.status.success());
    assert!(out.stats.bytes_in < 4 << 20);

    // The output cap fires while input is still being written.
    match Command::new("cat")
        .input(vec![b'y'; 4 << 20])
        .max_output(1000)
        .output()
    {
        Err(Error::OutputLimit { partial }) => assert_eq!(partial.stdout.len(), 1000),
        other => panic!("expected OutputLimit, got {other:?}"),
    }
}
