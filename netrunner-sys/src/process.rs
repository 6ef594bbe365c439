//! Processes: fork/exec with an async-signal-safe child path, waiting, signalling.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::raw::c_char;

use netrunner_proto::{Isolation, Rusage, SpawnStage, WireStatus};
use nix::libc;
use rustix::process::{WaitId, WaitIdOptions, WaitIdStatus};

use crate::signal::Signal;

pub use rustix::process::Pid;

/// The calling process's pid.
pub fn getpid() -> Pid {
    rustix::process::getpid()
}

/// Everything `execve` needs, built (and allocated) before `fork`.
///
/// After `fork` the child may only make async-signal-safe calls, so the
/// C strings and the NULL-terminated pointer arrays all exist up front and
/// the child only reads them.
pub struct ExecPlan<'a> {
    program: CString,
    // The pointer vectors point into these; they must live as long as the plan.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
    cwd: Option<CString>,
    /// The directory `cwd` is relative to (or the working directory itself).
    cwd_fd: Option<BorrowedFd<'a>>,
    /// Extra descriptors: (number in the child, descriptor here).
    extra_fds: Vec<(i32, BorrowedFd<'a>)>,
    isolation: Isolation,
    /// Limits to set in the child: only those that differ from ours.
    rlimits: Vec<(u32, libc::rlimit)>,
    umask: Option<u32>,
    controlling_terminal: bool,
    cgroup_procs: Option<BorrowedFd<'a>>,
    /// Standard stream that is the owner's terminal, and the owner's
    /// (foreground) process group: the child's group takes the foreground.
    foreground: Option<(usize, Pid)>,
}

/// A byte string given to [`ExecPlan::new`] contained a NUL byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} contains a NUL byte")]
pub struct NulInPlan(pub &'static str);

impl<'a> ExecPlan<'a> {
    /// Prepares an exec of `program` with `argv`, `env` (`KEY=VALUE`) and `cwd`.
    pub fn new(
        program: &[u8],
        argv: &[Vec<u8>],
        env: &[Vec<u8>],
        cwd: Option<&[u8]>,
        isolation: Isolation,
    ) -> Result<Self, NulInPlan> {
        let cstr = |bytes: &[u8], what| CString::new(bytes).map_err(|_| NulInPlan(what));
        let program = cstr(program, "program")?;
        let argv = argv
            .iter()
            .map(|a| cstr(a, "argument"))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .iter()
            .map(|e| cstr(e, "environment entry"))
            .collect::<Result<Vec<_>, _>>()?;
        let cwd = cwd.map(|c| cstr(c, "working directory")).transpose()?;
        let nul_terminated = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        Ok(ExecPlan {
            argv_ptrs: nul_terminated(&argv),
            envp_ptrs: nul_terminated(&envp),
            program,
            _argv: argv,
            _envp: envp,
            cwd,
            cwd_fd: None,
            extra_fds: Vec::new(),
            isolation,
            rlimits: Vec::new(),
            umask: None,
            controlling_terminal: false,
            cgroup_procs: None,
            foreground: None,
        })
    }

    /// Makes the child's stdin (a pty slave) its controlling terminal, after
    /// `setsid` (so use it with [`Isolation::Session`]).
    pub fn with_controlling_terminal(mut self) -> Self {
        self.controlling_terminal = true;
        self
    }

    /// Makes the child's new process group the foreground group of the
    /// terminal on its standard stream `stdio` (0, 1 or 2), if `owner`'s
    /// group is the foreground group when the child starts — as a
    /// job-control shell does for the job it runs (use it with
    /// [`Isolation::ProcessGroup`]). Both sides of the fork make the
    /// handover, so the child owns the terminal before its first
    /// instruction, whichever side runs first.
    pub fn with_foreground(mut self, stdio: usize, owner: Pid) -> Self {
        if stdio < 3 {
            self.foreground = Some((stdio, owner));
        }
        self
    }

    /// Has the child change to the directory open as `dir` (an `O_PATH`
    /// descriptor will do) before the plan's `cwd`, which is then relative
    /// to it: the working directory reaches the child however long its
    /// path, and even when it has been renamed or deleted.
    pub fn with_cwd_fd(mut self, dir: BorrowedFd<'a>) -> Self {
        self.cwd_fd = Some(dir);
        self
    }

    /// Also gives the child `fd` as its descriptor `child_fd` (>= 3), for
    /// each pair. Numbers above 1023 or taken twice are ignored; the
    /// caller validates them first.
    pub fn with_extra_fds(mut self, fds: &[(i32, BorrowedFd<'a>)]) -> Self {
        for &(child_fd, fd) in fds {
            let taken = self.extra_fds.iter().any(|&(n, _)| n == child_fd);
            if (3..=netrunner_proto::MAX_CHILD_FD as i32).contains(&child_fd) && !taken {
                self.extra_fds.push((child_fd, fd));
            }
        }
        self.extra_fds.truncate(netrunner_proto::MAX_EXTRA_FDS);
        self
    }

    /// Has the child move itself into the cgroup whose `cgroup.procs` is open
    /// as `procs`, before anything else it does: nothing it ever forks is
    /// outside.
    pub fn with_cgroup(mut self, procs: BorrowedFd<'a>) -> Self {
        self.cgroup_procs = Some(procs);
        self
    }

    /// Also sets these resource limits and this umask in the child.
    ///
    /// Limits equal to this process's own are skipped, so the child makes
    /// no system call for what it would inherit anyway.
    pub fn with_limits(mut self, rlimits: &[netrunner_proto::Rlimit], umask: Option<u32>) -> Self {
        let ours: Vec<netrunner_proto::Rlimit> = getrlimit_all();
        self.rlimits = rlimits
            .iter()
            .filter(|l| !ours.contains(l))
            .map(|l| {
                (
                    l.resource,
                    libc::rlimit {
                        rlim_cur: l.soft,
                        rlim_max: l.hard,
                    },
                )
            })
            .collect();
        self.umask = umask;
        self
    }
}

/// Every resource limit of this process, as `getrlimit` reports it
/// (`u64::MAX` is unlimited).
///
/// # References
/// - [`getrlimit(2)`](https://man7.org/linux/man-pages/man2/getrlimit.2.html)
pub fn getrlimit_all() -> Vec<netrunner_proto::Rlimit> {
    use rustix::process::Resource as R;
    let all = [
        R::Cpu,
        R::Fsize,
        R::Data,
        R::Stack,
        R::Core,
        R::Rss,
        R::Nproc,
        R::Nofile,
        R::Memlock,
        R::As,
        R::Locks,
        R::Sigpending,
        R::Msgqueue,
        R::Nice,
        R::Rtprio,
        R::Rttime,
    ];
    all.into_iter()
        .map(|r| {
            let l = rustix::process::getrlimit(r);
            netrunner_proto::Rlimit {
                resource: r as u32,
                soft: l.current.unwrap_or(u64::MAX),
                hard: l.maximum.unwrap_or(u64::MAX),
            }
        })
        .collect()
}

/// Why the child did not reach `exec`: the step and the OS error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnFailure {
    /// Which step failed.
    pub stage: SpawnStage,
    /// The raw errno.
    pub errno: i32,
}

impl SpawnFailure {
    fn from_io(stage: SpawnStage, e: &io::Error) -> Self {
        SpawnFailure {
            stage,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

const REPORT_LEN: usize = 5;

/// `CLOSE_RANGE_CLOEXEC` (Linux 5.11+, `<linux/close_range.h>`).
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// The kernel's number of signals (`_NSIG`): 128 on MIPS, 64 elsewhere.
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const KERNEL_NSIG: usize = 128;
/// The kernel's number of signals (`_NSIG`): 128 on MIPS, 64 elsewhere.
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
const KERNEL_NSIG: usize = 64;
/// The size of the kernel's `sigset_t`, which `rt_sigaction` insists on
/// (glibc's `sigset_t` is larger: 128 bytes).
const KERNEL_SIGSET_SIZE: usize = KERNEL_NSIG / 8;

/// Forks and execs `plan` with `stdio` as fds 0, 1, 2; returns the child's
/// pid, and a pidfd of it (Linux), once `execve` has succeeded.
///
/// The child: joins a new process group (or session), asks for SIGKILL when
/// this process dies (`PR_SET_PDEATHSIG`, Linux), installs its standard
/// streams, changes directory, resets every signal disposition and the mask,
/// and execs. A failure at any step is written as (stage, errno) to a
/// close-on-exec pipe; EOF on that pipe means `execve` succeeded. A failed
/// child is reaped before this returns, so nothing is left behind.
///
/// Every other descriptor in this process must be close-on-exec. `stdio`
/// may not use descriptor numbers 0–2 in another slot (EINVAL at the
/// `Stdio` stage: the shepherd keeps 0–2 occupied by `/dev/null`, so
/// received descriptors are always >= 3).
///
/// # References
/// - [`fork(2)`](https://man7.org/linux/man-pages/man2/fork.2.html),
///   [`execve(2)`](https://man7.org/linux/man-pages/man2/execve.2.html),
///   [`signal-safety(7)`](https://man7.org/linux/man-pages/man7/signal-safety.7.html)
pub fn fork_exec(
    plan: &ExecPlan<'_>,
    stdio: [BorrowedFd<'_>; 3],
) -> Result<(Pid, Option<std::os::fd::OwnedFd>), SpawnFailure> {
    // Slot j is installed with dup2 onto j in order 0, 1, 2: a descriptor
    // numbered below 3 in another slot would already be overwritten.
    if stdio
        .iter()
        .enumerate()
        .any(|(slot, fd)| fd.as_raw_fd() < 3 && fd.as_raw_fd() != slot as i32)
    {
        return Err(SpawnFailure {
            stage: SpawnStage::Stdio,
            errno: libc::EINVAL,
        });
    }
    let (report_r, report_w) =
        crate::fd::pipe2_cloexec().map_err(|e| SpawnFailure::from_io(SpawnStage::Fork, &e))?;
    let parent = getpid();
    let pid = match fork().map_err(|e| SpawnFailure {
        stage: SpawnStage::Fork,
        errno: e.raw_os_error(),
    })? {
        Forked::Child => child_after_fork(plan, stdio, report_w.as_fd(), parent),
        Forked::Parent(pid) => pid,
    };
    drop(report_w);
    if plan.isolation == Isolation::ProcessGroup {
        // Also from this side, so the group exists whichever of us runs
        // first. EACCES (the child already exec'd) and ESRCH are fine.
        let _ = rustix::process::setpgid(Some(pid), Some(pid));
        if let Some((index, owner)) = plan.foreground {
            crate::terminal::hand_foreground(stdio[index], owner, pid);
        }
    }
    let mut report = [0u8; REPORT_LEN];
    let mut got = 0;
    while got < REPORT_LEN {
        match rustix::io::read(&report_r, &mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    if got < REPORT_LEN {
        // Opened while the child is our unreaped child, so it names it.
        #[cfg(target_os = "linux")]
        let pidfd = pidfd_open(pid).ok();
        #[cfg(not(target_os = "linux"))]
        let pidfd = None;
        return Ok((pid, pidfd));
    }
    // The child failed before or at exec and has _exit'ed; reap it.
    let _ = waitid_blocking(pid);
    let stage = SpawnStage::from_u8(report[0]).unwrap_or(SpawnStage::Exec);
    let errno = i32::from_le_bytes([report[1], report[2], report[3], report[4]]);
    Err(SpawnFailure { stage, errno })
}

/// Which side of a fork we are on.
enum Forked {
    Child,
    Parent(Pid),
}

fn fork() -> Result<Forked, rustix::io::Errno> {
    // SAFETY: fork is sound here because the child runs only
    // `child_after_fork`, which makes async-signal-safe calls (raw syscalls via
    // rustix, libc `sigprocmask`/`execve`/`_exit`), reads memory prepared
    // before the fork, never allocates and never returns.
    match unsafe { nix::unistd::fork() } {
        Err(errno) => Err(rustix::io::Errno::from_raw_os_error(errno as i32)),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent(
            Pid::from_raw(child.as_raw()).expect("fork returned a positive pid"),
        )),
    }
}

/// The child side of [`fork_exec`]. Async-signal-safe calls only.
fn child_after_fork(
    plan: &ExecPlan<'_>,
    stdio: [BorrowedFd<'_>; 3],
    report: BorrowedFd<'_>,
    parent: Pid,
) -> ! {
    let fail = |stage: SpawnStage, errno: i32| -> ! {
        let e = errno.to_le_bytes();
        let msg = [stage.to_u8(), e[0], e[1], e[2], e[3]];
        // A failed write leaves the parent seeing EOF and then our exit; there
        // is nothing better to do from here.
        let _ = rustix::io::write(report, &msg);
        // SAFETY: _exit is async-signal-safe and skips atexit handlers and
        // stdio flushing, which belong to the parent's copy of the process.
        unsafe { libc::_exit(127) }
    };
    let errno = |e: rustix::io::Errno| e.raw_os_error();

    if let Some(procs) = plan.cgroup_procs {
        // "0" moves the writing process (cgroup v2).
        if let Err(e) = rustix::io::write(procs, b"0") {
            fail(SpawnStage::Cgroup, errno(e));
        }
    }

    let isolated = match plan.isolation {
        Isolation::ProcessGroup => rustix::process::setpgid(None, None),
        Isolation::Session => rustix::process::setsid().map(drop),
    };
    if let Err(e) = isolated {
        fail(SpawnStage::ProcessGroup, errno(e));
    }

    #[cfg(target_os = "linux")]
    {
        if let Err(e) =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        {
            fail(SpawnStage::ParentDeathSignal, errno(e));
        }
        // The parent may have died before prctl took effect: then nobody
        // would ever signal us, so do not start at all.
        if rustix::process::getppid() != Some(parent) {
            // SAFETY: as in `fail`.
            unsafe { libc::_exit(127) }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;

    for (target, fd) in stdio.iter().enumerate() {
        let result = if fd.as_raw_fd() == target as i32 {
            // dup2 onto itself would keep FD_CLOEXEC; clear it instead.
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())
        } else {
            match target {
                0 => rustix::stdio::dup2_stdin(fd),
                1 => rustix::stdio::dup2_stdout(fd),
                _ => rustix::stdio::dup2_stderr(fd),
            }
        };
        if let Err(e) = result {
            fail(SpawnStage::Stdio, errno(e));
        }
    }

    // Exactly 0, 1 and 2 reach the program: whatever else is open here (a
    // descriptor the owner leaked without O_CLOEXEC, inherited by the
    // shepherd) is marked close-on-exec. Kernels before 5.11 lack the
    // flag; there every descriptor of ours is close-on-exec already.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC is a plain system call
    // (async-signal-safe) that only sets a flag on descriptors of this
    // forked child, which execs or exits next and never uses them.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };

    if !plan.extra_fds.is_empty() {
        if let Err(errno) = install_extra_fds(&plan.extra_fds) {
            fail(SpawnStage::Stdio, errno);
        }
    }

    if let Some((index, owner)) = plan.foreground {
        let tty = match index {
            0 => rustix::stdio::stdin(),
            1 => rustix::stdio::stdout(),
            _ => rustix::stdio::stderr(),
        };
        // Best effort, like a shell's: failing leaves the command in the
        // background, where its reads stop it, which is what it would get
        // from a shell in the same spot.
        crate::terminal::hand_foreground(tty, owner, getpid());
    }

    if plan.controlling_terminal {
        if let Err(e) = rustix::process::ioctl_tiocsctty(rustix::stdio::stdin()) {
            fail(SpawnStage::Terminal, errno(e));
        }
    }

    if let Some(dir) = plan.cwd_fd {
        if let Err(e) = rustix::process::fchdir(dir) {
            fail(SpawnStage::Chdir, errno(e));
        }
    }
    if let Some(cwd) = &plan.cwd {
        if let Err(e) = rustix::process::chdir(cwd.as_c_str()) {
            fail(SpawnStage::Chdir, errno(e));
        }
    }

    for (resource, limit) in &plan.rlimits {
        // SAFETY: setrlimit is a plain system call (async-signal-safe) that
        // only reads the `rlimit` we pass by reference, which lives in the
        // plan for the whole call.
        if unsafe { libc::setrlimit(*resource as _, limit) } != 0 {
            fail(
                SpawnStage::Limits,
                io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EPERM),
            );
        }
    }
    if let Some(mask) = plan.umask {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask as _));
    }

    // Ignored signals stay ignored across exec; reset all of them, through
    // the raw system call: libc's `signal` refuses the real-time signals it
    // reserves for itself (32, 33), which a parent may still have ignored.
    // An all-zero kernel `struct sigaction` is SIG_DFL with no flags and an
    // empty mask whatever the architecture's field order; 64 bytes covers
    // its size everywhere. Errors are expected for KILL and STOP.
    let default_action = [0u64; 8];
    for sig in 1..=KERNEL_NSIG {
        // SAFETY: rt_sigaction is async-signal-safe (a plain system call);
        // it only reads `default_action`, which lives on this stack for the
        // call, and writes nothing (null old-action pointer). The size is
        // the kernel's sigset size for this architecture.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig as libc::c_long,
                default_action.as_ptr(),
                std::ptr::null_mut::<libc::c_void>(),
                KERNEL_SIGSET_SIZE as libc::c_long,
            )
        };
    }
    if let Err(e) = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    ) {
        fail(SpawnStage::Signals, e as i32);
    }

    // SAFETY: all three pointers come from `plan`, which outlives this call:
    // `program` is a NUL-terminated CString and both arrays are NULL-terminated
    // vectors of pointers into CStrings owned by the plan. execve is
    // async-signal-safe.
    unsafe {
        libc::execve(
            plan.program.as_ptr(),
            plan.argv_ptrs.as_ptr(),
            plan.envp_ptrs.as_ptr(),
        );
    }
    fail(
        SpawnStage::Exec,
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// Puts each extra descriptor at its number in the child (after fork;
/// async-signal-safe calls only, no allocation). Every source is first
/// moved above all the targets, so none is overwritten by another's dup2.
fn install_extra_fds(fds: &[(i32, BorrowedFd<'_>)]) -> Result<(), i32> {
    let floor = fds.iter().map(|&(n, _)| n).max().unwrap_or(2) + 1;
    let mut moved = [-1; netrunner_proto::MAX_EXTRA_FDS];
    for (slot, &(_, fd)) in moved.iter_mut().zip(fds) {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) is a plain, async-signal-safe
        // system call on a descriptor that is open in this child.
        let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
        if n < 0 {
            return Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EBADF));
        }
        *slot = n;
    }
    for (&source, &(target, _)) in moved.iter().zip(fds) {
        // SAFETY: dup2 is async-signal-safe; `source` is the copy made
        // above and `target` a number the plan reserved. The new `target`
        // is not close-on-exec, so the program inherits it.
        if unsafe { libc::dup2(source, target) } < 0 {
            return Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EBADF));
        }
    }
    Ok(())
}

fn wire_status(status: WaitIdStatus) -> WireStatus {
    match status.terminating_signal() {
        Some(signal) => WireStatus::Signal {
            signal,
            core_dumped: status.dumped(),
        },
        None => WireStatus::Code(status.exit_status().unwrap_or(0)),
    }
}

fn waitid(pid: Pid, options: WaitIdOptions) -> io::Result<Option<WireStatus>> {
    loop {
        match rustix::process::waitid(WaitId::Pid(pid), options) {
            Ok(status) => return Ok(status.map(wire_status)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `waitid(P_PID, WEXITED | WNOHANG | WNOWAIT)`: has the child exited?
///
/// Leaves it a zombie, so its pid (and process-group id) cannot be recycled
/// while we still signal the group.
///
/// # References
/// - [`waitid(2)`](https://man7.org/linux/man-pages/man2/waitid.2.html)
pub fn waitid_peek(pid: Pid) -> io::Result<Option<WireStatus>> {
    waitid(
        pid,
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
    )
}

/// `waitid(P_PID, WEXITED | WNOHANG)`: reap the child if it has exited.
pub fn waitid_reap(pid: Pid) -> io::Result<Option<WireStatus>> {
    waitid(pid, WaitIdOptions::EXITED | WaitIdOptions::NOHANG)
}

/// `waitid(P_PID, WEXITED)`: block until the child exits, and reap it.
pub fn waitid_blocking(pid: Pid) -> io::Result<WireStatus> {
    waitid(pid, WaitIdOptions::EXITED)?.ok_or_else(|| io::Error::other("waitid returned no status"))
}

/// `waitpid(-1, WNOHANG)`: reaps any one exited child, with its pid.
///
/// `Ok(None)`: children remain and none has exited; `Err` with `ECHILD`:
/// none remain.
///
/// # References
/// - [`waitpid(2)`](https://man7.org/linux/man-pages/man2/waitpid.2.html)
pub fn wait_any_reap() -> io::Result<Option<(Pid, WireStatus)>> {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
            Ok(reaped) => {
                return Ok(reaped.map(|(pid, status)| {
                    let status = match status.terminating_signal() {
                        Some(signal) => WireStatus::Signal {
                            signal,
                            // WCOREDUMP.
                            core_dumped: status.as_raw() & 0x80 != 0,
                        },
                        None => WireStatus::Code(status.exit_status().unwrap_or(0)),
                    };
                    (pid, status)
                }));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether `/proc` numbers processes the way this process's own pid
/// namespace does: its `NSpid` for us is exactly our pid. `false` when
/// `/proc` is missing, hidden, or was mounted in another pid namespace
/// (an ancestor's, after `unshare(CLONE_NEWPID)`, or in some containers).
///
/// # References
/// - [`proc_pid_status(5)`](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html)
///   (`NSpid`), [`pid_namespaces(7)`](https://man7.org/linux/man-pages/man7/pid_namespaces.7.html)
pub fn proc_speaks_our_pid_namespace() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let Some(nspid) = status.lines().find_map(|l| l.strip_prefix("NSpid:")) else {
        // Kernels before 4.1 have no NSpid: fall back to /proc/self itself.
        return std::fs::read_link("/proc/self").is_ok_and(|p| {
            p.as_os_str().as_encoded_bytes() == getpid().as_raw_nonzero().to_string().as_bytes()
        });
    };
    let mut ids = nspid.split_whitespace();
    ids.next() == Some(&getpid().as_raw_nonzero().to_string()) && ids.next().is_none()
}

/// The pid, in the pid namespace of `/proc`, of the process `pidfd` names
/// (the `Pid:` line of its fdinfo; Linux 5.3+).
///
/// # References
/// - [`pidfd_open(2)`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html) (fdinfo)
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> io::Result<Pid> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse::<i32>().ok())
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no live pid in pidfd fdinfo"))
}

/// `kill(pid, sig)`.
///
/// Only signal a pid you know is alive or an unreaped child of yours:
/// otherwise it may have been recycled for another process.
///
/// # References
/// - [`kill(2)`](https://man7.org/linux/man-pages/man2/kill.2.html)
pub fn kill(pid: Pid, sig: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process(pid, sig.to_rustix())?)
}

/// `kill(-pgid, sig)`: signal a whole process group.
///
/// Safe against recycling only while the group leader is alive or an unreaped
/// child of the caller, which pins the id.
pub fn kill_process_group(pgid: Pid, sig: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process_group(pgid, sig.to_rustix())?)
}

/// `kill(pid, 0)`: does a process with this pid exist (zombies included)?
pub fn process_exists(pid: Pid) -> bool {
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// The pids whose parent is this process.
///
/// Reads `/proc/self/task/*/children`; where the kernel lacks that file it
/// scans `/proc/*/stat` for our pid as parent.
///
/// # References
/// - [`proc_pid_task(5)`](https://man7.org/linux/man-pages/man5/proc_pid_task.5.html)
pub fn child_pids() -> io::Result<Vec<Pid>> {
    let mut pids = match children_in_task_files("/proc/self/task")? {
        Some(pids) => pids,
        None => {
            let me = getpid().as_raw_nonzero().get();
            let mut pids = Vec::new();
            for entry in std::fs::read_dir("/proc")? {
                let entry = entry?;
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<i32>().ok())
                else {
                    continue;
                };
                if parent_pid_of(pid).ok() == Some(me) {
                    pids.extend(Pid::from_raw(pid));
                }
            }
            pids
        }
    };
    pids.sort_unstable_by_key(|p| p.as_raw_nonzero());
    pids.dedup();
    Ok(pids)
}

/// The children listed in `<task_dir>/*/children` (every thread's), or
/// `None` when the kernel has no such files.
fn children_in_task_files(task_dir: &str) -> io::Result<Option<Vec<Pid>>> {
    let mut pids = Vec::new();
    let mut found_children_file = false;
    for task in std::fs::read_dir(task_dir)? {
        match std::fs::read(task?.path().join("children")) {
            Ok(text) => {
                found_children_file = true;
                pids.extend(
                    text.split(|b| b.is_ascii_whitespace())
                        .filter_map(|w| std::str::from_utf8(w).ok()?.parse::<i32>().ok())
                        .filter_map(Pid::from_raw),
                );
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found_children_file.then_some(pids))
}

/// The parent pid of `pid` from `/proc/<pid>/stat`.
pub fn parent_pid_of(pid: i32) -> io::Result<i32> {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: fields resume
    // after the last ')'.
    let after = stat
        .iter()
        .rposition(|&b| b == b')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("malformed stat"))?;
    let mut fields = after
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let _state = fields.next();
    fields
        .next()
        .and_then(|f| std::str::from_utf8(f).ok()?.parse().ok())
        .ok_or_else(|| io::Error::other("malformed stat"))
}

/// The state letter of `pid` from `/proc/<pid>/stat` (`Z` for a zombie).
pub fn process_state(pid: i32) -> io::Result<u8> {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))?;
    let i = stat
        .iter()
        .rposition(|&b| b == b')')
        .ok_or_else(|| io::Error::other("malformed stat"))?;
    stat.get(i + 2)
        .copied()
        .ok_or_else(|| io::Error::other("malformed stat"))
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants re-parent to us.
///
/// # References
/// - [`PR_SET_CHILD_SUBREAPER`](https://man7.org/linux/man-pages/man2/PR_SET_CHILD_SUBREAPER.2const.html)
#[cfg(target_os = "linux")]
pub fn set_child_subreaper() -> io::Result<()> {
    Ok(rustix::process::set_child_subreaper(Some(getpid()))?)
}

/// `pidfd_open(pid, 0)`: a descriptor that becomes readable when `pid` exits.
///
/// Race-free only for a pid that cannot have been recycled, such as an
/// unreaped child of the caller.
///
/// # References
/// - [`pidfd_open(2)`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
#[cfg(target_os = "linux")]
pub fn pidfd_open(pid: Pid) -> io::Result<std::os::fd::OwnedFd> {
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: signal exactly the process
/// `pidfd` names, even if its pid number has been reused since.
///
/// # References
/// - [`pidfd_send_signal(2)`](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
#[cfg(target_os = "linux")]
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: Signal) -> io::Result<()> {
    Ok(rustix::process::pidfd_send_signal(pidfd, sig.to_rustix())?)
}

/// `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9+, `<linux/pidfd.h>`).
#[cfg(target_os = "linux")]
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// `pidfd_send_signal(pidfd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP)`: signal
/// the process group that the process `pidfd` names leads.
///
/// The kernel resolves the group through the pidfd's own `struct pid`, not
/// a number: it reaches the group's members even after its leader was
/// reaped, and never a stranger's group that reused the number. `ESRCH`
/// when no member is left; `EINVAL` on kernels older than 6.9, which lack
/// the flag.
///
/// # References
/// - [`pidfd_send_signal(2)`](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
#[cfg(target_os = "linux")]
pub fn pidfd_send_signal_group(pidfd: BorrowedFd<'_>, sig: Signal) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a
    // `siginfo_t` pointer that may be NULL (then the kernel fills one in as
    // `kill` would) and flags. `pidfd` is a live borrowed descriptor for the
    // whole call and nothing is written to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd() as libc::c_long,
            sig.as_raw() as libc::c_long,
            std::ptr::null::<libc::siginfo_t>(),
            PIDFD_SIGNAL_PROCESS_GROUP as libc::c_long,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A pidfd of `pid`, a process found among the children of `parent` in
/// `/proc`, only if it provably still is that process: a descendant of
/// ours that is not our own child can be reaped by its parent and its
/// number reused at any moment, so a bare `kill(pid)` could hit a stranger.
///
/// The proof: open a pidfd for `pid`, *then* read its parent from
/// `/proc/<pid>/stat`, *then* check that the pidfd's process has not exited.
/// A process that has not exited still holds its number, so the `/proc`
/// read described the pidfd's process, and it was `parent`'s child.
/// Signals sent through the pidfd ([`pidfd_send_signal`]) cannot be
/// redirected to another process. `None` if any step fails.
///
/// # References
/// - [`pidfd_open(2)`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html),
///   [`proc_pid_stat(5)`](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html)
#[cfg(target_os = "linux")]
pub fn pidfd_open_child_of(pid: Pid, parent: Pid) -> Option<std::os::fd::OwnedFd> {
    let pidfd = pidfd_open(pid).ok()?;
    if parent_pid_of(pid.as_raw_nonzero().get()).ok()? != parent.as_raw_nonzero().get() {
        return None;
    }
    let mut pfd = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Not readable: it has not exited.
    matches!(rustix::event::poll(&mut pfd, Some(&zero)), Ok(0)).then_some(pidfd)
}

/// The children of `pid`, from `/proc/<pid>/task/*/children`; empty when
/// `pid` is gone or the kernel lacks those files.
///
/// # References
/// - [`proc_pid_task(5)`](https://man7.org/linux/man-pages/man5/proc_pid_task.5.html)
pub fn children_of(pid: Pid) -> Vec<Pid> {
    children_in_task_files(&format!("/proc/{}/task", pid.as_raw_nonzero()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// `getrusage(RUSAGE_CHILDREN)`: what every reaped descendant cost.
///
/// # References
/// - [`getrusage(2)`](https://man7.org/linux/man-pages/man2/getrusage.2.html)
pub fn getrusage_children() -> io::Result<Rusage> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let micros = |tv: nix::sys::time::TimeVal| {
        (tv.tv_sec() as u64)
            .saturating_mul(1_000_000)
            .saturating_add(tv.tv_usec() as u64)
    };
    Ok(Rusage {
        user_time_us: micros(usage.user_time()),
        system_time_us: micros(usage.system_time()),
        max_rss_kib: usage.max_rss().max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(program: &str, args: &[&str]) -> ExecPlan<'static> {
        let argv: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        ExecPlan::new(
            program.as_bytes(),
            &argv,
            &[b"PATH=/usr/bin:/bin".to_vec()],
            None,
            Isolation::ProcessGroup,
        )
        .unwrap()
    }

    fn null3() -> [std::os::fd::OwnedFd; 3] {
        [
            crate::fd::open_dev_null().unwrap(),
            crate::fd::open_dev_null().unwrap(),
            crate::fd::open_dev_null().unwrap(),
        ]
    }

    #[test]
    fn exec_success_and_exit_codes() {
        let fds = null3();
        let stdio = [fds[0].as_fd(), fds[1].as_fd(), fds[2].as_fd()];
        let (pid, _) = fork_exec(&plan("/bin/sh", &["sh", "-c", "exit 3"]), stdio).unwrap();
        assert_eq!(waitid_blocking(pid).unwrap(), WireStatus::Code(3));
        // Reaped: if the pid exists at all it was recycled for someone else.
        let me = getpid().as_raw_nonzero().get();
        assert_ne!(parent_pid_of(pid.as_raw_nonzero().get()).ok(), Some(me));
    }

    #[test]
    fn wait_any_reap_names_the_child_it_reaped() {
        let fds = null3();
        let stdio = [fds[0].as_fd(), fds[1].as_fd(), fds[2].as_fd()];
        let (pid, pidfd) = fork_exec(&plan("/bin/sh", &["sh", "-c", "exit 4"]), stdio).unwrap();
        if let Some(pidfd) = &pidfd {
            // Readable once it exits.
            let mut pfd = [rustix::event::PollFd::new(
                pidfd,
                rustix::event::PollFlags::IN,
            )];
            rustix::event::poll(&mut pfd, None).unwrap();
        }
        let reaped = loop {
            match wait_any_reap().unwrap() {
                Some(reaped) => break reaped,
                None => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        };
        assert_eq!(reaped, (pid, WireStatus::Code(4)));
        assert_eq!(
            wait_any_reap().map_err(|e| e.raw_os_error()),
            Err(Some(libc::ECHILD))
        );
    }

    #[test]
    fn a_standard_descriptor_in_another_slot_is_refused() {
        let fds = null3();
        let stdin = rustix::stdio::stdin();
        // fd 0 as stdout: installing stdin first would overwrite it.
        let err = fork_exec(
            &plan("/bin/true", &["true"]),
            [fds[0].as_fd(), stdin, fds[2].as_fd()],
        )
        .unwrap_err();
        assert_eq!((err.stage, err.errno), (SpawnStage::Stdio, libc::EINVAL));
    }

    #[test]
    fn exec_failure_reports_stage_and_errno() {
        let fds = null3();
        let stdio = [fds[0].as_fd(), fds[1].as_fd(), fds[2].as_fd()];
        let err = fork_exec(&plan("/nonexistent/prog", &["prog"]), stdio).unwrap_err();
        assert_eq!(
            err,
            SpawnFailure {
                stage: SpawnStage::Exec,
                errno: libc::ENOENT
            }
        );

        let mut p = plan("/bin/true", &["true"]);
        p.cwd = Some(CString::new("/nonexistent-dir").unwrap());
        let err = fork_exec(&p, stdio).unwrap_err();
        assert_eq!(err.stage, SpawnStage::Chdir);
        assert_eq!(err.errno, libc::ENOENT);
    }

    /// Fields 5 and 6 of `/proc/<pid>/stat`: process group and session.
    fn pgid_and_sid(pid: i32) -> (i32, i32) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        (f[2].parse().unwrap(), f[3].parse().unwrap())
    }

    #[test]
    fn child_runs_in_its_own_group_with_clean_signals() {
        // Dirty this process's signal state first: SIGUSR2 ignored (process
        // wide) and SIGUSR1 blocked (in the forking thread only).
        // SAFETY: installing SIG_IGN runs no code in signal context; nothing
        // in this test binary relies on SIGUSR2.
        let previous = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGUSR2,
                nix::sys::signal::SigHandler::SigIgn,
            )
        }
        .unwrap();
        // Everything happens in the forking thread: PR_SET_PDEATHSIG fires
        // when the thread that forked the child exits.
        let (raw, pgid, sid, out, status) = std::thread::spawn(|| {
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(nix::sys::signal::Signal::SIGUSR1);
            set.thread_block().unwrap();
            let (r, w) = crate::fd::pipe2_cloexec().unwrap();
            let null = crate::fd::open_dev_null().unwrap();
            let script = "grep -E '^(SigIgn|SigBlk)' /proc/self/status; exec sleep 0.3";
            let pid = fork_exec(
                &plan("/bin/sh", &["sh", "-c", script]),
                [null.as_fd(), w.as_fd(), null.as_fd()],
            )
            .unwrap()
            .0;
            drop(w);
            let raw = pid.as_raw_nonzero().get();
            let (pgid, sid) = pgid_and_sid(raw);
            let mut out = String::new();
            io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
            (raw, pgid, sid, out, waitid_blocking(pid).unwrap())
        })
        .join()
        .unwrap();
        // SAFETY: as above; this restores what was there.
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGUSR2, previous) }.unwrap();
        assert_eq!(pgid, raw, "the child leads its own process group");
        assert_ne!(sid, raw, "but stays in our session (no pty)");
        assert_eq!(status, WireStatus::Code(0));
        assert_eq!(
            out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "no signal blocked or ignored"
        );
    }

    #[test]
    fn limits_and_umask_reach_the_child() {
        let (r, w) = crate::fd::pipe2_cloexec().unwrap();
        let null = crate::fd::open_dev_null().unwrap();
        let mut limits = getrlimit_all();
        let nofile = limits
            .iter_mut()
            .find(|l| l.resource == libc::RLIMIT_NOFILE)
            .unwrap();
        nofile.soft = 77;
        let p =
            plan("/bin/sh", &["sh", "-c", "ulimit -n; umask"]).with_limits(&limits, Some(0o027));
        assert_eq!(p.rlimits.len(), 1, "only the changed limit is applied");
        let (pid, _) = fork_exec(&p, [null.as_fd(), w.as_fd(), null.as_fd()]).unwrap();
        drop(w);
        let mut out = String::new();
        io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
        assert_eq!(waitid_blocking(pid).unwrap(), WireStatus::Code(0));
        assert_eq!(out, "77\n0027\n");
    }

    #[test]
    fn rejects_nul_bytes() {
        assert_eq!(
            ExecPlan::new(b"a\0b", &[], &[], None, Isolation::ProcessGroup).err(),
            Some(NulInPlan("program"))
        );
    }

    #[test]
    fn parses_stat_with_odd_names() {
        let me = getpid().as_raw_nonzero().get();
        assert_eq!(
            parent_pid_of(me).unwrap(),
            rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
        );
        // The main thread of the test binary is running or sleeping.
        assert!(matches!(process_state(me).unwrap(), b'R' | b'S'));
    }
}
