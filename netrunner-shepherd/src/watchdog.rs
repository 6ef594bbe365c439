//! The escalation state machine, free of I/O: time comes in as a parameter.
//!
//! `handle_*` methods take what happened; [`Watchdog::poll_action`] hands out
//! what to do to the process tree; [`Watchdog::poll_timeout`] says when to
//! call [`Watchdog::handle_time`] next.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often the tree is swept again while being killed, for descendants that
/// re-parented to us without any SIGCHLD telling us so.
pub const RESWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// What the event loop must do to the child's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGTERM, then SIGCONT (a stopped process would sleep through its
    /// grace period), to every process of the tree in sight.
    Terminate,
    /// SIGKILL every process of the tree in sight.
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Terminating { kill_at: Instant },
    Killing { resweep_at: Instant },
}

/// Why the tree is being taken down; recorded for the exit report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The library asked (`terminate()`, drop).
    Requested,
    /// The socket closed: the owner is gone.
    OwnerGone,
    /// SIGTERM/SIGINT/SIGHUP reached the shepherd.
    ShepherdSignalled,
    /// The leader exited while other processes of its tree still ran.
    LeaderExited,
}

/// SIGTERM → grace → SIGKILL, as deadlines.
#[derive(Debug)]
pub struct Watchdog {
    phase: Phase,
    kill_timeout: Duration,
    timeout_at: Option<Instant>,
    timed_out: bool,
    actions: VecDeque<Action>,
}

impl Watchdog {
    /// A watchdog for a child started at `now`.
    pub fn new(now: Instant, kill_timeout: Duration, timeout: Option<Duration>) -> Self {
        Watchdog {
            phase: Phase::Running,
            kill_timeout,
            timeout_at: timeout.map(|t| now + t),
            timed_out: false,
            actions: VecDeque::new(),
        }
    }

    /// Start the graceful escalation (no-op once it has started).
    pub fn handle_terminate(&mut self, now: Instant, _cause: Cause) {
        if self.phase != Phase::Running {
            return;
        }
        if self.kill_timeout.is_zero() {
            return self.handle_kill(now);
        }
        self.actions.push_back(Action::Terminate);
        self.phase = Phase::Terminating {
            kill_at: now + self.kill_timeout,
        };
    }

    /// Skip the grace period: SIGKILL now.
    pub fn handle_kill(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Killing { .. }) {
            return;
        }
        self.actions.push_back(Action::Kill);
        self.phase = Phase::Killing {
            resweep_at: now + RESWEEP_INTERVAL,
        };
    }

    /// Time has advanced to `now`: fire whatever deadline passed.
    pub fn handle_time(&mut self, now: Instant) {
        match self.phase {
            Phase::Running => {
                if self.timeout_at.is_some_and(|t| now >= t) {
                    self.timed_out = true;
                    self.handle_terminate(now, Cause::Requested);
                }
            }
            Phase::Terminating { kill_at } => {
                if now >= kill_at {
                    self.handle_kill(now);
                }
            }
            Phase::Killing { resweep_at } => {
                if now >= resweep_at {
                    self.actions.push_back(Action::Kill);
                    self.phase = Phase::Killing {
                        resweep_at: now + RESWEEP_INTERVAL,
                    };
                }
            }
        }
    }

    /// The next thing to do to the tree.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Watchdog::handle_time`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Running => self.timeout_at,
            Phase::Terminating { kill_at } => Some(kill_at),
            Phase::Killing { resweep_at } => Some(resweep_at),
        }
    }

    /// Whether the run's timeout fired.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether the tree is being taken down.
    pub fn escalating(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Whether SIGKILL has been sent.
    pub fn killing(&self) -> bool {
        matches!(self.phase, Phase::Killing { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut Watchdog) -> Vec<Action> {
        std::iter::from_fn(|| w.poll_action()).collect()
    }

    #[test]
    fn terminate_then_kill_after_grace() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, Duration::from_secs(5), None);
        assert_eq!(w.poll_timeout(), None);
        w.handle_terminate(t0, Cause::Requested);
        assert_eq!(drain(&mut w), [Action::Terminate]);
        assert_eq!(w.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        // A second request during the grace period changes nothing.
        w.handle_terminate(t0 + Duration::from_secs(1), Cause::OwnerGone);
        assert!(drain(&mut w).is_empty());
        w.handle_time(t0 + Duration::from_millis(4999));
        assert!(drain(&mut w).is_empty());
        w.handle_time(t0 + Duration::from_secs(5));
        assert_eq!(drain(&mut w), [Action::Kill]);
        assert!(w.killing());
        assert!(!w.timed_out());
    }

    #[test]
    fn timeout_fires_once_and_is_recorded() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, Duration::from_secs(2), Some(Duration::from_millis(300)));
        assert_eq!(w.poll_timeout(), Some(t0 + Duration::from_millis(300)));
        w.handle_time(t0 + Duration::from_millis(299));
        assert!(drain(&mut w).is_empty() && !w.timed_out());
        w.handle_time(t0 + Duration::from_millis(300));
        assert_eq!(drain(&mut w), [Action::Terminate]);
        assert!(w.timed_out());
        assert_eq!(w.poll_timeout(), Some(t0 + Duration::from_millis(2300)));
    }

    #[test]
    fn kill_skips_grace_and_resweeps() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, Duration::from_secs(5), None);
        w.handle_kill(t0);
        assert_eq!(drain(&mut w), [Action::Kill]);
        w.handle_terminate(t0, Cause::Requested);
        assert!(drain(&mut w).is_empty(), "terminate after kill is a no-op");
        w.handle_time(t0 + RESWEEP_INTERVAL);
        assert_eq!(drain(&mut w), [Action::Kill]);
        assert_eq!(w.poll_timeout(), Some(t0 + RESWEEP_INTERVAL * 2));
    }

    #[test]
    fn zero_grace_goes_straight_to_kill() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, Duration::ZERO, None);
        w.handle_terminate(t0, Cause::LeaderExited);
        assert_eq!(drain(&mut w), [Action::Kill]);
    }
}
