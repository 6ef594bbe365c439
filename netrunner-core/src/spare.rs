//! One shepherd started ahead of need, so a spawn does not wait for an exec.
//!
//! Starting a process is most of what a spawn costs. A spare shepherd has
//! already been exec'd and waits, blocked in `poll`, for a spawn request; a
//! spawn takes it and asks a background thread to start the next one. Every
//! child still has its own shepherd, a child of this process like any other.
//!
//! What the spare inherited when it was started could be stale by the time
//! it is used. The spawn request therefore carries the working directory,
//! the umask and every resource limit as they are *now*, and the shepherd
//! applies them in the child; a spare started under other credentials
//! (uid/gid changed since) is thrown away. Scheduling priority, CPU affinity
//! and cgroup membership are inherited as they were when the spare started.
//!
//! Only the embedded shepherd has spares: an explicit `shepherd_path` or
//! `NETRUNNER_SHEPHERD` is always started fresh. A spare that is never
//! used exits when this process does (it sees EOF on its socket).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use crate::reaper;

/// A started shepherd and our end of its socket.
#[derive(Debug)]
pub struct Started {
    /// The shepherd process.
    pub child: std::process::Child,
    /// Our end of the socket; the shepherd has the other as its fd 0.
    pub socket: OwnedFd,
}

#[derive(Debug)]
struct Spare {
    started: Started,
    path: PathBuf,
    credentials: [u32; 4],
}

#[derive(Debug, Default)]
struct Slot {
    spare: Option<Spare>,
    /// A spare for this path is wanted.
    wanted: Option<PathBuf>,
    /// The refill thread is starting one now.
    busy: bool,
}

struct Pool {
    slot: Mutex<Slot>,
    changed: Condvar,
}

static POOL: OnceLock<Option<Pool>> = OnceLock::new();

fn credentials() -> [u32; 4] {
    [
        rustix::process::getuid().as_raw(),
        rustix::process::geteuid().as_raw(),
        rustix::process::getgid().as_raw(),
        rustix::process::getegid().as_raw(),
    ]
}

fn discard(spare: Spare) {
    // EOF before any request: the shepherd exits at once.
    drop(spare.started.socket);
    reaper::reap(spare.started.child);
}

/// The spare for `path`, if one is ready; asks for the next one either way.
pub fn take(path: &Path, start: fn(&Path) -> Result<Started, crate::Error>) -> Option<Started> {
    let pool = POOL.get_or_init(|| start_refill_thread(start)).as_ref()?;
    let mut slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    let spare = slot.spare.take();
    slot.wanted = Some(path.to_owned());
    pool.changed.notify_all();
    drop(slot);
    let spare = spare?;
    if spare.path == path && spare.credentials == credentials() {
        Some(spare.started)
    } else {
        discard(spare);
        None
    }
}

/// The pid of the ready spare, if any (for tests and diagnostics).
pub fn spare_pid() -> Option<u32> {
    let pool = POOL.get()?.as_ref()?;
    let slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    slot.spare.as_ref().map(|s| s.started.child.id())
}

/// Whether no spare is being started right now (for tests: the process's
/// children and descriptors are then stable).
pub fn settled() -> bool {
    let Some(Some(pool)) = POOL.get() else {
        return true;
    };
    let slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    !slot.busy && slot.wanted.is_none()
}

fn start_refill_thread(start: fn(&Path) -> Result<Started, crate::Error>) -> Option<Pool> {
    std::thread::Builder::new()
        .name("netrunner-spare".into())
        .spawn(move || refill(start))
        .ok()?;
    Some(Pool {
        slot: Mutex::new(Slot::default()),
        changed: Condvar::new(),
    })
}

fn refill(start: fn(&Path) -> Result<Started, crate::Error>) {
    // The pool is being initialised by whoever started us; wait for it.
    let pool = loop {
        if let Some(Some(pool)) = POOL.get() {
            break pool;
        }
        std::thread::yield_now();
    };
    let mut slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let path = match slot.wanted.take() {
            Some(path) if slot.spare.is_none() => path,
            _ => {
                slot = pool.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
                continue;
            }
        };
        slot.busy = true;
        drop(slot);
        let credentials = credentials();
        let started = start(&path);
        slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.busy = false;
        if let Ok(started) = started {
            let spare = Spare {
                started,
                path,
                credentials,
            };
            match slot.spare {
                None => slot.spare = Some(spare),
                Some(_) => discard(spare),
            }
        }
        pool.changed.notify_all();
    }
}
