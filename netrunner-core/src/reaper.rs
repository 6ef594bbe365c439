//! Reaping shepherds nobody waits for, so a dropped child leaves no zombie.
//!
//! A shepherd is our child, so when it exits it stays a zombie until we
//! `wait` for it. A `Child` dropped before its command finished cannot wait
//! (drop must not block), so its shepherd goes to a single background thread
//! that sleeps in `poll` on the shepherds' pidfds and reaps each as soon as
//! it exits. The thread starts on the first orphan; a process that always
//! waits for its children never has one.
//!
//! Race notes: a shepherd exiting between `try_wait` in [`reap`] and its
//! pidfd being opened is fine — the pid stays valid (unreaped) and a pidfd
//! of an exited process is immediately readable. Where pidfds are
//! unavailable the thread polls every [`FALLBACK_INTERVAL`].

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

/// How often orphans without a pidfd are checked.
pub const FALLBACK_INTERVAL: Duration = Duration::from_millis(100);

struct Orphan {
    child: std::process::Child,
    pidfd: Option<OwnedFd>,
}

struct Reaper {
    /// The process that started the thread: a `fork` copy of it has no
    /// such thread, and the shepherds it starts are not the thread's
    /// process's children.
    owner: rustix::process::Pid,
    queue: Mutex<Vec<Orphan>>,
    wake: OwnedFd,
}

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();
static UNREAPED: AtomicUsize = AtomicUsize::new(0);

/// Reaps `child` now if it has exited, otherwise as soon as it does.
pub fn reap(mut child: std::process::Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let reaper = REAPER.get_or_init(start).as_ref();
    let Some(reaper) = reaper.filter(|r| r.owner == rustix::process::getpid()) else {
        // No thread of ours to hand it to (none could be started, or we are
        // a `fork` copy of the process that started it): a thread of its
        // own, or, failing that, wait here rather than leak a zombie.
        let (send, receive) = std::sync::mpsc::channel::<std::process::Child>();
        let waiter = std::thread::Builder::new().spawn(move || {
            if let Ok(mut child) = receive.recv() {
                let _ = child.wait();
            }
        });
        match waiter {
            Ok(_) => {
                let _ = send.send(child);
            }
            Err(_) => {
                let _ = child.wait();
            }
        }
        return;
    };
    #[cfg(target_os = "linux")]
    let pidfd = rustix::process::Pid::from_child(&child);
    #[cfg(target_os = "linux")]
    let pidfd = netrunner_sys::process::pidfd_open(pidfd).ok();
    #[cfg(not(target_os = "linux"))]
    let pidfd = None;
    UNREAPED.fetch_add(1, Ordering::Relaxed);
    reaper
        .queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Orphan { child, pidfd });
    // Full pipe means a wake-up is already pending.
    let _ = rustix::io::write(&reaper.wake, &[1]);
}

/// How many shepherds are waiting to be reaped (for tests and diagnostics).
pub fn pending() -> usize {
    UNREAPED.load(Ordering::Relaxed)
}

fn start() -> Option<Reaper> {
    let (wake_r, wake_w) = netrunner_sys::fd::pipe2_cloexec().ok()?;
    netrunner_sys::fd::set_nonblocking(wake_r.as_fd(), true).ok()?;
    netrunner_sys::fd::set_nonblocking(wake_w.as_fd(), true).ok()?;
    std::thread::Builder::new()
        .name("netrunner-reaper".into())
        .spawn(move || run(wake_r))
        .ok()?;
    Some(Reaper {
        owner: rustix::process::getpid(),
        queue: Mutex::new(Vec::new()),
        wake: wake_w,
    })
}

fn run(wake: OwnedFd) {
    let mut orphans: Vec<Orphan> = Vec::new();
    loop {
        if let Some(reaper) = REAPER.get().and_then(|r| r.as_ref()) {
            orphans.append(&mut reaper.queue.lock().unwrap_or_else(|e| e.into_inner()));
        }
        orphans.retain_mut(|o| {
            let running = matches!(o.child.try_wait(), Ok(None));
            if !running {
                UNREAPED.fetch_sub(1, Ordering::Relaxed);
            }
            running
        });
        let fallback = orphans.iter().any(|o| o.pidfd.is_none());
        let mut fds = vec![PollFd::new(&wake, PollFlags::IN)];
        fds.extend(
            orphans
                .iter()
                .filter_map(|o| o.pidfd.as_ref())
                .map(|fd| PollFd::new(fd, PollFlags::IN)),
        );
        let timeout = fallback.then(|| Timespec {
            tv_sec: 0,
            tv_nsec: FALLBACK_INTERVAL.as_nanos() as i64,
        });
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        let mut drain = [0u8; 64];
        while matches!(rustix::io::read(&wake, &mut drain), Ok(n) if n > 0) {}
    }
}
