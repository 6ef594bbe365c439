//! One shepherd started ahead of need, so a spawn does not wait for an exec.
//!
//! Starting a process is most of what a spawn costs. A spare shepherd has
//! already been exec'd and waits, blocked in `poll`, for a spawn request; a
//! spawn takes it and asks a background thread to start the next one. Every
//! child still has its own shepherd, a child of this process like any other.
//!
//! What the spare inherited when it was started could be stale by the time
//! it is used, or differ because it was started from another thread
//! (capabilities, seccomp filters and no_new_privs are per thread). So:
//! - the spawn request carries the working directory, the umask and every
//!   resource limit as they are *now*, and the shepherd applies them in the
//!   child;
//! - everything else a child inherits — ids and groups, capability sets,
//!   no_new_privs, seccomp, namespaces, cgroup, CPU affinity, nice value —
//!   is fingerprinted for the calling thread at spawn time, and a spare
//!   whose fingerprint differs is thrown away: that spawn starts a fresh
//!   shepherd from the calling thread, exactly as without spares.
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
    fingerprint: Vec<u8>,
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

/// The calling thread's state a child inherits: the umask (which the
/// request carries) and the fingerprint of everything else (which a spare
/// must match), from one read of `/proc/thread-self/status`.
pub fn snapshot() -> (Option<u32>, Vec<u8>) {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok());
    (umask, fingerprint_from(&status))
}

/// Everything a child inherits from the thread that starts its shepherd and
/// that the spawn request does not carry, given that thread's status text.
fn fingerprint_from(status: &str) -> Vec<u8> {
    const FIELDS: [&str; 13] = [
        "Uid:",
        "Gid:",
        "Groups:",
        "CapInh:",
        "CapPrm:",
        "CapEff:",
        "CapBnd:",
        "CapAmb:",
        "NoNewPrivs:",
        "Seccomp:",
        "Seccomp_filters:",
        "Cpus_allowed_list:",
        "Mems_allowed_list:",
    ];
    let mut fp = Vec::with_capacity(512);
    for line in status
        .lines()
        .filter(|l| FIELDS.iter().any(|f| l.starts_with(f)))
    {
        fp.extend_from_slice(line.as_bytes());
        fp.push(b'\n');
    }
    // The thread's nice value.
    let tid = rustix::thread::gettid();
    if let Ok(nice) = rustix::process::getpriority_process(Some(tid)) {
        fp.extend_from_slice(&nice.to_le_bytes());
    }
    // Namespaces, by (device, inode) of their /proc links: one open, then a
    // relative stat for each.
    let flags =
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    if let Ok(ns) = rustix::fs::open("/proc/thread-self/ns", flags, rustix::fs::Mode::empty()) {
        for name in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
            if let Ok(st) = rustix::fs::statat(&ns, name, rustix::fs::AtFlags::empty()) {
                fp.extend_from_slice(&st.st_dev.to_le_bytes());
                fp.extend_from_slice(&st.st_ino.to_le_bytes());
            }
        }
    }
    if let Ok(cgroup) = std::fs::read("/proc/self/cgroup") {
        fp.extend_from_slice(&cgroup);
    }
    fp
}

fn discard(spare: Spare) {
    // EOF before any request: the shepherd exits at once.
    drop(spare.started.socket);
    reaper::reap(spare.started.child);
}

/// The spare for `path`, if one is ready and was started under the same
/// `fingerprint` (from [`snapshot`] of the calling thread); asks for the
/// next one either way.
pub fn take(
    path: &Path,
    fingerprint: &[u8],
    start: fn(&Path) -> Result<Started, crate::Error>,
) -> Option<Started> {
    let pool = POOL.get_or_init(|| start_refill_thread(start)).as_ref()?;
    let mut slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    let spare = slot.spare.take();
    slot.wanted = Some(path.to_owned());
    pool.changed.notify_all();
    drop(slot);
    let spare = spare?;
    if spare.path == path && spare.fingerprint == fingerprint {
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
        let (_, fingerprint) = snapshot();
        let started = start(&path);
        slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.busy = false;
        if let Ok(started) = started {
            let spare = Spare {
                started,
                path,
                fingerprint,
            };
            match slot.spare {
                None => slot.spare = Some(spare),
                Some(_) => discard(spare),
            }
        }
        pool.changed.notify_all();
    }
}
