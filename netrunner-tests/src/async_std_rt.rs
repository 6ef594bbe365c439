//! netrunner's `Runtime` on async-std's reactor (async-io): proof that the
//! seam in netrunner-core is enough for a runtime other than tokio.
//!
//! Nothing here is tokio, and nothing here is `unsafe`: a descriptor becomes
//! an `async_io::Async`, a timer an `async_io::Timer`, and netrunner-core's
//! `aio` module does the rest.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use netrunner_core::runtime::FdOp;
use netrunner_core::{AsyncFd, AsyncTimer, Runtime};

/// The async-std runtime for netrunner.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdRuntime;

impl Runtime for AsyncStdRuntime {
    fn wrap_fd(&self, fd: OwnedFd) -> io::Result<Box<dyn AsyncFd>> {
        Ok(Box::new(AsyncIoFd(async_io::Async::new_nonblocking(fd)?)))
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(AsyncIoTimer(async_io::Timer::at(deadline)))
    }
}

#[derive(Debug)]
struct AsyncIoFd(async_io::Async<OwnedFd>);

impl AsyncIoFd {
    /// Tries `op`; on WouldBlock waits for the next readiness event.
    fn poll_with(
        &self,
        cx: &mut Context<'_>,
        op: FdOp<'_>,
        wait: impl Fn(&async_io::Async<OwnedFd>, &mut Context<'_>) -> Poll<io::Result<()>>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match op(self.0.get_ref().as_fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(wait(&self.0, cx))?,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncFd for AsyncIoFd {
    fn poll_read_with(&self, cx: &mut Context<'_>, op: FdOp<'_>) -> Poll<io::Result<usize>> {
        self.poll_with(cx, op, |a, cx| a.poll_readable(cx))
    }

    fn poll_write_with(&self, cx: &mut Context<'_>, op: FdOp<'_>) -> Poll<io::Result<usize>> {
        self.poll_with(cx, op, |a, cx| a.poll_writable(cx))
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

#[derive(Debug)]
struct AsyncIoTimer(async_io::Timer);

impl AsyncTimer for AsyncIoTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.set_at(deadline);
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        std::future::Future::poll(Pin::new(&mut self.0), cx).map(drop)
    }
}
