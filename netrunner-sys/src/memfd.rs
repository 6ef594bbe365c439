//! Sealed in-memory executables, and where else to run one from: how the
//! embedded shepherd is run.

use std::ffi::CStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

/// Copies `bytes` into a sealed memfd and returns a read-only descriptor to it,
/// executable with [`exec_fd_instead`] (or through `/proc/self/fd/N`).
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
    match rustix::fs::open(
        format!("/proc/self/fd/{}", file.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(read_only) => Ok(read_only),
        // No /proc to reopen it through: keep the sealed writable one.
        // Recent kernels execute it all the same; older ones refuse with
        // ETXTBSY, and the caller falls back to a file.
        Err(_) => Ok(file.into()),
    }
}

/// Makes `cmd` run the executable open as `exe` instead of its program:
/// `execveat(exe, "", [argv0], [], AT_EMPTY_PATH)`, which needs no `/proc`.
///
/// The environment is empty. A failed `execveat` is what `cmd.spawn()`
/// returns. `std` forks (rather than `posix_spawn`s) a command with such a
/// hook.
///
/// # References
/// - [`execveat(2)`](https://man7.org/linux/man-pages/man2/execveat.2.html)
#[cfg(target_os = "linux")]
pub fn exec_fd_instead(
    cmd: &mut std::process::Command,
    exe: BorrowedFd<'static>,
    argv0: &'static CStr,
) {
    let raw = exe.as_raw_fd();
    // SAFETY: the hook runs in the forked child before exec and must be
    // async-signal-safe: it builds two pointer arrays on its own stack from
    // 'static strings (no allocation) and makes one system call. `raw` is
    // open in the child: `exe` lives for 'static, and fork copies it.
    unsafe {
        cmd.pre_exec(move || {
            let argv: [*const nix::libc::c_char; 2] = [argv0.as_ptr(), std::ptr::null()];
            let envp: [*const nix::libc::c_char; 1] = [std::ptr::null()];
            nix::libc::syscall(
                nix::libc::SYS_execveat,
                nix::libc::c_long::from(raw),
                c"".as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                nix::libc::c_long::from(nix::libc::AT_EMPTY_PATH),
            );
            Err(io::Error::last_os_error())
        })
    };
}

/// Writes `bytes` as the executable `name` in `dir`, a directory private to
/// this user (created 0700 if missing), and returns a read-only descriptor
/// of the file there, proven through that very descriptor to be ours, not
/// writable by others, executable by us, and to hold exactly `bytes`.
///
/// For where executing a memfd is refused (`vm.memfd_noexec = 2`, an LSM
/// policy). Run the result with [`exec_fd_instead`]: what was checked is
/// what runs, whatever happens to the path afterwards. The directory must
/// be a real directory (not a symlink) owned by the effective user and
/// closed to everyone else; the file is written under a temporary name
/// (`O_EXCL`, mode 0700 whatever the umask) and renamed into place; an
/// existing file of that name is reused only if it passes the same checks.
/// Every refusal names its cause.
pub fn private_executable(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    let euid = rustix::process::geteuid().as_raw();
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("creating {}: {e}", dir.display()),
            ))
        }
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != euid || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of ours closed to others (mode {:o}, owner {})",
                dir.display(),
                meta.mode() & 0o7777,
                meta.uid()
            ),
        ));
    }
    let path = dir.join(name);
    if let Some(fd) = open_if_exactly(&path, bytes, euid)? {
        return Ok(fd);
    }
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(&temporary)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, &path)?;
    open_if_exactly(&path, bytes, euid)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not read back as written", path.display()),
        )
    })
}

/// A read-only descriptor of `path` if it is a regular file of `euid`,
/// writable by nobody else, executable by its owner, and holding exactly
/// `bytes` — all checked through the descriptor (opened without following
/// symlinks), so what is checked is what is returned.
fn open_if_exactly(path: &Path, bytes: &[u8], euid: u32) -> io::Result<Option<OwnedFd>> {
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let mode = meta.permissions().mode();
    if !meta.is_file()
        || meta.uid() != euid
        || mode & 0o022 != 0
        || mode & 0o100 == 0
        || meta.len() != bytes.len() as u64
    {
        return Ok(None);
    }
    let mut contents = Vec::with_capacity(bytes.len());
    file.read_to_end(&mut contents)?;
    Ok((contents == bytes).then(|| file.into()))
}

/// Whether this process runs with `AT_SECURE` (setuid, setgid or file
/// capabilities, or an LSM said so): environment variables must not steer
/// what it executes.
///
/// # References
/// - [`getauxval(3)`](https://man7.org/linux/man-pages/man3/getauxval.3.html) (`AT_SECURE`)
#[cfg(target_os = "linux")]
pub fn secure_execution() -> bool {
    // SAFETY: getauxval reads the auxiliary vector the kernel gave this
    // process; it takes an integer and touches no memory of ours.
    unsafe { nix::libc::getauxval(nix::libc::AT_SECURE) != 0 }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

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
        // And without /proc: through execveat.
        let fd: &'static OwnedFd = Box::leak(Box::new(fd));
        let mut cmd = std::process::Command::new("unused");
        exec_fd_instead(&mut cmd, fd.as_fd(), c"true");
        assert!(cmd.status().unwrap().success());
    }

    #[test]
    fn a_private_copy_is_checked_and_reused() {
        let bytes = std::fs::read("/bin/true").unwrap();
        let dir = std::env::temp_dir().join(format!("netrunner-private-{}", std::process::id()));
        let path = dir.join("true-copy");
        let fd: &'static OwnedFd = Box::leak(Box::new(
            private_executable(&dir, "true-copy", &bytes).unwrap(),
        ));
        let mut cmd = std::process::Command::new("unused");
        exec_fd_instead(&mut cmd, fd.as_fd(), c"true");
        assert!(cmd.status().unwrap().success());
        let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let first = inode(&path);
        private_executable(&dir, "true-copy", &bytes).unwrap();
        assert_eq!(inode(&path), first, "a good copy is reused");
        // A file someone else could have written, or that is not
        // executable, is replaced.
        for mode in [0o777, 0o600] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            private_executable(&dir, "true-copy", &bytes).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
        }
        // A directory open to others is refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = private_executable(&dir, "true-copy", &bytes).unwrap_err();
        assert!(err.to_string().contains("closed to others"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
