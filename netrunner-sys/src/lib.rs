//! The system layer of netrunner: every `unsafe` block of the project lives here.
//!
//! Functions are named after the syscalls they wrap, take
//! [`OwnedFd`](std::os::fd::OwnedFd) / [`BorrowedFd`](std::os::fd::BorrowedFd)
//! rather than raw integers, and are safe to call. Each `unsafe` block states,
//! in a `// SAFETY:` comment, the rule it relies on.
//!
//! Built on [`rustix`]; [`nix`] (and the `libc` it re-exports) only where rustix
//! has no public call: `fork`, `execve` with pre-built pointer arrays,
//! `signal`/`sigprocmask` resets, `signalfd`, `getrusage` and `close_range`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cgroup;
pub mod fd;
pub mod inherit;
pub mod memfd;
pub mod process;
pub mod pty;
pub mod signal;
pub mod signalfd;
pub mod socket;
pub mod terminal;
#[cfg(feature = "tokio")]
pub mod tokio_fd;

pub use signal::{ParseSignalError, Signal};
