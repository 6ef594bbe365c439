//! The seam between netrunner's async machinery and an async runtime.
//!
//! A runtime provides two things: readiness for non-blocking descriptors
//! ([`Runtime::wrap_fd`]) and timers ([`Runtime::new_timer`]). Everything
//! else — launching, the shepherd protocol, collecting output, streaming —
//! is written once in [`crate::aio`] against these traits. `netrunner-tokio`
//! implements them on tokio's `AsyncFd` and `Sleep`; another runtime
//! implements them in a few dozen lines outside this workspace (the test
//! suite does it for async-std on async-io).
//!
//! No task spawning is needed: a child's I/O is driven by whoever polls its
//! futures, and shepherds nobody waits for are reaped by
//! [`crate::reaper`], which needs no runtime.

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// An async runtime netrunner can run on.
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// Registers `fd` (already non-blocking) with the runtime's reactor.
    ///
    /// Fails if there is no reactor to register with (for tokio: called
    /// outside a runtime).
    fn wrap_fd(&self, fd: OwnedFd) -> io::Result<Box<dyn AsyncFd>>;

    /// A timer that fires at `deadline`.
    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>>;
}

/// An operation on a ready descriptor: a `read(2)` or `write(2)` that may
/// fail with `WouldBlock` when the readiness was stale.
pub type FdOp<'a> = &'a mut dyn FnMut(BorrowedFd<'_>) -> io::Result<usize>;

/// A non-blocking descriptor registered with a reactor.
pub trait AsyncFd: Send + Sync + fmt::Debug {
    /// Waits until the descriptor is readable, then runs `op` on it. If `op`
    /// returns `WouldBlock`, the readiness was stale: forget it and wait again.
    fn poll_read_with(&self, cx: &mut Context<'_>, op: FdOp<'_>) -> Poll<io::Result<usize>>;

    /// As [`AsyncFd::poll_read_with`], for writability.
    fn poll_write_with(&self, cx: &mut Context<'_>, op: FdOp<'_>) -> Poll<io::Result<usize>>;

    /// The descriptor.
    fn fd(&self) -> BorrowedFd<'_>;
}

/// A resettable timer.
pub trait AsyncTimer: Send + fmt::Debug {
    /// Moves the deadline.
    fn reset(self: Pin<&mut Self>, deadline: Instant);

    /// Ready once the deadline has passed.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}
