//! File descriptor plumbing: pipes, non-blocking mode, counting and closing.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::FdFlags;
use rustix::pipe::PipeFlags;

/// `pipe2(O_CLOEXEC)`: returns `(read end, write end)`.
///
/// # References
/// - [`pipe2(2)`](https://man7.org/linux/man-pages/man2/pipe.2.html)
pub fn pipe2_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?)
}

/// `ioctl(FIONBIO)`: switch `O_NONBLOCK` on or off.
///
/// # References
/// - [`ioctl_fionbio`](https://man7.org/linux/man-pages/man2/ioctl.2.html)
pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, nonblocking)?)
}

/// `fcntl(F_DUPFD_CLOEXEC, min)`: a close-on-exec duplicate numbered `>= min`.
///
/// # References
/// - [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
pub fn fcntl_dupfd_cloexec(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, min)?)
}

/// `fcntl(F_GETFD)` succeeds: `fd` is an open descriptor.
pub fn is_open(fd: BorrowedFd<'_>) -> bool {
    rustix::io::fcntl_getfd(fd).is_ok()
}

/// `fcntl(F_GETFD) & FD_CLOEXEC`.
pub fn is_cloexec(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(rustix::io::fcntl_getfd(fd)?.contains(FdFlags::CLOEXEC))
}

/// An `O_PATH` descriptor of the calling process's working directory: it
/// names the directory itself, not its path, so it stays valid when the
/// directory is renamed or deleted, whatever the path's length.
///
/// # References
/// - [`open(2)`](https://man7.org/linux/man-pages/man2/open.2.html) (`O_PATH`)
pub fn open_working_directory() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        ".",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

/// `open("/dev/null", O_RDWR | O_CLOEXEC)`.
pub fn open_dev_null() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        "/dev/null",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The standard stream `n` (0, 1 or 2) of this process, borrowed.
///
/// Returns `None` when that descriptor is closed.
pub fn stdio_fd(n: RawFd) -> Option<BorrowedFd<'static>> {
    let fd = match n {
        0 => rustix::stdio::stdin(),
        1 => rustix::stdio::stdout(),
        2 => rustix::stdio::stderr(),
        _ => return None,
    };
    is_open(fd).then_some(fd)
}

/// `write(2)` that cannot raise SIGPIPE in this process, whatever its
/// disposition: a write to a pipe whose reader has gone fails with EPIPE
/// (`BrokenPipe`) and nothing else happens.
///
/// SIGPIPE from `write` is directed at the writing thread, so it is blocked
/// on this thread for the call, and one it raised is taken off the thread's
/// pending set before the mask is restored; one that was pending before
/// the call is left alone.
///
/// # References
/// - [`pipe(7)`](https://man7.org/linux/man-pages/man7/pipe.7.html),
///   [`pthread_sigmask(3)`](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html),
///   [`sigtimedwait(2)`](https://man7.org/linux/man-pages/man2/sigtimedwait.2.html)
pub fn write_without_sigpipe(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&pipe), Some(&mut old))?;
    let already_pending = old.contains(Signal::SIGPIPE) && pipe_pending();
    let result = loop {
        match rustix::io::write(fd, buf) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other,
        }
    };
    if result == Err(rustix::io::Errno::PIPE) && !already_pending {
        take_pending_sigpipe(&pipe);
    }
    if !old.contains(Signal::SIGPIPE) {
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&pipe), None)?;
    }
    Ok(result?)
}

/// Whether SIGPIPE is pending for this thread or process.
fn pipe_pending() -> bool {
    let mut set = std::mem::MaybeUninit::<nix::libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the sigset_t we give it, which lives on this
    // stack; on success it is initialised, and sigismember only reads it.
    unsafe {
        nix::libc::sigpending(set.as_mut_ptr()) == 0
            && nix::libc::sigismember(set.as_ptr(), nix::libc::SIGPIPE) == 1
    }
}

/// Removes a pending SIGPIPE (blocked in `set`) without waiting.
fn take_pending_sigpipe(set: &nix::sys::signal::SigSet) {
    let zero = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigtimedwait reads the signal set and the timeout, both alive
    // for the call, and with a null info pointer writes nothing of ours. A
    // zero timeout returns at once (EAGAIN when nothing is pending).
    unsafe {
        nix::libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero);
    }
}

/// How many file descriptors this process has open (`/proc/self/fd`).
pub fn count_open_fds() -> io::Result<usize> {
    // The directory handle itself shows up in the listing; subtract it.
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn writing_to_a_closed_pipe_raises_no_sigpipe_even_at_sig_dfl() {
        // On a scratch thread of a process whose SIGPIPE disposition is the
        // default: the signal would kill the test process.
        let (r, w) = pipe2_cloexec().unwrap();
        drop(r);
        std::thread::spawn(move || {
            use nix::sys::signal::{signal, SigHandler, Signal};
            // SAFETY: SIG_DFL installs no handler code; this test binary
            // runs each test in its own process (nextest), or restores it.
            let previous = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.unwrap();
            let err = write_without_sigpipe(w.as_fd(), b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            assert!(!pipe_pending());
            // SAFETY: as above.
            unsafe { signal(Signal::SIGPIPE, previous) }.unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn pipes_are_cloexec_and_counted() {
        let before = count_open_fds().unwrap();
        let (r, w) = pipe2_cloexec().unwrap();
        assert!(is_cloexec(r.as_fd()).unwrap());
        assert!(is_cloexec(w.as_fd()).unwrap());
        set_nonblocking(r.as_fd(), true).unwrap();
        let mut buf = [0u8; 1];
        let err = rustix::io::read(&r, &mut buf).unwrap_err();
        assert_eq!(err, rustix::io::Errno::AGAIN);
        // Other tests run concurrently, so only check our own two show up.
        assert!(count_open_fds().unwrap() >= before.min(2));
        drop((r, w));
    }

    #[test]
    fn stdio_fd_reports_open_streams() {
        assert!(stdio_fd(3).is_none());
        // Test harnesses always give us a stderr.
        assert!(stdio_fd(2).is_some());
    }
}
