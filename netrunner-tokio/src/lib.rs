//! Run child processes from async Rust on tokio, safely.
//!
//! The same guarantees as `netrunner-blocking`, in async form: every command
//! runs under a shepherd that takes its whole process tree down (SIGTERM,
//! grace, SIGKILL) when the handle is dropped, the timeout fires, or this
//! process dies. Cancellation is safe and kills: dropping an `output()`
//! future, a [`Child`] or a [`Stream`] before completion terminates the tree
//! without blocking the runtime. Pipes and the shepherd socket are registered
//! with tokio's reactor (`AsyncFd`): no thread and no `spawn_blocking` per
//! child, and reads happen only when you poll, so a slow consumer stalls
//! the command instead of growing a buffer.
//!
//! ```no_run
//! # async fn demo() -> Result<(), netrunner_tokio::Error> {
//! use netrunner_tokio::Command;
//!
//! let out = Command::new("echo").arg("hello").output().await?;
//! assert_eq!(out.stdout, b"hello\n");
//! # Ok(())
//! # }
//! ```
//!
//! Works on the multi-thread and the current-thread runtime. The runtime
//! must have its I/O and time drivers enabled (`#[tokio::main]` does).
#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use netrunner_core::aio::{self, AsyncChild, AsyncLink, AsyncPipe, AsyncStream};
use netrunner_core::launch::StdioPlan;
use netrunner_core::runtime::FdOp;
use netrunner_core::{AsyncFd, AsyncTimer, FrontEnd, Runtime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use netrunner_core::{
    Error, ExitStatus, Output, ParseSignalError, ShepherdError, Signal, Stats, Stdio,
};

mod daemon;
pub use daemon::{
    Daemon, DaemonBuilder, DaemonEvent, DaemonState, OutputStream, Ready, Restart, MAX_LINE,
};

/// A command to run; see [`netrunner_core::Command`] for every builder method.
pub type Command = netrunner_core::Command<Tokio>;

/// The future `Command::output()` returns.
pub type OutputFuture = Pin<Box<dyn Future<Output = Result<Output, Error>> + Send>>;

/// The future `Command::status()` returns.
pub type StatusFuture = Pin<Box<dyn Future<Output = Result<ExitStatus, Error>> + Send>>;

/// The tokio front end: `output()` and `status()` return futures, `spawn()`
/// and `stream()` return async handles.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

impl FrontEnd for Tokio {
    type Child = Child;
    type Output = OutputFuture;
    type Status = StatusFuture;
    type Stream = Stream;

    /// Must be called inside a tokio runtime; outside one it is an error.
    fn spawn(cmd: &Command) -> Result<Child, Error> {
        require_runtime()?;
        AsyncChild::spawn(&TokioRuntime, cmd, StdioPlan::for_spawn(cmd)).map(Child::from_async)
    }

    fn output(cmd: &Command) -> OutputFuture {
        let cmd = cmd.clone();
        Box::pin(async move { aio::output(&TokioRuntime, &cmd).await })
    }

    fn status(cmd: &Command) -> StatusFuture {
        let cmd = cmd.clone();
        Box::pin(async move { aio::status(&TokioRuntime, &cmd).await })
    }

    fn stream(cmd: &Command) -> Result<Stream, Error> {
        require_runtime()?;
        Ok(Stream {
            inner: AsyncStream::spawn(&TokioRuntime, cmd)?,
        })
    }
}

const NO_RUNTIME: &str =
    "netrunner-tokio: spawn() and stream() must be called from inside a tokio runtime";

/// Checked before anything is launched, so no process starts only to be torn down.
fn require_runtime() -> Result<(), Error> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| Error::Io(io::Error::other(NO_RUNTIME)))
}

// ---------------------------------------------------------------------------
// The Runtime implementation

/// netrunner's [`Runtime`] on tokio: `AsyncFd` readiness and `Sleep` timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn wrap_fd(&self, fd: OwnedFd) -> io::Result<Box<dyn AsyncFd>> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(NO_RUNTIME));
        }
        Ok(Box::new(TokioFd(netrunner_sys::tokio_fd::register(fd)?)))
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(TokioTimer(Box::pin(tokio::time::sleep_until(
            deadline.into(),
        ))))
    }
}

struct TokioFd(tokio::io::unix::AsyncFd<OwnedFd>);

impl fmt::Debug for TokioFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokioFd").field(&self.0.as_raw_fd()).finish()
    }
}

impl AsyncFd for TokioFd {
    fn poll_read_with(&self, cx: &mut Context<'_>, op: FdOp<'_>) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            // `try_io` clears tokio's readiness when `op` hits WouldBlock.
            if let Ok(result) = guard.try_io(|inner| op(inner.as_fd())) {
                return Poll::Ready(result);
            }
        }
    }

    fn poll_write_with(&self, cx: &mut Context<'_>, op: FdOp<'_>) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            if let Ok(result) = guard.try_io(|inner| op(inner.as_fd())) {
                return Poll::Ready(result);
            }
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

#[derive(Debug)]
struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

impl AsyncTimer for TokioTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

// ---------------------------------------------------------------------------
// Child and its pipes

macro_rules! pipe_handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(AsyncPipe);

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0.as_fd().as_raw_fd()
            }
        }
    };
}

pipe_handle!(
    /// The command's stdin (`AsyncWrite`). Dropping it closes the pipe: the command reads EOF.
    ChildStdin
);
pipe_handle!(
    /// The command's stdout (`AsyncRead`).
    ChildStdout
);
pipe_handle!(
    /// The command's stderr (`AsyncRead`).
    ChildStderr
);

macro_rules! async_read {
    ($($name:ident),*) => {$(
        impl AsyncRead for $name {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                let n = ready!(self.0.poll_read(cx, buf.initialize_unfilled()))?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    )*};
}

async_read!(ChildStdout, ChildStderr);

impl AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Pipes have nothing to flush; drop the handle to close the pipe.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A running command.
///
/// Dropping it never blocks: if the command is still running, its shepherd
/// terminates the whole tree (SIGTERM, `kill_timeout`, SIGKILL) on its own.
#[derive(Debug)]
pub struct Child {
    /// The command's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The command's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The command's stderr, if piped.
    pub stderr: Option<ChildStderr>,
    link: AsyncLink,
    pty: Option<OwnedFd>,
}

impl Child {
    fn from_async(c: AsyncChild) -> Self {
        Child {
            stdin: c.stdin.map(ChildStdin),
            stdout: c.stdout.map(ChildStdout),
            stderr: c.stderr.map(ChildStderr),
            link: c.link,
            pty: c.pty,
        }
    }

    /// The command's pid (not the shepherd's).
    pub fn id(&self) -> u32 {
        self.link.pid()
    }

    /// Sends `sig` to the command's whole process group. A no-op once it has exited.
    pub fn signal(&mut self, sig: Signal) -> Result<(), Error> {
        self.link.signal(sig)
    }

    /// SIGTERM to the tree now, SIGKILL after `kill_timeout`. Does not block.
    pub fn terminate(&mut self) -> Result<(), Error> {
        self.link.terminate()
    }

    /// SIGKILL to the whole tree now. Does not block.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.link.kill()
    }

    /// Waits for the command and everything it started to be gone.
    /// Closes our end of stdin first, as `std` does.
    ///
    /// Cancel-safe: dropping the future loses nothing, and the child can be
    /// waited on again.
    pub async fn wait(&mut self) -> Result<ExitStatus, Error> {
        drop(self.stdin.take());
        std::future::poll_fn(|cx| self.link.poll_exit(cx)).await
    }

    /// The exit status if the command has finished, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.link.try_exit()
    }

    /// Statistics so far (CPU time and peak memory once the command has exited).
    pub fn stats(&self) -> Stats {
        self.link.stats()
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
        self.link.exit_info().is_ok_and(|e| e.timed_out)
    }
}

// ---------------------------------------------------------------------------
// Stream

/// The command's stdout as a `Stream` of chunks, read only when polled.
///
/// At most the kernel pipe's contents sit between the command and the
/// consumer: a stalled consumer stalls the command. Dropping the stream early
/// kills the command's tree. With `max_output`, after exactly that many bytes
/// the command is terminated, the stream yields one `FileTooLarge` error and
/// ends, and [`Stream::finish`] returns [`Error::OutputLimit`].
#[derive(Debug)]
pub struct Stream {
    inner: AsyncStream,
}

impl Stream {
    /// The command's pid.
    pub fn id(&self) -> u32 {
        self.inner.child.link.pid()
    }

    /// SIGTERM to the tree now, SIGKILL after `kill_timeout`.
    pub fn terminate(&mut self) -> Result<(), Error> {
        self.inner.child.link.terminate()
    }

    /// Statistics so far.
    pub fn stats(&self) -> Stats {
        self.inner.child.link.stats()
    }

    /// Discards the rest of stdout, then waits for the command. Returns
    /// [`Error::Timeout`] or [`Error::OutputLimit`] as `output()` would.
    pub async fn finish(self) -> Result<ExitStatus, Error> {
        self.inner.finish().await
    }
}

impl futures_core::Stream for Stream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .inner
            .poll_next_chunk(cx)
            .map(|chunk| chunk.map(|r| r.map(Bytes::from)))
    }
}
