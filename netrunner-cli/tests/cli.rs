//! The `netrunner` binary, run as a user would run it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use netrunner_tests::{pids_in, wait_gone, KillOnDrop, STUBBORN_TREE};

const BIN: &str = env!("CARGO_BIN_EXE_netrunner");

fn netrunner(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("netrunner exits normally")
}

#[test]
fn exit_codes_follow_the_command() {
    assert_eq!(code(&netrunner(&["run", "--", "true"])), 0);
    assert_eq!(code(&netrunner(&["run", "--", "sh", "-c", "exit 3"])), 3);
    assert_eq!(
        code(&netrunner(&["run", "--", "sh", "-c", "exit 255"])),
        255
    );
    assert_eq!(
        code(&netrunner(&["run", "--", "sh", "-c", "kill -TERM $$"])),
        128 + 15
    );
    assert_eq!(
        code(&netrunner(&["run", "--", "sh", "-c", "kill -KILL $$"])),
        128 + 9
    );
    let out = netrunner(&["run", "--", "echo", "passes", "through"]);
    assert_eq!(out.stdout, b"passes through\n");
}

#[test]
fn timeout_is_124_and_kills_the_tree() {
    let mut guard = KillOnDrop::new("sleep");
    let started = Instant::now();
    let out = netrunner(&[
        "run",
        "--timeout",
        "300ms",
        "--kill-timeout",
        "300ms",
        "--",
        "sh",
        "-c",
        STUBBORN_TREE,
    ]);
    let elapsed = started.elapsed();
    assert_eq!(code(&out), 124);
    let pids = pids_in(&out.stdout);
    guard.add(pids.clone());
    assert_eq!(pids.len(), 4);
    // netrunner returns only once the tree is gone.
    assert!(wait_gone(&pids, Duration::from_millis(200)).is_empty());
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_millis(2600),
        "{elapsed:?}"
    );
}

#[test]
fn max_output_passes_exactly_that_many_bytes() {
    let out = netrunner(&["run", "--max-output", "64KiB", "--", "yes"]);
    assert_eq!(code(&out), 123);
    assert_eq!(out.stdout.len(), 65536);
    assert!(out.stdout.chunks(2).all(|c| c == b"y\n"));
    // Output below the cap is untouched and not an error.
    let out = netrunner(&["run", "--max-output", "100", "--", "printf", "short"]);
    assert_eq!((code(&out), out.stdout.as_slice()), (0, &b"short"[..]));
    // The cap counts stderr too.
    let out = netrunner(&[
        "run",
        "--max-output",
        "10",
        "--",
        "sh",
        "-c",
        "echo 12345 >&2; echo 67890",
    ]);
    assert_eq!(code(&out), 123);
    assert_eq!(out.stdout.len() + out.stderr.len(), 10);
}

#[test]
fn not_found_and_not_executable_are_127_and_126_with_one_line() {
    let out = netrunner(&["run", "--", "/nonexistent/program"]);
    assert_eq!(code(&out), 127);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/nonexistent/program") && err.contains("No such file or directory"),
        "{err}"
    );

    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("netrunner-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, mode, message) in [
        ("plain", 0o644, "Permission denied"),
        ("garbage", 0o755, "Exec format error"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, b"\x7fnot a program").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = netrunner(&["run", "--", path.to_str().unwrap()]);
        assert_eq!(code(&out), 126, "{name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // A bad --cwd is netrunner's failure, not "program not found".
    let out = netrunner(&["run", "--cwd", "/nonexistent-dir", "--", "true"]);
    assert_eq!(code(&out), 125);
}

#[test]
fn stats_json_is_one_parseable_line() {
    let out = netrunner(&[
        "run",
        "--stats=json",
        "--",
        "sh",
        "-c",
        "head -c 1000 /dev/zero; echo err >&2",
    ]);
    assert_eq!(code(&out), 0);
    assert_eq!(out.stdout.len(), 1000);
    let err = String::from_utf8(out.stderr).unwrap();
    let json_line = err.lines().last().unwrap();
    // Parse with a real JSON parser and pull fields out.
    let script = "import json,sys; d=json.loads(sys.stdin.read()); \
                  print(d['exit'], d['exit_code'], d['bytes_out'], d['bytes_err'], d['timed_out'], \
                  d['duration_secs'] > 0, d['max_rss_bytes'] > 0, 'user_secs' in d)";
    let mut py = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is on the machine");
    py.stdin
        .take()
        .unwrap()
        .write_all(json_line.as_bytes())
        .unwrap();
    let parsed = py.wait_with_output().unwrap();
    assert!(parsed.status.success(), "not JSON: {json_line}");
    assert_eq!(
        String::from_utf8(parsed.stdout).unwrap().trim(),
        "0 0 1000 4 False True True True"
    );

    let out = netrunner(&["run", "--stats", "--", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("netrunner: exit code 0 after"));
}

#[test]
fn stdin_env_cwd_and_stderr_modes() {
    let mut child = Command::new(BIN)
        .args(["run", "--stats=json", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"streamed in\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"streamed in\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"bytes_in\":12"));

    let out = netrunner(&[
        "run",
        "--env-clear",
        "--env",
        "A=1",
        "--env",
        "B=two=2",
        "--cwd",
        "/tmp",
        "--",
        "sh",
        "-c",
        "echo $A $B; pwd; echo ${HOME-unset}",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["1 two=2", "/tmp", "unset"],
        "--env-clear dropped HOME"
    );

    let out = netrunner(&[
        "run",
        "--stderr",
        "merge",
        "--",
        "sh",
        "-c",
        "echo a; echo b >&2; echo c",
    ]);
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"a\nb\nc\n"[..], &b""[..])
    );
    let out = netrunner(&[
        "run",
        "--stderr",
        "null",
        "--",
        "sh",
        "-c",
        "echo a; echo b >&2",
    ]);
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"a\n"[..], &b""[..])
    );
}

fn spawn_stubborn(extra: &[&str]) -> (std::process::Child, Vec<u32>) {
    let mut args = vec!["run", "--kill-timeout", "500ms"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", STUBBORN_TREE]);
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let pids = (0..4)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            line.trim().parse().unwrap()
        })
        .collect();
    (child, pids)
}

#[test]
fn sigterm_to_netrunner_is_forwarded_and_it_exits_once_the_tree_is_gone() {
    for sig in ["TERM", "INT", "HUP"] {
        let mut guard = KillOnDrop::new("sleep");
        let (mut child, pids) = spawn_stubborn(&[]);
        guard.add(pids.clone());
        let kill = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        // sh ignores TERM, so the grace runs out and SIGKILL ends it.
        assert_eq!(status.code(), Some(128 + 9), "after SIG{sig}");
        assert!(
            wait_gone(&pids, Duration::from_millis(200)).is_empty(),
            "tree gone when netrunner exits"
        );
    }
}

#[test]
fn sigkill_to_netrunner_still_cleans_up() {
    let mut guard = KillOnDrop::new("sleep");
    let (mut child, pids) = spawn_stubborn(&[]);
    guard.add(pids.clone());
    child.kill().unwrap();
    child.wait().unwrap();
    let left = wait_gone(&pids, Duration::from_millis(500) + Duration::from_secs(2));
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn help_version_and_usage_errors() {
    let out = netrunner(&["run", "--help"]);
    assert_eq!(code(&out), 0);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("--max-output") && help.contains("124"),
        "{help}"
    );
    let out = netrunner(&["--version"]);
    assert_eq!(
        (code(&out), String::from_utf8(out.stdout).unwrap().trim()),
        (0, "netrunner 0.1.0")
    );
    assert_eq!(
        code(&netrunner(&["run", "--timeout", "soon", "--", "true"])),
        125
    );
    assert_eq!(code(&netrunner(&["run"])), 125);
}

#[test]
fn pty_and_cgroup_flags() {
    let out = netrunner(&["run", "--pty", "--", "tty"]);
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("/dev/pts/"));

    let name = format!("netrunner-cli-test-{}", std::process::id());
    let out = netrunner(&["run", "--cgroup", &name, "--", "cat", "/proc/self/cgroup"]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{name}"))),
        "{text}"
    );

    // A limit whose controller is missing is netrunner's failure, named.
    let script = "cat \"$MOUNT$(sed -n 's/^0:://p' /proc/self/cgroup)/pids.max\"";
    let mount = netrunner_core::cgroup::cgroup2_mount().unwrap();
    let env = format!("MOUNT={}", mount.display());
    let out = netrunner(&[
        "run",
        "--pids-max",
        "50",
        "--env",
        &env,
        "--",
        "sh",
        "-c",
        script,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    match code(&out) {
        0 => assert_eq!(out.stdout, b"50\n", "pids.max was written"),
        125 => assert!(err.contains("pids"), "{err}"),
        other => panic!("exit {other}: {err}"),
    }
    let out = netrunner(&["run", "--cgroup", "../escape", "--", "true"]);
    assert_eq!(code(&out), 125);
}

#[test]
fn a_stalled_reader_does_not_keep_netrunner_alive_after_a_signal() {
    // Our stdout is a pipe nobody reads: the output pump blocks once it is
    // full. The timeout ends the command; SIGTERM must then end netrunner.
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--timeout",
            "300ms",
            "--kill-timeout",
            "100ms",
            "--stats",
            "--",
            "yes",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still delivering to the stalled reader"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "netrunner ignored SIGTERM while draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(child.wait().unwrap().code(), Some(124));
}

#[test]
fn timeout_zero_means_no_timeout_as_for_timeout_1() {
    for _ in 0..20 {
        let out = netrunner(&["run", "--timeout", "0", "--", "true"]);
        assert_eq!(code(&out), 0, "{out:?}");
    }
}

#[test]
fn a_closed_stderr_is_no_reason_to_panic() {
    let (read, write) = netrunner_sys::fd::pipe2_cloexec().unwrap();
    drop(read);
    let out = Command::new(BIN)
        .args(["run", "--stats", "--", "sh", "-c", "exit 3"])
        .stdin(Stdio::null())
        .stderr(Stdio::from(write))
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{out:?}");
}

#[test]
fn a_reader_that_goes_away_is_reported_not_hidden() {
    // The command ignores SIGPIPE and exits 0 whatever happens to its
    // output; netrunner's own reader reads a little and leaves.
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--stats=json",
            "--",
            "sh",
            "-c",
            "trap '' PIPE; head -c 4000000 /dev/zero; exit 0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut some = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut some).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 141, "{out:?}");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("\"output_lost\":true"), "{report}");
    assert!(report.contains("\"exit_code\":0"), "{report}");
    let delivered: u64 = report
        .split("\"delivered_bytes\":")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("delivered_bytes in the report");
    assert!(delivered < 4_000_000, "{report}");
}
