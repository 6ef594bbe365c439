//! Finding the shepherd binary: explicit path, `NETRUNNER_SHEPHERD`, or the embedded copy.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::ShepherdError;

/// The environment variable that overrides the embedded shepherd.
pub const SHEPHERD_ENV: &str = "NETRUNNER_SHEPHERD";

/// The shepherd's `argv[0]`; the kernel keeps its first 15 bytes as the
/// process name (`ps -o comm`), which the shepherd also sets itself.
pub const SHEPHERD_NAME: &str = "netrunner-shepherd";

/// The shepherd binary built by this crate's build script.
static EMBEDDED: &[u8] = include_bytes!(env!("NETRUNNER_SHEPHERD_EMBEDDED"));

/// Where the shepherd to run comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShepherdSource {
    /// `Command::shepherd_path`.
    Explicit(PathBuf),
    /// The `NETRUNNER_SHEPHERD` environment variable.
    Environment(PathBuf),
    /// The copy embedded at build time.
    Embedded(EmbeddedCopy),
}

/// Where the embedded shepherd is executed from.
#[derive(Debug, Clone, Copy)]
pub enum EmbeddedCopy {
    /// A sealed memfd (see [`ShepherdSource::commands`]).
    Memfd(&'static OwnedFd),
    /// A file in a private directory, where executing a memfd is refused:
    /// the checked descriptor of it, which is what runs, and its path.
    File(&'static OwnedFd, &'static Path),
}

impl PartialEq for EmbeddedCopy {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (EmbeddedCopy::Memfd(a), EmbeddedCopy::Memfd(b)) => a.as_raw_fd() == b.as_raw_fd(),
            (EmbeddedCopy::File(a, _), EmbeddedCopy::File(b, _)) => a.as_raw_fd() == b.as_raw_fd(),
            _ => false,
        }
    }
}

impl Eq for EmbeddedCopy {}

impl ShepherdSource {
    /// What is executed, for messages: a path, or the memfd's name.
    pub fn path(&self) -> PathBuf {
        match self {
            ShepherdSource::Explicit(p) | ShepherdSource::Environment(p) => p.clone(),
            ShepherdSource::Embedded(EmbeddedCopy::File(_, p)) => p.to_path_buf(),
            ShepherdSource::Embedded(EmbeddedCopy::Memfd(fd)) => PathBuf::from(format!(
                "memfd:{SHEPHERD_NAME} (descriptor {})",
                fd.as_raw_fd()
            )),
        }
    }

    /// The commands that start this shepherd, to try in order; the caller
    /// adds the streams.
    ///
    /// The memfd is executed through `/proc/self/fd/N` first, which lets
    /// `std` use `posix_spawn` (a vfork, much cheaper than the fork an exec
    /// hook forces: measured 1.97× against 2.3× of `std` per spawn here),
    /// and with `execveat` where that path does not exist (no `/proc`).
    pub fn commands(&self) -> Vec<std::process::Command> {
        use std::os::unix::process::CommandExt;
        match self {
            &ShepherdSource::Embedded(EmbeddedCopy::Memfd(fd)) => {
                let mut through_proc =
                    std::process::Command::new(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                through_proc.arg0(SHEPHERD_NAME).env_clear();
                vec![through_proc, self.command()]
            }
            _ => vec![self.command()],
        }
    }

    /// The command that starts this shepherd without `/proc`.
    fn command(&self) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        match self {
            ShepherdSource::Explicit(p) | ShepherdSource::Environment(p) => {
                let mut cmd = std::process::Command::new(p);
                cmd.arg0(SHEPHERD_NAME);
                cmd
            }
            &ShepherdSource::Embedded(EmbeddedCopy::Memfd(fd) | EmbeddedCopy::File(fd, _)) => {
                let mut cmd = std::process::Command::new(SHEPHERD_NAME);
                netrunner_sys::memfd::exec_fd_instead(&mut cmd, fd.as_fd(), c"netrunner-shepherd");
                cmd
            }
        }
    }
}

/// Picks the shepherd: `explicit`, else `$NETRUNNER_SHEPHERD` (ignored in a
/// setuid, setgid or file-capability process), else the embedded binary.
///
/// A file copy is checked through a descriptor and run from that
/// descriptor, so replacing the file later changes nothing.
///
/// The embedded bytes are written once per process into a sealed memfd
/// that stays open for the life of the process, and executed through
/// `/proc/self/fd/N`, or with `execveat` where `/proc` is missing. Where memfds cannot be executed, they are written once to
/// `netrunner-<euid>/` in `$XDG_RUNTIME_DIR` or the temporary directory,
/// checked, and executed from there (see [`fall_back_to_file`]).
pub fn locate(explicit: Option<&Path>) -> Result<ShepherdSource, ShepherdError> {
    if let Some(p) = explicit {
        return Ok(ShepherdSource::Explicit(p.to_owned()));
    }
    if !secure_execution() {
        if let Some(p) = std::env::var_os(SHEPHERD_ENV).filter(|p| !p.is_empty()) {
            return Ok(ShepherdSource::Environment(PathBuf::from(p)));
        }
    }
    if let Some(file) = FILE.get() {
        return file
            .as_ref()
            .map(|(fd, p)| ShepherdSource::Embedded(EmbeddedCopy::File(fd, p)))
            .map_err(|e| {
                ShepherdError::NotFound(format!("the embedded copy cannot be run here: {e}"))
            });
    }
    match MEMFD.get_or_init(embed) {
        Ok(fd) => Ok(ShepherdSource::Embedded(EmbeddedCopy::Memfd(fd))),
        Err(reason) => fall_back_to_file(reason),
    }
}

/// The memfd with the embedded bytes, or why there is none.
static MEMFD: OnceLock<Result<OwnedFd, String>> = OnceLock::new();
/// The checked file copy, once memfds proved unusable (and why not, if not).
static FILE: OnceLock<Result<(OwnedFd, PathBuf), String>> = OnceLock::new();

/// Switches this process to running the embedded shepherd from a file,
/// because `memfd_refused` (memfd creation or execution failed so): the
/// file is written once, 0700, into a private directory and checked.
pub fn fall_back_to_file(memfd_refused: &str) -> Result<ShepherdSource, ShepherdError> {
    let file =
        FILE.get_or_init(|| write_private_copy().map_err(|e| format!("{memfd_refused}; {e}")));
    match file {
        Ok((fd, p)) => Ok(ShepherdSource::Embedded(EmbeddedCopy::File(fd, p))),
        Err(e) => Err(ShepherdError::NotFound(format!(
            "no explicit path, {SHEPHERD_ENV} is not set (or ignored: setuid), and the embedded copy cannot be run: {e}"
        ))),
    }
}

/// Candidate directories for the file copy, most private first.
fn private_dirs() -> Vec<PathBuf> {
    let euid = rustix::process::geteuid().as_raw();
    let name = format!("netrunner-{euid}");
    let mut dirs = Vec::new();
    if !secure_execution() {
        if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(runtime).join(&name));
        }
    }
    // TMPDIR is the invoker's to set: not in a setuid program.
    let temp = if secure_execution() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    dirs.push(temp.join(&name));
    dirs
}

fn write_private_copy() -> Result<(OwnedFd, PathBuf), String> {
    // Named after the contents, so processes running different versions
    // never share (or replace) each other's copy.
    let file_name = format!("{SHEPHERD_NAME}-{:016x}", fnv1a(EMBEDDED));
    let mut failures = Vec::new();
    for dir in private_dirs() {
        match netrunner_sys::memfd::private_executable(&dir, &file_name, EMBEDDED) {
            Ok(fd) => return Ok((fd, dir.join(&file_name))),
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    Err(format!(
        "no private directory for a copy ({})",
        failures.join("; ")
    ))
}

/// FNV-1a, 64 bits: a name for the embedded bytes, not a security check
/// (the copy is compared byte for byte).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(target_os = "linux")]
fn secure_execution() -> bool {
    netrunner_sys::memfd::secure_execution()
}

#[cfg(not(target_os = "linux"))]
fn secure_execution() -> bool {
    false
}

#[cfg(target_os = "linux")]
fn embed() -> Result<OwnedFd, String> {
    netrunner_sys::memfd::memfd_executable(SHEPHERD_NAME, EMBEDDED)
        .map_err(|e| format!("memfd: {e}"))
}

#[cfg(not(target_os = "linux"))]
fn embed() -> Result<OwnedFd, String> {
    Err(format!(
        "running the embedded shepherd needs Linux memfd; set {SHEPHERD_ENV}"
    ))
}
