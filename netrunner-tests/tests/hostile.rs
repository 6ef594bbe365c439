//! Hostile conditions: exhausted resources must not turn a drop into a wait.

use std::time::{Duration, Instant};

use netrunner_blocking::Command;
use netrunner_tests::{eventually, wait_dead, zombie_children};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// A command that ignores SIGTERM: only the end of its 10 s grace period
/// (SIGKILL) ends it, so a drop that waited for it would take 10 s.
const STUBBORN: &str = "trap '' TERM; echo started; while :; do sleep 0.1; done";

#[test]
fn a_drop_with_no_descriptor_left_does_not_wait_for_the_command() {
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(64),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let mut child = Command::new("sh")
        .args(["-c", STUBBORN])
        .stdout(netrunner_blocking::Stdio::piped())
        .kill_timeout(Duration::from_secs(10))
        .spawn()
        .unwrap();
    assert_eq!(netrunner_tests::first_line(&mut child), "started\n");
    let pid = child.id();

    // No descriptor left: the reaper thread cannot make its wake-up pipe.
    let mut filler = Vec::new();
    while let Ok(fd) = netrunner_sys::fd::open_dev_null() {
        filler.push(fd);
    }
    let began = Instant::now();
    drop(child);
    let took = began.elapsed();
    drop(filler);
    setrlimit(Resource::Nofile, limit).unwrap();

    // The bound is the grace period, which a blocking drop would sit out.
    assert!(
        took < Duration::from_secs(5),
        "the drop waited {took:?} for the command"
    );
    assert!(
        wait_dead(&[pid], Duration::from_secs(12)).is_empty(),
        "the command outlived its grace period"
    );
    // The shepherd's zombie goes at the next netrunner call.
    assert!(eventually(Duration::from_secs(12), || {
        Command::new("true").status().unwrap();
        zombie_children().is_empty()
    }));
}

#[test]
fn a_zero_timeout_is_refused_every_time_before_anything_starts() {
    for _ in 0..20 {
        let err = Command::new("true")
            .timeout(Duration::ZERO)
            .output()
            .unwrap_err();
        assert!(
            matches!(err, netrunner_blocking::Error::InvalidInput { .. }),
            "{err:?}"
        );
    }
    assert!(netrunner_tests::children_except_spare().is_empty());
}

#[test]
fn an_oversized_request_is_argument_list_too_long_before_anything_starts() {
    let huge = "x".repeat(netrunner_proto::MAX_FRAME_LEN + 1);
    let err = Command::new("true").arg(&huge).output().unwrap_err();
    match &err {
        netrunner_blocking::Error::Spawn { source, .. } => {
            assert_eq!(
                source.kind(),
                std::io::ErrorKind::ArgumentListTooLong,
                "{err}"
            )
        }
        other => panic!("{other:?}"),
    }
    // No shepherd was started for it (a spare may exist from nothing else:
    // this is the process's first spawn).
    assert!(netrunner_tests::children_except_spare().is_empty());
    assert!(netrunner_core::spare::spare_pid().is_none());
}

#[test]
fn wait_timeout_of_duration_max_waits_instead_of_panicking() {
    let mut child = Command::new("true").spawn().unwrap();
    let status = child.wait_timeout(Duration::MAX).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// A signal handler that runs while `spawn()` waits for a shepherd's answer
/// interrupts its `poll`; the wait must go on with its deadline (30 s),
/// never turn into a read with none. The "shepherd" is `cat`: it swallows
/// the request and never answers.
#[test]
fn a_signal_during_the_handshake_keeps_its_deadline() {
    use std::os::unix::thread::JoinHandleExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A real handler (tokio's), so the signal interrupts system calls.
    let _usr1 = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).unwrap()
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let spawner = std::thread::spawn(move || {
        let result = Command::new("true").shepherd_path("/bin/cat").spawn();
        let _ = done_tx.send(result.err().map(|e| e.to_string()));
    });
    let thread = spawner.as_pthread_t();
    let began = Instant::now();
    let mut outcome = None;
    while began.elapsed() < netrunner_core::launch::HANDSHAKE_TIMEOUT + Duration::from_secs(10) {
        if began.elapsed() < Duration::from_secs(2) {
            let _ = nix::sys::pthread::pthread_kill(thread, nix::sys::signal::Signal::SIGUSR1);
        }
        if let Ok(result) = done_rx.recv_timeout(Duration::from_millis(50)) {
            outcome = Some(result);
            break;
        }
    }
    let outcome = outcome.expect("spawn() hung past its handshake deadline after a signal");
    spawner.join().unwrap();
    let message = outcome.expect("a silent shepherd is an error");
    assert!(message.contains("did not answer"), "{message}");
}

/// A descriptor the owner leaked without O_CLOEXEC never reaches the
/// command, through a fresh shepherd or a spare: the command starts with
/// exactly 0, 1 and 2, as the design promises.
#[test]
fn a_descriptor_the_owner_leaked_never_reaches_the_command() {
    let (leaked_r, leaked_w) = rustix::pipe::pipe().unwrap();
    assert!(!netrunner_sys::fd::is_cloexec(std::os::fd::AsFd::as_fd(&leaked_r)).unwrap());
    for _ in 0..3 {
        let out = Command::new("sh")
            .args(["-c", "ls /proc/$$/fd"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n2\n", "{out:?}");
    }
    drop((leaked_r, leaked_w));
}
