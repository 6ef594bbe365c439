//! Async children on any [`Runtime`]: pipes, the shepherd link, `output()`, streams.
//!
//! Everything here is poll-based and runtime-agnostic. A front end for a
//! particular runtime wraps [`AsyncChild`]'s pipes in that ecosystem's
//! `AsyncRead`/`AsyncWrite` traits, and turns [`output`] and [`AsyncStream`]
//! into its futures and streams. No task is spawned and no thread is used:
//! the child's I/O progresses exactly when its owner polls it, which is what
//! gives backpressure, and dropping any of these types before completion
//! closes the shepherd socket, which takes the whole tree down.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use crate::collect::{ChunkLimiter, Collector, Feeder, DRAIN_AFTER_EXIT, READ_CHUNK};
use crate::launch::{launch, StdioPlan};
use crate::link::{read_socket, LinkState};
use crate::runtime::{AsyncFd, AsyncTimer, Runtime};
use crate::stats::{IoCounters, StreamKind};
use crate::{Command, Error, ExitStatus, Output, Signal, SignalTarget, Stats};

/// `read(2)` on one of our pipe or pty ends; 0 is end of stream.
///
/// EIO is end of stream too: a pty master reads EIO once every slave
/// descriptor is closed (a pipe never returns it).
pub fn read_once(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::IO) => return Ok(0),
            other => return other.map_err(Into::into),
        }
    }
}

/// `read(2)` into the spare capacity of `vec`, extending its length; EIO
/// (a pty whose slave side is closed) is end of stream, as in [`read_once`].
pub fn read_spare(fd: BorrowedFd<'_>, vec: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, rustix::buffer::spare_capacity(&mut *vec)) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::IO) => return Ok(0),
            other => return other.map_err(Into::into),
        }
    }
}

/// `write(2)` on one of our pipe or pty ends; a reader that went away is
/// `BrokenPipe`, never a SIGPIPE in the host.
pub fn write_once(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    netrunner_sys::fd::write_without_sigpipe(fd, buf)
}

/// One end of a child's stdin, stdout or stderr, registered with a runtime.
#[derive(Debug)]
pub struct AsyncPipe {
    io: Box<dyn AsyncFd>,
    kind: StreamKind,
    counters: Arc<IoCounters>,
}

impl AsyncPipe {
    /// Reads into `buf` once data is available; 0 is end of stream.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let result = ready!(self.io.poll_read_with(cx, &mut |fd| read_once(fd, buf)));
        if let Ok(n) = result {
            self.counters.record(self.kind, n);
        }
        Poll::Ready(result)
    }

    /// Reads once data is available, appending straight into `vec`'s spare
    /// capacity (the caller reserves it); 0 is end of stream.
    pub fn poll_read_vec(
        &self,
        cx: &mut Context<'_>,
        vec: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        let result = ready!(self.io.poll_read_with(cx, &mut |fd| read_spare(fd, vec)));
        if let Ok(n) = result {
            self.counters.record(self.kind, n);
        }
        Poll::Ready(result)
    }

    /// Writes from `buf` once the pipe has room.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = ready!(self.io.poll_write_with(cx, &mut |fd| write_once(fd, buf)));
        if let Ok(n) = result {
            self.counters.record(self.kind, n);
        }
        Poll::Ready(result)
    }

    /// Reads some bytes.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = poll_fn(|cx| self.poll_write(cx, buf)).await?;
            buf = &buf[n..];
        }
        Ok(())
    }
}

impl AsFd for AsyncPipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.fd()
    }
}

/// The shepherd socket of an async child, with its [`LinkState`].
#[derive(Debug)]
pub struct AsyncLink {
    state: LinkState,
    socket: Option<Box<dyn AsyncFd>>,
}

impl Drop for AsyncLink {
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
            let _ = netrunner_sys::socket::shutdown(sock.fd());
        }
    }
}

impl AsyncLink {
    /// Writes pending requests; `Pending` only if the socket is full.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            let Some(sock) = &self.socket else {
                self.state.discard_outgoing();
                return Poll::Ready(Ok(()));
            };
            let out = self.state.outgoing();
            if out.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let result = ready!(
                sock.poll_write_with(cx, &mut |fd| { netrunner_sys::socket::send(fd, out) })
            );
            match result {
                Ok(n) => self.state.sent(n),
                // The shepherd is gone; reading reports how.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.state.discard_outgoing(),
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    /// Reads what the shepherd sent; `Ready` once nothing more will come.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut buf = [0u8; 1024];
        while let Some(sock) = &self.socket {
            if self.state.machine.is_finished() {
                break;
            }
            match ready!(sock.poll_read_with(cx, &mut |fd| read_socket(fd, &mut buf))) {
                Ok(0) => {
                    self.socket = None;
                    self.state.handle_eof();
                }
                Ok(n) => self.state.handle_bytes(&buf[..n]),
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        Poll::Ready(self.state.status().map(drop))
    }

    /// Drives the link until the exit report arrives.
    pub fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<Result<ExitStatus, Error>> {
        // A full socket must not stop us from reading the report.
        if let Poll::Ready(Err(e)) = self.poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        ready!(self.poll_receive(cx))?;
        match self.state.status()? {
            Some(status) => Poll::Ready(Ok(status)),
            // Unreachable in practice: receive only returns once finished.
            None => Poll::Pending,
        }
    }

    /// The exit status if already reported, without waiting.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>, Error> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        // Polling with a no-op waker reads whatever is there now; any
        // registration it leaves behind is refreshed by the next real poll.
        match self.poll_exit(&mut cx) {
            Poll::Ready(Ok(status)) => Ok(Some(status)),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(None),
        }
    }

    fn request(&mut self) -> Result<(), Error> {
        let waker = std::task::Waker::noop();
        match self.poll_flush(&mut Context::from_waker(waker)) {
            // Left unsent in a full socket: the next poll of the child sends it.
            Poll::Pending => Ok(()),
            Poll::Ready(r) => r,
        }
    }

    /// Sends `sig` to the process group (no-op after exit).
    pub fn signal(&mut self, sig: Signal) -> Result<(), Error> {
        self.state.machine.signal(sig, SignalTarget::Group);
        self.request()
    }

    /// SIGTERM now, SIGKILL after the kill timeout.
    pub fn terminate(&mut self) -> Result<(), Error> {
        self.state.machine.terminate();
        self.request()
    }

    /// SIGKILL the tree now.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.state.machine.kill();
        self.request()
    }

    /// The command's pid.
    pub fn pid(&self) -> u32 {
        self.state.pid()
    }

    /// Statistics so far.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// The exit report; an error before it has arrived.
    pub fn exit_info(&self) -> Result<crate::machine::ExitInfo, Error> {
        self.state.exit_info()
    }

    fn is_finished(&self) -> bool {
        self.state.machine.is_finished()
    }
}

/// A running command on some [`Runtime`].
#[derive(Debug)]
pub struct AsyncChild {
    /// The command's stdin, if piped.
    pub stdin: Option<AsyncPipe>,
    /// The command's stdout, if piped.
    pub stdout: Option<AsyncPipe>,
    /// The command's stderr, if piped.
    pub stderr: Option<AsyncPipe>,
    /// The shepherd link.
    pub link: AsyncLink,
    /// The pty master, for resizing, in pty mode.
    pub pty: Option<OwnedFd>,
}

impl AsyncChild {
    /// Launches `cmd` with `plan` and registers its descriptors with `rt`.
    ///
    /// Blocks for the launch handshake (fork and exec in the shepherd, as
    /// `std`'s and tokio's `spawn` block for theirs) so that exec failures
    /// are returned here, as errors.
    pub fn spawn<F>(rt: &dyn Runtime, cmd: &Command<F>, plan: StdioPlan) -> Result<Self, Error> {
        let launched = launch(cmd, plan)?;
        let state = LinkState::new(launched.machine, launched.shepherd, launched.tree);
        let counters = state.counters.clone();
        // Register the socket first: a missing reactor fails before any
        // pipe is touched, and dropping `state` takes the tree down.
        let socket = rt.wrap_fd(launched.socket)?;
        let pipe = |fd: Option<OwnedFd>, kind| -> io::Result<Option<AsyncPipe>> {
            fd.map(|fd| {
                Ok(AsyncPipe {
                    io: rt.wrap_fd(fd)?,
                    kind,
                    counters: counters.clone(),
                })
            })
            .transpose()
        };
        Ok(AsyncChild {
            stdin: pipe(launched.stdin, StreamKind::Stdin)?,
            stdout: pipe(launched.stdout, StreamKind::Stdout)?,
            stderr: pipe(launched.stderr, StreamKind::Stderr)?,
            link: AsyncLink {
                state,
                socket: Some(socket),
            },
            pty: launched.pty,
        })
    }

    /// Resizes the command's terminal; [`Error::NotPty`] without `pty(true)`.
    pub fn set_window_size(&mut self, rows: u16, cols: u16) -> Result<(), Error> {
        crate::launch::set_window_size(self.pty.as_ref(), rows, cols)
    }

    /// Waits for the command and everything it started to be gone.
    /// Closes stdin first, as `std` does.
    pub async fn wait(&mut self) -> Result<ExitStatus, Error> {
        drop(self.stdin.take());
        poll_fn(|cx| self.link.poll_exit(cx)).await
    }
}

/// Runs `cmd` to completion on `rt`, collecting stdout and stderr while
/// writing its `input`; the async twin of the blocking `output()`.
///
/// Dropping the future before it completes closes the shepherd socket, which
/// terminates the whole tree.
pub async fn output<F>(rt: &dyn Runtime, cmd: &Command<F>) -> Result<Output, Error> {
    let mut child = AsyncChild::spawn(rt, cmd, StdioPlan::for_output(cmd))?;
    let feeder = Feeder::for_command(cmd);
    let mut driver = OutputDriver {
        stdin: child.stdin.take().filter(|_| !feeder.is_done()),
        readers: [child.stdout.take(), child.stderr.take()],
        feeder,
        collector: Collector::new(cmd.get_max_output()),
        limit_handled: false,
        drain_timer: None,
        rt,
    };
    poll_fn(|cx| driver.poll(cx, &mut child.link)).await?;
    let exit = child.link.exit_info()?;
    let stats = child.link.stats();
    driver.collector.finish(&exit, stats)
}

struct OutputDriver<'rt> {
    stdin: Option<AsyncPipe>,
    readers: [Option<AsyncPipe>; 2],
    feeder: Feeder,
    collector: Collector,
    limit_handled: bool,
    drain_timer: Option<Pin<Box<dyn AsyncTimer>>>,
    rt: &'rt dyn Runtime,
}

impl OutputDriver<'_> {
    /// Ready once the exit is known and the pipes are drained.
    fn poll(&mut self, cx: &mut Context<'_>, link: &mut AsyncLink) -> Poll<Result<(), Error>> {
        loop {
            let mut progress = false;
            if let Poll::Ready(Err(e)) = link.poll_exit(cx) {
                return Poll::Ready(Err(e));
            }
            if self.collector.limit_hit() && !self.limit_handled {
                // Stop reading; closing our ends makes further writes fail
                // while the shepherd terminates the tree.
                self.limit_handled = true;
                self.readers = [None, None];
                self.stdin = None;
                link.terminate()?;
                continue;
            }
            if let Some(stdin) = &self.stdin {
                let pending = self.feeder.pending();
                match stdin.poll_write(cx, &pending[..pending.len().min(READ_CHUNK)]) {
                    Poll::Ready(Ok(n)) => {
                        self.feeder.advance(n);
                        progress = true;
                    }
                    // The command closed its stdin: it wants no more input.
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                        self.feeder.advance(usize::MAX)
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Pending => {}
                }
                if self.feeder.is_done() {
                    self.stdin = None;
                }
            }
            for slot in self.readers.iter_mut() {
                // A bounded number of reads per wake-up keeps the other
                // stream and stdin served under a firehose.
                for _ in 0..8 {
                    let Some(reader) = slot else { break };
                    let mut eof = false;
                    let result = self.collector.read_with(reader.kind, |vec| {
                        match reader.poll_read_vec(cx, vec) {
                            Poll::Ready(Ok(n)) => {
                                eof = n == 0;
                                Ok(n)
                            }
                            Poll::Ready(Err(e)) => Err(e),
                            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                        }
                    });
                    match result {
                        Ok(_) if eof => *slot = None,
                        Ok(_) => {
                            progress = true;
                            if self.collector.limit_hit() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
            }
            if link.is_finished() {
                if self.readers.iter().all(Option::is_none) {
                    return Poll::Ready(Ok(()));
                }
                let deadline = Instant::now() + DRAIN_AFTER_EXIT;
                let timer = self
                    .drain_timer
                    .get_or_insert_with(|| self.rt.new_timer(deadline));
                if progress {
                    timer.as_mut().reset(deadline);
                } else if timer.as_mut().poll(cx).is_ready() {
                    self.readers = [None, None];
                    return Poll::Ready(Ok(()));
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

/// A command's stdout as chunks, on any runtime.
///
/// Reads happen only when the consumer asks for the next chunk, so at most
/// the kernel pipe's contents sit between the command and the consumer.
#[derive(Debug)]
pub struct AsyncStream {
    /// The running command (its stdout is owned by the stream).
    pub child: AsyncChild,
    stdout: Option<AsyncPipe>,
    limiter: ChunkLimiter,
}

impl AsyncStream {
    /// Starts `cmd` with stdout piped (stdin `/dev/null`, stderr inherited
    /// unless configured otherwise).
    pub fn spawn<F>(rt: &dyn Runtime, cmd: &Command<F>) -> Result<Self, Error> {
        let mut child = AsyncChild::spawn(rt, cmd, StdioPlan::for_stream(cmd))?;
        let stdout = child.stdout.take();
        Ok(AsyncStream {
            child,
            stdout,
            limiter: ChunkLimiter::new(cmd.get_max_output()),
        })
    }

    /// The next chunk of stdout; `None` at end of stream.
    pub fn poll_next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Vec<u8>>>> {
        loop {
            let Some(out) = &self.stdout else {
                return Poll::Ready(None);
            };
            if self.limiter.hit() {
                self.stdout = None;
                let _ = self.child.link.terminate();
                return Poll::Ready(Some(Err(self.limiter.error())));
            }
            let mut buf = vec![0u8; self.limiter.want()];
            match ready!(out.poll_read(cx, &mut buf)) {
                Ok(0) => {
                    self.stdout = None;
                    return Poll::Ready(None);
                }
                Ok(n) => {
                    let deliver = self.limiter.accept(n);
                    if deliver > 0 {
                        buf.truncate(deliver);
                        return Poll::Ready(Some(Ok(buf)));
                    }
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// Discards the rest of stdout, then waits for the command. Returns
    /// [`Error::Timeout`] if its timeout fired and [`Error::OutputLimit`] if
    /// the stream stopped at `max_output`.
    pub async fn finish(mut self) -> Result<ExitStatus, Error> {
        if let Some(out) = self.stdout.take() {
            let mut sink = vec![0u8; READ_CHUNK];
            while out.read(&mut sink).await? > 0 {}
        }
        self.child.wait().await?;
        let exit = self.child.link.exit_info()?;
        crate::collect::stream_result(&exit, self.child.link.stats(), self.limiter.hit())
    }
}

/// `status()` on a runtime: runs `cmd` with inherited streams (unless
/// configured) and returns its status, or [`Error::Timeout`].
pub async fn status<F>(rt: &dyn Runtime, cmd: &Command<F>) -> Result<ExitStatus, Error> {
    let mut child = AsyncChild::spawn(rt, cmd, StdioPlan::for_spawn(cmd))?;
    child.wait().await?;
    crate::collect::status_result(&child.link.exit_info()?, child.link.stats())
}
