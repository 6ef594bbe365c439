//! What a child inherits from the thread that forks it: read for the calling
//! thread, compared with a shepherd started ahead of time, and taken on by it.
//!
//! A shepherd forked earlier by another thread (a spare) carries that
//! thread's state of that moment. Three kinds of inherited state:
//!
//! - [`ThreadAttributes`]: scheduling and placement, often per thread and
//!   often changed. A spare reads the caller's values from the request and
//!   sets them on itself before it forks ([`apply_thread_attributes`]).
//! - [`identity`]: credentials, capabilities, securebits, namespaces
//!   (including the `*_for_children` ones), the root directory, LSM labels,
//!   the session keyring and a few per-process switches. A process cannot
//!   take these on later, so a spare whose identity differs is not used.
//! - What cannot be compared at all: a seccomp filter, `no_new_privs` (the
//!   precondition for unprivileged Landlock domains). [`identity`] returns
//!   `None` then, and no spare is used.
//!
//! Umask, resource limits, the working directory and the environment travel
//! in the request and are set in the child itself.

use std::io;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU8, Ordering};

use netrunner_proto::ThreadAttributes;
use nix::libc;
use rustix::fs::{AtFlags, Mode, OFlags};

/// `SCHED_RESET_ON_FORK`, or'ed into the policy `sched_getscheduler` returns.
const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;
/// `IOPRIO_WHO_PROCESS`: the `who` of `ioprio_get`/`ioprio_set` is a thread id.
const IOPRIO_WHO_PROCESS: libc::c_long = 1;

/// The calling thread's `/proc/thread-self/status`, if `/proc` is there.
pub fn thread_status() -> Option<String> {
    std::fs::read_to_string("/proc/thread-self/status").ok()
}

/// The umask in a status text (`Umask:` line, Linux 4.7+).
pub fn umask_from_status(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
}

/// The calling thread's scheduling and placement attributes, as a child it
/// forks would get them (`SCHED_RESET_ON_FORK` applied).
///
/// # References
/// - [`sched(7)`](https://man7.org/linux/man-pages/man7/sched.7.html),
///   [`ioprio_get(2)`](https://man7.org/linux/man-pages/man2/ioprio_get.2.html),
///   [`personality(2)`](https://man7.org/linux/man-pages/man2/personality.2.html),
///   [`PR_GET_TIMERSLACK`](https://man7.org/linux/man-pages/man2/PR_GET_TIMERSLACK.2const.html),
///   [`proc_pid_oom_score_adj(5)`](https://man7.org/linux/man-pages/man5/proc_pid_oom_score_adj.5.html)
pub fn thread_attributes() -> io::Result<ThreadAttributes> {
    let tid = rustix::thread::gettid();
    let mut nice = rustix::process::getpriority_process(Some(tid))?;
    let (mut policy, mut priority) = sched_get(tid.as_raw_nonzero().get())?;
    if policy & SCHED_RESET_ON_FORK != 0 {
        // What fork does with the flag set: no real-time policy and no
        // negative nice value for the child, and no flag either.
        policy &= !SCHED_RESET_ON_FORK;
        if policy == libc::SCHED_FIFO || policy == libc::SCHED_RR {
            policy = libc::SCHED_OTHER;
            priority = 0;
        }
        nice = nice.max(0);
    }
    Ok(ThreadAttributes {
        nice,
        sched_policy: policy as u32,
        sched_priority: priority as u32,
        ioprio: ioprio_get(tid.as_raw_nonzero().get())?,
        cpu_affinity: affinity_words(&rustix::thread::sched_getaffinity(Some(tid))?),
        personality: nix::sys::personality::get()?.bits() as u32,
        timer_slack_ns: rustix::thread::current_timer_slack()?,
        oom_score_adj: read_oom_score_adj()?,
    })
}

/// Gives the calling thread (a single-threaded shepherd) the attributes in
/// `wanted`, changing only those that differ from its own.
///
/// A child forked afterwards inherits them as it would from the thread
/// that read them.
pub fn apply_thread_attributes(wanted: &ThreadAttributes) -> io::Result<()> {
    let tid = rustix::thread::gettid();
    let own_affinity = rustix::thread::sched_getaffinity(None)?;
    if affinity_words(&own_affinity) != wanted.cpu_affinity {
        let mut set = rustix::thread::CpuSet::new();
        for cpu in 0..rustix::thread::CpuSet::MAX_CPU {
            if wanted
                .cpu_affinity
                .get(cpu / 64)
                .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
            {
                set.set(cpu);
            }
        }
        rustix::thread::sched_setaffinity(None, &set)?;
    }
    let (policy, priority) = sched_get(tid.as_raw_nonzero().get())?;
    if (policy & !SCHED_RESET_ON_FORK) as u32 != wanted.sched_policy
        || priority as u32 != wanted.sched_priority
    {
        sched_set(wanted.sched_policy as i32, wanted.sched_priority as i32)?;
    }
    if rustix::process::getpriority_process(None)? != wanted.nice {
        rustix::process::setpriority_process(None, wanted.nice)?;
    }
    if ioprio_get(tid.as_raw_nonzero().get())? != wanted.ioprio {
        ioprio_set(wanted.ioprio)?;
    }
    if nix::sys::personality::get()?.bits() as u32 != wanted.personality {
        let persona = nix::sys::personality::Persona::from_bits_retain(wanted.personality as i32);
        nix::sys::personality::set(persona)?;
    }
    if rustix::thread::current_timer_slack()? != wanted.timer_slack_ns {
        // Zero would mean "back to the default"; a thread's slack is never
        // zero unless it runs a real-time policy, where it is ignored.
        if let Some(ns) = NonZeroU64::new(wanted.timer_slack_ns) {
            rustix::thread::set_current_timer_slack(Some(ns))?;
        }
    }
    if read_oom_score_adj()? != wanted.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", wanted.oom_score_adj.to_string())?;
    }
    Ok(())
}

fn affinity_words(set: &rustix::thread::CpuSet) -> Vec<u64> {
    let mut words = vec![0u64; rustix::thread::CpuSet::MAX_CPU.div_ceil(64)];
    for cpu in 0..rustix::thread::CpuSet::MAX_CPU {
        if set.is_set(cpu) {
            words[cpu / 64] |= 1 << (cpu % 64);
        }
    }
    while words.last() == Some(&0) {
        words.pop();
    }
    words
}

fn read_oom_score_adj() -> io::Result<i32> {
    std::fs::read_to_string("/proc/self/oom_score_adj")?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "oom_score_adj"))
}

/// Policy (with `SCHED_RESET_ON_FORK`) and static priority of thread `tid`.
fn sched_get(tid: i32) -> io::Result<(i32, i32)> {
    // SAFETY: sched_getscheduler takes a plain integer and touches no memory.
    let policy = unsafe { libc::sched_getscheduler(tid) };
    if policy < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, writable sched_param on our stack for the
    // whole call; the kernel writes exactly one such struct.
    if unsafe { libc::sched_getparam(tid, &mut param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((policy, param.sched_priority))
}

fn sched_set(policy: i32, priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param on our stack for the whole
    // call; the kernel only reads it. Pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ioprio_get(tid: i32) -> io::Result<u32> {
    // SAFETY: ioprio_get takes two integers and touches no memory.
    let prio = unsafe {
        libc::syscall(
            libc::SYS_ioprio_get,
            IOPRIO_WHO_PROCESS,
            libc::c_long::from(tid),
        )
    };
    if prio < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(prio as u32)
}

fn ioprio_set(prio: u32) -> io::Result<()> {
    // SAFETY: ioprio_set takes three integers and touches no memory; who 0
    // is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            libc::c_long::from(prio),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lines of a status text that are part of the identity: credentials,
/// capability sets, no_new_privs, seccomp, the cpuset's memory nodes and
/// speculation controls.
const IDENTITY_STATUS_FIELDS: [&str; 13] = [
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
    "Mems_allowed_list:",
    "Speculation",
];

/// Status fields an `execve` of an ordinary binary may change: the
/// permitted and effective capabilities are recomputed, and the `*_NOEXEC`
/// speculation controls are cleared. (Of `Uid:`/`Gid:` only the saved and
/// filesystem ids change; the real and effective ones are kept.)
const CHANGED_BY_EXEC: [&str; 3] = ["CapPrm:", "CapEff:", "Speculation"];

/// Namespaces a child is born into, by their `/proc/thread-self/ns` names.
/// For pid and time that is the `*_for_children` link: the namespace the
/// caller itself lives in matters no more than where its children go.
const NAMESPACES: [&str; 8] = [
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid_for_children",
    "time_for_children",
    "user",
    "uts",
];

/// `SECBIT_KEEP_CAPS`, which every `execve` clears.
const SECBIT_KEEP_CAPS: u32 = 1 << 4;

/// A thread's identity: everything a child inherits that a process cannot
/// take on after it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// All of it, to compare two threads of one process (the caller and
    /// the refill thread, before it starts a spare).
    pub full: Vec<u8>,
    /// The part an `execve` leaves alone, to compare a thread with a
    /// shepherd it started (which has exec'd since): without the permitted
    /// and effective capabilities, saved and filesystem ids, `*_NOEXEC`
    /// speculation controls, `SECBIT_KEEP_CAPS` and LSM labels.
    pub exec_invariant: Vec<u8>,
}

impl Identity {
    fn push(&mut self, bytes: &[u8], survives_exec: bool) {
        self.full.extend_from_slice(bytes);
        if survives_exec {
            self.exec_invariant.extend_from_slice(bytes);
        }
    }
}

/// The calling thread's identity, given its status text (see [`Identity`]).
///
/// `None` when the thread cannot be compared with another process: it runs
/// under a seccomp filter (or strict mode) or with `no_new_privs` set (which
/// any Landlock domain of an unprivileged process implies), or `/proc` is
/// not there to read.
///
/// Not covered (no interface reads them): a Landlock domain entered with
/// `CAP_SYS_ADMIN` and without `no_new_privs`, and `sched_setattr`
/// utilisation clamps.
///
/// # References
/// - [`proc_pid_status(5)`](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html),
///   [`namespaces(7)`](https://man7.org/linux/man-pages/man7/namespaces.7.html),
///   [`capabilities(7)`](https://man7.org/linux/man-pages/man7/capabilities.7.html) (securebits),
///   [`keyrings(7)`](https://man7.org/linux/man-pages/man7/keyrings.7.html),
///   [`PR_SET_MDWE`](https://man7.org/linux/man-pages/man2/PR_SET_MDWE.2const.html),
///   [`core scheduling`](https://docs.kernel.org/admin-guide/hw-vuln/core-scheduling.html)
pub fn identity(status: &str) -> Option<Identity> {
    let mut id = Identity {
        full: Vec::with_capacity(1024),
        exec_invariant: Vec::with_capacity(1024),
    };
    for line in status
        .lines()
        .filter(|l| IDENTITY_STATUS_FIELDS.iter().any(|f| l.starts_with(f)))
    {
        let value = |name: &str| line.strip_prefix(name).map(str::trim);
        if value("NoNewPrivs:").is_some_and(|v| v != "0")
            || value("Seccomp:").is_some_and(|v| v != "0")
        {
            return None;
        }
        id.full.extend_from_slice(line.as_bytes());
        id.full.push(b'\n');
        if CHANGED_BY_EXEC.iter().any(|f| line.starts_with(f)) {
            continue;
        }
        let kept = if line.starts_with("Uid:") || line.starts_with("Gid:") {
            // Real and effective.
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            line.to_owned()
        };
        id.exec_invariant.extend_from_slice(kept.as_bytes());
        id.exec_invariant.push(b'\n');
    }
    if id.full.is_empty() {
        return None;
    }
    let ns = rustix::fs::open(
        "/proc/thread-self/ns",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    for name in NAMESPACES {
        // A kernel too old for a link lacks it in every process alike.
        if let Ok(st) = rustix::fs::statat(&ns, name, AtFlags::empty()) {
            id.push(&st.st_dev.to_le_bytes(), true);
            id.push(&st.st_ino.to_le_bytes(), true);
        }
    }
    drop(ns);
    // The root directory, and which mount of it: a chroot into a bind
    // mount of the same directory sees other mounts below.
    let root = rustix::fs::statx(
        rustix::fs::CWD,
        "/",
        AtFlags::empty(),
        rustix::fs::StatxFlags::INO | rustix::fs::StatxFlags::MNT_ID,
    )
    .ok()?;
    for n in [
        u64::from(root.stx_dev_major),
        u64::from(root.stx_dev_minor),
        root.stx_ino,
        root.stx_mnt_id,
    ] {
        id.push(&n.to_le_bytes(), true);
    }
    let securebits = rustix::thread::capabilities_secure_bits().ok()?.bits();
    id.push(&securebits.to_le_bytes(), false);
    id.push(&(securebits & !SECBIT_KEEP_CAPS).to_le_bytes(), true);
    id.push(
        &[rustix::thread::transparent_huge_pages_are_disabled().ok()? as u8],
        true,
    );
    id.push(&session_keyring().to_le_bytes(), true);
    id.push(&prctl_or_errno(PR_GET_MDWE).to_le_bytes(), true);
    id.push(&core_scheduling_cookie().to_le_bytes(), true);
    for file in [
        "/proc/self/coredump_filter",
        "/proc/thread-self/loginuid",
        "/proc/thread-self/sessionid",
    ] {
        if let Ok(value) = std::fs::read(file) {
            id.push(&value, true);
            id.push(b"\n", true);
        }
    }
    let mut labels = Vec::new();
    lsm_labels(&mut labels);
    id.push(&labels, false);
    Some(id)
}

/// The calling thread's cgroup membership (`/proc/thread-self/cgroup`: a
/// thread of a threaded cgroup can be elsewhere than its process).
pub fn cgroups() -> Option<Vec<u8>> {
    std::fs::read("/proc/thread-self/cgroup").ok()
}

/// `PR_GET_MDWE` (Linux 6.3+): memory-deny-write-execute, which children
/// inherit and cannot undo.
const PR_GET_MDWE: libc::c_int = 66;

/// `prctl(option, 0, 0, 0, 0)`'s result, or minus the error number.
fn prctl_or_errno(option: libc::c_int) -> i64 {
    // SAFETY: a get-style prctl with all-zero arguments reads nothing of
    // ours and returns its answer as the result.
    let rc = unsafe {
        libc::prctl(
            option,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        -i64::from(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        i64::from(rc)
    }
}

/// The calling thread's core-scheduling cookie (children inherit it), or
/// minus the error number where the kernel has no core scheduling.
fn core_scheduling_cookie() -> i64 {
    let tid = rustix::thread::gettid();
    match rustix::thread::core_scheduling_cookie(tid, rustix::thread::CoreSchedulingScope::Thread) {
        Ok(cookie) => cookie as i64,
        Err(e) => -i64::from(e.raw_os_error()),
    }
}

/// The session keyring's serial number, or the error number when there is
/// none (or keyrings are not built in): either way the same for two
/// processes with the same session keyring.
fn session_keyring() -> i64 {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // SAFETY: keyctl(KEYCTL_GET_KEYRING_ID, id, create = 0) takes integers
    // only and touches no memory of ours.
    let serial = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0 as libc::c_long,
        )
    };
    if serial < 0 {
        -i64::from(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        serial as i64
    }
}

/// Appends the thread's LSM labels (`attr/current`, and `attr/exec`, which
/// a `setexeccon` leaves for the next exec). Which LSMs are active is fixed
/// at boot, so once the files prove unreadable they are not tried again.
fn lsm_labels(id: &mut Vec<u8>) {
    // 0: not tried yet, 1: readable, 2: no LSM answers.
    static STATE: AtomicU8 = AtomicU8::new(0);
    if STATE.load(Ordering::Relaxed) == 2 {
        return;
    }
    let mut any = false;
    for name in ["current", "exec"] {
        if let Ok(label) = std::fs::read(format!("/proc/thread-self/attr/{name}")) {
            any = true;
            id.extend_from_slice(&label);
            id.push(0);
        }
    }
    STATE.store(if any { 1 } else { 2 }, Ordering::Relaxed);
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_matches_itself_and_not_a_changed_self() {
        let status = thread_status().unwrap();
        let id = identity(&status).expect("a test thread is comparable");
        assert_eq!(identity(&thread_status().unwrap()).as_ref(), Some(&id));
        assert!(id.exec_invariant.len() < id.full.len());
        // A thread whose securebits differ is another identity; set them on
        // a scratch thread only.
        let other = std::thread::spawn(|| {
            let bits = rustix::thread::capabilities_secure_bits().unwrap();
            let keep = rustix::thread::CapabilitiesSecureBits::KEEP_CAPS;
            if rustix::thread::set_capabilities_secure_bits(bits | keep).is_err() {
                return None;
            }
            identity(&thread_status().unwrap())
        })
        .join()
        .unwrap();
        if let Some(other) = other {
            assert_ne!(other, id);
        } else {
            eprintln!("skipped the securebits half: setting KEEP_CAPS needs CAP_SETPCAP");
        }
    }

    #[test]
    fn no_new_privs_makes_a_thread_incomparable() {
        let refused = std::thread::spawn(|| {
            rustix::thread::set_no_new_privs(true).unwrap();
            identity(&thread_status().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(refused, None);
    }

    #[test]
    fn attributes_round_trip_through_a_scratch_thread() {
        let wanted = std::thread::spawn(|| {
            rustix::thread::set_current_timer_slack(NonZeroU64::new(123_456)).unwrap();
            rustix::process::setpriority_process(None, 7).unwrap();
            thread_attributes().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(wanted.timer_slack_ns, 123_456);
        assert_eq!(wanted.nice, 7);
        let got = std::thread::spawn(move || {
            apply_thread_attributes(&wanted).unwrap();
            (thread_attributes().unwrap(), wanted)
        })
        .join()
        .unwrap();
        assert_eq!(got.0, got.1);
    }
}
