//! A shepherd killed outright (SIGKILL, a crash, the OOM killer) cannot take
//! its tree down; the library, its parent, does it instead.
//!
//! Survivors here are processes still running: with the shepherd gone, the
//! tree's zombies re-parent to init, and reaping them is init's business
//! (which it does on its own schedule), not netrunner's.

use std::time::{Duration, Instant};

use netrunner_blocking::{Command, Error, ShepherdError, Signal, Stdio};
use netrunner_sys::process::{self, Pid};
use netrunner_tests::{
    eventually, pids_in, read_pid_lines, read_pid_lines_async, shepherd_of, wait_dead, KillOnDrop,
};

/// A leader with a background job in its process group: prints both pids.
const WITH_BACKGROUND_JOB: &str = "sleep 1000 & echo $!; echo $$; wait";

/// SIGKILLs the shepherd of the command `pid` (its parent) and returns when.
fn kill_shepherd_of(pid: u32) -> Instant {
    let shepherd = Pid::from_raw(shepherd_of(pid) as i32).unwrap();
    process::kill(shepherd, Signal::KILL).expect("SIGKILL the shepherd");
    Instant::now()
}

/// Spawns `cmd` with stdout piped and reads the `n` pids its script prints;
/// the guard kills them if the test fails.
fn spawn_reporting(
    cmd: &mut Command,
    n: usize,
) -> (netrunner_blocking::Child, Vec<u32>, KillOnDrop) {
    let mut guard = KillOnDrop::new("sleep");
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let pids = read_pid_lines(&mut child, n);
    guard.add(pids.clone());
    (child, pids, guard)
}

/// Nothing of `pids` runs within 1 s.
fn assert_no_survivors(pids: &[u32]) {
    let left = wait_dead(pids, Duration::from_secs(1));
    assert!(left.is_empty(), "survivors of the shepherd: {left:?}");
}

fn is_lost(e: &Error) -> bool {
    matches!(e, Error::Shepherd(ShepherdError::Lost))
}

#[test]
fn wait_reports_the_loss_and_the_background_job_dies_too() {
    let (mut child, pids, _guard) =
        spawn_reporting(Command::new("sh").args(["-c", WITH_BACKGROUND_JOB]), 2);
    let killed_at = kill_shepherd_of(child.id());
    let err = child.wait().expect_err("no exit report can come");
    assert!(is_lost(&err), "{err:?}");
    assert!(
        killed_at.elapsed() < Duration::from_secs(1),
        "wait() returned {:?} after the shepherd died",
        killed_at.elapsed()
    );
    assert_no_survivors(&pids);
}

#[test]
fn dropping_a_child_whose_shepherd_died_unnoticed_takes_the_tree_down() {
    let (child, pids, _guard) =
        spawn_reporting(Command::new("sh").args(["-c", WITH_BACKGROUND_JOB]), 2);
    let shepherd = shepherd_of(child.id());
    kill_shepherd_of(child.id());
    // Nobody reads the socket; the drop finds the shepherd dead.
    assert!(eventually(Duration::from_secs(2), || {
        matches!(process::process_state(shepherd as i32), Ok(b'Z'))
    }));
    drop(child);
    assert_no_survivors(&pids);
}

#[test]
fn output_reports_the_loss_and_leaves_nothing() {
    let mut guard = KillOnDrop::new("sleep");
    let marker = std::env::temp_dir().join(format!("netrunner-lost-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let script = format!("{{ {WITH_BACKGROUND_JOB}; }} > '{}'", marker.display());
    let runner = std::thread::spawn(move || {
        let result = Command::new("sh").args(["-c", &script]).output();
        (result, Instant::now())
    });
    let mut pids = Vec::new();
    assert!(eventually(Duration::from_secs(10), || {
        pids = pids_in(&std::fs::read(&marker).unwrap_or_default());
        pids.len() == 2
    }));
    guard.add(pids.clone());
    let killed_at = kill_shepherd_of(pids[1]);
    let (result, returned_at) = runner.join().unwrap();
    let _ = std::fs::remove_file(&marker);
    let err = result.expect_err("no exit report can come");
    assert!(is_lost(&err), "{err:?}");
    assert!(
        returned_at.duration_since(killed_at) < Duration::from_secs(1),
        "output() returned {:?} after the shepherd died",
        returned_at.duration_since(killed_at)
    );
    assert_no_survivors(&pids);
}

#[test]
fn tokio_wait_reports_the_loss_and_the_tree_dies() {
    netrunner_tests::on_both_runtimes(|| async {
        let mut guard = KillOnDrop::new("sleep");
        let mut child = netrunner_tokio::Command::new("sh")
            .args(["-c", WITH_BACKGROUND_JOB])
            .stdout(netrunner_tokio::Stdio::piped())
            .spawn()
            .unwrap();
        let pids = read_pid_lines_async(&mut child, 2).await;
        guard.add(pids.clone());
        let killed_at = kill_shepherd_of(child.id());
        let err = child.wait().await.expect_err("no exit report can come");
        assert!(
            matches!(
                err,
                netrunner_tokio::Error::Shepherd(netrunner_tokio::ShepherdError::Lost)
            ),
            "{err:?}"
        );
        assert!(killed_at.elapsed() < Duration::from_secs(1));
        assert_no_survivors(&pids);
    });
}

#[test]
fn with_a_cgroup_even_setsid_escapees_die_and_the_cgroup_goes() {
    let Ok(mount) = netrunner_core::cgroup::cgroup2_mount() else {
        eprintln!("skipping: no cgroup v2 hierarchy is mounted");
        return;
    };
    let name = format!("netrunner-test-lost-{}", std::process::id());
    let dir = mount
        .join(
            netrunner_core::cgroup::current_cgroup()
                .unwrap()
                .trim_start_matches('/'),
        )
        .join(&name);
    // The escapee leaves the process group: only the cgroup still holds it.
    let (mut child, pids, _guard) = spawn_reporting(
        Command::new("sh")
            .args([
                "-c",
                "setsid sleep 1000 & echo $!; sleep 1000 & echo $!; echo $$; wait",
            ])
            .cgroup(&name),
        3,
    );
    assert!(dir.exists());
    kill_shepherd_of(child.id());
    let err = child.wait().expect_err("no exit report can come");
    assert!(is_lost(&err), "{err:?}");
    assert_no_survivors(&pids);
    assert!(
        eventually(Duration::from_secs(5), || !dir.exists()),
        "the cgroup {} is removed",
        dir.display()
    );
}

#[test]
fn the_leader_pidfd_arrives_with_started_and_names_the_command() {
    use std::os::fd::AsRawFd;
    let mut cmd = netrunner_core::Command::<()>::new("sleep");
    cmd.arg("1000");
    let launched =
        netrunner_core::launch::launch(&cmd, netrunner_core::launch::StdioPlan::for_spawn(&cmd))
            .unwrap();
    let pid = launched.machine.pid().unwrap();
    let mut guard = KillOnDrop::new("sleep");
    guard.add([pid]);
    let pidfd = launched
        .tree
        .leader
        .as_ref()
        .expect("a pidfd came with Started");
    // The kernel's own account of what the descriptor refers to.
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap();
    let named = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .map(|v| v.trim().parse::<u32>().unwrap());
    assert_eq!(named, Some(pid), "{info}");
    drop(launched);
    assert!(wait_dead(&[pid], Duration::from_secs(7)).is_empty());
}

/// The effective uid of `pid` (second field of `Uid:` in its status).
fn effective_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn a_setuid_command_is_taken_down_although_the_kernel_cleared_its_pdeathsig() {
    use std::os::unix::fs::{chown, PermissionsExt};
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: making a setuid program to another user needs root");
        return;
    }
    // A set-user-ID copy of sleep owned by nobody: exec'ing it changes the
    // effective uid, and the kernel clears PR_SET_PDEATHSIG on such an exec.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("setuid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("sleep-as-nobody");
    std::fs::copy("/bin/sleep", &program).unwrap();
    chown(&program, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut guard = KillOnDrop::new("sleep-as-nobody");
    let mut child = Command::new(&program).arg("1000").spawn().unwrap();
    let pid = child.id();
    guard.add([pid]);
    let euid = effective_uid(pid);
    if euid != Some(65534) {
        eprintln!(
            "skipping: {} did not run set-user-ID (nosuid mount?): euid {euid:?}",
            dir.display()
        );
        return;
    }
    kill_shepherd_of(pid);
    let err = child.wait().expect_err("no exit report can come");
    assert!(is_lost(&err), "{err:?}");
    assert_no_survivors(&[pid]);
    let _ = std::fs::remove_dir_all(&dir);
}
