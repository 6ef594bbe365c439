//! Run child processes from blocking Rust code, safely.
//!
//! Every command runs under its own shepherd process, which takes down the
//! command's whole process tree — SIGTERM, a grace period, SIGKILL — when the
//! [`Child`] is dropped, when the timeout expires, or when this process dies
//! for any reason, SIGKILL included. Output is read on demand with
//! backpressure, [`Command::output`] drains stdout and stderr at once so no
//! size deadlocks, and exec failures are errors, never "exit 127".
//!
//! ```no_run
//! use std::time::Duration;
//! use netrunner_blocking::Command;
//!
//! let out = Command::new("echo").arg("hello").output()?;
//! assert_eq!(out.stdout, b"hello\n");
//!
//! let slow = Command::new("sleep").arg("100").timeout(Duration::from_millis(300)).output();
//! assert!(matches!(slow, Err(netrunner_blocking::Error::Timeout { .. })));
//! # Ok::<(), netrunner_blocking::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netrunner_core::aio;
use netrunner_core::collect::{self, ChunkLimiter, Collector, Feeder, DRAIN_AFTER_EXIT};
use netrunner_core::launch::{launch, Launched, StdioPlan};
use netrunner_core::link::{read_socket, LinkState};
use netrunner_core::stats::{IoCounters, StreamKind};
use netrunner_core::{FrontEnd, SignalTarget};
use rustix::event::{PollFd, PollFlags, Timespec};

pub use netrunner_core::{
    Error, ExitStatus, Output, ParseSignalError, ShepherdError, Signal, Stats, Stdio,
};

mod daemon;
pub use daemon::{
    Daemon, DaemonBuilder, DaemonEvent, DaemonState, OutputStream, Ready, Restart, MAX_LINE,
};

/// A command to run; see [`netrunner_core::Command`] for every builder method.
pub type Command = netrunner_core::Command<Blocking>;

/// The blocking front end: makes [`Command`]'s `output()`, `status()`,
/// `spawn()` and `stream()` return plain `Result`s.
#[derive(Debug, Clone, Copy)]
pub struct Blocking;

impl FrontEnd for Blocking {
    type Child = Child;
    type Output = Result<Output, Error>;
    type Status = Result<ExitStatus, Error>;
    type Stream = Stream;

    fn spawn(cmd: &Command) -> Result<Child, Error> {
        Ok(Child::from_launched(launch(
            cmd,
            StdioPlan::for_spawn(cmd),
        )?))
    }

    fn output(cmd: &Command) -> Result<Output, Error> {
        collect_output(cmd)
    }

    fn status(cmd: &Command) -> Result<ExitStatus, Error> {
        let mut child = Self::spawn(cmd)?;
        child.wait()?;
        collect::status_result(&child.link.state.exit_info()?, child.stats())
    }

    fn stream(cmd: &Command) -> Result<Stream, Error> {
        let mut child = Child::from_launched(launch(cmd, StdioPlan::for_stream(cmd))?);
        let stdout = child.stdout.take();
        Ok(Stream {
            child,
            stdout,
            limiter: ChunkLimiter::new(cmd.get_max_output()),
        })
    }
}

// ---------------------------------------------------------------------------
// Readiness helpers

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Waits until `fd` is ready for `flags` or `timeout` passes; returns readiness.
fn wait_ready(fd: BorrowedFd<'_>, flags: PollFlags, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = [PollFd::new(&fd, flags)];
    let ts = timeout.map(timespec);
    loop {
        match rustix::event::poll(&mut pfd, ts.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One non-blocking pipe end, with blocking `Read`/`Write` built on `poll`.
struct Pipe {
    fd: OwnedFd,
    kind: StreamKind,
    counters: Arc<IoCounters>,
}

impl Pipe {
    /// Counts a completed read or write; `Ok(None)` for `WouldBlock`.
    fn done(&self, result: io::Result<usize>) -> io::Result<Option<usize>> {
        match result {
            Ok(n) => {
                self.counters.record(self.kind, n);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One non-blocking read; `Ok(None)` when no data is ready.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.done(aio::read_once(self.fd.as_fd(), buf))
    }

    /// One non-blocking read appended to `vec`'s spare capacity.
    fn try_read_vec(&self, vec: &mut Vec<u8>) -> io::Result<Option<usize>> {
        self.done(aio::read_spare(self.fd.as_fd(), vec))
    }

    /// One non-blocking write; `Ok(None)` when the pipe is full.
    fn try_write(&self, buf: &[u8]) -> io::Result<Option<usize>> {
        self.done(aio::write_once(self.fd.as_fd(), buf))
    }

    fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(n) = self.try_read(buf)? {
                return Ok(n);
            }
            wait_ready(self.fd.as_fd(), PollFlags::IN, None)?;
        }
    }

    fn write_blocking(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            if let Some(n) = self.try_write(buf)? {
                return Ok(n);
            }
            wait_ready(self.fd.as_fd(), PollFlags::OUT, None)?;
        }
    }
}

macro_rules! pipe_handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(Pipe);

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.fd.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0.fd.as_raw_fd()
            }
        }

        impl From<$name> for OwnedFd {
            /// The descriptor, still non-blocking; bytes moved through it
            /// from here on are not counted in [`Stats`].
            fn from(handle: $name) -> OwnedFd {
                handle.0.fd
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0.fd).finish()
            }
        }
    };
}

pipe_handle!(
    /// The command's stdin. Dropping it closes the pipe: the command reads EOF.
    ChildStdin
);
pipe_handle!(
    /// The command's stdout.
    ChildStdout
);
pipe_handle!(
    /// The command's stderr.
    ChildStderr
);

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_blocking(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_blocking(buf)
    }
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_blocking(buf)
    }
}

// ---------------------------------------------------------------------------
// Child

/// The shepherd socket of a child, with its [`LinkState`].
struct Link {
    state: LinkState,
    socket: Option<OwnedFd>,
}

impl Drop for Link {
    /// The shepherd learns now that we are gone, before the state's drop
    /// reaps it: by a shutdown, which also reaches it when a `fork` copy of
    /// this process holds another descriptor of the socket. (A copy's drop
    /// only closes its descriptor: the command is the original's.)
    fn drop(&mut self) {
        if let Some(sock) = self
            .socket
            .as_ref()
            .filter(|_| self.state.in_owner_process())
        {
            let _ = netrunner_sys::socket::shutdown(sock.as_fd());
        }
    }
}

impl Link {
    /// Writes whatever the machine wants sent.
    fn flush(&mut self) -> Result<(), Error> {
        loop {
            let Some(sock) = &self.socket else {
                self.state.discard_outgoing();
                return Ok(());
            };
            let out = self.state.outgoing();
            if out.is_empty() {
                return Ok(());
            }
            match netrunner_sys::socket::send(sock.as_fd(), out) {
                Ok(n) => self.state.sent(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_ready(sock.as_fd(), PollFlags::OUT, None)?;
                }
                // The shepherd is gone; reading will report how.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.state.discard_outgoing(),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads everything the socket has now and acts on it.
    fn receive(&mut self) -> Result<(), Error> {
        let mut buf = [0u8; 1024];
        while let Some(sock) = &self.socket {
            match read_socket(sock.as_fd(), &mut buf) {
                Ok(0) => {
                    self.socket = None;
                    self.state.handle_eof();
                }
                Ok(n) => self.state.handle_bytes(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        self.state.status().map(drop)
    }

    /// Waits up to `timeout` (forever if `None`) for news from the shepherd.
    fn pump(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.flush()?;
        if let Some(sock) = &self.socket {
            if !self.state.machine.is_finished() {
                wait_ready(sock.as_fd(), PollFlags::IN, timeout)?;
            }
        }
        self.receive()
    }
}

/// A running command.
///
/// Dropping it never blocks: if the command is still running, its shepherd
/// terminates the whole tree (SIGTERM, `kill_timeout`, SIGKILL) on its own.
pub struct Child {
    /// The command's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The command's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The command's stderr, if piped.
    pub stderr: Option<ChildStderr>,
    link: Link,
    pty: Option<OwnedFd>,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.id())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

impl Child {
    fn from_launched(l: Launched) -> Self {
        let state = LinkState::new(l.machine, l.shepherd, l.tree);
        let counters = state.counters.clone();
        let pipe = |fd: OwnedFd, kind| Pipe {
            fd,
            kind,
            counters: counters.clone(),
        };
        Child {
            stdin: l.stdin.map(|fd| ChildStdin(pipe(fd, StreamKind::Stdin))),
            stdout: l.stdout.map(|fd| ChildStdout(pipe(fd, StreamKind::Stdout))),
            stderr: l.stderr.map(|fd| ChildStderr(pipe(fd, StreamKind::Stderr))),
            link: Link {
                state,
                socket: Some(l.socket),
            },
            pty: l.pty,
        }
    }

    /// The command's pid (not the shepherd's).
    pub fn id(&self) -> u32 {
        self.link.state.pid()
    }

    /// Sends `sig` to the command's whole process group. A no-op once it has exited.
    pub fn signal(&mut self, sig: Signal) -> Result<(), Error> {
        self.link.state.machine.signal(sig, SignalTarget::Group);
        self.link.flush()
    }

    /// SIGTERM to the tree now, SIGKILL after `kill_timeout`. Does not block.
    pub fn terminate(&mut self) -> Result<(), Error> {
        self.link.state.machine.terminate();
        self.link.flush()
    }

    /// SIGKILL to the whole tree now. Does not block.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.link.state.machine.kill();
        self.link.flush()
    }

    /// Waits for the command and everything it started to be gone.
    ///
    /// Closes our end of stdin first, as `std` does, so a command reading
    /// its input to EOF can finish.
    pub fn wait(&mut self) -> Result<ExitStatus, Error> {
        drop(self.stdin.take());
        loop {
            if let Some(status) = self.link.state.status()? {
                return Ok(status);
            }
            self.link.pump(None)?;
        }
    }

    /// The exit status if the command has finished, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        if self.link.state.status()?.is_none() {
            self.link.flush()?;
            self.link.receive()?;
        }
        self.link.state.status()
    }

    /// Waits at most `timeout` for the command to finish.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        // A timeout past what `Instant` can hold is no deadline at all.
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.wait().map(Some);
        };
        loop {
            if let Some(status) = self.link.state.status()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.link.pump(Some(left))?;
        }
    }

    /// Statistics so far (CPU time and peak memory once the command has exited).
    pub fn stats(&self) -> Stats {
        self.link.state.stats()
    }

    /// Resizes the command's terminal (started with `pty(true)`); the
    /// kernel sends SIGWINCH to its foreground process group.
    /// [`Error::NotPty`] for a command without a pty.
    pub fn set_window_size(&mut self, rows: u16, cols: u16) -> Result<(), Error> {
        netrunner_core::launch::set_window_size(self.pty.as_ref(), rows, cols)
    }

    /// Whether the command's [`timeout`](netrunner_core::Command::timeout)
    /// fired: `true` only once the exit has been reported and the tree was
    /// taken down because of it.
    pub fn timed_out(&self) -> bool {
        self.link.state.exit_info().is_ok_and(|e| e.timed_out)
    }
}

// ---------------------------------------------------------------------------
// output()

/// Input up to this size is written from the `output()` loop itself (it
/// fits in a pipe buffer); more goes through a writer thread, so writing and
/// reading proceed on two cores, as with `std`'s usual writer-thread idiom.
const INLINE_INPUT: usize = 64 * 1024;

fn collect_output(cmd: &Command) -> Result<Output, Error> {
    let mut child = Child::from_launched(launch(cmd, StdioPlan::for_output(cmd))?);
    let feeder = Feeder::for_command(cmd);
    let stdin = child
        .stdin
        .take()
        .map(|s| s.0)
        .filter(|_| !feeder.is_done());
    if stdin.is_some() && feeder.pending().len() > INLINE_INPUT {
        let (abort_r, abort_w) = netrunner_sys::fd::pipe2_cloexec()?;
        return std::thread::scope(|scope| {
            let writer = scope.spawn(move || write_input(stdin.expect("checked"), feeder, abort_r));
            let result = collect_loop(&mut child, cmd, None, Feeder::default());
            // Wakes the writer if it is still waiting for room.
            drop(abort_w);
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("input writer panicked")));
            let output = result?;
            written?;
            Ok(output)
        });
    }
    collect_loop(&mut child, cmd, stdin, feeder)
}

/// Writes all of `feeder` to `stdin`, waiting for room with `poll`; stops
/// early when the command closes its stdin or `abort` becomes readable.
fn write_input(stdin: Pipe, mut feeder: Feeder, abort: OwnedFd) -> io::Result<()> {
    while !feeder.is_done() {
        match stdin.try_write(feeder.pending()) {
            Ok(Some(n)) => feeder.advance(n),
            Ok(None) => {
                let mut fds = [
                    PollFd::new(&stdin.fd, PollFlags::OUT),
                    PollFd::new(&abort, PollFlags::IN),
                ];
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
                if !fds[1].revents().is_empty() {
                    return Ok(());
                }
            }
            // The command closed its stdin: it wants no more input.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The `output()` loop: reads stdout and stderr, writes `stdin` from
/// `feeder` if given, and follows the shepherd until the exit report.
fn collect_loop(
    child: &mut Child,
    cmd: &Command,
    mut stdin: Option<Pipe>,
    mut feeder: Feeder,
) -> Result<Output, Error> {
    let mut readers: [Option<Pipe>; 2] = [
        child.stdout.take().map(|s| s.0),
        child.stderr.take().map(|s| s.0),
    ];
    let mut collector = Collector::new(cmd.get_max_output());
    let mut limit_handled = false;
    // The exit report may already have come with `Started`; after that the
    // socket is read only when poll says it is readable.
    child.link.receive()?;

    loop {
        let exited = child.link.state.machine.is_finished();
        if exited && readers.iter().all(Option::is_none) {
            break;
        }
        if collector.limit_hit() && !limit_handled {
            // Stop reading: closing our ends makes further writes fail
            // (EPIPE/SIGPIPE) while the shepherd terminates the tree.
            limit_handled = true;
            readers = [None, None];
            stdin = None;
            child.terminate()?;
            continue;
        }

        // Poll slots: 0 stdin, 1 stdout, 2 stderr, 3 socket.
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(4);
        let mut slots = [usize::MAX; 4];
        if let Some(s) = &stdin {
            slots[0] = fds.len();
            fds.push(PollFd::new(&s.fd, PollFlags::OUT));
        }
        for (i, r) in readers.iter().enumerate() {
            if let Some(r) = r {
                slots[1 + i] = fds.len();
                fds.push(PollFd::new(&r.fd, PollFlags::IN));
            }
        }
        if let Some(sock) = child.link.socket.as_ref().filter(|_| !exited) {
            slots[3] = fds.len();
            fds.push(PollFd::new(sock, PollFlags::IN));
        }
        let timeout = exited.then(|| timespec(DRAIN_AFTER_EXIT));
        let ready = loop {
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other.map_err(io::Error::from)?,
            }
        };
        let fired = |slot: usize| slot != usize::MAX && !fds[slot].revents().is_empty();
        let fired: [bool; 4] = [
            fired(slots[0]),
            fired(slots[1]),
            fired(slots[2]),
            fired(slots[3]),
        ];
        drop(fds);
        if ready == 0 && exited {
            // Nothing arrived for a while after the whole tree was reaped.
            break;
        }

        if let (true, Some(s)) = (fired[0], &stdin) {
            match s.try_write(feeder.pending()) {
                Ok(Some(n)) => feeder.advance(n),
                Ok(None) => {}
                // The command closed its stdin: it wants no more input.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => feeder.advance(usize::MAX),
                Err(e) => return Err(e.into()),
            }
            if feeder.is_done() {
                stdin = None;
            }
        }
        for (i, slot) in readers.iter_mut().enumerate() {
            if !fired[1 + i] {
                continue;
            }
            // A bounded number of reads per wake-up keeps stdin and the
            // other stream served under a firehose.
            for _ in 0..8 {
                let Some(r) = slot else { break };
                let mut would_block = false;
                let n = collector.read_with(r.kind, |vec| match r.try_read_vec(vec)? {
                    Some(n) => Ok(n),
                    None => {
                        would_block = true;
                        Ok(0)
                    }
                })?;
                if would_block {
                    break;
                }
                if n == 0 {
                    *slot = None;
                } else if collector.limit_hit() {
                    break;
                }
            }
        }
        if fired[3] {
            child.link.receive()?;
        }
    }
    drop(stdin);
    let exit = loop {
        if child.link.state.machine.is_finished() {
            break child.link.state.exit_info()?;
        }
        child.link.pump(None)?;
    };
    let stats = child.stats();
    collector.finish(&exit, stats)
}

// ---------------------------------------------------------------------------
// stream()

/// The command's stdout as an iterator of chunks, as they arrive.
///
/// Reading is on demand: a consumer that stops pulling stops the command
/// once the pipe fills. Dropping the stream early kills the command's tree.
/// With [`Command::max_output`], after exactly that many bytes the command is
/// terminated, the stream yields one `FileTooLarge` error and ends, and
/// [`Stream::finish`] returns [`Error::OutputLimit`].
pub struct Stream {
    child: Child,
    stdout: Option<ChildStdout>,
    limiter: ChunkLimiter,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("child", &self.child)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// The running command.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Reads (and discards) the rest of stdout, then waits for the command.
    ///
    /// Returns [`Error::Timeout`] if the command's timeout fired, and
    /// [`Error::OutputLimit`] if the stream stopped at `max_output`.
    pub fn finish(mut self) -> Result<ExitStatus, Error> {
        if let Some(mut out) = self.stdout.take() {
            io::copy(&mut out, &mut io::sink())?;
        }
        self.child.wait()?;
        collect::stream_result(
            &self.child.link.state.exit_info()?,
            self.child.stats(),
            self.limiter.hit(),
        )
    }
}

impl Iterator for Stream {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let out = self.stdout.as_mut()?;
            if self.limiter.hit() {
                // Stop reading; closing our end also makes the writer fail.
                self.stdout = None;
                let _ = self.child.terminate();
                return Some(Err(self.limiter.error()));
            }
            let mut buf = vec![0u8; self.limiter.want()];
            match out.read(&mut buf) {
                Ok(0) => {
                    self.stdout = None;
                    return None;
                }
                Ok(n) => {
                    let deliver = self.limiter.accept(n);
                    if deliver > 0 {
                        buf.truncate(deliver);
                        return Some(Ok(buf));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
