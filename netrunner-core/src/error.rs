//! The error type shared by every front end.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

use crate::Output;

/// Everything that can go wrong running a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command was rejected before anything was spawned.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which part of the command (`program`, `argument 2`, `cwd`, ...).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The program could not be started (not found, not executable, bad format, ...).
    #[error("failed to spawn {program:?}: {source}")]
    Spawn {
        /// The program as given to `Command::new`.
        program: OsString,
        /// The OS error, with its real kind (`NotFound`, `PermissionDenied`, ...).
        #[source]
        source: io::Error,
    },
    /// The timeout expired; the tree was terminated and this is what it produced.
    #[error("command timed out ({})", .partial.status)]
    Timeout {
        /// Output collected before the timeout, with the final status and stats.
        partial: Box<Output>,
    },
    /// The output limit was reached; the tree was terminated. Output holds exactly the limit.
    #[error("command exceeded its output limit ({} bytes kept)", .partial.stdout.len() + .partial.stderr.len())]
    OutputLimit {
        /// Output up to the limit, with the final status and stats.
        partial: Box<Output>,
    },
    /// A terminal operation on a command that was not started with `pty(true)`.
    #[error("the command has no pty: start it with Command::pty(true)")]
    NotPty,
    /// A supervised daemon cannot do that now (it gave up, was stopped, or
    /// has no run up); says which and why.
    #[error("daemon: {0}")]
    Daemon(String),
    /// The cgroup asked for could not be set up; nothing was run.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    /// The shepherd process could not be found, started, or talked to.
    #[error(transparent)]
    Shepherd(#[from] ShepherdError),
    /// An I/O error talking to the child.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What went wrong with the shepherd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShepherdError {
    /// The binary could not be located or prepared.
    #[error("no usable netrunner-shepherd: {0}")]
    NotFound(String),
    /// The binary was found but could not be executed.
    #[error("failed to start netrunner-shepherd at {path}: {source}")]
    Launch {
        /// The path that was executed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The shepherd sent something that is not valid protocol.
    #[error("protocol error from netrunner-shepherd: {0}")]
    Protocol(#[from] netrunner_proto::DecodeError),
    /// The shepherd went away before reporting the child's exit.
    #[error("netrunner-shepherd exited unexpectedly")]
    Lost,
    /// The shepherd did not answer the spawn request in time.
    #[error("netrunner-shepherd at {path} did not answer within {waited:?}")]
    Unresponsive {
        /// The path that was executed.
        path: PathBuf,
        /// How long we waited.
        waited: std::time::Duration,
    },
}

impl From<ShepherdError> for io::Error {
    fn from(e: ShepherdError) -> io::Error {
        let kind = match &e {
            ShepherdError::NotFound(_) => io::ErrorKind::NotFound,
            ShepherdError::Launch { source, .. } => source.kind(),
            ShepherdError::Protocol(_) => io::ErrorKind::InvalidData,
            ShepherdError::Lost => io::ErrorKind::BrokenPipe,
            ShepherdError::Unresponsive { .. } => io::ErrorKind::TimedOut,
        };
        io::Error::new(kind, e)
    }
}

/// A step of preparing the child before `exec` failed (joining its process
/// group, installing its streams, changing directory, ...).
///
/// Found inside [`Error::Spawn`]'s `source` (via `io::Error::get_ref`) when the
/// failure was not `exec` itself: the program was found, the setup around it
/// was not possible.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {os}")]
pub struct ChildSetupError {
    /// The step that failed, e.g. "changing directory".
    pub step: &'static str,
    /// The OS error.
    #[source]
    pub os: io::Error,
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::Spawn { source, program } => {
                io::Error::new(source.kind(), Error::Spawn { program, source })
            }
            e @ Error::InvalidInput { .. } => io::Error::new(io::ErrorKind::InvalidInput, e),
            e @ Error::Timeout { .. } => io::Error::new(io::ErrorKind::TimedOut, e),
            e @ Error::OutputLimit { .. } => io::Error::new(io::ErrorKind::FileTooLarge, e),
            e @ Error::NotPty => io::Error::new(io::ErrorKind::Unsupported, e),
            e @ Error::Daemon(_) => io::Error::other(e),
            Error::Cgroup(e) => e.into(),
            Error::Shepherd(e) => e.into(),
        }
    }
}
