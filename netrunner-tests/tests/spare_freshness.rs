//! A pre-started spare shepherd must be indistinguishable from a fresh one.
//!
//! Each check changes something in this process between two spawns — the
//! second spawn is served by the spare started after the first — and looks
//! at what the child actually got. One test, so nothing else in this
//! process changes the same global state meanwhile.

use std::time::Duration;

use netrunner_blocking::Command;
use netrunner_tests::{eventually, with_spare_ready};

fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cwd_limits_umask_and_a_dead_spare() {
    // The working directory is this process's at spawn time.
    let dir = std::env::temp_dir().join(format!("netrunner-spare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    with_spare_ready();
    std::env::set_current_dir(&dir).unwrap();
    assert_eq!(sh("pwd").trim(), dir.to_str().unwrap());
    std::env::set_current_dir("/").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    // Resource limits: lower the open-file soft limit after the spare started.
    with_spare_ready();
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let lowered = rustix::process::Rlimit {
        current: Some(321),
        maximum: nofile.maximum,
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lowered).unwrap();
    assert_eq!(sh("ulimit -n").trim(), "321");
    rustix::process::setrlimit(rustix::process::Resource::Nofile, nofile).unwrap();

    // The umask.
    with_spare_ready();
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    assert_eq!(sh("umask").trim(), "0027");
    rustix::process::umask(old);

    // Per-thread security state: a spare started by netrunner's background
    // thread before this thread set no_new_privs must not be used.
    with_spare_ready();
    std::thread::spawn(|| {
        rustix::thread::set_no_new_privs(true).unwrap();
        assert_eq!(sh("grep NoNewPrivs /proc/self/status"), "NoNewPrivs:\t1\n");
    })
    .join()
    .unwrap();

    // A spare killed while it waits: the next spawn starts a fresh shepherd.
    let spare = with_spare_ready();
    let pid = netrunner_sys::process::Pid::from_raw(spare as i32).unwrap();
    netrunner_sys::process::kill(pid, netrunner_blocking::Signal::KILL).unwrap();
    assert!(eventually(Duration::from_secs(2), || {
        netrunner_sys::process::process_state(spare as i32).map_or(true, |s| s == b'Z')
    }));
    assert_eq!(sh("echo still works"), "still works\n");
}
