//! cgroup v2 isolation, for real: this suite runs as root with v2 mounted.

use std::path::PathBuf;
use std::time::Duration;

use netrunner_blocking::{Command, Error, Stdio};
use netrunner_core::cgroup::{cgroup2_mount, current_cgroup, CgroupError};
use netrunner_tests::{pids_in, wait_gone, KillOnDrop};

/// The directory a cgroup named `name` gets under this process's cgroup.
fn cgroup_dir(name: &str) -> PathBuf {
    cgroup2_mount()
        .unwrap()
        .join(current_cgroup().unwrap().trim_start_matches('/'))
        .join(name)
}

fn unique(name: &str) -> String {
    format!("netrunner-test-{name}-{}", std::process::id())
}

#[test]
fn the_child_is_inside_before_exec_and_nothing_escapes() {
    let name = unique("escape");
    let dir = cgroup_dir(&name);
    let mut guard = KillOnDrop::new("sleep");
    // The grandchild double-forks into its own session; the command then
    // exits at once, leaving it behind as far as the process tree goes.
    let script = "cat /proc/self/cgroup; (setsid sh -c 'sleep 1000 & echo $!' &); sleep 0.2";
    let out = Command::new("sh")
        .args(["-c", script])
        .cgroup(&name)
        .kill_timeout(Duration::from_millis(300))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // The command's own view: its v2 cgroup is the new one.
    let v2 = text
        .lines()
        .find(|l| l.starts_with("0::"))
        .expect("a v2 line");
    assert!(v2.ends_with(&format!("/{name}")), "{text}");
    let text: String = text
        .lines()
        .filter(|l| !l.contains(':'))
        .map(|l| format!("{l}\n"))
        .collect();
    let pids = pids_in(text.as_bytes());
    guard.add(pids.clone());
    assert_eq!(pids.len(), 1, "{text}");
    assert!(
        wait_gone(&pids, Duration::from_secs(2)).is_empty(),
        "the escapee was killed"
    );
    assert!(!dir.exists(), "the cgroup directory is removed after exit");
    assert!(
        out.stats.cgroup_cpu_time.is_some(),
        "cpu.stat usage is reported"
    );
}

#[test]
fn the_command_execs_inside_and_teardown_kills_strangers_in_it() {
    // The command itself reports its cgroup as its first act after exec.
    let name = unique("exec");
    let out = Command::new("cat")
        .arg("/proc/self/cgroup")
        .cgroup(&name)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{name}"))),
        "{text}"
    );

    // A process that is no descendant of the command and not in its process
    // group, moved into its cgroup: only the cgroup teardown can reach it.
    let name = unique("stranger");
    let mut stranger = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop::new("sleep");
    guard.add([stranger.id()]);
    let mut child = Command::new("sleep")
        .arg("1000")
        .cgroup(&name)
        .kill_timeout(Duration::from_millis(200))
        .spawn()
        .unwrap();
    std::fs::write(
        cgroup_dir(&name).join("cgroup.procs"),
        stranger.id().to_string(),
    )
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed by the cgroup teardown (it is our child, so reap it here).
    let status = stranger.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!cgroup_dir(&name).exists());
}

#[test]
fn timeout_and_drop_tear_the_cgroup_down() {
    let mut guard = KillOnDrop::new("sleep");
    let name = unique("timeout");
    let err = Command::new("sh")
        .args(["-c", "trap '' TERM; sleep 1000"])
        .cgroup(&name)
        .timeout(Duration::from_millis(200))
        .kill_timeout(Duration::from_millis(200))
        .status()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(!cgroup_dir(&name).exists());

    let name = unique("drop");
    let mut child = Command::new("sh")
        .args(["-c", "sleep 1000 & echo $!; wait"])
        .stdout(Stdio::piped())
        .cgroup(&name)
        .kill_timeout(Duration::from_millis(200))
        .spawn()
        .unwrap();
    let pids = pids_in(netrunner_tests::first_line(&mut child).as_bytes());
    guard.add(pids.clone());
    assert!(cgroup_dir(&name).exists());
    drop(child);
    assert!(wait_gone(&pids, Duration::from_secs(3)).is_empty());
    assert!(netrunner_tests::eventually(Duration::from_secs(3), || {
        !cgroup_dir(&name).exists()
    }));
}

#[test]
fn owner_sigkill_leaves_no_process_and_no_directory() {
    let name = unique("owner");
    let left = netrunner_tests::owner_death_leftovers(
        env!("CARGO_BIN_EXE_hold-tree"),
        &format!("cgroup:{name}"),
        Duration::from_millis(300),
    );
    assert!(left.is_empty(), "{left:?}");
    for i in 0..2 {
        let dir = cgroup_dir(&format!("{name}-{i}"));
        assert!(
            netrunner_tests::eventually(Duration::from_secs(3), || !dir.exists()),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn bad_names_are_invalid_input_and_nothing_runs() {
    for bad in ["..", "a/../b", "/abs", "a//b", "", "nul\0"] {
        match Command::new("true").cgroup(bad).status() {
            Err(Error::InvalidInput { what, .. }) => assert_eq!(what, "cgroup name", "{bad:?}"),
            other => panic!("{bad:?}: expected InvalidInput, got {other:?}"),
        }
    }
    match Command::new("true")
        .cgroup("ok")
        .cgroup_parent("relative/parent")
        .status()
    {
        Err(Error::InvalidInput { what, .. }) => assert_eq!(what, "cgroup parent"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn an_existing_cgroup_is_not_shared() {
    let name = unique("exists");
    let dir = cgroup_dir(&name);
    std::fs::create_dir(&dir).unwrap();
    let result = Command::new("true").cgroup(&name).status();
    std::fs::remove_dir(&dir).unwrap();
    match result {
        Err(Error::Cgroup(CgroupError::Setup { path, source })) => {
            assert_eq!(path, dir);
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
        }
        other => panic!("expected a cgroup setup error, got {other:?}"),
    }
}

/// Limits need their controller; here, with a hybrid hierarchy, the v2 side
/// may offer none of them. Either the limit works, or the error names the
/// controller and nothing ran.
#[test]
fn limits_work_or_name_the_missing_controller() {
    let parent = cgroup_dir("");
    let offered = std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| offered.split_whitespace().any(|o| o == c);

    // pids.max against a fork bomb: count the background jobs that started.
    let bomb = Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done 2>/dev/null; jobs -p | wc -l",
        ])
        .pids_max(20)
        .kill_timeout(Duration::from_millis(100))
        .output();
    if has("pids") {
        let out = bomb.unwrap();
        let started: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(
            started < 20,
            "pids.max 20 let {started} of 100 forks through"
        );
    } else {
        eprintln!(
            "skipping the pids.max fork-bomb check: the pids controller is not available in {}",
            parent.display()
        );
        match bomb {
            Err(Error::Cgroup(CgroupError::ControllerUnavailable { controller, .. })) => {
                assert_eq!(controller, "pids")
            }
            other => panic!("expected ControllerUnavailable(pids), got {other:?}"),
        }
    }
    if !has("memory") {
        match Command::new("true").memory_max(64 << 20).status() {
            Err(Error::Cgroup(CgroupError::ControllerUnavailable { controller, .. })) => {
                assert_eq!(controller, "memory")
            }
            other => panic!("expected ControllerUnavailable(memory), got {other:?}"),
        }
    }
}
