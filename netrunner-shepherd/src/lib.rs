//! The per-child watchdog of netrunner.
//!
//! One shepherd process runs per child, in a process group of its own, with
//! every signal it does not use ignored: nothing aimed at its owner's group
//! reaches it. It reads a spawn request from the socket it was started with
//! (its fd 0), forks and execs the child in a new process group (handing it
//! the owner's terminal when the owner lends it), reports `Started` with a
//! pidfd of the child, then watches three things: the socket (requests, or
//! EOF when the owner is gone), SIGCHLD and its own terminating signals
//! (through a signalfd), and one deadline. Whatever ends the run — the owner
//! dropping the handle or dying, a timeout, a SIGTERM to the shepherd, or
//! the child exiting — the same escalation runs: SIGTERM and SIGCONT to the
//! group, every descendant and every adopted orphan, `kill_timeout` of
//! grace, SIGKILL, and repeat until nothing but the reaped child is left.
//! Only then is `Exited` sent and the shepherd exits.
#![forbid(unsafe_code)]

/// Directory of this crate's sources; netrunner-core's build script builds
/// the binary from here.
pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Name of the binary target.
pub const BIN_NAME: &str = "netrunner-shepherd";

#[cfg(feature = "bin")]
pub mod cgroup;
#[cfg(feature = "bin")]
pub mod run;
#[cfg(feature = "bin")]
pub mod watchdog;
