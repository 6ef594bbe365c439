//! Supervised daemons through the blocking front end, with real processes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netrunner_blocking::{Command, Daemon, DaemonEvent, DaemonState, OutputStream, Ready, Restart};
use netrunner_tests::{eventually, wait_gone};

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

fn events_until(daemon: &Daemon, done: impl Fn(&DaemonEvent) -> bool) -> Vec<DaemonEvent> {
    let events = daemon.subscribe();
    let mut seen = Vec::new();
    while let Ok(event) = events.recv_timeout(Duration::from_secs(10)) {
        let last = done(&event);
        seen.push(event);
        if last {
            break;
        }
    }
    seen
}

#[test]
fn a_crash_loop_backs_off_and_gives_up_after_max_restarts() {
    let daemon = Daemon::new(sh("exit 3"))
        .restart(Restart::OnFailure)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .max_restarts(3, Duration::from_secs(10))
        .start()
        .unwrap();
    let events = events_until(&daemon, |e| matches!(e, DaemonEvent::GaveUp { .. }));
    let runs = events
        .iter()
        .filter(|e| matches!(e, DaemonEvent::Started { .. }))
        .count();
    assert_eq!(runs, 4, "{events:?}");
    let delays: Vec<Duration> = events
        .iter()
        .filter_map(|e| match e {
            DaemonEvent::Restarting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 3);
    for (delay, nominal) in delays.iter().zip([50u64, 100, 200]) {
        let nominal = Duration::from_millis(nominal);
        assert!(
            *delay >= nominal.mul_f64(0.9) && *delay <= nominal.mul_f64(1.1),
            "{delays:?}"
        );
    }
    assert_eq!(events.last(), Some(&DaemonEvent::GaveUp { restarts: 3 }));
    assert_eq!(daemon.state(), DaemonState::GaveUp);
    assert!(daemon.wait_ready(Duration::from_secs(1)).is_err());
    assert_eq!(daemon.last_exit().and_then(|s| s.code()), Some(3));
}

#[test]
fn restart_policies_with_real_exits() {
    let clean = Daemon::new(sh("exit 0")).start().unwrap();
    assert!(eventually(Duration::from_secs(5), || clean.state()
        == DaemonState::Stopped));
    assert_eq!(clean.restarts(), 0);

    let always = Daemon::new(sh("exit 0"))
        .restart(Restart::Always)
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .start()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || always.restarts() >= 2));
    drop(always);

    let never = Daemon::new(sh("exit 3"))
        .restart(Restart::Never)
        .start()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || never.state()
        == DaemonState::Stopped));
    assert_eq!(never.restarts(), 0);
    assert_eq!(never.last_exit().and_then(|s| s.code()), Some(3));
}

#[test]
fn ready_line_and_start_timeout() {
    let began = Instant::now();
    let daemon = Daemon::new(sh("sleep 0.3; echo now listening; exec sleep 100"))
        .ready(Ready::Line("listening".into()))
        .start()
        .unwrap();
    assert!(daemon.wait_ready(Duration::from_secs(10)).unwrap());
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert_eq!(daemon.state(), DaemonState::Running);
    let pid = daemon.pid().unwrap();
    daemon.stop().unwrap();
    assert!(wait_gone(&[pid], Duration::from_secs(7)).is_empty());

    // Never ready: killed at the start timeout and restarted, counted.
    let daemon = Daemon::new(sh("exec sleep 100"))
        .ready(Ready::Line("never".into()))
        .start_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .max_restarts(2, Duration::from_secs(30))
        .start()
        .unwrap();
    let events = events_until(&daemon, |e| matches!(e, DaemonEvent::GaveUp { .. }));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, DaemonEvent::Started { .. }))
            .count(),
        3,
        "{events:?}"
    );
    assert!(!daemon
        .wait_ready(Duration::from_millis(10))
        .unwrap_or(false));
}

#[test]
fn output_lines_reach_the_callback_and_a_flood_never_blocks_it() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    let mut cat = sh("echo one; echo two >&2; echo three; exec cat");
    cat.stdin(netrunner_blocking::Stdio::piped());
    let daemon = Daemon::new(cat)
        .on_output(move |stream, line| {
            seen.lock()
                .unwrap()
                .push((stream, String::from_utf8_lossy(line).into_owned()))
        })
        .start()
        .unwrap();
    daemon.write(b"echoed back\n").unwrap();
    assert!(eventually(Duration::from_secs(5), || lines
        .lock()
        .unwrap()
        .len()
        == 4));
    let got = lines.lock().unwrap().clone();
    let stdout: Vec<&str> = got
        .iter()
        .filter(|(s, _)| *s == OutputStream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(stdout, ["one", "three", "echoed back"]);
    assert!(got.contains(&(OutputStream::Stderr, "two".to_owned())));
    daemon.stop().unwrap();

    // 100 MiB with nobody listening: drained, so the line after it comes.
    let flood = Daemon::new(sh(
        "head -c 104857600 /dev/zero | tr '\\0' x; echo; echo flooded; exec sleep 100",
    ))
    .ready(Ready::Line("flooded".into()))
    .start()
    .unwrap();
    assert!(flood.wait_ready(Duration::from_secs(120)).unwrap());
}

#[test]
fn stop_drop_and_restart_take_the_tree_down() {
    let stubborn = "trap '' TERM; sleep 1000 & echo $!; wait";
    let pids = Arc::new(Mutex::new(Vec::new()));
    let seen = pids.clone();
    let mut cmd = sh(stubborn);
    cmd.kill_timeout(Duration::from_millis(500));
    let daemon = Daemon::new(cmd)
        .on_output(move |_, line| {
            if let Ok(pid) = String::from_utf8_lossy(line).trim().parse::<u32>() {
                seen.lock().unwrap().push(pid);
            }
        })
        .start()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || pids
        .lock()
        .unwrap()
        .len()
        == 1));
    let first = daemon.pid().unwrap();
    let events = daemon.subscribe();
    daemon.restart().unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        daemon.pid().is_some_and(|p| p != first) && pids.lock().unwrap().len() == 2
    }));
    let second = daemon.pid().unwrap();
    let after: Vec<DaemonEvent> = events.try_iter().collect();
    let at = after
        .iter()
        .position(|e| matches!(e, DaemonEvent::Restarting { delay, .. } if delay.is_zero()))
        .expect("a Restarting event with no delay");
    assert!(
        matches!(after.get(at + 1), Some(DaemonEvent::Started { pid, run: 2 }) if *pid == second),
        "{after:?}"
    );
    let began = Instant::now();
    daemon.stop().unwrap();
    assert!(began.elapsed() < Duration::from_millis(500) + Duration::from_secs(2));
    let mut all = pids.lock().unwrap().clone();
    all.extend([first, second]);
    assert!(
        wait_gone(&all, Duration::from_secs(3)).is_empty(),
        "{all:?}"
    );

    // Drop: the same, without waiting.
    let mut cmd = sh(stubborn);
    cmd.kill_timeout(Duration::from_millis(500));
    let daemon = Daemon::new(cmd).start().unwrap();
    let pid = daemon.pid().unwrap();
    drop(daemon);
    assert!(wait_gone(&[pid], Duration::from_secs(3)).is_empty());
}

const HOLD_TREE: &str = env!("CARGO_BIN_EXE_hold-tree");

#[test]
fn owner_sigkill_while_running_leaves_nothing() {
    let left =
        netrunner_tests::owner_death_leftovers(HOLD_TREE, "daemon", Duration::from_millis(300));
    assert!(left.is_empty(), "survivors: {left:?}");
}

#[test]
fn owner_sigkill_while_backing_off_starts_no_new_run() {
    let tag = format!("daemon-backoff-{}", std::process::id());
    let mut owner = std::process::Command::new(HOLD_TREE)
        .args(["daemon-backoff", "300"])
        .env("NETRUNNER_TEST_TAG", &tag)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(owner.stdout.take().unwrap());
    let mut line = String::new();
    while line.trim() != "ready" {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
    }
    // The scan sees tagged processes: the owner is one.
    assert!(netrunner_tests::tagged("NETRUNNER_TEST_TAG", &tag).contains(&owner.id()));
    owner.kill().unwrap();
    owner.wait().unwrap();
    // Longer than the backoff: a surviving supervisor would have started
    // the next run by now.
    std::thread::sleep(Duration::from_millis(1500));
    let left = netrunner_tests::tagged("NETRUNNER_TEST_TAG", &tag);
    assert!(
        left.is_empty(),
        "a run appeared after the owner died: {left:?}"
    );
}

/// Starts `script` (which signals readiness after 300 ms) with `ready`,
/// and checks `wait_ready` says so no earlier.
fn ready_after_300ms(script: &str, ready: Ready) {
    let began = Instant::now();
    let daemon = Daemon::new(sh(script)).ready(ready).start().unwrap();
    assert!(daemon.wait_ready(Duration::from_secs(10)).unwrap());
    assert!(began.elapsed() >= Duration::from_millis(300));
    daemon.stop().unwrap();
}

#[test]
fn ready_sd_notify_as_under_systemd() {
    let notify = env!("CARGO_BIN_EXE_sd-notify");
    ready_after_300ms(
        &format!("sleep 0.3; {notify}; exec sleep 100"),
        Ready::SdNotify,
    );
}

#[test]
fn ready_notify_fd_as_s6_does() {
    ready_after_300ms("sleep 0.3; echo >&3; exec sleep 100", Ready::NotifyFd(3));
}

#[test]
fn an_exit_carries_the_tail_of_stderr() {
    let long = "x".repeat(3000);
    let script = format!("echo {long} >&2; echo {long} >&2; echo last words >&2; exit 3");
    let daemon = Daemon::new(sh(&script))
        .restart(Restart::Never)
        .start()
        .unwrap();
    let events = events_until(&daemon, |e| matches!(e, DaemonEvent::Stopped));
    let tail = events
        .iter()
        .find_map(|e| match e {
            DaemonEvent::Exited { stderr_tail, .. } => Some(stderr_tail.clone()),
            _ => None,
        })
        .expect("an Exited event");
    // Whole lines, at most 4 KiB: the second long line and the last one.
    assert_eq!(
        String::from_utf8(tail).unwrap(),
        format!("{long}\nlast words\n")
    );
}
