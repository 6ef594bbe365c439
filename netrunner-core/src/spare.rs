//! One shepherd started ahead of need, so a spawn does not wait for an exec.
//!
//! Starting a process is most of what a spawn costs. A spare shepherd has
//! already been exec'd and waits, blocked in `poll`, for a spawn request; a
//! spawn takes it and asks a background thread to start the next one. Every
//! child still has its own shepherd, a child of this process like any other.
//!
//! A spare was forked earlier, by another thread, and carries that moment's
//! state; a child it starts must still be the one a shepherd forked by the
//! calling thread now would start (see [`netrunner_sys::inherit`]):
//! - the umask, resource limits, environment and working directory (as a
//!   descriptor) travel in every request and are set in the child;
//! - per-thread scheduling and placement attributes (nice, policy, I/O
//!   priority, CPU affinity, personality, timer slack, `oom_score_adj`) are
//!   read from the calling thread and the spare takes them on before it
//!   forks;
//! - the identity (credentials, capabilities, securebits, every namespace
//!   including `*_for_children`, the root directory and its mount, LSM
//!   labels, keyring, cgroups, ...) must be equal: the library compares the
//!   caller's with the refill thread's of when the spare was started, and
//!   the spare compares it again with its own at spawn time;
//! - a caller under a seccomp filter or with `no_new_privs` (Landlock)
//!   cannot be compared and never gets a spare.
//!
//! A spare belongs to the process that started it: after a `fork` without
//! `exec`, the copy never touches the pool it inherited (its lock may be
//! held by a thread that does not exist in the copy) and starts every
//! shepherd fresh.
//!
//! Only the embedded shepherd has spares: an explicit `shepherd_path` or
//! `NETRUNNER_SHEPHERD` is always started fresh. A spare that is never
//! used exits when this process does (it sees EOF on its socket).

use std::os::fd::OwnedFd;
use std::sync::{Condvar, Mutex, OnceLock};

use netrunner_proto::SpareCheck;
use netrunner_sys::inherit;
use netrunner_sys::process::Pid;

use crate::reaper;
use crate::shepherd_exe::ShepherdSource;

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
    source: ShepherdSource,
    /// The refill thread's identity and cgroups when it started the spare.
    identity: Identity,
}

/// A thread's identity and cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    identity: inherit::Identity,
    cgroups: Vec<u8>,
}

#[derive(Debug, Default)]
struct Slot {
    spare: Option<Spare>,
    /// A spare from this source is wanted.
    wanted: Option<ShepherdSource>,
    /// The identity of the last caller that had one compared (`None`
    /// inside: it could not be compared): a spare that would not match it
    /// is not worth starting. Forgotten whenever a caller finds no spare,
    /// so one unusual caller does not stop spares for everyone.
    last_caller: Option<Option<Identity>>,
    /// The refill thread is starting one now.
    busy: bool,
}

struct Pool {
    /// The process that started the refill thread: the only one that may
    /// use the pool.
    owner: Pid,
    slot: Mutex<Slot>,
    changed: Condvar,
}

static POOL: OnceLock<Option<Pool>> = OnceLock::new();

/// What the calling thread would pass on to a shepherd it forked now.
#[derive(Debug)]
struct Caller {
    umask: Option<u32>,
    /// `None` when a spare cannot serve this thread.
    identity: Option<Identity>,
}

impl Caller {
    /// Reads the calling thread's state.
    fn now() -> Caller {
        let status = inherit::thread_status();
        let umask = status.as_deref().and_then(inherit::umask_from_status);
        let identity = status
            .as_deref()
            .and_then(inherit::identity)
            .zip(inherit::cgroups())
            .map(|(identity, cgroups)| Identity { identity, cgroups });
        Caller { umask, identity }
    }
}

fn discard(spare: Started) {
    // EOF before any request: the shepherd exits at once.
    drop(spare.socket);
    reaper::reap(spare.child);
}

/// The pool, if this process started it (not a copy made by `fork`).
fn own_pool() -> Option<&'static Pool> {
    POOL.get()?
        .as_ref()
        .filter(|pool| pool.owner == netrunner_sys::process::getpid())
}

/// How a spare is started: it and the source it ended up started from.
pub type Start = fn(&ShepherdSource) -> Result<(Started, ShepherdSource), crate::Error>;

/// A spare taken for the calling thread: what it must check and take on.
#[derive(Debug)]
pub struct Taken {
    /// The spare.
    pub started: Started,
    /// Its check: the caller's identity and thread attributes.
    pub check: SpareCheck,
    /// The caller's umask.
    pub umask: Option<u32>,
}

/// The spare from `source`, if one is ready and can serve the calling
/// thread, with the check it must pass (and what it must take on) before
/// it starts the child; asks for the next one either way.
///
/// The calling thread's state is read only when a spare is there to
/// compare it with: a fresh shepherd inherits it by being forked.
pub fn take(source: &ShepherdSource, start: Start) -> Option<Taken> {
    let pool = match POOL.get() {
        Some(_) => own_pool()?,
        None => POOL.get_or_init(|| start_refill_thread(start)).as_ref()?,
    };
    let mut slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    let Some(spare) = slot.spare.take() else {
        slot.wanted = Some(source.clone());
        slot.last_caller = None;
        pool.changed.notify_all();
        return None;
    };
    drop(slot);
    let caller = Caller::now();
    let same = caller.identity.as_ref() == Some(&spare.identity) && spare.source == *source;
    // The next spare is asked for once the refill thread can tell whether
    // it would serve this caller.
    let mut slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    slot.wanted = Some(source.clone());
    slot.last_caller = Some(caller.identity.clone());
    pool.changed.notify_all();
    drop(slot);
    let attributes = inherit::thread_attributes().ok().filter(|_| same);
    match (attributes, caller.identity) {
        (Some(attributes), Some(identity)) => Some(Taken {
            started: spare.started,
            check: SpareCheck {
                // The spare has exec'd since the refill thread forked it:
                // it compares what an exec leaves alone.
                identity: identity.identity.exec_invariant,
                cgroups: identity.cgroups,
                attributes,
            },
            umask: caller.umask,
        }),
        _ => {
            discard(spare.started);
            None
        }
    }
}

/// The pid of the ready spare, if any (for tests and diagnostics).
pub fn spare_pid() -> Option<u32> {
    let pool = own_pool()?;
    let slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    slot.spare.as_ref().map(|s| s.started.child.id())
}

/// Whether no spare is being started right now (for tests: the process's
/// children and descriptors are then stable).
pub fn settled() -> bool {
    let Some(pool) = own_pool() else {
        return true;
    };
    let slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    !slot.busy && slot.wanted.is_none()
}

fn start_refill_thread(start: Start) -> Option<Pool> {
    std::thread::Builder::new()
        .name("netrunner-spare".into())
        .spawn(move || refill(start))
        .ok()?;
    Some(Pool {
        owner: netrunner_sys::process::getpid(),
        slot: Mutex::new(Slot::default()),
        changed: Condvar::new(),
    })
}

fn refill(start: Start) {
    // The pool is being initialised by whoever started us; wait for it.
    let pool = loop {
        if let Some(Some(pool)) = POOL.get() {
            break pool;
        }
        std::thread::yield_now();
    };
    let mut slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let source = match slot.wanted.take() {
            Some(wanted) if slot.spare.is_none() => wanted,
            _ => {
                slot = pool.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
                continue;
            }
        };
        slot.busy = true;
        let last_caller = slot.last_caller.clone();
        drop(slot);
        // Only a spare identical to what the last caller would fork can
        // serve it; one from a thread that differs (another namespace,
        // other credentials) would be thrown away unused. Our identity is
        // read before and after the start: a change and its undoing
        // around the fork (a temporary seteuid, which glibc applies to
        // every thread) shows as a difference.
        let before = Caller::now().identity;
        let wanted = last_caller.is_none_or(|last| last == before);
        let started = match before {
            Some(_) if wanted => Some(start(&source)),
            _ => None,
        };
        let after = started.as_ref().and_then(|_| Caller::now().identity);
        slot = pool.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.busy = false;
        let own = before.filter(|b| Some(b) == after.as_ref());
        match (started, own) {
            (Some(Ok((started, source))), Some(own)) => {
                let spare = Spare {
                    started,
                    source,
                    identity: own,
                };
                match slot.spare {
                    None => slot.spare = Some(spare),
                    Some(_) => discard(spare.started),
                }
            }
            (Some(Ok((started, _))), None) => discard(started),
            _ => {}
        }
        pool.changed.notify_all();
    }
}
