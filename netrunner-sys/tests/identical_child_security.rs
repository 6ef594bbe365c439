//! A child started through a spare shepherd has the security context a
//! `std::process` child started at the same moment has: root directory,
//! namespaces, seccomp filters; and a `fork` copy of the owner never uses
//! the parent's spare or reaper.
//!
//! These tests need `unsafe` (fork, seccomp, unshare), so they live in the
//! crate that holds it. Those that need root say so and skip without it.

use std::time::Duration;

use netrunner_tests::{eventually, first_line, run_ok, wait_gone, with_spare_ready};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// [`netrunner_tests::both_agree`]'s stdout.
fn both_agree(script: &str) -> String {
    netrunner_tests::both_agree(script).1
}

/// Gives the calling thread a mount namespace of its own, whose mounts do
/// not propagate to the host's.
fn private_mount_namespace() {
    // SAFETY: CLONE_NEWNS (with the CLONE_FS it implies) only detaches this
    // thread's mount namespace and filesystem context (root, cwd, umask);
    // no descriptor, memory or other thread's state changes.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }.unwrap();
    run_ok("mount", &["--make-rprivate", "/"]);
}

#[test]
fn a_chroot_after_the_spare_is_the_childs_root() {
    if !is_root() {
        eprintln!("skipped: chroot and mounts need root");
        return;
    }
    // The jail lives on a tmpfs in this thread's own mount namespace, gone
    // with it: /usr, /proc and /dev bound in.
    private_mount_namespace();
    run_ok("mount", &["-t", "tmpfs", "netrunner-jail", "/mnt"]);
    for dir in ["usr", "proc", "dev", "tmp"] {
        std::fs::create_dir(format!("/mnt/{dir}")).unwrap();
    }
    run_ok("mount", &["--rbind", "/usr", "/mnt/usr"]);
    run_ok("mount", &["--rbind", "/proc", "/mnt/proc"]);
    run_ok("mount", &["--rbind", "/dev", "/mnt/dev"]);
    for link in ["bin", "lib", "lib64", "sbin"] {
        if let Ok(target) = std::fs::read_link(format!("/{link}")) {
            std::os::unix::fs::symlink(target, format!("/mnt/{link}")).unwrap();
        }
    }
    std::fs::write("/mnt/jail-marker", b"").unwrap();

    with_spare_ready();
    rustix::process::chroot("/mnt").unwrap();
    std::env::set_current_dir("/").unwrap();
    let root = both_agree("ls /");
    assert!(root.contains("jail-marker\n"), "{root}");
    // And from a spare started inside the jail.
    with_spare_ready();
    assert_eq!(both_agree("ls /"), root);
}

#[test]
fn a_private_mount_namespace_after_the_spare_is_the_childs() {
    if !is_root() {
        eprintln!("skipped: mounts need root");
        return;
    }
    with_spare_ready();
    let view = std::thread::spawn(|| {
        private_mount_namespace();
        run_ok("mount", &["-t", "tmpfs", "netrunner-private", "/mnt"]);
        std::fs::write("/mnt/private-marker", b"").unwrap();
        both_agree("ls /mnt; readlink /proc/self/ns/mnt")
    })
    .join()
    .unwrap();
    assert!(view.starts_with("private-marker\n"), "{view}");
}

/// Installs a seccomp filter that allows everything on the calling thread:
/// harmless, but a filter a child inherits.
fn install_allow_all_filter() {
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const BPF_RET_K: u16 = 0x06;
    let allow = [nix::libc::sock_filter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: SECCOMP_RET_ALLOW,
    }];
    let prog = nix::libc::sock_fprog {
        len: 1,
        filter: allow.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `allow`, one valid instruction, and both live
    // on this stack for the whole call; the kernel copies the program.
    let rc = unsafe {
        nix::libc::prctl(
            nix::libc::PR_SET_SECCOMP,
            nix::libc::SECCOMP_MODE_FILTER,
            &prog as *const nix::libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn a_seccomp_filter_after_the_spare_is_the_childs() {
    if !is_root() {
        eprintln!("skipped: a filter without no_new_privs needs CAP_SYS_ADMIN");
        return;
    }
    with_spare_ready();
    let view = std::thread::spawn(|| {
        install_allow_all_filter();
        both_agree("grep -E '^(NoNewPrivs|Seccomp)' /proc/self/status")
    })
    .join()
    .unwrap();
    assert!(
        view.contains("Seccomp:\t2\nSeccomp_filters:\t1\n"),
        "{view}"
    );
    assert!(view.contains("NoNewPrivs:\t0\n"), "{view}");
}

/// What the `fork` copy does, in both processes at once: spawns and drops
/// children, checking each shepherd is this process's own child and each
/// dropped command dies. Returns what went wrong, if anything.
fn spawn_and_drop_round(forbidden_spare: Option<u32>) -> Result<(), String> {
    let me = std::process::id();
    for _ in 0..3 {
        let child = netrunner_blocking::Command::new("sleep")
            .arg("30")
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let pid = child.id();
        let shepherd = netrunner_sys::process::parent_pid_of(pid as i32)
            .map_err(|e| format!("parent of {pid}: {e}"))? as u32;
        if Some(shepherd) == forbidden_spare {
            return Err(format!("{me} used the other process's spare {shepherd}"));
        }
        let owner = netrunner_sys::process::parent_pid_of(shepherd as i32)
            .map_err(|e| format!("parent of {shepherd}: {e}"))? as u32;
        if owner != me {
            return Err(format!("{me}: shepherd {shepherd} belongs to {owner}"));
        }
        drop(child);
        if !wait_gone(&[pid], Duration::from_secs(7)).is_empty() {
            return Err(format!("{me}: dropped command {pid} still runs"));
        }
    }
    let out = netrunner_blocking::Command::new("echo")
        .arg("fine")
        .output()
        .map_err(|e| format!("output: {e}"))?;
    if out.stdout != b"fine\n" {
        return Err(format!("{me}: output {out:?}"));
    }
    Ok(())
}

#[test]
fn a_fork_copy_of_the_owner_has_its_own_shepherds_and_no_hang() {
    // The parent has a reaper thread, a live child and a ready spare.
    let before = netrunner_blocking::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    drop(
        netrunner_blocking::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap(),
    );
    with_spare_ready();
    let spare = netrunner_core::spare::spare_pid();
    // The copy stays alive until the parent closes this pipe's write end.
    let (hold_r, hold_w) = netrunner_sys::fd::pipe2_cloexec().unwrap();
    // The copy writes a byte here once it dropped its copy of `before`.
    let (dropped_r, dropped_w) = netrunner_sys::fd::pipe2_cloexec().unwrap();

    // SAFETY: fork in a process with other threads (the test harness, the
    // refill and reaper threads): the copy runs only this thread. It takes
    // no lock another thread could hold right now: settle() above saw the
    // refill thread idle, the reaper has nothing queued, glibc resets its
    // malloc locks in the copy, and the copy never touches the inherited
    // pool or reaper (which is what this test checks). It leaves with _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            drop(hold_w);
            // Its copy of the parent's child: dropping it must not end the
            // parent's command.
            drop(before);
            let _ = rustix::io::write(&dropped_w, b"d");
            let verdict = std::panic::catch_unwind(|| spawn_and_drop_round(spare))
                .unwrap_or(Err("panicked".to_owned()));
            let _ = rustix::io::read(&hold_r, &mut [0u8; 1]);
            if let Err(e) = &verdict {
                eprintln!("fork copy: {e}");
            }
            // SAFETY: _exit ends the copy without running the parent's
            // atexit handlers or flushing its stdio buffers.
            unsafe { nix::libc::_exit(i32::from(verdict.is_err())) }
        }
        nix::unistd::ForkResult::Parent { child: copy } => {
            drop(dropped_w);
            let held = before.id();
            let _ = rustix::io::read(&dropped_r, &mut [0u8; 1]);
            std::thread::sleep(Duration::from_millis(200));
            let outlived_the_copys_drop = netrunner_tests::alive(held);
            // Our own drop kills our command although the copy holds a
            // descriptor of its shepherd's socket.
            drop(before);
            let survived = wait_gone(&[held], Duration::from_secs(7));
            let ours = spawn_and_drop_round(None);
            drop(hold_w);
            let status = wait_for_copy(copy, Duration::from_secs(60));
            assert!(
                outlived_the_copys_drop,
                "a fork copy's drop ended the parent's command"
            );
            assert!(
                survived.is_empty(),
                "a child dropped while a fork copy lives kept running"
            );
            ours.unwrap();
            assert_eq!(
                status,
                Some(nix::sys::wait::WaitStatus::Exited(copy, 0)),
                "the fork copy failed (its stderr says why) or hung"
            );
        }
    }
}

/// Waits for the fork copy, killing it after `limit`.
fn wait_for_copy(copy: nix::unistd::Pid, limit: Duration) -> Option<nix::sys::wait::WaitStatus> {
    let flags = Some(nix::sys::wait::WaitPidFlag::WNOHANG);
    let mut status = None;
    let done = eventually(limit, || {
        status = nix::sys::wait::waitpid(copy, flags)
            .ok()
            .filter(|s| *s != nix::sys::wait::WaitStatus::StillAlive);
        status.is_some()
    });
    if !done {
        let _ = nix::sys::signal::kill(copy, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(copy, None);
    }
    status
}

/// The pid namespace link of `path` (`/proc/.../ns/...`).
fn namespace(path: &str) -> String {
    std::fs::read_link(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("{path}: {e}"))
}

#[test]
fn a_new_pid_namespace_after_the_spare_is_the_childs_and_its_tree_dies() {
    if !is_root() {
        eprintln!("skipped: a new pid namespace needs CAP_SYS_ADMIN");
        return;
    }
    with_spare_ready();
    let result = std::thread::spawn(|| {
        // SAFETY: CLONE_NEWPID changes only which pid namespace this
        // thread's future children are born into; nothing else changes.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWPID) }.unwrap();
        // The shepherd is the namespace's first process (its init), the
        // command its child; /proc is the outer namespace's.
        let mut child = netrunner_blocking::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & echo ready; wait"])
            .stdout(netrunner_blocking::Stdio::piped())
            .spawn()
            .unwrap();
        let line = first_line(&mut child);
        // Readable only once the namespace has a first process.
        let expected = namespace("/proc/thread-self/ns/pid_for_children");
        let leader = child.id();
        let seen = namespace(&format!("/proc/{leader}/ns/pid"));
        let shepherd = netrunner_sys::process::parent_pid_of(leader as i32).unwrap() as u32;
        let tree: Vec<u32> =
            std::fs::read_to_string(format!("/proc/{leader}/task/{leader}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
        drop(child);
        (expected, seen, line, leader, shepherd, tree)
    })
    .join()
    .unwrap();
    let (expected, seen, line, leader, shepherd, tree) = result;
    assert_eq!(line, "ready\n");
    assert_eq!(
        seen, expected,
        "the command is not in the caller's pid_for_children"
    );
    assert_ne!(seen, namespace("/proc/self/ns/pid"));
    assert_eq!(tree.len(), 2, "{tree:?}");
    // `id()` numbers the command as this process does: it is the pid
    // whose namespace we just read. Dropping it takes down the tree and
    // the shepherd with it.
    let mut everything = tree.clone();
    everything.extend([leader, shepherd]);
    assert!(
        netrunner_tests::wait_dead(&everything, Duration::from_secs(7)).is_empty(),
        "left running: {everything:?}"
    );
}

#[test]
fn with_proc_hidden_spawn_works_and_the_tree_still_dies() {
    if !is_root() {
        eprintln!("skipped: hiding /proc takes a mount, which needs root");
        return;
    }
    with_spare_ready();
    let (status, pids) = std::thread::spawn(|| {
        private_mount_namespace();
        run_ok("mount", &["-t", "tmpfs", "netrunner-no-proc", "/proc"]);
        assert!(!std::path::Path::new("/proc/self").exists());
        // Through execveat (no /proc/self/fd), a shepherd that cannot read
        // pids from /proc, and no spare (the caller cannot be compared).
        let out = netrunner_blocking::Command::new("sh")
            .args(["-c", "echo works"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"works\n");
        let mut child = netrunner_blocking::Command::new("sh")
            .args(["-c", "sleep 30 & echo $$ $!; wait"])
            .stdout(netrunner_blocking::Stdio::piped())
            .spawn()
            .unwrap();
        let line = first_line(&mut child);
        drop(child);
        let pids: Vec<u32> = line
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        (out.status, pids)
    })
    .join()
    .unwrap();
    assert!(status.success());
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(
        netrunner_tests::wait_dead(&pids, Duration::from_secs(7)).is_empty(),
        "left running: {pids:?}"
    );
}
