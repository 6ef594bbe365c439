//! Shared helpers for netrunner's integration tests: observing real processes.
//!
//! Everything here looks at the kernel's view (`kill(pid, 0)`, `/proc`), never
//! at netrunner's own bookkeeping, so a test cannot pass by agreeing with a bug.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

pub mod async_std_rt;

use netrunner_sys::process::{self, Pid};
use netrunner_sys::Signal;

/// Whether `pid` names a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    let Some(p) = Pid::from_raw(pid as i32) else {
        return false;
    };
    if !process::process_exists(p) {
        return false;
    }
    !matches!(process::process_state(pid as i32), Ok(b'Z') | Err(_))
}

/// Whether `pid` is gone entirely: no process and no zombie.
pub fn gone(pid: u32) -> bool {
    Pid::from_raw(pid as i32).is_none_or(|p| !process::process_exists(p))
}

/// Waits until every pid in `pids` is gone (no process, no zombie), or
/// `limit` passes. Returns the pids still present.
pub fn wait_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no pid in `pids` is running (each is gone or a zombie), or
/// `limit` passes. Returns the pids still running.
pub fn wait_dead(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Direct children of this process that are zombies.
pub fn zombie_children() -> Vec<u32> {
    process::child_pids()
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.as_raw_nonzero().get() as u32)
        .filter(|&p| matches!(process::process_state(p as i32), Ok(b'Z')))
        .collect()
}

/// Open descriptors of this process.
pub fn open_fds() -> usize {
    netrunner_sys::fd::count_open_fds().expect("/proc/self/fd is readable")
}

/// Waits until `f` holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the listed pids on drop, if they still run `expected` (by
/// `/proc/<pid>/cmdline`), so a failing test leaves nothing behind and never
/// hits a recycled pid.
pub struct KillOnDrop {
    pids: Vec<u32>,
    expected: &'static str,
}

impl KillOnDrop {
    /// Guards `pids`, which are expected to run a program whose command line contains `expected`.
    pub fn new(expected: &'static str) -> Self {
        KillOnDrop {
            pids: Vec::new(),
            expected,
        }
    }

    /// Adds pids to guard.
    pub fn add(&mut self, pids: impl IntoIterator<Item = u32>) {
        self.pids.extend(pids);
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(self.expected) {
                if let Some(p) = Pid::from_raw(pid as i32) {
                    let _ = process::kill(p, Signal::KILL);
                }
            }
        }
    }
}

/// Parses one pid per line from a command's output.
pub fn pids_in(text: &[u8]) -> Vec<u32> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Reads `n` pid lines from a blocking child's piped stdout.
pub fn read_pid_lines(child: &mut netrunner_blocking::Child, n: usize) -> Vec<u32> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(child.stdout.as_mut().expect("stdout piped"));
    (0..n)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read a pid line");
            line.trim().parse().expect("a pid")
        })
        .collect()
}

/// Reads `n` pid lines from a tokio child's piped stdout.
pub async fn read_pid_lines_async(child: &mut netrunner_tokio::Child, n: usize) -> Vec<u32> {
    use tokio::io::AsyncReadExt;
    let stdout = child.stdout.as_mut().expect("stdout piped");
    let mut buf = Vec::new();
    while buf.iter().filter(|&&b| b == b'\n').count() < n {
        buf.push(stdout.read_u8().await.expect("read a pid line"));
    }
    pids_in(&buf)
}

/// The shepherd of the command `pid`: its parent, which is not us.
pub fn shepherd_of(pid: u32) -> u32 {
    let parent = process::parent_pid_of(pid as i32).expect("the command's parent") as u32;
    assert_ne!(parent, std::process::id(), "the parent is a shepherd");
    parent
}

/// The fields of `/proc/<pid>/stat` after the command name (state, ppid,
/// pgrp, session, tty_nr, tpgid, ...), if `pid` exists.
pub fn proc_stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 2..)?;
    Some(after.split(' ').map(str::to_owned).collect())
}

/// Creates netrunner's one-time, process-wide state (the shepherd memfd,
/// and the orphan reaper, which a child dropped while running starts) and
/// waits for it to settle, so a descriptor baseline taken next includes it.
/// Otherwise a busy machine starts the reaper in the middle of a test, for
/// a shepherd slow to exit after its report.
pub fn warm_up_one_time_state() {
    drop(
        netrunner_blocking::Command::new("sleep")
            .arg("100")
            .kill_timeout(Duration::ZERO)
            .spawn()
            .expect("spawn sleep"),
    );
    assert!(settle(), "netrunner's background work settles");
}

/// A shell script that starts a tree which resists SIGTERM: two background
/// sleeps, then `sh` ignores TERM and starts a third sleep that inherits the
/// ignore. Prints the four pids (three sleeps, then the shell), one per line.
pub const STUBBORN_TREE: &str =
    "sleep 1000 & echo $!; sleep 1000 & echo $!; trap '' TERM; sleep 1000 & echo $!; echo $$; wait";

/// A shell script with two escapees: a child that moves into its own
/// session with `setsid` while the shell lives, and a double fork (a
/// subshell starts a `setsid sleep` and exits, so the sleep re-parents to
/// the shepherd). Prints both sleeps' pids and the shell's.
pub const ESCAPING_TREE: &str =
    "setsid sleep 1000 & echo $!; (setsid sleep 1000 & echo $!); echo $$; wait";

/// Both trees, with the number of pids each prints.
pub const TREES: [(&str, usize); 2] = [(STUBBORN_TREE, 4), (ESCAPING_TREE, 3)];

/// How many pids [`TREES`] print in all.
pub const TREES_PIDS: usize = TREES[0].1 + TREES[1].1;

/// The next item of a stream, without pulling in a combinator crate.
pub async fn next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

/// Runs `make()`'s future on a current-thread and on a multi-thread tokio
/// runtime, one after the other.
pub fn on_both_runtimes<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(make());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(make());
}

/// Resident set size of this process in KiB (`VmRSS` in `/proc/self/status`).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Raises this process's open-file soft limit to its hard limit.
pub fn raise_fd_limit() -> u64 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, raised);
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Runs the `hold-tree` helper at `helper` in `mode`, SIGKILLs it once its
/// trees are up, and returns the pids of those trees still present after
/// `grace` + 2 s (empty when the guarantee holds). Panics if the helper
/// does not report [`TREES_PIDS`] live pids.
pub fn owner_death_leftovers(helper: &str, mode: &str, grace: Duration) -> Vec<u32> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(helper)
        .args([mode, &grace.as_millis().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the helper");
    let mut guard = KillOnDrop::new("sleep");
    let mut pids = Vec::new();
    let stdout = child.stdout.take().expect("piped");
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("helper output");
        if line == "ready" {
            break;
        }
        pids.push(line.trim().parse::<u32>().expect("a pid"));
    }
    guard.add(pids.clone());
    assert_eq!(
        pids.len(),
        TREES_PIDS,
        "three sleeps + sh, two setsid sleeps + sh: {pids:?}"
    );
    assert!(
        pids.iter().all(|&p| alive(p)),
        "all running before the owner dies"
    );
    child.kill().expect("SIGKILL the helper");
    child.wait().expect("reap the helper");
    wait_gone(&pids, grace + Duration::from_secs(2))
}

/// Waits until netrunner's background work is done (no spare shepherd being
/// started, no orphaned shepherd waiting to be reaped), so that this
/// process's children and descriptors are stable. Returns whether it settled.
pub fn settle() -> bool {
    eventually(Duration::from_secs(5), || {
        netrunner_core::spare::settled() && netrunner_core::reaper::pending() == 0
    })
}

/// This process's children other than the ready spare shepherd.
pub fn children_except_spare() -> Vec<u32> {
    let spare = netrunner_core::spare::spare_pid();
    process::child_pids()
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.as_raw_nonzero().get() as u32)
        .filter(|&p| Some(p) != spare)
        .collect()
}

/// Asserts that, within `limit`, netrunner's background work settles and
/// this process is back to `baseline` descriptors with no zombie children.
/// On failure it lists what the descriptors point at.
pub fn assert_back_to_baseline(baseline: usize, limit: Duration) {
    let settled = eventually(limit, || {
        settle() && open_fds() == baseline && zombie_children().is_empty()
    });
    assert!(
        settled,
        "fds {} vs baseline {baseline}; zombies {:?}; fds: {:?}",
        open_fds(),
        zombie_children(),
        fd_targets()
    );
}

/// This process's descriptors and what each points at.
pub fn fd_targets() -> Vec<(String, std::path::PathBuf)> {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| {
                let e = e.ok()?;
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_link(e.path()).ok()?,
                ))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Starts `owners` owner processes from `make` (each in a process group of
/// its own, stdout piped), reads `pids_each` pids from each (other lines,
/// such as `ready`, are skipped), sends `sig` to every owner's whole
/// process group at once — what job control, a CI runner or a supervisor
/// does — and returns the pids still present after `limit`.
///
/// Every owner is reaped before this returns, and whatever is left is
/// SIGKILLed when the returned guard is dropped.
pub fn group_kill_leftovers(
    make: impl Fn() -> std::process::Command,
    owners: usize,
    pids_each: usize,
    sig: Signal,
    limit: Duration,
) -> (Vec<u32>, KillOnDrop) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut guard = KillOnDrop::new("sleep");
    let mut started = Vec::new();
    for _ in 0..owners {
        let mut cmd = make();
        cmd.process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("start an owner");
        let stdout = child.stdout.take().expect("piped");
        started.push((child, std::io::BufReader::new(stdout)));
    }
    let mut all = Vec::new();
    for (_, out) in &mut started {
        let mut pids = Vec::new();
        while pids.len() < pids_each {
            let mut line = String::new();
            let n = out.read_line(&mut line).expect("owner output");
            assert!(n > 0, "an owner ended before its tree was up: {pids:?}");
            pids.extend(line.trim().parse::<u32>().ok());
        }
        guard.add(pids.clone());
        all.extend(pids);
    }
    assert!(
        all.iter().all(|&p| alive(p)),
        "all running before the group kill"
    );
    for (child, _) in &started {
        let pgid = Pid::from_raw(child.id() as i32).expect("a pid");
        process::kill_process_group(pgid, sig).expect("signal the owner's group");
    }
    let left = wait_gone(&all, limit);
    for (mut child, _) in started {
        // Owners that handle the signal (the CLI forwards TERM, INT and
        // HUP) exit once their tree is gone; the rest died at once.
        let reaped = eventually(limit + Duration::from_secs(5), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !reaped {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    (left, guard)
}

/// How many owners [`assert_group_kill_leaves_nothing`] kills at once.
pub const GROUP_KILL_OWNERS: usize = 20;

/// [`group_kill_leftovers`] for [`GROUP_KILL_OWNERS`] owners whose commands
/// run [`TREES`] with a `grace` kill timeout: asserts that nothing is left
/// `grace` + 1 s after `sig`. `what` names the owners in the message.
pub fn assert_group_kill_leaves_nothing(
    what: &str,
    make: impl Fn() -> std::process::Command,
    sig: Signal,
    grace: Duration,
) {
    let (left, _guard) = group_kill_leftovers(
        make,
        GROUP_KILL_OWNERS,
        TREES_PIDS,
        sig,
        grace + Duration::from_secs(1),
    );
    assert!(
        left.is_empty(),
        "{sig} to the groups of {what} left {} of {} processes: {left:?}",
        left.len(),
        GROUP_KILL_OWNERS * TREES_PIDS
    );
}

/// A shell script running as the session leader of a pseudo-terminal, the
/// way a login shell owns its terminal: for tests of commands that share
/// their owner's terminal. The test types into it and reads what it shows.
pub struct TtySession {
    child: netrunner_blocking::Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl TtySession {
    /// Starts `sh -c script sh args...` on a new pty (echo off), as the
    /// leader of its session with the pty as controlling terminal.
    pub fn start(script: &str, args: &[&str]) -> Self {
        use std::io::Read;
        let mut child = netrunner_blocking::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .pty(true)
            .pty_echo(false)
            .kill_timeout(Duration::from_millis(200))
            .spawn()
            .expect("start a shell on a pty");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut out = child.stdout.take().expect("the pty's output");
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        TtySession { child, seen }
    }

    /// The shell's pid.
    pub fn shell(&self) -> u32 {
        self.child.id()
    }

    /// Types `bytes` at the terminal.
    pub fn type_in(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("the pty's input");
        stdin.write_all(bytes).expect("type at the terminal");
    }

    /// Everything the terminal showed so far.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal has shown `needle`; panics with the
    /// transcript after `limit`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let shown = eventually(limit, || self.transcript().contains(needle));
        let text = self.transcript();
        assert!(shown, "never saw {needle:?} on the terminal: {text:?}");
        text
    }

    /// Whether `pid`'s process group is its terminal's foreground group
    /// (fields `pgrp` and `tpgid` of `/proc/<pid>/stat`).
    pub fn in_foreground(pid: u32) -> bool {
        // state ppid pgrp session tty_nr tpgid
        proc_stat_fields(pid).is_some_and(|f| f.len() > 5 && f[2] == f[5])
    }

    /// Waits for a line `pid=N` from a command that prints its pid, then
    /// until that command's group is the terminal's foreground group;
    /// returns N.
    pub fn foreground_command(&self, limit: Duration) -> u32 {
        let text = self.wait_for("pid=", limit);
        let pid = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("pid="))
            .and_then(|p| p.parse().ok())
            .expect("the command's pid");
        assert!(
            eventually(limit, || Self::in_foreground(pid)),
            "the command's group is in the foreground: {}",
            self.transcript()
        );
        pid
    }
}

/// The first line a blocking child writes to its piped stdout.
pub fn first_line(child: &mut netrunner_blocking::Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout is piped")),
        &mut line,
    )
    .expect("reading the child's stdout");
    line
}

/// Spawns once so that a spare shepherd exists, waits until it is ready,
/// and returns its pid.
pub fn with_spare_ready() -> u32 {
    netrunner_blocking::Command::new("true").status().unwrap();
    assert!(eventually(Duration::from_secs(5), || settle()
        && netrunner_core::spare::spare_pid().is_some()));
    netrunner_core::spare::spare_pid().expect("a spare is ready")
}

/// Exit code, stdout and stderr of `sh -c script` through netrunner, after
/// asserting they equal what the same script gives through `std`.
pub fn both_agree(script: &str) -> (Option<i32>, String, String) {
    let ours = netrunner_blocking::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    let theirs = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let ours = (ours.status.code(), text(&ours.stdout), text(&ours.stderr));
    let theirs = (
        theirs.status.code(),
        text(&theirs.stdout),
        text(&theirs.stderr),
    );
    assert_eq!(ours, theirs, "netrunner's child differs from std's");
    ours
}

/// Runs `program args` with `std` from the calling thread (so in its
/// namespaces) and asserts it succeeded.
pub fn run_ok(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?}: {status}");
}

/// Live (not zombie) processes whose environment holds `var=value`: counts
/// every process a test tagged, whether or not it printed its pid.
pub fn tagged(var: &str, value: &str) -> Vec<u32> {
    let needle = format!("{var}={value}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .filter(|&pid| process::process_state(pid as i32).is_ok_and(|s| s != b'Z'))
        .collect()
}
