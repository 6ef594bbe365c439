//! Pseudo-terminals: opening a pair, sizing it, making it a controlling terminal.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::pty::OpenptFlags;
use rustix::termios::{LocalModes, OptionalActions, Winsize};

/// A pseudo-terminal: the master stays with us, the slave goes to the child.
#[derive(Debug)]
pub struct Pty {
    /// Our side: what the child writes is read here, what we write is its input.
    pub master: OwnedFd,
    /// The child's terminal.
    pub slave: OwnedFd,
}

/// Opens a pty pair with its termios and window size already set.
///
/// Both are configured here, before any fork, so the child can never run
/// with the wrong echo mode or size, not even for its first instruction.
/// Both descriptors are close-on-exec; neither becomes our controlling
/// terminal (`O_NOCTTY`).
///
/// # References
/// - [`posix_openpt(3)`](https://man7.org/linux/man-pages/man3/posix_openpt.3.html),
///   [`TIOCGPTPEER`](https://man7.org/linux/man-pages/man2/TIOCGPTPEER.2const.html),
///   [`termios(3)`](https://man7.org/linux/man-pages/man3/termios.3.html)
pub fn openpty(rows: u16, cols: u16, echo: bool) -> io::Result<Pty> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    // TIOCGPTPEER opens the slave through the master, with no path lookup a
    // stranger could race; fall back to ptsname for kernels before 4.13.
    let slave = match rustix::pty::ioctl_tiocgptpeer(&master, flags) {
        Ok(slave) => slave,
        Err(_) => {
            let name = rustix::pty::ptsname(&master, Vec::new())?;
            rustix::fs::open(
                name.as_c_str(),
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?
        }
    };
    let mut termios = rustix::termios::tcgetattr(&slave)?;
    if !echo {
        termios
            .local_modes
            .remove(LocalModes::ECHO | LocalModes::ECHOE | LocalModes::ECHOK | LocalModes::ECHONL);
    }
    rustix::termios::tcsetattr(&slave, OptionalActions::Now, &termios)?;
    set_window_size(rustix::fd::AsFd::as_fd(&master), rows, cols)?;
    Ok(Pty { master, slave })
}

/// `TIOCSWINSZ`: resizes the terminal; the kernel sends SIGWINCH to its
/// foreground process group.
pub fn set_window_size(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    Ok(rustix::termios::tcsetwinsize(
        master,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?)
}

/// `TIOCGWINSZ`: the terminal's size as (rows, columns).
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let w = rustix::termios::tcgetwinsize(fd)?;
    Ok((w.ws_row, w.ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn size_and_echo_are_set_before_anyone_uses_it() {
        let pty = openpty(33, 99, false).unwrap();
        assert_eq!(window_size(pty.slave.as_fd()).unwrap(), (33, 99));
        let t = rustix::termios::tcgetattr(&pty.slave).unwrap();
        assert!(!t.local_modes.contains(LocalModes::ECHO));
        set_window_size(pty.master.as_fd(), 10, 20).unwrap();
        assert_eq!(window_size(pty.slave.as_fd()).unwrap(), (10, 20));
        assert!(crate::fd::is_cloexec(pty.master.as_fd()).unwrap());
        // Bytes written to the slave come out of the master, with the
        // terminal's output processing (ONLCR).
        rustix::io::write(&pty.slave, b"hi\n").unwrap();
        let mut buf = [0u8; 8];
        let n = rustix::io::read(&pty.master, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi\r\n");
    }
}
