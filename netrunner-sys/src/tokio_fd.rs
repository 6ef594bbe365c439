//! Registering owned descriptors with tokio's reactor.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;

/// Registers `fd` (which must already be non-blocking) with the current
/// tokio runtime's I/O driver.
///
/// Panics, as tokio does, if called outside a runtime whose I/O driver is
/// enabled; check `tokio::runtime::Handle::try_current()` first.
///
/// # References
/// - [`AsyncFd::register`](https://docs.rs/tokio/latest/tokio/io/unix/struct.AsyncFd.html#method.register)
pub fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: AsyncFd::register requires that the descriptor be open, keep
    // referring to the same open file description, and be returned by every
    // `as_raw_fd` call for the AsyncFd's whole life. An `OwnedFd` owns an open
    // descriptor, closes it only when dropped (which AsyncFd does after
    // deregistering), and its `as_raw_fd` is a plain field read; by I/O
    // safety nobody else may close or dup2 over a descriptor we own.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}
