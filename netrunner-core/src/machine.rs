//! The per-child state machine, free of I/O: bytes and time in, frames and events out.
//!
//! Modelled on quinn-proto: the front end feeds what it read from the
//! shepherd socket into [`ChildMachine::handle_bytes`] (and EOF into
//! [`ChildMachine::handle_eof`]), turns user requests into
//! [`ChildMachine::signal`] / [`ChildMachine::terminate`] /
//! [`ChildMachine::kill`], writes out whatever [`ChildMachine::poll_transmit`]
//! returns, and learns what happened from [`ChildMachine::poll_event`]. Time
//! is a parameter, so every transition is testable without a process.

use std::collections::VecDeque;
use std::time::Instant;

use netrunner_proto::{
    Encode, FrameDecoder, FromShepherd, Rusage, SignalTarget, SpawnStage, ToShepherd,
};
use netrunner_sys::Signal;

use crate::error::ShepherdError;
use crate::stats::{IoCounters, Stats};
use crate::ExitStatus;

/// How and when the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Its status.
    pub status: ExitStatus,
    /// CPU and memory of the whole tree.
    pub rusage: Rusage,
    /// Whether the shepherd's timeout fired first.
    pub timed_out: bool,
    /// What the command's cgroup measured, if it had one.
    pub cgroup: Option<netrunner_proto::CgroupUsage>,
    /// When the report arrived.
    pub at: Instant,
}

/// Something the front end must know about.
#[derive(Debug)]
pub enum Event {
    /// The command exec'd.
    Started {
        /// Its pid.
        pid: u32,
    },
    /// The command could not be started.
    SpawnFailed {
        /// The step that failed.
        stage: SpawnStage,
        /// The OS error.
        errno: i32,
    },
    /// The command and its whole tree are gone.
    Exited(ExitInfo),
    /// The shepherd broke the protocol or vanished before reporting an exit.
    Lost(ShepherdError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Running,
    Exited(ExitInfo),
    Failed,
}

/// The library's side of one child.
#[derive(Debug)]
pub struct ChildMachine {
    decoder: FrameDecoder,
    started_at: Instant,
    state: State,
    pid: Option<u32>,
    shepherd_pid: Option<u32>,
    events: VecDeque<Event>,
    transmit: Vec<u8>,
    terminate_requested: bool,
}

impl ChildMachine {
    /// A machine for a shepherd launched at `now`.
    pub fn new(now: Instant) -> Self {
        ChildMachine {
            decoder: FrameDecoder::new(),
            started_at: now,
            state: State::Starting,
            pid: None,
            shepherd_pid: None,
            events: VecDeque::new(),
            transmit: Vec::new(),
            terminate_requested: false,
        }
    }

    /// Bytes read from the shepherd socket at `now`.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if matches!(self.state, State::Failed) {
            return;
        }
        self.decoder.push(bytes);
        loop {
            match self.decoder.next_message::<FromShepherd>() {
                Ok(Some(msg)) => self.handle_message(now, msg),
                Ok(None) => break,
                Err(e) => {
                    self.fail(ShepherdError::Protocol(e));
                    break;
                }
            }
        }
    }

    fn handle_message(&mut self, now: Instant, msg: FromShepherd) {
        match (self.state, msg) {
            (State::Starting, FromShepherd::Started { pid, shepherd_pid }) => {
                self.pid = Some(pid);
                self.shepherd_pid = Some(shepherd_pid);
                self.state = State::Running;
                self.events.push_back(Event::Started { pid });
            }
            (State::Starting, FromShepherd::SpawnFailed { stage, errno }) => {
                self.state = State::Failed;
                self.events.push_back(Event::SpawnFailed { stage, errno });
            }
            (
                State::Running,
                FromShepherd::Exited {
                    status,
                    rusage,
                    timed_out,
                    cgroup,
                },
            ) => {
                let info = ExitInfo {
                    status: ExitStatus::from_wire(status),
                    rusage,
                    timed_out,
                    cgroup,
                    at: now,
                };
                self.state = State::Exited(info);
                self.events.push_back(Event::Exited(info));
            }
            (_, other) => {
                let _ = other;
                self.fail(ShepherdError::Protocol(
                    netrunner_proto::DecodeError::InvalidValue("message out of order"),
                ));
            }
        }
    }

    /// The shepherd socket reached end of stream.
    ///
    /// Expected after `Exited` or `SpawnFailed`; anywhere else it means the
    /// shepherd died (its child got SIGKILL from `PR_SET_PDEATHSIG`).
    pub fn handle_eof(&mut self, _now: Instant) {
        if matches!(self.state, State::Starting | State::Running) {
            self.fail(ShepherdError::Lost);
        }
    }

    fn fail(&mut self, e: ShepherdError) {
        self.state = State::Failed;
        self.events.push_back(Event::Lost(e));
    }

    /// Sends `sig` to the process group or the leader. A no-op once the
    /// command has exited (as `std::process::Child::kill` is).
    pub fn signal(&mut self, sig: Signal, target: SignalTarget) {
        if self.state == State::Running {
            ToShepherd::Signal {
                signal: sig.as_raw(),
                target,
            }
            .encode(&mut self.transmit);
        }
    }

    /// SIGTERM the tree, SIGKILL it after the kill timeout.
    pub fn terminate(&mut self) {
        if self.state == State::Running && !self.terminate_requested {
            self.terminate_requested = true;
            ToShepherd::Terminate.encode(&mut self.transmit);
        }
    }

    /// SIGKILL the tree now.
    pub fn kill(&mut self) {
        if self.state == State::Running {
            ToShepherd::Kill.encode(&mut self.transmit);
        }
    }

    /// Bytes to write to the shepherd socket, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.transmit.is_empty()).then(|| std::mem::take(&mut self.transmit))
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The command's pid once started.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The shepherd's pid as it sees itself, once the command started.
    pub fn shepherd_pid(&self) -> Option<u32> {
        self.shepherd_pid
    }

    /// The command's pid as this process numbers it, when the shepherd
    /// (born into another pid namespace) reported its own numbering.
    pub fn handle_pid_in_our_namespace(&mut self, pid: u32) {
        if self.pid.is_some() {
            self.pid = Some(pid);
        }
    }

    /// The exit, once reported.
    pub fn exit(&self) -> Option<&ExitInfo> {
        match &self.state {
            State::Exited(info) => Some(info),
            _ => None,
        }
    }

    /// Whether nothing more will come from the shepherd.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Exited(_) | State::Failed)
    }

    /// Statistics as of `now`: I/O from `counters`, wall time, and CPU and
    /// memory once the exit has been reported.
    pub fn stats(&self, now: Instant, counters: &IoCounters) -> Stats {
        let mut stats = Stats::default();
        counters.fill(&mut stats);
        let end = self.exit().map_or(now, |e| e.at);
        stats.duration = end.saturating_duration_since(self.started_at);
        if let Some(exit) = self.exit() {
            stats.user_time = std::time::Duration::from_micros(exit.rusage.user_time_us);
            stats.system_time = std::time::Duration::from_micros(exit.rusage.system_time_us);
            stats.max_rss = exit.rusage.max_rss_kib.saturating_mul(1024);
            if let Some(cgroup) = exit.cgroup {
                stats.memory_peak = cgroup.memory_peak;
                stats.cgroup_cpu_time = cgroup.cpu_usage_us.map(std::time::Duration::from_micros);
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netrunner_proto::{Decode, WireStatus, HEADER_LEN, PROTOCOL_VERSION};
    use std::time::Duration;

    fn frames(msgs: &[FromShepherd]) -> Vec<u8> {
        let mut out = FromShepherd::Hello {
            version: PROTOCOL_VERSION,
        }
        .to_frame();
        for m in msgs {
            m.encode(&mut out);
        }
        out
    }

    fn sent(machine: &mut ChildMachine) -> Vec<ToShepherd> {
        let bytes = machine.poll_transmit().unwrap_or_default();
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            out.push(ToShepherd::decode(&rest[HEADER_LEN..HEADER_LEN + len]).unwrap());
            rest = &rest[HEADER_LEN + len..];
        }
        out
    }

    #[test]
    fn lifecycle_with_injected_time() {
        let t0 = Instant::now();
        let mut m = ChildMachine::new(t0);
        let exited = FromShepherd::Exited {
            status: WireStatus::Code(3),
            rusage: Rusage {
                user_time_us: 1500,
                system_time_us: 500,
                max_rss_kib: 2,
            },
            timed_out: false,
            cgroup: Some(netrunner_proto::CgroupUsage {
                memory_peak: Some(4096),
                cpu_usage_us: Some(1700),
            }),
        };
        let bytes = frames(&[
            FromShepherd::Started {
                pid: 77,
                shepherd_pid: 1,
            },
            exited,
        ]);
        // Split across reads at an awkward point.
        m.handle_bytes(t0, &bytes[..7]);
        assert!(m.poll_event().is_none());
        m.handle_bytes(t0 + Duration::from_millis(1), &bytes[7..20]);
        assert!(matches!(m.poll_event(), Some(Event::Started { pid: 77 })));
        assert_eq!(m.pid(), Some(77));
        let counters = IoCounters::default();
        assert_eq!(
            m.stats(t0 + Duration::from_secs(1), &counters).duration,
            Duration::from_secs(1)
        );
        m.handle_bytes(t0 + Duration::from_secs(2), &bytes[20..]);
        match m.poll_event() {
            Some(Event::Exited(info)) => assert_eq!(info.status.code(), Some(3)),
            other => panic!("{other:?}"),
        }
        let stats = m.stats(t0 + Duration::from_secs(9), &counters);
        assert_eq!(
            stats.duration,
            Duration::from_secs(2),
            "duration stops at the exit"
        );
        assert_eq!(stats.user_time, Duration::from_micros(1500));
        assert_eq!(stats.max_rss, 2048);
        assert_eq!(stats.memory_peak, Some(4096));
        assert_eq!(stats.cgroup_cpu_time, Some(Duration::from_micros(1700)));
        m.handle_eof(t0 + Duration::from_secs(3));
        assert!(m.poll_event().is_none(), "EOF after exit is normal");
    }

    #[test]
    fn requests_become_frames_only_while_running() {
        let t0 = Instant::now();
        let mut m = ChildMachine::new(t0);
        m.terminate();
        assert!(
            m.poll_transmit().is_none(),
            "nothing to signal before start"
        );
        m.handle_bytes(
            t0,
            &frames(&[FromShepherd::Started {
                pid: 5,
                shepherd_pid: 1,
            }]),
        );
        m.signal(Signal::USR1, SignalTarget::Group);
        m.terminate();
        m.terminate();
        m.kill();
        assert_eq!(
            sent(&mut m),
            [
                ToShepherd::Signal {
                    signal: Signal::USR1.as_raw(),
                    target: SignalTarget::Group
                },
                ToShepherd::Terminate,
                ToShepherd::Kill
            ]
        );
        m.handle_bytes(
            t0,
            &FromShepherd::Exited {
                status: WireStatus::Code(0),
                rusage: Rusage::default(),
                timed_out: false,
                cgroup: None,
            }
            .to_frame(),
        );
        m.kill();
        assert!(
            m.poll_transmit().is_none(),
            "killing an exited child is a no-op"
        );
    }

    #[test]
    fn eof_before_exit_is_lost_and_garbage_is_a_protocol_error() {
        let t0 = Instant::now();
        let mut m = ChildMachine::new(t0);
        m.handle_bytes(
            t0,
            &frames(&[FromShepherd::Started {
                pid: 5,
                shepherd_pid: 1,
            }]),
        );
        let _ = m.poll_event();
        m.handle_eof(t0);
        assert!(matches!(
            m.poll_event(),
            Some(Event::Lost(ShepherdError::Lost))
        ));
        assert!(m.is_finished());

        let mut m = ChildMachine::new(t0);
        m.handle_bytes(t0, &[1, 0, 0, 0, 0xee]);
        assert!(matches!(
            m.poll_event(),
            Some(Event::Lost(ShepherdError::Protocol(_)))
        ));
    }
}
