//! The runtime-agnostic core of netrunner.
//!
//! Everything the front ends share lives here once: the [`Command`] builder
//! and its validation, finding and launching the shepherd ([`launch`]), the
//! per-child state machine ([`machine`], sans-IO), output collection under a
//! cap ([`collect`]), statistics, exit statuses, errors, and reaping of
//! shepherds nobody waits for ([`reaper`]), and the library's own hold on a
//! command's tree for when its shepherd dies ([`tree`]).
//!
//! Front ends (`netrunner-blocking`, `netrunner-tokio`) own the I/O: they
//! wait for readiness on the descriptors in [`launch::Launched`], feed what
//! they read into the machine, and write what it asks them to.
#![forbid(unsafe_code)]

pub mod aio;
pub mod cgroup;
pub mod collect;
pub mod command;
pub mod error;
pub mod exit;
pub mod launch;
pub mod link;
pub mod machine;
pub mod reaper;
pub mod runtime;
pub mod shepherd_exe;
pub mod spare;
pub mod stats;
pub mod supervise;
pub mod tree;

pub use command::{Command, FrontEnd, Stdio, StdioMode};
pub use error::{Error, ShepherdError};
pub use exit::ExitStatus;
pub use netrunner_proto::SignalTarget;
pub use netrunner_sys::{ParseSignalError, Signal};
pub use runtime::{AsyncFd, AsyncTimer, Runtime};
pub use stats::Stats;

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (or stdout and stderr, merged).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
    /// What it did and cost.
    pub stats: Stats,
}
