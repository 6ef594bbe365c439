//! Sealed in-memory executables: how the embedded shepherd is run.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

/// Copies `bytes` into a sealed memfd and returns a read-only descriptor to it,
/// executable through `/proc/self/fd/N`.
///
/// The writable descriptor is closed before returning: the kernel refuses to
/// exec a file that is open for writing (`ETXTBSY`). The seals make the
/// contents immutable for everyone who later gets the descriptor.
///
/// # References
/// - [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html),
///   [`fcntl(2)` file seals](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#[cfg(target_os = "linux")]
pub fn memfd_executable(name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3+) keeps the memfd executable even where the
    // vm.memfd_noexec sysctl defaults new memfds to non-executable; older
    // kernels reject the flag with EINVAL.
    let fd = match rustix::fs::memfd_create(name, base | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(name, base)?,
        other => other?,
    };
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )?;
    let read_only = rustix::fs::open(
        format!("/proc/self/fd/{}", file.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    drop(file);
    Ok(read_only)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn runs_a_copy_of_true() {
        let bytes = std::fs::read("/bin/true").unwrap();
        let fd = memfd_executable("test-true", &bytes).unwrap();
        let status = std::process::Command::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .status()
            .unwrap();
        assert!(status.success());
        // Sealed: writing through a fresh writable open is refused.
        assert!(std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .and_then(|mut f| f.write_all(b"x"))
            .is_err());
    }
}
