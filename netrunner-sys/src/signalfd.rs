//! Signals delivered as readable events: `signalfd` on Linux.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal as NixSignal};
use nix::sys::signalfd::SfdFlags;

use crate::signal::Signal;

/// A non-blocking, close-on-exec signalfd for a fixed set of signals.
///
/// Creating it blocks those signals for the calling thread, so they are only
/// ever seen through [`SignalFd::read`]; a child forked later inherits the
/// mask and must reset it (see [`crate::process::fork_exec`]).
///
/// # References
/// - [`signalfd(2)`](https://man7.org/linux/man-pages/man2/signalfd.2.html)
#[derive(Debug)]
pub struct SignalFd(nix::sys::signalfd::SignalFd);

impl SignalFd {
    /// Blocks `signals` and opens a signalfd that reports them.
    pub fn block_and_open(signals: &[Signal]) -> io::Result<Self> {
        let mut mask = SigSet::empty();
        for sig in signals {
            mask.add(NixSignal::try_from(sig.as_raw())?);
        }
        mask.thread_block()?;
        let fd = nix::sys::signalfd::SignalFd::with_flags(
            &mask,
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )?;
        Ok(SignalFd(fd))
    }

    /// The next pending signal, `None` when none is pending.
    pub fn read(&mut self) -> io::Result<Option<Signal>> {
        match self.0.read_signal() {
            Ok(Some(info)) => Ok(Signal::from_raw(info.ssi_signo as i32)),
            Ok(None) => Ok(None),
            Err(nix::errno::Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
