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

/// A shell script that starts a tree which resists SIGTERM: two background
/// sleeps, then `sh` ignores TERM and starts a third sleep that inherits the
/// ignore. Prints the four pids (three sleeps, then the shell), one per line.
pub const STUBBORN_TREE: &str =
    "sleep 1000 & echo $!; sleep 1000 & echo $!; trap '' TERM; sleep 1000 & echo $!; echo $$; wait";

/// A shell script whose child escapes into its own session with `setsid`.
/// Prints the escaped sleep's pid and the shell's.
pub const ESCAPING_TREE: &str = "setsid sleep 1000 & echo $!; echo $$; wait";

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
/// does not report six live pids.
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
        6,
        "three sleeps + sh, setsid sleep + sh: {pids:?}"
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
    let fd_targets: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        settled,
        "fds {} vs baseline {baseline}; zombies {:?}; fds point at {fd_targets:?}",
        open_fds(),
        zombie_children()
    );
}
