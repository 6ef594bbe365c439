//! Job control on the owner's terminal: who is in the foreground, and handing it over.
//!
//! A command runs in a process group of its own. When it shares its owner's
//! controlling terminal, that group must be the terminal's foreground group
//! for the run, or its first read stops it with SIGTTIN, exactly as under a
//! job-control shell that forgot to `tcsetpgrp`. These are the calls a shell
//! makes for that, with SIGTTOU kept away from the caller: `tcsetpgrp` from a
//! background group stops the caller unless SIGTTOU is blocked or ignored.

use std::io;
use std::os::fd::BorrowedFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal as NixSignal};
use rustix::process::Pid;

/// The caller's process group, if `fd` is the caller's controlling terminal
/// and that group is its foreground group; `None` otherwise (not a terminal,
/// another session's terminal, or the caller runs in the background).
///
/// # References
/// - [`tcgetsid(3)`](https://man7.org/linux/man-pages/man3/tcgetsid.3.html),
///   [`tcgetpgrp(3)`](https://man7.org/linux/man-pages/man3/tcgetpgrp.3.html),
///   [`credentials(7)`](https://man7.org/linux/man-pages/man7/credentials.7.html)
pub fn foreground_owner(fd: BorrowedFd<'_>) -> Option<Pid> {
    // `tcgetsid` fails with ENOTTY for anything but a terminal, so this is
    // one ioctl for the common case of a pipe or a file.
    let session = rustix::termios::tcgetsid(fd).ok()?;
    if Some(session) != rustix::process::getsid(None).ok() {
        return None;
    }
    let ours = rustix::process::getpgrp();
    (rustix::termios::tcgetpgrp(fd).ok()? == ours).then_some(ours)
}

/// `tcgetpgrp(fd)`: the terminal's foreground process group.
pub fn tcgetpgrp(fd: BorrowedFd<'_>) -> io::Result<Pid> {
    Ok(rustix::termios::tcgetpgrp(fd)?)
}

/// Makes `to` the foreground group of terminal `fd`, but only while `from`
/// is: a terminal that someone else took meanwhile is left alone. Returns
/// whether the foreground changed.
///
/// # References
/// - [`tcsetpgrp(3)`](https://man7.org/linux/man-pages/man3/tcsetpgrp.3.html),
///   [`TIOCSPGRP`](https://man7.org/linux/man-pages/man2/TIOCSPGRP.2const.html)
pub fn hand_foreground(fd: BorrowedFd<'_>, from: Pid, to: Pid) -> bool {
    rustix::termios::tcgetpgrp(fd).ok() == Some(from) && tcsetpgrp_quietly(fd, to)
}

/// Gives the foreground of terminal `fd` back to `owner` after a command
/// whose process group is `command` lent it: if `command`'s group holds it,
/// or a group with no process left does (a job the command ran in a group
/// of its own, as a shell with job control does, and that died with it).
/// A live stranger's group, or `owner` itself, keeps it. Returns whether
/// the foreground changed.
pub fn reclaim_foreground(fd: BorrowedFd<'_>, command: Pid, owner: Pid) -> bool {
    let Ok(holder) = rustix::termios::tcgetpgrp(fd) else {
        return false;
    };
    let abandoned = holder != owner
        && (holder == command
            || rustix::process::test_kill_process_group(holder) == Err(rustix::io::Errno::SRCH));
    abandoned && tcsetpgrp_quietly(fd, owner)
}

/// `tcsetpgrp(fd, to)` with SIGTTOU blocked in the calling thread for the
/// call, so a caller in a background group is not stopped by it. Only
/// system calls (`ioctl`, `pthread_sigmask`), so a freshly forked child may
/// call it before exec.
fn tcsetpgrp_quietly(fd: BorrowedFd<'_>, to: Pid) -> bool {
    let mut ttou = SigSet::empty();
    ttou.add(NixSignal::SIGTTOU);
    let mut previous = SigSet::empty();
    if nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut previous))
        .is_err()
    {
        return false;
    }
    let handed = rustix::termios::tcsetpgrp(fd, to).is_ok();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
    handed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pipes_and_foreign_terminals_have_no_foreground_owner() {
        let (r, _w) = crate::fd::pipe2_cloexec().unwrap();
        assert_eq!(foreground_owner(r.as_fd()), None);
        // A fresh pty is nobody's controlling terminal.
        let pty = crate::pty::openpty(24, 80, true).unwrap();
        assert_eq!(foreground_owner(pty.slave.as_fd()), None);
        assert!(!hand_foreground(
            pty.slave.as_fd(),
            rustix::process::getpgrp(),
            rustix::process::getpgrp()
        ));
    }
}
