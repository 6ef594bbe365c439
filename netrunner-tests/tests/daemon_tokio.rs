//! Supervised daemons through the tokio front end, with real processes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netrunner_tests::{next, wait_gone};
use netrunner_tokio::{Command, Daemon, DaemonEvent, DaemonState, OutputStream, Ready, Restart};

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_gives_up_and_events_stream() {
    let daemon = Daemon::new(sh("exit 3"))
        .restart(Restart::OnFailure)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .max_restarts(3, Duration::from_secs(10))
        .start()
        .unwrap();
    let mut events = daemon.subscribe();
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_secs(10), next(&mut events)).await
    {
        let done = matches!(event, DaemonEvent::GaveUp { .. });
        seen.push(event);
        if done {
            break;
        }
    }
    let runs = seen
        .iter()
        .filter(|e| matches!(e, DaemonEvent::Started { .. }))
        .count();
    assert_eq!(runs, 4, "{seen:?}");
    assert_eq!(daemon.state(), DaemonState::GaveUp);
    assert!(daemon.wait_ready(Duration::from_secs(1)).await.is_err());
    assert_eq!(daemon.last_exit().and_then(|s| s.code()), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_output_write_and_stop() {
    let began = Instant::now();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    let mut cmd = sh("sleep 0.3; echo listening; echo err >&2; exec cat");
    cmd.stdin(netrunner_tokio::Stdio::piped());
    let daemon = Daemon::new(cmd)
        .ready(Ready::Line("listening".into()))
        .on_output(move |stream, line| {
            seen.lock()
                .unwrap()
                .push((stream, String::from_utf8_lossy(line).into_owned()))
        })
        .start()
        .unwrap();
    assert!(daemon.wait_ready(Duration::from_secs(10)).await.unwrap());
    assert!(began.elapsed() >= Duration::from_millis(300));
    daemon.write(b"back\n").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines.lock().unwrap().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = lines.lock().unwrap().clone();
    assert!(
        got.contains(&(OutputStream::Stdout, "back".to_owned())),
        "{got:?}"
    );
    assert!(
        got.contains(&(OutputStream::Stderr, "err".to_owned())),
        "{got:?}"
    );
    let pid = daemon.pid().unwrap();
    daemon.stop().await.unwrap();
    assert!(wait_gone(&[pid], Duration::from_secs(7)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_restart_a_term_ignoring_tree() {
    let mut cmd = sh("trap '' TERM; sleep 1000 & wait");
    cmd.kill_timeout(Duration::from_millis(500));
    let daemon = Daemon::new(cmd).start().unwrap();
    let first = daemon.pid().unwrap();
    daemon.restart().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.pid().is_none_or(|p| p == first) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = daemon.pid().unwrap();
    assert_ne!(second, first);
    let began = Instant::now();
    daemon.stop().await.unwrap();
    assert!(began.elapsed() < Duration::from_millis(500) + Duration::from_secs(2));
    assert!(wait_gone(&[first, second], Duration::from_secs(3)).is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn ready_sd_notify_and_a_stop_on_a_current_thread_runtime() {
    let notify = env!("CARGO_BIN_EXE_sd-notify");
    let began = Instant::now();
    let daemon = Daemon::new(sh(&format!("sleep 0.3; {notify}; exec sleep 100")))
        .ready(Ready::SdNotify)
        .start()
        .unwrap();
    assert!(daemon.wait_ready(Duration::from_secs(10)).await.unwrap());
    assert!(began.elapsed() >= Duration::from_millis(300));
    let pid = daemon.pid().unwrap();
    daemon.stop().await.unwrap();
    assert!(wait_gone(&[pid], Duration::from_secs(7)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_notify_fd() {
    let began = Instant::now();
    let daemon = Daemon::new(sh("sleep 0.3; echo >&4; exec sleep 100"))
        .ready(Ready::NotifyFd(4))
        .start()
        .unwrap();
    assert!(daemon.wait_ready(Duration::from_secs(10)).await.unwrap());
    assert!(began.elapsed() >= Duration::from_millis(300));
    daemon.stop().await.unwrap();
}

async fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies_and_the_start_timeout() {
    let clean = Daemon::new(sh("exit 0")).start().unwrap();
    assert!(
        until(Duration::from_secs(5), || clean.state()
            == DaemonState::Stopped)
        .await
    );
    assert_eq!(clean.restarts(), 0);

    let always = Daemon::new(sh("exit 0"))
        .restart(Restart::Always)
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .start()
        .unwrap();
    assert!(until(Duration::from_secs(5), || always.restarts() >= 2).await);
    drop(always);

    let never = Daemon::new(sh("exit 3"))
        .restart(Restart::Never)
        .start()
        .unwrap();
    assert!(
        until(Duration::from_secs(5), || never.state()
            == DaemonState::Stopped)
        .await
    );
    assert_eq!(never.last_exit().and_then(|s| s.code()), Some(3));

    // Never ready: terminated at the start timeout, restarted, given up.
    let stuck = Daemon::new(sh("exec sleep 100"))
        .ready(Ready::Line("never".into()))
        .start_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .max_restarts(2, Duration::from_secs(30))
        .start()
        .unwrap();
    assert!(
        until(Duration::from_secs(10), || stuck.state()
            == DaemonState::GaveUp)
        .await
    );
    assert_eq!(stuck.restarts(), 2);
}

#[test]
fn owner_sigkill_while_running_leaves_nothing() {
    let left = netrunner_tests::owner_death_leftovers(
        env!("CARGO_BIN_EXE_hold-tree"),
        "daemon-tokio",
        Duration::from_millis(300),
    );
    assert!(left.is_empty(), "survivors: {left:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_with_nobody_listening_never_blocks_it() {
    // 100 MiB drained on a current-thread runtime, so the line after it comes.
    let flood = Daemon::new(sh(
        "head -c 104857600 /dev/zero | tr '\\0' x; echo; echo flooded; exec sleep 100",
    ))
    .ready(Ready::Line("flooded".into()))
    .start()
    .unwrap();
    assert!(flood.wait_ready(Duration::from_secs(120)).await.unwrap());
    flood.stop().await.unwrap();
}
