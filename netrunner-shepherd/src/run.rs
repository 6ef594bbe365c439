//! The shepherd's event loop: socket, signals and one deadline, all in `poll`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use netrunner_proto::{
    Encode, FrameDecoder, FromShepherd, Isolation, SignalTarget, SpawnRequest, SpawnStage,
    StdioSpec, ToShepherd, WireStatus, PROTOCOL_VERSION,
};
use netrunner_sys::process::{self, ExecPlan, Pid};
use netrunner_sys::signalfd::SignalFd;
use netrunner_sys::{fd, socket, Signal};
use rustix::event::{PollFd, PollFlags};

use crate::cgroup::Cgroup;
use crate::watchdog::{Action, Cause, Watchdog};

/// Exit code when the shepherd could not even talk to its owner.
const EXIT_SETUP_FAILED: i32 = 70;

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    match run() {
        Ok(()) => 0,
        Err(_) => EXIT_SETUP_FAILED,
    }
}

struct Link {
    sock: OwnedFd,
    decoder: FrameDecoder,
    /// Descriptors that arrived with the spawn request.
    fds: Vec<OwnedFd>,
    /// EOF or an error: the owner is gone and nobody reads our reports.
    closed: bool,
}

impl Link {
    fn send(&mut self, msg: &FromShepherd) {
        self.send_with_fds(msg, &[]);
    }

    /// Sends `msg` with `fds` attached to its first byte.
    fn send_with_fds(&mut self, msg: &FromShepherd, fds: &[BorrowedFd<'_>]) {
        if self.closed {
            return;
        }
        let frame = msg.to_frame();
        let mut sent = 0;
        while sent < frame.len() {
            let result = if sent == 0 && !fds.is_empty() {
                socket::sendmsg_with_fds(self.sock.as_fd(), &frame, fds)
            } else {
                socket::send(self.sock.as_fd(), &frame[sent..])
            };
            match result {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The owner is not reading; wait for room rather than
                    // drop a report. Bounded: our frames are tiny.
                    let mut pfd = [PollFd::new(&self.sock, PollFlags::OUT)];
                    let _ = rustix::event::poll(&mut pfd, None);
                }
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Reads what is available; returns the messages decoded.
    fn receive(&mut self) -> Vec<ToShepherd> {
        let mut buf = [0u8; 8192];
        let mut out = Vec::new();
        match socket::recvmsg_with_fds(self.sock.as_fd(), &mut buf, &mut self.fds) {
            Ok(0) => self.closed = true,
            Ok(n) => {
                self.decoder.push(&buf[..n]);
                loop {
                    match self.decoder.next_message::<ToShepherd>() {
                        Ok(Some(msg)) => out.push(msg),
                        Ok(None) => break,
                        // A peer that breaks the protocol is treated as gone.
                        Err(_) => {
                            self.closed = true;
                            break;
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.closed = true,
        }
        out
    }
}

/// Signals the shepherd acts on: SIGCHLD for its child, and the
/// terminating ones, which make it escalate rather than die and orphan the
/// tree. They reach it only when aimed at it: it runs in a process group of
/// its own, so nothing sent to its owner's group (job control, a CI runner's
/// group kill, a terminal's SIGHUP or Ctrl-C) is meant for it.
const HANDLED_SIGNALS: [Signal; 4] = [Signal::CHILD, Signal::TERM, Signal::INT, Signal::HUP];

fn run() -> io::Result<()> {
    // First thing: no stray signal may end us before the tree is down. We
    // learn of the owner's death from the socket only.
    netrunner_sys::signal::ignore_fatal_signals(&HANDLED_SIGNALS)?;
    // Descriptors the owner leaked without O_CLOEXEC are inherited here, as
    // by any child of the owner; none reaches the command (`fork_exec`
    // marks everything above 2 close-on-exec in the child). Closing them
    // here would close descriptors this process does not own.
    let stdin = fd::stdio_fd(0).ok_or_else(|| io::Error::other("no socket on fd 0"))?;
    let sock = fd::fcntl_dupfd_cloexec(stdin, 3)?;
    // fd 0 goes back to /dev/null so that 0..=2 stay occupied and every
    // descriptor we receive is numbered >= 3 (see `fork_exec`).
    let null = fd::open_dev_null()?;
    rustix::stdio::dup2_stdin(&null)?;
    let mut signals = SignalFd::block_and_open(&HANDLED_SIGNALS)?;
    // A shepherd pins nothing: the command's working directory comes as a
    // descriptor with the request. Our name is ours whatever we were
    // executed as (a memfd's descriptor number, a temporary file).
    rustix::process::chdir("/")?;
    let _ = rustix::thread::set_name(c"netrunner-shepherd");
    // Whether /proc's pids are ours: if not, it is never read for pids.
    let proc_view = if process::proc_speaks_our_pid_namespace() {
        ProcView::Ours
    } else {
        ProcView::Foreign
    };

    let mut link = Link {
        sock,
        decoder: FrameDecoder::new(),
        fds: Vec::new(),
        closed: false,
    };
    link.send(&FromShepherd::Hello {
        version: PROTOCOL_VERSION,
    });

    #[cfg(target_os = "linux")]
    process::set_child_subreaper()?;

    // A spare waits here, maybe long: it reads its own identity while idle,
    // so that comparing it with the caller's costs nothing at spawn time.
    let mut own_identity: Option<Option<Vec<u8>>> = None;
    let request = loop {
        let mut pfd = [PollFd::new(&link.sock, PollFlags::IN)];
        let now = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let timeout = own_identity.is_none().then_some(&now);
        match rustix::event::poll(&mut pfd, timeout) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(0) => {
                own_identity = Some(own_identity_now());
                continue;
            }
            other => other?,
        };
        let mut msgs = link.receive().into_iter();
        if let Some(ToShepherd::Spawn(req)) = msgs.next() {
            break req;
        }
        if link.closed {
            return Ok(());
        }
    };

    let started = match &request.spare_check {
        Some(check) => become_like_caller(check, &mut own_identity),
        None => Ok(()),
    }
    .and_then(|()| start_child(&request, &link.fds, &null));
    let Launched {
        leader,
        leader_pidfd,
        cgroup,
        terminal,
    } = match started {
        Ok(started) => started,
        Err(failure) => {
            link.send(&FromShepherd::SpawnFailed {
                stage: failure.stage,
                errno: failure.errno,
            });
            return Ok(());
        }
    };
    // A pty slave stays open here until the whole tree is gone: the master
    // then reads everything the command wrote before it reads EIO (EOF),
    // however fast the command exited.
    let pty_slave = if request.pty.is_some() {
        link.fds.drain(..).next()
    } else {
        None
    };
    // The child has its copies; closing ours makes closing stdin purely the
    // owner's act and lets EOF on stdout mean the child's side is done.
    link.fds.clear();
    drop(null);
    // The owner takes the tree down through the leader's pidfd if we die.
    link.send_with_fds(
        &FromShepherd::Started {
            pid: leader.as_raw_nonzero().get() as u32,
            shepherd_pid: process::getpid().as_raw_nonzero().get() as u32,
        },
        leader_pidfd.as_ref().map(AsFd::as_fd).as_slice(),
    );
    fd::set_nonblocking(link.sock.as_fd(), true)?;

    let mut watchdog = Watchdog::new(
        Instant::now(),
        Duration::from_millis(request.kill_timeout_ms),
        request.timeout_ms.map(Duration::from_millis),
    );
    let mut tree = Tree {
        leader,
        exited: None,
        cgroup,
        finished: false,
        terminal,
        terminated: Vec::new(),
        proc_view,
        leader_reaped: None,
    };
    drop(leader_pidfd);
    // With a foreign /proc, descendants that left the group and outlived
    // their parents are out of reach; once SIGKILL went to everything we
    // can reach, they get this long before we stop waiting (as pid 1 of a
    // pid namespace, our exit kills them).
    let mut give_up_at: Option<Instant> = None;
    if link.closed {
        watchdog.handle_terminate(Instant::now(), Cause::OwnerGone);
    }

    // Whether a child changed state since the last sweep (SIGCHLD).
    let mut child_event = true;
    loop {
        // Take stock: has the leader exited, who else is left? The children
        // list (a /proc read) is only needed once something happened to a
        // child or the tree is being taken down.
        if tree.exited.is_none() {
            tree.exited = match tree.leader_reaped {
                Some(status) => Some(status),
                None => process::waitid_peek(leader)?,
            };
            if tree.exited.is_some() {
                // The job is over: its owner gets the terminal back, as
                // from a shell.
                tree.give_back_terminal();
            }
        }
        let others = if child_event || tree.exited.is_some() || watchdog.escalating() {
            child_event = false;
            let sweep = if watchdog.killing() {
                Sweep::Signal(KILL)
            } else if watchdog.escalating() {
                Sweep::TerminateNewcomers
            } else {
                Sweep::Reap
            };
            tree.sweep(sweep)
        } else {
            0
        };
        if tree.exited.is_some() {
            // With a cgroup, "nothing left" also means nothing left in it.
            if others == 0 && tree.cgroup.as_ref().is_none_or(|c| c.is_empty()) {
                break;
            }
            watchdog.handle_terminate(Instant::now(), Cause::LeaderExited);
            if proc_view == ProcView::Foreign && watchdog.killing() {
                let at = *give_up_at.get_or_insert_with(|| Instant::now() + UNREACHABLE_GRACE);
                if Instant::now() >= at {
                    break;
                }
            }
        }
        while let Some(action) = watchdog.poll_action() {
            tree.signal_all(match action {
                Action::Terminate => TERMINATE,
                Action::Kill => KILL,
            });
        }

        let timeout = watchdog
            .poll_timeout()
            .into_iter()
            .chain(give_up_at)
            .min()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let timespec = timeout.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let (sock_ready, sig_ready) = {
            let mut pfds = vec![PollFd::new(&signals, PollFlags::IN)];
            if !link.closed {
                pfds.push(PollFd::new(&link.sock, PollFlags::IN));
            }
            match rustix::event::poll(&mut pfds, timespec.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            let sig_ready = !pfds[0].revents().is_empty();
            let sock_ready = pfds.get(1).is_some_and(|p| !p.revents().is_empty());
            (sock_ready, sig_ready)
        };
        let now = Instant::now();

        if sig_ready {
            while let Some(sig) = signals.read()? {
                if sig == Signal::CHILD {
                    child_event = true;
                } else {
                    // Never die and orphan the child: escalate instead.
                    watchdog.handle_terminate(now, Cause::ShepherdSignalled);
                }
            }
        }
        if sock_ready {
            for msg in link.receive() {
                match msg {
                    ToShepherd::Signal { signal, target } => {
                        if let Some(sig) = Signal::from_raw(signal) {
                            tree.signal(sig, target);
                        }
                    }
                    ToShepherd::Terminate => watchdog.handle_terminate(now, Cause::Requested),
                    ToShepherd::Kill => watchdog.handle_kill(now),
                    // No pty support yet: the library refuses before sending.
                    ToShepherd::SetWindowSize { .. } => {}
                    ToShepherd::Hello { .. } | ToShepherd::Spawn(_) => {}
                }
            }
            if link.closed {
                watchdog.handle_terminate(now, Cause::OwnerGone);
            }
        }
        watchdog.handle_time(now);
    }

    // Again now that nothing is left: a job the command ran in a group of
    // its own may have held the terminal until it died.
    tree.give_back_terminal();
    // Only the leader's zombie is left: reap it, which unpins its pid.
    tree.finished = true;
    let status = match tree.leader_reaped {
        Some(status) => status,
        None => process::waitid_blocking(leader)?,
    };
    drop(pty_slave);
    let rusage = process::getrusage_children().unwrap_or_default();
    // The status is in hand: teardown can no longer lose it.
    let cgroup = tree.cgroup.take().map(|c| {
        let usage = c.usage();
        let _ = c.remove();
        usage
    });
    link.send(&FromShepherd::Exited {
        status,
        rusage,
        timed_out: watchdog.timed_out(),
        cgroup,
    });
    Ok(())
}

/// The part of this process's identity an exec leaves alone (see
/// [`netrunner_sys::inherit::Identity`]): what a spare can still compare
/// with the caller's after its own exec.
fn own_identity_now() -> Option<Vec<u8>> {
    netrunner_sys::inherit::thread_status()
        .and_then(|s| netrunner_sys::inherit::identity(&s))
        .map(|id| id.exec_invariant)
}

/// For a spare: proves it has the caller's identity and cgroups, then takes
/// on the caller's thread attributes, so that the child it forks is the one
/// a shepherd forked by the caller now would fork. A mismatch is
/// [`SpawnStage::Identity`]: the owner then starts a fresh shepherd.
fn become_like_caller(
    check: &netrunner_proto::SpareCheck,
    own_identity: &mut Option<Option<Vec<u8>>>,
) -> Result<(), process::SpawnFailure> {
    let identity = own_identity.get_or_insert_with(own_identity_now);
    let same = identity.as_deref() == Some(&check.identity[..])
        && netrunner_sys::inherit::cgroups().as_deref() == Some(&check.cgroups[..]);
    if !same {
        return Err(process::SpawnFailure {
            stage: SpawnStage::Identity,
            errno: rustix::io::Errno::STALE.raw_os_error(),
        });
    }
    netrunner_sys::inherit::apply_thread_attributes(&check.attributes).map_err(|e| {
        process::SpawnFailure {
            stage: SpawnStage::Attributes,
            errno: e
                .raw_os_error()
                .unwrap_or(rustix::io::Errno::INVAL.raw_os_error()),
        }
    })
}

/// What [`start_child`] started and what the rest of the run needs of it.
struct Launched {
    leader: Pid,
    /// A pidfd of the leader, made while it was our unreaped child.
    leader_pidfd: Option<OwnedFd>,
    cgroup: Option<Cgroup>,
    /// The owner's terminal, now the command's, and the owner's group.
    terminal: Option<(OwnedFd, Pid)>,
}

fn start_child(
    req: &SpawnRequest,
    passed: &[OwnedFd],
    null: &OwnedFd,
) -> Result<Launched, process::SpawnFailure> {
    let request_error = |errno| process::SpawnFailure {
        stage: SpawnStage::Request,
        errno,
    };
    let mut stdio: [BorrowedFd<'_>; 3] = [null.as_fd(), null.as_fd(), null.as_fd()];
    for (slot, spec) in stdio.iter_mut().zip(req.stdio) {
        if let StdioSpec::Passed(i) = spec {
            *slot = passed
                .get(usize::from(i))
                .ok_or_else(|| request_error(rustix::io::Errno::BADF.raw_os_error()))?
                .as_fd();
        }
    }
    let plan = ExecPlan::new(
        &req.program,
        &req.argv,
        &req.env,
        req.cwd.as_deref(),
        req.isolation,
    )
    .map_err(|_| request_error(rustix::io::Errno::INVAL.raw_os_error()))?
    .with_limits(&req.rlimits, req.umask);
    let extra: Vec<(i32, BorrowedFd<'_>)> = req
        .extra_fds
        .iter()
        .map(|&(child_fd, index)| {
            passed
                .get(usize::from(index))
                .map(|fd| (child_fd as i32, fd.as_fd()))
                .ok_or_else(|| request_error(rustix::io::Errno::BADF.raw_os_error()))
        })
        .collect::<Result<_, _>>()?;
    let plan = plan.with_extra_fds(&extra);
    let plan = match req.cwd_fd {
        Some(i) => plan.with_cwd_fd(
            passed
                .get(usize::from(i))
                .ok_or_else(|| request_error(rustix::io::Errno::BADF.raw_os_error()))?
                .as_fd(),
        ),
        None => plan,
    };
    let plan = if req.pty.is_some() {
        plan.with_controlling_terminal()
    } else {
        plan
    };
    // The owner's terminal: the child takes its foreground, and we keep a
    // descriptor of it to give it back later. (The decoder checked both
    // numbers: stdio 0..=2, a positive pgid.)
    let (plan, terminal) = match req.foreground {
        Some(f) if req.isolation == Isolation::ProcessGroup => {
            let index = usize::from(f.stdio);
            let owner = Pid::from_raw(f.owner_pgid as i32)
                .ok_or_else(|| request_error(rustix::io::Errno::INVAL.raw_os_error()))?;
            let tty = fd::fcntl_dupfd_cloexec(stdio[index], 3).map_err(|e| {
                request_error(
                    e.raw_os_error()
                        .unwrap_or(rustix::io::Errno::BADF.raw_os_error()),
                )
            })?;
            (plan.with_foreground(index, owner), Some((tty, owner)))
        }
        _ => (plan, None),
    };
    let cgroup = match &req.cgroup {
        None => None,
        Some(spec) => Some(Cgroup::create(spec).map_err(|e| {
            process::SpawnFailure {
                stage: SpawnStage::Cgroup,
                errno: e
                    .raw_os_error()
                    .unwrap_or(rustix::io::Errno::INVAL.raw_os_error()),
            }
        })?),
    };
    let plan = match &cgroup {
        Some(c) => plan.with_cgroup(c.procs()),
        None => plan,
    };
    match process::fork_exec(&plan, stdio) {
        Ok((leader, leader_pidfd)) => Ok(Launched {
            leader,
            leader_pidfd,
            cgroup,
            terminal,
        }),
        Err(failure) => {
            if let Some(c) = cgroup {
                let _ = c.remove();
            }
            Err(failure)
        }
    }
}

/// The child and every descendant that re-parented to us.
struct Tree {
    /// The child's cgroup, if it has one: everything in it is part of the tree.
    cgroup: Option<Cgroup>,
    leader: Pid,
    /// Set once the leader has exited; it stays an unreaped zombie until the
    /// very end, which pins its pid and so its process-group id: signalling
    /// `-leader` can never reach a stranger's group that reused the number.
    exited: Option<WireStatus>,
    /// The event loop reached its normal end: nothing of the tree is left.
    finished: bool,
    /// The owner's terminal while the command's group holds its foreground,
    /// and the owner's group to give it back to.
    terminal: Option<(OwnedFd, Pid)>,
    /// Adopted descendants already sent SIGTERM (and SIGCONT) in this
    /// grace period: one SIGTERM each, as a second one often means "now".
    terminated: Vec<Pid>,
    /// Whether `/proc` can name our descendants.
    proc_view: ProcView,
    /// The leader's status, once a sweep without `/proc` reaped it.
    leader_reaped: Option<WireStatus>,
}

/// How `/proc` relates to our pid namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcView {
    /// It numbers processes as we do: children lists and the descendant
    /// walk are trusted.
    Ours,
    /// Missing, hidden, or another namespace's: no pid is ever read from
    /// it. Children are reaped and counted with `waitpid(-1)`, the leader
    /// among them (its status is kept); signals go to the group, the
    /// leader and the cgroup.
    ///
    /// Once the leader is reaped its zombie no longer pins the group id,
    /// and signals to the group go by number: the race argument of
    /// `netrunner_core::tree` applies (the number is reused only after the
    /// group emptied and the allocator went around the whole pid space).
    Foreign,
}

/// How long descendants we cannot see are waited for once everything we
/// can reach was sent SIGKILL (foreign `/proc` only).
const UNREACHABLE_GRACE: Duration = Duration::from_secs(1);

/// Most sweeps an early teardown makes (2 ms apart) before it gives up on
/// a tree that keeps refilling itself.
const DROP_SWEEPS: usize = 500;

/// What the grace period starts with: SIGCONT right behind SIGTERM, or a
/// stopped process would sleep through it.
const TERMINATE: &[Signal] = &[Signal::TERM, Signal::CONT];
/// What the grace period ends with.
const KILL: &[Signal] = &[Signal::KILL];

/// What a sweep does to our live children besides reaping the dead.
#[derive(Debug, Clone, Copy)]
enum Sweep {
    /// Nothing.
    Reap,
    /// Send each of these signals.
    Signal(&'static [Signal]),
    /// [`TERMINATE`] to those not yet sent it in this grace period (orphans
    /// adopted since it started): one SIGTERM each, as a second one often
    /// means "now".
    TerminateNewcomers,
}

impl Drop for Tree {
    /// Any error that ends the event loop early still takes the whole tree
    /// down: SIGKILL to the group, the cgroup and every adopted descendant,
    /// then reap and remove the cgroup. Nothing outlives the shepherd.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.give_back_terminal();
        self.signal_all(KILL);
        let _ = process::waitid_blocking(self.leader);
        // Children of those just killed re-parent to us as they die: sweep
        // until nobody is left (bounded, as a fork bomb could refill).
        for _ in 0..DROP_SWEEPS {
            if self.sweep(Sweep::Signal(KILL)) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(cgroup) = self.cgroup.take() {
            cgroup.signal_all(Signal::KILL);
            let _ = cgroup.remove();
        }
    }
}

impl Tree {
    /// Reaps every exited child without `/proc`, keeping the leader's
    /// status; returns 1 if children besides the leader may remain (their
    /// pids are unknown), else 0.
    fn sweep_unseen_children(&mut self) -> usize {
        loop {
            match process::wait_any_reap() {
                Ok(Some((pid, status))) => {
                    if pid == self.leader {
                        self.leader_reaped = Some(status);
                    }
                }
                // Children remain; unless the leader is among them.
                Ok(None) => return usize::from(self.leader_reaped.is_some()),
                // ECHILD: none left. Any other error: nothing can be proven.
                Err(_) => return 0,
            }
        }
    }

    fn signal(&self, sig: Signal, target: SignalTarget) {
        let _ = match target {
            SignalTarget::Group => process::kill_process_group(self.leader, sig),
            // A reaped leader's pid may already name someone else.
            SignalTarget::Leader if self.leader_reaped.is_some() => Ok(()),
            SignalTarget::Leader => process::kill(self.leader, sig),
        };
    }

    /// Returns the terminal's foreground to the owner's group if the
    /// command's group, or a group of the tree that has died, holds it.
    ///
    /// Also after the owner died: the kernel refuses a group that no longer
    /// exists, and one that does (the rest of the owner's pipeline) is
    /// where a shell would put it too; a shell that already took the
    /// terminal back keeps it.
    fn give_back_terminal(&self) {
        if let Some((tty, owner)) = &self.terminal {
            netrunner_sys::terminal::reclaim_foreground(tty.as_fd(), self.leader, *owner);
        }
    }

    /// Sends `signals`, in order, to everything of the tree we can see: the
    /// process group, the leader, the cgroup, every child of ours (adopted
    /// orphans), and every deeper descendant — including those that left
    /// the group with `setsid` while their parent still lives.
    fn signal_all(&mut self, signals: &'static [Signal]) {
        for &sig in signals {
            // Group and session isolation both make the leader's pid the pgid.
            self.signal(sig, SignalTarget::Group);
            self.signal(sig, SignalTarget::Leader);
            if let Some(cgroup) = &self.cgroup {
                cgroup.signal_all(sig);
            }
        }
        let (_, children) = self.sweep_children(Sweep::Signal(signals));
        if signals == TERMINATE {
            // Later sweeps in this grace period only add newcomers.
            self.terminated.clone_from(&children);
        }
        signal_descendants(children, signals);
    }

    /// Reaps adopted descendants that have exited, treats the rest as
    /// `sweep` says, and returns how many (besides the leader) are still there.
    fn sweep(&mut self, sweep: Sweep) -> usize {
        self.sweep_children(sweep).0
    }

    /// [`Tree::sweep`], also returning our live children (the leader
    /// included, as it is unreaped).
    ///
    /// Each pid comes from our own children list and is unreaped when we
    /// signal it, so it cannot have been recycled.
    fn sweep_children(&mut self, sweep: Sweep) -> (usize, Vec<Pid>) {
        if self.proc_view == ProcView::Foreign {
            return (self.sweep_unseen_children(), Vec::new());
        }
        loop {
            let Ok(mut children) = process::child_pids() else {
                // Without a children list we cannot prove anything is left;
                // the group signal still covers the common case.
                return (0, Vec::new());
            };
            let mut reaped_any = false;
            children.retain(|&pid| {
                let reaped = pid != self.leader && matches!(process::waitid_reap(pid), Ok(Some(_)));
                reaped_any |= reaped;
                !reaped
            });
            for &pid in children.iter().filter(|&&pid| pid != self.leader) {
                let signals = match sweep {
                    Sweep::Reap => &[][..],
                    Sweep::Signal(signals) => signals,
                    Sweep::TerminateNewcomers if self.terminated.contains(&pid) => &[][..],
                    Sweep::TerminateNewcomers => {
                        self.terminated.push(pid);
                        TERMINATE
                    }
                };
                for &sig in signals {
                    let _ = process::kill(pid, sig);
                }
            }
            // Race: a child we just reaped had its own children re-parented
            // to us when it exited (before it became a zombie), possibly
            // after the list above was read. Look again until a pass reaps
            // nothing; each repeat reaps at least one process, so it ends.
            if !reaped_any {
                let others = children.iter().filter(|&&pid| pid != self.leader).count();
                return (others, children);
            }
        }
    }
}

/// Walks the tree below `children` (ours) through `/proc` and sends
/// `signals` to every process in it, each proven to be the process we found
/// (see [`process::pidfd_open_child_of`]). Our own children are signalled by
/// [`Tree::sweep`]: they are unreaped, so their pids cannot have been reused.
#[cfg(target_os = "linux")]
fn signal_descendants(mut parents: Vec<Pid>, signals: &[Signal]) {
    // Bounded: a fork bomb refilling the tree while we walk must not keep
    // us here; the next sweep goes on where this one stopped.
    let mut budget = 100_000usize;
    while let Some(parent) = parents.pop() {
        for pid in process::children_of(parent) {
            if budget == 0 {
                return;
            }
            budget -= 1;
            if let Some(pidfd) = process::pidfd_open_child_of(pid, parent) {
                for &sig in signals {
                    let _ = process::pidfd_send_signal(pidfd.as_fd(), sig);
                }
                parents.push(pid);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn signal_descendants(_parents: Vec<Pid>, _signals: &[Signal]) {}
