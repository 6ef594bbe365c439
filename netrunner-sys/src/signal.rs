//! The `Signal` type: every standard signal, by name and number.

use std::fmt;
use std::io;
use std::str::FromStr;

use nix::libc;

/// A standard POSIX signal.
///
/// Constants are named as in rustix 1.x (`Signal::TERM`, `Signal::KILL`, ...).
/// [`FromStr`] accepts `TERM`, `SIGTERM`, `sigterm` and `15` alike.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

macro_rules! signals {
    ($( $(#[$m:meta])* $name:ident = $raw:ident, $text:literal; )*) => {
        impl Signal {
            $( $(#[$m])* #[doc = concat!("`", $text, "`")] pub const $name: Signal = Signal(libc::$raw); )*

            /// Every signal this type knows, in ascending number order.
            pub const ALL: &'static [Signal] = &[$( Signal::$name, )*];

            /// The conventional name, e.g. `"SIGTERM"`.
            pub const fn name(self) -> &'static str {
                match self.0 {
                    $( libc::$raw => $text, )*
                    _ => "SIG?",
                }
            }
        }
    };
}

signals! {
    HUP = SIGHUP, "SIGHUP";
    INT = SIGINT, "SIGINT";
    QUIT = SIGQUIT, "SIGQUIT";
    ILL = SIGILL, "SIGILL";
    TRAP = SIGTRAP, "SIGTRAP";
    ABORT = SIGABRT, "SIGABRT";
    BUS = SIGBUS, "SIGBUS";
    FPE = SIGFPE, "SIGFPE";
    KILL = SIGKILL, "SIGKILL";
    USR1 = SIGUSR1, "SIGUSR1";
    SEGV = SIGSEGV, "SIGSEGV";
    USR2 = SIGUSR2, "SIGUSR2";
    PIPE = SIGPIPE, "SIGPIPE";
    ALARM = SIGALRM, "SIGALRM";
    TERM = SIGTERM, "SIGTERM";
    #[cfg(target_os = "linux")]
    STKFLT = SIGSTKFLT, "SIGSTKFLT";
    CHILD = SIGCHLD, "SIGCHLD";
    CONT = SIGCONT, "SIGCONT";
    STOP = SIGSTOP, "SIGSTOP";
    TSTP = SIGTSTP, "SIGTSTP";
    TTIN = SIGTTIN, "SIGTTIN";
    TTOU = SIGTTOU, "SIGTTOU";
    URG = SIGURG, "SIGURG";
    XCPU = SIGXCPU, "SIGXCPU";
    XFSZ = SIGXFSZ, "SIGXFSZ";
    VTALARM = SIGVTALRM, "SIGVTALRM";
    PROF = SIGPROF, "SIGPROF";
    WINCH = SIGWINCH, "SIGWINCH";
    IO = SIGIO, "SIGIO";
    #[cfg(target_os = "linux")]
    POWER = SIGPWR, "SIGPWR";
    SYS = SIGSYS, "SIGSYS";
}

impl Signal {
    /// The signal with this number, if it is a standard one.
    pub fn from_raw(raw: i32) -> Option<Signal> {
        Signal::ALL.iter().copied().find(|s| s.0 == raw)
    }

    /// The signal number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    pub(crate) fn to_rustix(self) -> rustix::process::Signal {
        // Every constant above is a valid, non-zero standard signal number.
        rustix::process::Signal::from_named_raw(self.0).unwrap_or(rustix::process::Signal::KILL)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Sets every signal whose default action would end or stop this process
/// to SIG_IGN — the standard ones and the real-time ones the C library does
/// not reserve for itself — except those in `keep` (and KILL and STOP,
/// which nothing can catch).
///
/// For a process that must live until it decides to exit: the signals it
/// uses on purpose are in `keep` (and blocked for a signalfd); anything
/// else a stray `kill` sends is dropped. A real fault (SIGSEGV from a bad
/// access) still kills: the kernel resets an ignored fault signal to its
/// default before delivering it. Dispositions set to SIG_IGN survive `fork`
/// and `exec`, so a child must reset them (as `fork_exec` does).
///
/// # References
/// - [`sigaction(2)`](https://man7.org/linux/man-pages/man2/sigaction.2.html),
///   [`signal(7)`](https://man7.org/linux/man-pages/man7/signal.7.html)
pub fn ignore_fatal_signals(keep: &[Signal]) -> io::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // Every standard signal but those whose default is to ignore or to
    // continue, and those nothing can catch.
    const HARMLESS_OR_UNCATCHABLE: [Signal; 6] = [
        Signal::CHILD,
        Signal::CONT,
        Signal::URG,
        Signal::WINCH,
        Signal::KILL,
        Signal::STOP,
    ];
    for &sig in Signal::ALL {
        if HARMLESS_OR_UNCATCHABLE.contains(&sig) || keep.contains(&sig) {
            continue;
        }
        let nix_sig = nix::sys::signal::Signal::try_from(sig.0)?;
        // SAFETY: SIG_IGN runs no code in signal context, so installing it
        // cannot break any async-signal-safety rule; the previous action
        // is not a handler we must keep (we return it to nobody).
        unsafe { sigaction(nix_sig, &ignore) }?;
    }
    #[cfg(target_os = "linux")]
    for raw in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: an all-zero `sigaction` is a valid value (empty mask, no
        // flags); SA_SIGINFO is unset, so the handler field is read as
        // `sa_handler` = SIG_IGN, which runs no code. The C library's own
        // `sigaction` is used, so the struct layout is the one it expects,
        // and SIGRTMIN() already excludes the signals it reserves.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_IGN;
            libc::sigaction(raw, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A string that names no standard signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {0:?}: expected a name like TERM or SIGTERM, or a number like 15")]
pub struct ParseSignalError(pub String);

impl FromStr for Signal {
    type Err = ParseSignalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSignalError(s.to_owned());
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            return Signal::from_raw(n).ok_or_else(err);
        }
        let upper = t.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        let aliases: &[(&str, Signal)] = &[
            ("ABRT", Signal::ABORT),
            ("ALRM", Signal::ALARM),
            ("CHLD", Signal::CHILD),
            ("IOT", Signal::ABORT),
            ("VTALRM", Signal::VTALARM),
        ];
        if let Some((_, sig)) = aliases.iter().find(|(a, _)| *a == bare) {
            return Ok(*sig);
        }
        Signal::ALL
            .iter()
            .copied()
            .find(|sig| &sig.name()[3..] == bare)
            .ok_or_else(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        for s in ["TERM", "SIGTERM", "sigterm", "term", "15", " SigTerm "] {
            assert_eq!(s.parse::<Signal>(), Ok(Signal::TERM), "{s}");
        }
        assert_eq!("CHLD".parse::<Signal>(), Ok(Signal::CHILD));
        assert_eq!("sigalrm".parse::<Signal>(), Ok(Signal::ALARM));
        assert!("SIGNOPE".parse::<Signal>().is_err());
        assert!("0".parse::<Signal>().is_err());
        assert!("".parse::<Signal>().is_err());
    }

    #[test]
    fn names_and_numbers_round_trip() {
        for &sig in Signal::ALL {
            assert_eq!(Signal::from_raw(sig.as_raw()), Some(sig));
            assert_eq!(sig.name().parse::<Signal>(), Ok(sig));
            assert_eq!(sig.to_string(), sig.name());
            assert_eq!(sig.to_rustix().as_raw(), sig.as_raw());
        }
        assert_eq!(Signal::KILL.as_raw(), 9);
        assert_eq!(Signal::from_raw(64), None);
    }
}
