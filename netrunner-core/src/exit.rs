//! How a command ended: exit code, or signal and core dump, never conflated.

use std::fmt;

use netrunner_proto::WireStatus;
use netrunner_sys::Signal;

/// The final status of a command.
///
/// Unlike a shell's `$?`, a death by SIGTERM and `exit 143` are different
/// values: [`ExitStatus::code`] is `None` for the first and `Some(143)` for
/// the second.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus(WireStatus);

impl ExitStatus {
    /// Wraps the status the shepherd reported.
    pub fn from_wire(status: WireStatus) -> Self {
        ExitStatus(status)
    }

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.0 == WireStatus::Code(0)
    }

    /// The exit code, if the command exited normally.
    pub fn code(&self) -> Option<i32> {
        match self.0 {
            WireStatus::Code(c) => Some(c),
            WireStatus::Signal { .. } => None,
        }
    }

    /// The signal that killed the command, if one did and it is a standard signal.
    pub fn signal(&self) -> Option<Signal> {
        self.raw_signal().and_then(Signal::from_raw)
    }

    /// The raw number of the signal that killed the command (real-time signals included).
    pub fn raw_signal(&self) -> Option<i32> {
        match self.0 {
            WireStatus::Signal { signal, .. } => Some(signal),
            WireStatus::Code(_) => None,
        }
    }

    /// Whether the killing signal produced a core dump.
    pub fn core_dumped(&self) -> bool {
        matches!(
            self.0,
            WireStatus::Signal {
                core_dumped: true,
                ..
            }
        )
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            WireStatus::Code(c) => write!(f, "exit code {c}"),
            WireStatus::Signal {
                signal,
                core_dumped,
            } => {
                match Signal::from_raw(signal) {
                    Some(sig) => write!(f, "killed by {sig}")?,
                    None => write!(f, "killed by signal {signal}")?,
                }
                if core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExitStatus({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_signal_stay_apart() {
        let term = ExitStatus::from_wire(WireStatus::Signal {
            signal: 15,
            core_dumped: false,
        });
        let code143 = ExitStatus::from_wire(WireStatus::Code(143));
        assert_eq!(term.code(), None);
        assert_eq!(term.signal(), Some(Signal::TERM));
        assert_eq!(code143.code(), Some(143));
        assert_eq!(code143.signal(), None);
        assert!(!term.success() && !code143.success());
        assert_eq!(term.to_string(), "killed by SIGTERM");
        assert_eq!(code143.to_string(), "exit code 143");
        let core = ExitStatus::from_wire(WireStatus::Signal {
            signal: 11,
            core_dumped: true,
        });
        assert!(core.core_dumped());
        assert_eq!(core.to_string(), "killed by SIGSEGV (core dumped)");
        let rt = ExitStatus::from_wire(WireStatus::Signal {
            signal: 40,
            core_dumped: false,
        });
        assert_eq!((rt.signal(), rt.raw_signal()), (None, Some(40)));
        assert!(ExitStatus::from_wire(WireStatus::Code(0)).success());
    }
}
