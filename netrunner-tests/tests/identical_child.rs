//! A child started through a spare shepherd sees what a `std::process`
//! child started at the same moment sees.
//!
//! Each test makes sure a spare is ready (started by netrunner's refill
//! thread), changes something, then runs the same probe through netrunner
//! and through `std::process::Command` and compares. Per-thread changes are
//! made on a scratch thread, which then does both spawns.

use std::time::Duration;

use netrunner_tests::{both_agree, eventually, run_ok, with_spare_ready};

/// What a shell sees of its own process: nice, real-time priority and
/// policy (stat fields 19, 40, 41), I/O priority, CPU affinity,
/// personality, timer slack, `oom_score_adj`, working directory.
const PROBE: &str = r#"cut -d' ' -f19,40,41 /proc/$$/stat
ionice -p $$
grep Cpus_allowed_list /proc/$$/status
cat /proc/$$/personality /proc/$$/timerslack_ns /proc/$$/oom_score_adj
pwd"#;

fn netrunner_sh(script: &str) -> String {
    let out = netrunner_blocking::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn std_sh(script: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The probe's output through netrunner, and whether the spare that was
/// ready served it (the shell's parent is the spare).
fn netrunner_probe() -> (String, bool) {
    let spare = netrunner_core::spare::spare_pid();
    let script = format!("ps -o ppid= -p $$\n{PROBE}");
    let out = netrunner_sh(&script);
    let (parent, view) = out.split_once('\n').unwrap();
    let parent: u32 = parent.trim().parse().unwrap();
    (view.to_owned(), Some(parent) == spare)
}

/// Runs `change` on a scratch thread once a spare is ready, then the probe
/// through both; returns netrunner's view after checking it equals std's
/// and that the spare served it.
fn probe_after(change: impl FnOnce() + Send + 'static) -> String {
    with_spare_ready();
    let ((ours, used_spare), theirs) = std::thread::spawn(move || {
        change();
        (netrunner_probe(), std_sh(PROBE))
    })
    .join()
    .unwrap();
    assert_eq!(ours, theirs, "netrunner's child differs from std's");
    assert!(used_spare, "the spare was not used");
    ours
}

fn tid() -> String {
    rustix::thread::gettid().as_raw_nonzero().to_string()
}

#[test]
fn per_thread_attributes_reach_the_child_as_std_passes_them() {
    let default = probe_after(|| {});

    let seen = probe_after(|| rustix::process::setpriority_process(None, 7).unwrap());
    assert!(seen.starts_with("7 "), "{seen}");

    // SCHED_BATCH is policy 3; chrt works on a thread id.
    let seen = probe_after(|| run_ok("chrt", &["--batch", "-p", "0", &tid()]));
    assert!(seen.starts_with("0 0 3\n"), "{seen}");

    let seen = probe_after(|| run_ok("ionice", &["-c", "3", "-p", &tid()]));
    assert!(seen.contains("\nidle\n"), "{seen}");

    let seen = probe_after(|| {
        let mut one = rustix::thread::CpuSet::new();
        one.set(0);
        rustix::thread::sched_setaffinity(None, &one).unwrap();
    });
    assert!(seen.contains("Cpus_allowed_list:\t0\n"), "{seen}");

    // ADDR_NO_RANDOMIZE.
    let seen = probe_after(|| {
        let mut attributes = netrunner_sys::inherit::thread_attributes().unwrap();
        attributes.personality |= 0x0040000;
        netrunner_sys::inherit::apply_thread_attributes(&attributes).unwrap();
    });
    assert!(seen.contains("\n00040000\n"), "{seen}");

    let seen = probe_after(|| {
        rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(123_456)).unwrap()
    });
    assert!(seen.contains("\n123456\n"), "{seen}");

    // oom_score_adj is the process's: raise it (no privilege needed) for
    // the rest of this test process.
    std::fs::write("/proc/self/oom_score_adj", "500").unwrap();
    let seen = probe_after(|| {});
    assert!(seen.contains("\n500\n"), "{seen}");
    assert_ne!(seen, default);
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netrunner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_renamed_deleted_or_deeper_than_path_max_cwd_is_the_childs_too() {
    let top = scratch_dir("cwd");

    // Renamed after we entered it.
    std::fs::create_dir(top.join("before")).unwrap();
    std::env::set_current_dir(top.join("before")).unwrap();
    std::fs::rename(top.join("before"), top.join("after")).unwrap();
    with_spare_ready();
    let (code, out, _) = both_agree("/bin/pwd -P");
    assert_eq!(
        (code, out.trim()),
        (Some(0), top.join("after").to_str().unwrap())
    );

    // Deeper than PATH_MAX: entered one component at a time.
    let component = "d".repeat(200);
    for _ in 0..25 {
        std::fs::create_dir(&component).unwrap();
        std::env::set_current_dir(&component).unwrap();
    }
    std::fs::write("deep-marker", b"").unwrap();
    with_spare_ready();
    let (code, out, _) = both_agree("ls; /bin/pwd -P | wc -c");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("deep-marker\n"), "{out}");

    // Deleted while we are in it.
    std::env::set_current_dir(&top).unwrap();
    std::fs::create_dir(top.join("doomed")).unwrap();
    std::env::set_current_dir(top.join("doomed")).unwrap();
    std::fs::remove_dir(top.join("doomed")).unwrap();
    with_spare_ready();
    let (code, _, _) = both_agree("ls -a; /bin/pwd -P");
    assert_ne!(
        code,
        Some(0),
        "pwd in a deleted directory fails for std too"
    );

    std::env::set_current_dir("/").unwrap();
    std::fs::remove_dir_all(&top).unwrap();
}

#[test]
fn no_shepherd_pins_the_mount_the_caller_worked_in() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mountpoint = scratch_dir("mount");
    let target = mountpoint.to_str().unwrap().to_owned();
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .args(["-l", &self.0])
                .status();
        }
    }
    run_ok("mount", &["-t", "tmpfs", "netrunner-test", &target]);
    let _unmount = Unmount(target.clone());
    std::env::set_current_dir(&mountpoint).unwrap();
    // Spawns from inside the mount, the spare's refill among them.
    for _ in 0..3 {
        with_spare_ready();
        let (code, out, _) = both_agree("/bin/pwd -P");
        assert_eq!((code, out.trim()), (Some(0), target.as_str()));
    }
    std::env::set_current_dir("/").unwrap();
    with_spare_ready();
    // A spare pinning the mount would make this fail with EBUSY; allow it
    // the moment between its exec and its chdir.
    assert!(
        eventually(Duration::from_secs(2), || std::process::Command::new(
            "umount"
        )
        .arg(&target)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()),
        "the mount stayed busy"
    );
    std::fs::remove_dir(&mountpoint).unwrap();
}
