//! Finding the shepherd binary: explicit path, `NETRUNNER_SHEPHERD`, or the embedded copy.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::ShepherdError;

/// The environment variable that overrides the embedded shepherd.
pub const SHEPHERD_ENV: &str = "NETRUNNER_SHEPHERD";

/// The shepherd binary built by this crate's build script.
static EMBEDDED: &[u8] = include_bytes!(env!("NETRUNNER_SHEPHERD_EMBEDDED"));

/// Where the shepherd to run comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShepherdSource {
    /// `Command::shepherd_path`.
    Explicit(PathBuf),
    /// The `NETRUNNER_SHEPHERD` environment variable.
    Environment(PathBuf),
    /// The copy embedded at build time, run from a sealed memfd.
    Embedded(PathBuf),
}

impl ShepherdSource {
    /// The path to execute.
    pub fn path(&self) -> &Path {
        match self {
            ShepherdSource::Explicit(p)
            | ShepherdSource::Environment(p)
            | ShepherdSource::Embedded(p) => p,
        }
    }
}

/// Picks the shepherd: `explicit`, else `$NETRUNNER_SHEPHERD`, else the embedded binary.
///
/// The embedded bytes are written once per process into a sealed memfd that
/// stays open for the life of the process; its `/proc/self/fd/N` path is
/// what gets executed.
pub fn locate(explicit: Option<&Path>) -> Result<ShepherdSource, ShepherdError> {
    if let Some(p) = explicit {
        return Ok(ShepherdSource::Explicit(p.to_owned()));
    }
    if let Some(p) = std::env::var_os(SHEPHERD_ENV).filter(|p| !p.is_empty()) {
        return Ok(ShepherdSource::Environment(PathBuf::from(p)));
    }
    static MEMFD: OnceLock<Result<OwnedFd, String>> = OnceLock::new();
    let fd = MEMFD.get_or_init(embed).as_ref().map_err(|e| {
        ShepherdError::NotFound(format!(
            "no explicit path, {SHEPHERD_ENV} is not set, and the embedded copy could not be prepared: {e}"
        ))
    })?;
    Ok(ShepherdSource::Embedded(PathBuf::from(format!(
        "/proc/self/fd/{}",
        fd.as_raw_fd()
    ))))
}

#[cfg(target_os = "linux")]
fn embed() -> Result<OwnedFd, String> {
    netrunner_sys::memfd::memfd_executable("netrunner-shepherd", EMBEDDED)
        .map_err(|e| format!("memfd: {e}"))
}

#[cfg(not(target_os = "linux"))]
fn embed() -> Result<OwnedFd, String> {
    Err(format!(
        "running the embedded shepherd needs Linux memfd; set {SHEPHERD_ENV}"
    ))
}
