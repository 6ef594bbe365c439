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

static REAPER: OnceLock<Reaper> = OnceLock::new();
/// Serialises attempts to start the thread.
static STARTING: Mutex<()> = Mutex::new(());
/// Shepherds handed over while no reaper thread could be started (no
/// descriptor for its wake-up pipe, no thread: an exhausted fd table,
/// `pids.max`, RLIMIT_AS), or in a `fork` copy: tried without waiting on
/// every later call, and handed to the thread once one starts.
static BACKLOG: Mutex<Vec<std::process::Child>> = Mutex::new(Vec::new());
static UNREAPED: AtomicUsize = AtomicUsize::new(0);

/// Reaps `child` now if it has exited, otherwise as soon as it does.
/// Never waits for it: the caller has told its shepherd to stop (socket
/// shut down) and must not block on the command's grace period.
///
/// Without a reaper thread (none can be started right now, or this is a
/// `fork` copy of the process that started one), the shepherd goes to a
/// backlog that every later call checks without waiting — a zombie then
/// lasts until the next netrunner call, which is what a resource-starved
/// process can afford; waiting here would block on the command.
pub fn reap(mut child: std::process::Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    UNREAPED.fetch_add(1, Ordering::Relaxed);
    match own_reaper() {
        Some(reaper) => {
            drain_backlog_into(Some(reaper));
            hand_over(reaper, child);
        }
        None => {
            let child = match REAPER.get() {
                // A fork copy: the thread is the original's. A thread of
                // its own for this one shepherd, if one can be had.
                Some(_) => match wait_on_own_thread(child) {
                    Ok(()) => return,
                    Err(child) => child,
                },
                None => child,
            };
            lock(&BACKLOG).push(child);
            drain_backlog_into(None);
        }
    }
}

/// Waits for `child` on a new thread; gives it back if none starts.
fn wait_on_own_thread(child: std::process::Child) -> Result<(), std::process::Child> {
    let (send, receive) = std::sync::mpsc::channel::<std::process::Child>();
    let waiter = std::thread::Builder::new().spawn(move || {
        if let Ok(mut child) = receive.recv() {
            let _ = child.wait();
            UNREAPED.fetch_sub(1, Ordering::Relaxed);
        }
    });
    match waiter {
        Ok(_) => send.send(child).map_err(|e| e.0),
        Err(_) => Err(child),
    }
}

/// Reaps backlogged shepherds that have exited, without waiting; called on
/// every spawn, so a backlog left by a starved moment empties.
pub fn reap_backlog() {
    if lock(&BACKLOG).is_empty() {
        return;
    }
    drain_backlog_into(own_reaper());
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's reaper thread, started now if none is and it can be.
fn own_reaper() -> Option<&'static Reaper> {
    let me = rustix::process::getpid();
    if let Some(reaper) = REAPER.get() {
        return (reaper.owner == me).then_some(reaper);
    }
    let _starting = lock(&STARTING);
    if REAPER.get().is_none() {
        let reaper = start()?;
        let _ = REAPER.set(reaper);
    }
    REAPER.get().filter(|r| r.owner == me)
}

/// Reaps what has exited in the backlog; hands the rest to `reaper`.
fn drain_backlog_into(reaper: Option<&Reaper>) {
    let mut backlog = std::mem::take(&mut *lock(&BACKLOG));
    backlog.retain_mut(|child| {
        let running = matches!(child.try_wait(), Ok(None));
        if !running {
            UNREAPED.fetch_sub(1, Ordering::Relaxed);
        }
        running
    });
    match reaper {
        Some(reaper) => {
            for child in backlog {
                hand_over(reaper, child);
            }
        }
        None => lock(&BACKLOG).extend(backlog),
    }
}

fn hand_over(reaper: &Reaper, child: std::process::Child) {
    #[cfg(target_os = "linux")]
    let pidfd = rustix::process::Pid::from_child(&child);
    #[cfg(target_os = "linux")]
    let pidfd = netrunner_sys::process::pidfd_open(pidfd).ok();
    #[cfg(not(target_os = "linux"))]
    let pidfd = None;
    lock(&reaper.queue).push(Orphan { child, pidfd });
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
        if let Some(reaper) = REAPER.get() {
            orphans.append(&mut lock(&reaper.queue));
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
