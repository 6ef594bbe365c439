//! The spawn sequence: pipes, socket, shepherd, request, and the answer.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use netrunner_proto::{
    Encode, Isolation, SpawnRequest, SpawnStage, StdioSpec, ToShepherd, PROTOCOL_VERSION,
};
use netrunner_sys::{fd, socket};

use crate::command::{Prepared, Stdio, StdioMode};
use crate::error::ShepherdError;
use crate::machine::{ChildMachine, Event};
use crate::shepherd_exe::{EmbeddedCopy, ShepherdSource};
use crate::spare::{self, Started};
use crate::tree::{LentTerminal, TreeHandles};
use crate::{shepherd_exe, Command, Error};

/// How a command's streams are set up for one launch.
#[derive(Debug, Clone, Copy)]
pub struct StdioPlan {
    /// stdin, stdout, stderr.
    pub modes: [Stdio; 3],
    /// stderr goes wherever stdout goes.
    pub stderr_to_stdout: bool,
}

impl StdioPlan {
    /// `spawn()` and `status()`: every stream inherited unless configured, as in `std`.
    pub fn for_spawn<F>(cmd: &Command<F>) -> Self {
        StdioPlan {
            modes: [
                cmd.stdio_or(0, Stdio::inherit()),
                cmd.stdio_or(1, Stdio::inherit()),
                cmd.stdio_or(2, Stdio::inherit()),
            ],
            stderr_to_stdout: cmd.get_stderr_to_stdout(),
        }
    }

    /// `output()`: stdout and stderr piped; stdin `/dev/null`, or piped when
    /// there is `input` to write.
    pub fn for_output<F>(cmd: &Command<F>) -> Self {
        let stdin = if cmd.get_input().is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        StdioPlan {
            modes: [
                cmd.stdio_or(0, stdin),
                cmd.stdio_or(1, Stdio::piped()),
                cmd.stdio_or(2, Stdio::piped()),
            ],
            stderr_to_stdout: cmd.get_stderr_to_stdout(),
        }
    }

    /// `stream()`: stdout piped (always), stdin `/dev/null`, stderr inherited.
    pub fn for_stream<F>(cmd: &Command<F>) -> Self {
        StdioPlan {
            modes: [
                cmd.stdio_or(0, Stdio::null()),
                Stdio::piped(),
                cmd.stdio_or(2, Stdio::inherit()),
            ],
            stderr_to_stdout: cmd.get_stderr_to_stdout(),
        }
    }
}

/// A started child: our ends of its pipes and the link to its shepherd.
#[derive(Debug)]
pub struct Launched {
    /// The state machine, already past `Started`.
    pub machine: ChildMachine,
    /// Our end of the shepherd socket, non-blocking.
    pub socket: OwnedFd,
    /// The shepherd process (our child; it must be reaped).
    pub shepherd: std::process::Child,
    /// Write end of the command's stdin, non-blocking.
    pub stdin: Option<OwnedFd>,
    /// Read end of the command's stdout, non-blocking.
    pub stdout: Option<OwnedFd>,
    /// Read end of the command's stderr, non-blocking.
    pub stderr: Option<OwnedFd>,
    /// The pty master (another descriptor of it), for resizing, in pty mode.
    pub pty: Option<OwnedFd>,
    /// What the library needs to take the tree down should the shepherd
    /// die, and the owner's terminal while the command holds it.
    pub tree: TreeHandles,
}

/// What the child gets for one stream, and what we keep.
struct Slot {
    spec: StdioSpec,
    ours: Option<OwnedFd>,
}

/// Runs the spawn sequence of DESIGN.md for `cmd` with stream plan `plan`.
///
/// Returns only once the command has exec'd, or with an error after which
/// nothing is left running: an exec failure is [`Error::Spawn`] carrying the
/// real OS error, never an exit status.
pub fn launch<F>(cmd: &Command<F>, plan: StdioPlan) -> Result<Launched, Error> {
    // Shepherds dropped while no reaper thread could start are reaped here.
    crate::reaper::reap_backlog();
    let Prepared {
        program,
        path: exec_path,
        argv,
        env,
        mut cwd,
    } = cmd.prepare()?;
    let cgroup = cmd
        .cgroup
        .requested()
        .then(|| crate::cgroup::resolve(&cmd.cgroup))
        .transpose()?;
    let source = shepherd_exe::locate(cmd.shepherd_path.as_deref())?;

    // Descriptors for the child travel with the request; `passed` holds them
    // until it is sent, then they are closed here.
    let mut passed: Vec<OwnedFd> = Vec::new();
    let mut slot = |mode: StdioMode, index: i32| -> io::Result<Slot> {
        Ok(match mode {
            StdioMode::Null => Slot {
                spec: StdioSpec::Null,
                ours: None,
            },
            StdioMode::Inherit => match fd::stdio_fd(index) {
                Some(own) => {
                    passed.push(fd::fcntl_dupfd_cloexec(own, 3)?);
                    Slot {
                        spec: StdioSpec::Passed((passed.len() - 1) as u8),
                        ours: None,
                    }
                }
                None => Slot {
                    spec: StdioSpec::Null,
                    ours: None,
                },
            },
            StdioMode::Piped => {
                let (read, write) = fd::pipe2_cloexec()?;
                let (child_end, our_end) = if index == 0 {
                    (read, write)
                } else {
                    (write, read)
                };
                fd::set_nonblocking(our_end.as_fd(), true)?;
                passed.push(child_end);
                Slot {
                    spec: StdioSpec::Passed((passed.len() - 1) as u8),
                    ours: Some(our_end),
                }
            }
        })
    };
    let (stdin, stdout, stderr, pty) = match cmd.pty {
        // One terminal for all three: stdin writes to it, stdout reads all
        // it shows; a third descriptor of the master is kept for resizing.
        Some(config) => {
            let netrunner_sys::pty::Pty { master, slave } =
                netrunner_sys::pty::openpty(config.rows, config.cols, config.echo)?;
            fd::set_nonblocking(master.as_fd(), true)?;
            passed.push(slave);
            let spec = StdioSpec::Passed(0);
            let writer = fd::fcntl_dupfd_cloexec(master.as_fd(), 3)?;
            let resizer = fd::fcntl_dupfd_cloexec(master.as_fd(), 3)?;
            (
                Slot {
                    spec,
                    ours: Some(writer),
                },
                Slot {
                    spec,
                    ours: Some(master),
                },
                Slot { spec, ours: None },
                Some(resizer),
            )
        }
        None => {
            let stdin = slot(plan.modes[0].mode(), 0)?;
            let stdout = slot(plan.modes[1].mode(), 1)?;
            let stderr = if plan.stderr_to_stdout {
                Slot {
                    spec: stdout.spec,
                    ours: None,
                }
            } else {
                slot(plan.modes[2].mode(), 2)?
            };
            (stdin, stdout, stderr, None)
        }
    };

    // A stream inherited from the owner's terminal while the owner is in
    // the foreground: the command gets the foreground for its run.
    let lent_terminal = match cmd.pty {
        None if cmd.foreground => foreground_terminal(&plan)?,
        _ => None,
    };
    let mut extra_fds = Vec::with_capacity(cmd.extra_fds.len());
    for (&child_fd, fd) in &cmd.extra_fds {
        passed.push(fd::fcntl_dupfd_cloexec(fd.as_fd(), 3)?);
        extra_fds.push((child_fd as u32, (passed.len() - 1) as u8));
    }
    let cwd_fd = match &cwd {
        Some(dir) if dir.starts_with(b"/") => None,
        // Relative to, or simply, our working directory: passed as a
        // descriptor, which names it however it was renamed, deleted or
        // deeply nested. Opening "." needs search permission on it, which
        // a process can lack for its own cwd (root that dropped to a user):
        // then its path goes instead, as std's child would find it.
        _ => match fd::open_working_directory() {
            Ok(dir) => {
                passed.push(dir);
                Some((passed.len() - 1) as u8)
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let here = std::env::current_dir()?;
                cwd = Some(
                    match cwd.take() {
                        Some(relative) => here.join(std::ffi::OsStr::from_bytes(&relative)),
                        None => here,
                    }
                    .into_os_string()
                    .into_vec(),
                );
                None
            }
            Err(e) => return Err(e.into()),
        },
    };
    let mut request = SpawnRequest {
        program: exec_path,
        argv,
        env,
        cwd,
        cwd_fd,
        stdio: [stdin.spec, stdout.spec, stderr.spec],
        // A terminal's session leader: setsid, then the pty as controlling terminal.
        isolation: if cmd.pty.is_some() {
            Isolation::Session
        } else {
            Isolation::ProcessGroup
        },
        kill_timeout_ms: duration_ms(cmd.kill_timeout),
        timeout_ms: cmd.timeout.map(duration_ms),
        pty: cmd.pty.map(|c| netrunner_proto::PtySpec {
            rows: c.rows,
            cols: c.cols,
            echo: c.echo,
        }),
        cgroup: cgroup.clone(),
        // A fresh shepherd inherits these by being forked; a spare is told.
        rlimits: Vec::new(),
        umask: None,
        foreground: lent_terminal
            .as_ref()
            .map(|(stdio, lent)| netrunner_proto::Foreground {
                stdio: *stdio,
                owner_pgid: lent.owner.as_raw_nonzero().get() as u32,
            }),
        spare_check: None,
        extra_fds,
    };
    let fresh_frames = frames(&request);
    if fresh_frames.len() > REQUEST_LIMIT {
        // What the kernel would say at exec; the shepherd's decoder would
        // refuse the frame as a protocol violation.
        return Err(Error::Spawn {
            program,
            source: io::Error::from_raw_os_error(rustix::io::Errno::TOOBIG.raw_os_error()),
        });
    }
    let spare = match source {
        ShepherdSource::Embedded(_) => spare::take(&source, start_fresh),
        _ => None,
    };
    let outcome = match spare {
        Some(taken) => handshake_with_spare(taken, &mut request, &passed, &source),
        None => start_fresh(&source).and_then(|(started, source)| {
            handshake(started, &fresh_frames, &passed, &source.path())
        }),
    };
    // The child has its copies (or never will): close ours.
    drop(passed);
    let (machine, mut shepherd, ours) = outcome?;
    match machine {
        Start::Started {
            mut machine,
            leader_pidfd,
        } => {
            // Children born into another pid namespace (the caller did
            // unshare(CLONE_NEWPID)): the shepherd numbers the command as
            // that namespace does, ids and group signals here need ours.
            // Unknown (no /proc here): no pgid, so no group signal by number.
            let pgid = if machine.shepherd_pid() == Some(shepherd.id()) {
                machine
                    .pid()
                    .and_then(|p| netrunner_sys::process::Pid::from_raw(p as i32))
            } else {
                let ours = command_pid_here(leader_pidfd.as_ref(), &shepherd);
                if let Some(pid) = ours {
                    machine.handle_pid_in_our_namespace(pid.as_raw_nonzero().get() as u32);
                }
                ours
            };
            fd::set_nonblocking(ours.as_fd(), true)?;
            let tree = TreeHandles {
                leader: leader_pidfd,
                pgid,
                cgroup: cgroup
                    .as_ref()
                    .map(|c| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&c.path))),
                terminal: lent_terminal.map(|(_, lent)| lent),
            };
            Ok(Launched {
                machine: *machine,
                socket: ours,
                shepherd,
                stdin: stdin.ours,
                stdout: stdout.ours,
                stderr: stderr.ours,
                pty,
                tree,
            })
        }
        Start::Failed { stage, errno } => {
            // The shepherd exits right after reporting; reap it now.
            let _ = shepherd.wait();
            Err(match (stage, &cgroup) {
                (SpawnStage::Cgroup, Some(spec)) => crate::cgroup::CgroupError::Setup {
                    path: std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&spec.path)),
                    source: io::Error::from_raw_os_error(errno),
                }
                .into(),
                _ => spawn_error(program, stage, errno),
            })
        }
    }
}

/// The command's pid as this process numbers it, when its shepherd lives
/// in another pid namespace: from the leader's pidfd, or else from the
/// shepherd's children list (the leader is its only child right after the
/// start, spares aside, which do not fork). `None` when this process's own
/// `/proc` is not its pid namespace's, or neither source answers: then no
/// signal is ever sent to the number.
fn command_pid_here(
    leader_pidfd: Option<&OwnedFd>,
    shepherd: &std::process::Child,
) -> Option<netrunner_sys::process::Pid> {
    if !netrunner_sys::process::proc_speaks_our_pid_namespace() {
        return None;
    }
    leader_pidfd
        .and_then(|fd| netrunner_sys::process::pidfd_pid(fd.as_fd()).ok())
        .or_else(|| {
            let shepherd = netrunner_sys::process::Pid::from_raw(shepherd.id() as i32)?;
            match netrunner_sys::process::children_of(shepherd).as_slice() {
                [leader] => Some(*leader),
                _ => None,
            }
        })
}

/// The first standard stream the command inherits that is this process's
/// controlling terminal with this process's group in the foreground, as
/// (stream index, a descriptor of it and our group).
fn foreground_terminal(plan: &StdioPlan) -> io::Result<Option<(u8, LentTerminal)>> {
    for (index, mode) in plan.modes.iter().enumerate() {
        // Merged stderr goes wherever stdout goes, so stdout decides.
        let inherited = mode.mode() == StdioMode::Inherit && !(index == 2 && plan.stderr_to_stdout);
        if !inherited {
            continue;
        }
        let Some(fd) = fd::stdio_fd(index as i32) else {
            continue;
        };
        if let Some(owner) = netrunner_sys::terminal::foreground_owner(fd) {
            let tty = fd::fcntl_dupfd_cloexec(fd, 3)?;
            return Ok(Some((index as u8, LentTerminal { tty, owner })));
        }
    }
    Ok(None)
}

/// Resizes the pty of a child started with `pty(true)`.
pub fn set_window_size(pty: Option<&OwnedFd>, rows: u16, cols: u16) -> Result<(), Error> {
    let master = pty.ok_or(Error::NotPty)?;
    Ok(netrunner_sys::pty::set_window_size(
        master.as_fd(),
        rows,
        cols,
    )?)
}

/// Sends the request to `started` and waits for its answer. On error the
/// shepherd is killed and reaped: nothing half-started stays behind.
fn handshake(
    started: Started,
    frames: &[u8],
    passed: &[OwnedFd],
    path: &std::path::Path,
) -> Result<(Start, std::process::Child, OwnedFd), Error> {
    let Started { mut child, socket } = started;
    let answer = send_request(socket.as_fd(), frames, passed)
        .and_then(|()| await_start(socket.as_fd(), path, HANDSHAKE_TIMEOUT));
    match answer {
        Ok(start) => Ok((start, child, socket)),
        Err(e) => {
            // Closing our end makes the shepherd take down anything it started.
            drop(socket);
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// The largest request sent: the frame limit less room for what a spare's
/// check adds (a few KiB). Past it a spawn fails with `E2BIG`
/// ([`io::ErrorKind::ArgumentListTooLong`]) before anything starts.
pub const REQUEST_LIMIT: usize = netrunner_proto::MAX_FRAME_LEN - (64 << 10);

/// The frames that start a child: our hello and `request`.
fn frames(request: &SpawnRequest) -> Vec<u8> {
    let mut frames = ToShepherd::Hello {
        version: PROTOCOL_VERSION,
    }
    .to_frame();
    request.encode(&mut frames);
    frames
}

/// [`handshake`] with a spare, which must pass `check` first. A spare that
/// was killed while it waited, or that finds itself unlike the caller, is
/// replaced by a fresh shepherd, which is the caller's by construction.
fn handshake_with_spare(
    taken: spare::Taken,
    request: &mut SpawnRequest,
    passed: &[OwnedFd],
    source: &ShepherdSource,
) -> Result<(Start, std::process::Child, OwnedFd), Error> {
    // The spare was forked earlier, by another thread: it is told what a
    // fork of the caller would have inherited.
    request.spare_check = Some(Box::new(taken.check));
    request.umask = taken.umask;
    request.rlimits = netrunner_sys::process::getrlimit_all();
    let outcome = handshake(taken.started, &frames(request), passed, &source.path());
    request.spare_check = None;
    request.umask = None;
    request.rlimits.clear();
    match outcome {
        Err(Error::Shepherd(ShepherdError::Lost)) => {}
        Ok((
            Start::Failed {
                stage: SpawnStage::Identity | SpawnStage::Attributes,
                ..
            },
            mut spare,
            _,
        )) => {
            // It exits right after reporting.
            let _ = spare.wait();
        }
        other => return other,
    }
    let (started, source) = start_fresh(source)?;
    handshake(started, &frames(request), passed, &source.path())
}

/// Starts a shepherd from `source` with a new socket pair; returns it and
/// the source it was started from, which is a file copy of the embedded
/// shepherd if executing its memfd was refused.
fn start_fresh(source: &ShepherdSource) -> Result<(Started, ShepherdSource), Error> {
    let (ours, theirs) = socket::socketpair_stream()?;
    let launch_error = |source: &ShepherdSource, e: io::Error| -> Error {
        ShepherdError::Launch {
            path: source.path(),
            source: e,
        }
        .into()
    };
    let (child, source) = match start_shepherd(source, &theirs) {
        Ok(child) => (child, source.clone()),
        Err(refused) if memfd_refused(source, &refused) => {
            let file = shepherd_exe::fall_back_to_file(&format!(
                "executing the memfd was refused: {refused}"
            ))?;
            let child = start_shepherd(&file, &theirs).map_err(|e| launch_error(&file, e))?;
            (child, file)
        }
        Err(e) => return Err(launch_error(source, e)),
    };
    Ok((
        Started {
            child,
            socket: ours,
        },
        source,
    ))
}

/// Whether `error`, starting `source`, means this system does not execute
/// memfds (`vm.memfd_noexec`, an LSM or seccomp policy, an old kernel that
/// refuses a writable one).
fn memfd_refused(source: &ShepherdSource, error: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(source, ShepherdSource::Embedded(EmbeddedCopy::Memfd(_)))
        && [
            Errno::ACCESS,
            Errno::PERM,
            Errno::TXTBSY,
            Errno::NOSYS,
            Errno::NOEXEC,
        ]
        .iter()
        .any(|e| error.raw_os_error() == Some(e.raw_os_error()))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs `source` with `socket` as its stdin, in a process group of its own.
fn start_shepherd(source: &ShepherdSource, socket: &OwnedFd) -> io::Result<std::process::Child> {
    let mut attempts = 0;
    loop {
        // A process group of its own: signals aimed at the owner's group
        // (job control, a group kill) must not reach the watchdog, which
        // learns of its owner's death from the socket alone.
        let mut result = Err(io::Error::from(io::ErrorKind::NotFound));
        for mut command in source.commands() {
            result = command
                .process_group(0)
                .stdin(std::process::Stdio::from(socket.try_clone()?))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            // Only a missing /proc makes the next way worth trying.
            if !matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound) {
                break;
            }
        }
        match result {
            // While another thread forks, its child briefly holds a copy of
            // any descriptor open for writing, including the memfd during
            // the one-time embedding; exec then fails with ETXTBSY. Retry.
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
                    && attempts < 20 =>
            {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn send_request(sock: BorrowedFd<'_>, frames: &[u8], passed: &[OwnedFd]) -> Result<(), Error> {
    let borrowed: Vec<BorrowedFd<'_>> = passed.iter().map(|f| f.as_fd()).collect();
    let mut sent = socket::sendmsg_with_fds(sock, frames, &borrowed).map_err(lost_if_pipe)?;
    while sent < frames.len() {
        sent += socket::send(sock, &frames[sent..]).map_err(lost_if_pipe)?;
    }
    Ok(())
}

fn lost_if_pipe(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe || e.kind() == io::ErrorKind::ConnectionReset {
        ShepherdError::Lost.into()
    } else {
        e.into()
    }
}

enum Start {
    Started {
        machine: Box<ChildMachine>,
        /// The leader's pidfd, passed with `Started`.
        leader_pidfd: Option<OwnedFd>,
    },
    Failed {
        stage: SpawnStage,
        errno: i32,
    },
}

/// How long a shepherd may take to answer a spawn request. Far beyond any
/// fork + exec; it only stops a wrong `NETRUNNER_SHEPHERD` (a program that
/// never speaks the protocol) from hanging `spawn()` forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

fn await_start(
    sock: BorrowedFd<'_>,
    path: &std::path::Path,
    timeout: Duration,
) -> Result<Start, Error> {
    let started_at = Instant::now();
    let deadline = started_at + timeout;
    let mut machine = ChildMachine::new(started_at);
    let mut buf = [0u8; 512];
    // Descriptors passed with the frames: the leader's pidfd with `Started`.
    let mut passed: Vec<OwnedFd> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = [rustix::event::PollFd::new(
            &sock,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut pfd, Some(&ts)) {
            Ok(0) => {
                return Err(ShepherdError::Unresponsive {
                    path: path.to_owned(),
                    waited: timeout,
                }
                .into())
            }
            Ok(_) => {}
            // A signal handler ran: poll again with what is left of the
            // deadline. (Reading now would block on a blocking socket with
            // no deadline at all.)
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io::Error::from(e).into()),
        }
        let n = socket::recvmsg_with_fds(sock, &mut buf, &mut passed).map_err(lost_if_pipe)?;
        if n == 0 {
            return Err(ShepherdError::Lost.into());
        }
        machine.handle_bytes(Instant::now(), &buf[..n]);
        // Started always comes first; an Exited that arrived in the same
        // read stays queued in the machine for the front end.
        match machine.poll_event() {
            Some(Event::Started { .. }) => {
                return Ok(Start::Started {
                    machine: Box::new(machine),
                    leader_pidfd: passed.into_iter().next(),
                })
            }
            Some(Event::SpawnFailed { stage, errno }) => return Ok(Start::Failed { stage, errno }),
            Some(Event::Lost(e)) => return Err(e.into()),
            Some(Event::Exited(_)) => return Err(ShepherdError::Lost.into()),
            None => {}
        }
    }
}

fn spawn_error(program: std::ffi::OsString, stage: SpawnStage, errno: i32) -> Error {
    let os = io::Error::from_raw_os_error(errno);
    let source = if stage == SpawnStage::Exec {
        os
    } else {
        io::Error::new(
            os.kind(),
            crate::error::ChildSetupError {
                step: stage.describe(),
                os,
            },
        )
    };
    Error::Spawn { program, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netrunner_proto::{FromShepherd, PROTOCOL_VERSION};

    #[test]
    fn a_silent_shepherd_is_unresponsive_not_a_hang() {
        let (ours, _silent_peer) = socket::socketpair_stream().unwrap();
        let err = await_start(
            ours.as_fd(),
            std::path::Path::new("/x"),
            Duration::from_millis(50),
        )
        .err();
        assert!(
            matches!(
                err,
                Some(Error::Shepherd(ShepherdError::Unresponsive { .. }))
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_closed_or_garbled_shepherd_is_reported() {
        let (ours, peer) = socket::socketpair_stream().unwrap();
        drop(peer);
        let err = await_start(
            ours.as_fd(),
            std::path::Path::new("/x"),
            Duration::from_secs(5),
        )
        .err();
        assert!(
            matches!(err, Some(Error::Shepherd(ShepherdError::Lost))),
            "{err:?}"
        );

        let (ours, peer) = socket::socketpair_stream().unwrap();
        socket::send(peer.as_fd(), b"HTTP/1.1 200 OK\r\n").unwrap();
        let err = await_start(
            ours.as_fd(),
            std::path::Path::new("/x"),
            Duration::from_secs(5),
        )
        .err();
        assert!(
            matches!(err, Some(Error::Shepherd(ShepherdError::Protocol(_)))),
            "{err:?}"
        );

        let (ours, peer) = socket::socketpair_stream().unwrap();
        let mut frames = FromShepherd::Hello {
            version: PROTOCOL_VERSION,
        }
        .to_frame();
        FromShepherd::Started {
            pid: 42,
            shepherd_pid: 1,
        }
        .encode(&mut frames);
        socket::send(peer.as_fd(), &frames).unwrap();
        match await_start(
            ours.as_fd(),
            std::path::Path::new("/x"),
            Duration::from_secs(5),
        ) {
            Ok(Start::Started { machine, .. }) => assert_eq!(machine.pid(), Some(42)),
            _ => panic!("expected Started"),
        }
    }
}
