//! Supervision of a daemon as a sans-IO state machine: when to start a run,
//! when to give up, and what to tell the user.
//!
//! Inputs are what happened and when (`handle_*`, time as a parameter);
//! outputs are what to do next ([`Supervisor::poll_action`]), the next
//! deadline ([`Supervisor::poll_timeout`]) and the events for subscribers
//! ([`Supervisor::poll_event`]). A front end owns the processes; this owns
//! the decisions, so they are tested here without any.
//!
//! The rules, as systemd and OTP supervisors have them:
//! - [`Restart::OnFailure`] (the default) restarts after a non-zero exit, a
//!   death by any signal but SIGTERM, SIGINT, SIGHUP or SIGPIPE (a clean
//!   stop, as systemd counts it), or a run that was not ready within the
//!   start timeout. [`Restart::Always`] restarts after any end;
//!   [`Restart::Never`] after none. A stop asked for never restarts.
//! - The delay before a restart starts at the first backoff and doubles up
//!   to the cap, with ±10 % jitter from an injected source; a run that
//!   stayed up longer than the cap resets it to the first delay.
//! - More than `max_restarts` restarts within the window: give up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::ExitStatus;

/// When a daemon is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// After any end of a run.
    Always,
    /// After a failure: non-zero exit, death by a signal other than
    /// SIGTERM/SIGINT/SIGHUP/SIGPIPE, or not ready within the start timeout.
    #[default]
    OnFailure,
    /// Never.
    Never,
}

/// The supervision policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// When to restart.
    pub restart: Restart,
    /// The first delay before a restart.
    pub backoff_first: Duration,
    /// The longest delay; also how long a run must stay up for the delay
    /// to go back to the first.
    pub backoff_cap: Duration,
    /// At most this many restarts within [`Policy::restart_window`].
    pub max_restarts: u32,
    /// The window [`Policy::max_restarts`] counts in.
    pub restart_window: Duration,
    /// Whether a run is up only once it says so (else: once spawned).
    pub waits_for_ready: bool,
    /// How long a run may take to be ready before it counts as failed.
    pub start_timeout: Option<Duration>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            restart: Restart::OnFailure,
            backoff_first: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(30),
            max_restarts: 5,
            restart_window: Duration::from_secs(10),
            waits_for_ready: false,
            start_timeout: None,
        }
    }
}

/// Where a supervised daemon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonState {
    /// A run was started and is not ready yet.
    Starting,
    /// The current run is up.
    Running,
    /// Waiting before the next run.
    BackingOff,
    /// Ended for good: stopped, or ended without a restart due.
    Stopped,
    /// Too many restarts: supervision gave up.
    GaveUp,
}

/// Something that happened to a supervised daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonEvent {
    /// Run number `run` (from 1) started as `pid`.
    Started {
        /// The command's pid.
        pid: u32,
        /// Which run this is, from 1.
        run: u32,
    },
    /// The run became ready.
    Ready {
        /// The command's pid.
        pid: u32,
    },
    /// The run ended.
    Exited {
        /// The command's pid.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// How long it ran.
        uptime: Duration,
        /// The last lines it wrote to stderr (at most [`STDERR_TAIL`]
        /// bytes, whole lines, each ending in `\n`).
        stderr_tail: Vec<u8>,
    },
    /// The next run starts after `delay`.
    Restarting {
        /// The delay.
        delay: Duration,
        /// Restarts so far, this one included.
        restarts: u32,
    },
    /// Too many restarts: no more runs.
    GaveUp {
        /// Restarts made.
        restarts: u32,
    },
    /// Supervision ended without giving up (a stop, or an end with no
    /// restart due).
    Stopped,
}

/// What the front end must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a run; report it with [`Supervisor::handle_started`] or
    /// [`Supervisor::handle_start_failed`].
    Spawn,
    /// Stop the current run gracefully (SIGTERM, grace, SIGKILL) and report
    /// its end with [`Supervisor::handle_exited`].
    Terminate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the front end to report the spawn it was asked for.
    Spawning,
    Starting,
    Running,
    BackingOff,
    /// A terminate was asked for; waiting for the exit.
    Ending,
    Stopped,
    GaveUp,
}

/// Why the current run is being terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Not ready in time: a failure.
    StartTimeout,
    /// A restart was asked for: run again at once.
    Restart,
    /// A stop was asked for: no more runs.
    Stop,
}

/// The supervision state machine of one daemon.
pub struct Supervisor {
    policy: Policy,
    phase: Phase,
    ending: Option<Ending>,
    /// Runs started.
    runs: u32,
    /// Restarts made.
    restarts: u32,
    /// When recent restarts happened, for the intensity window.
    recent: VecDeque<Instant>,
    next_delay: Duration,
    pid: Option<u32>,
    started_at: Option<Instant>,
    up_since: Option<Instant>,
    deadline: Option<Instant>,
    last_exit: Option<ExitStatus>,
    actions: VecDeque<Action>,
    events: VecDeque<DaemonEvent>,
    /// Jitter source: a number in [0, 1) per delay.
    jitter: Box<dyn FnMut() -> f64 + Send>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("phase", &self.phase)
            .field("runs", &self.runs)
            .field("restarts", &self.restarts)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor that starts the first run at once, with `jitter`
    /// giving a number in [0, 1) for each delay.
    pub fn new(policy: Policy, jitter: impl FnMut() -> f64 + Send + 'static) -> Self {
        let next_delay = policy.backoff_first;
        Supervisor {
            policy,
            phase: Phase::Spawning,
            ending: None,
            runs: 0,
            restarts: 0,
            recent: VecDeque::new(),
            next_delay,
            pid: None,
            started_at: None,
            up_since: None,
            deadline: None,
            last_exit: None,
            actions: VecDeque::from([Action::Spawn]),
            events: VecDeque::new(),
            jitter: Box::new(jitter),
        }
    }

    /// A jitter source from the clock: good enough to spread restarts.
    pub fn clock_jitter() -> impl FnMut() -> f64 + Send + 'static {
        let mut state = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            | 1;
        move || {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The run was started as `pid` at `now`.
    pub fn handle_started(&mut self, now: Instant, pid: u32) {
        if self.phase != Phase::Spawning {
            return;
        }
        self.runs += 1;
        self.pid = Some(pid);
        self.started_at = Some(now);
        self.events.push_back(DaemonEvent::Started {
            pid,
            run: self.runs,
        });
        if self.ending == Some(Ending::Stop) {
            // A stop arrived while the spawn was in flight.
            self.terminate(Ending::Stop);
        } else if self.policy.waits_for_ready {
            self.phase = Phase::Starting;
            self.deadline = self.policy.start_timeout.map(|t| now + t);
        } else {
            self.become_ready(now);
        }
    }

    /// Starting the run failed (the program is gone, ...): a failed run.
    pub fn handle_start_failed(&mut self, now: Instant) {
        if self.phase != Phase::Spawning {
            return;
        }
        self.runs += 1;
        if self.ending.take() == Some(Ending::Stop) {
            self.finish(DaemonEvent::Stopped, Phase::Stopped);
        } else {
            self.after_run(now, true);
        }
    }

    /// The current run said it is ready.
    pub fn handle_ready(&mut self, now: Instant) {
        if self.phase == Phase::Starting {
            self.become_ready(now);
        }
    }

    /// The current run ended with `status`.
    pub fn handle_exited(&mut self, now: Instant, status: ExitStatus) {
        self.handle_exited_with_tail(now, status, Vec::new());
    }

    /// The current run ended with `status`, its stderr ending with
    /// `stderr_tail`.
    pub fn handle_exited_with_tail(
        &mut self,
        now: Instant,
        status: ExitStatus,
        stderr_tail: Vec<u8>,
    ) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        let uptime = self
            .started_at
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        self.last_exit = Some(status);
        self.events.push_back(DaemonEvent::Exited {
            pid,
            status,
            uptime,
            stderr_tail,
        });
        let failed = match self.ending.take() {
            Some(Ending::Stop) => {
                self.finish(DaemonEvent::Stopped, Phase::Stopped);
                return;
            }
            Some(Ending::Restart) => {
                self.restart_at_once();
                return;
            }
            Some(Ending::StartTimeout) => true,
            None => is_failure(status),
        };
        // A run that stayed up longer than the cap starts the delays over.
        if self
            .up_since
            .is_some_and(|up| now.saturating_duration_since(up) > self.policy.backoff_cap)
        {
            self.next_delay = self.policy.backoff_first;
        }
        self.after_run(now, failed);
    }

    /// A stop was asked for: the current run ends, none follows.
    pub fn handle_stop(&mut self, _now: Instant) {
        match self.phase {
            Phase::Starting | Phase::Running => self.terminate(Ending::Stop),
            Phase::Ending => self.ending = Some(Ending::Stop),
            Phase::Spawning => {
                // The spawn in flight is reported next; stop it then.
                self.ending = Some(Ending::Stop);
            }
            Phase::BackingOff => self.finish(DaemonEvent::Stopped, Phase::Stopped),
            Phase::Stopped | Phase::GaveUp => {}
        }
    }

    /// A restart was asked for: the current run ends and the next starts
    /// at once (not counted against `max_restarts`).
    pub fn handle_restart(&mut self, _now: Instant) {
        match self.phase {
            Phase::Starting | Phase::Running => self.terminate(Ending::Restart),
            Phase::BackingOff => self.restart_at_once(),
            _ => {}
        }
    }

    /// A restart asked for: counted, announced with no delay, and kept out
    /// of the intensity window (it is no failure).
    fn restart_at_once(&mut self) {
        self.restarts += 1;
        self.events.push_back(DaemonEvent::Restarting {
            delay: Duration::ZERO,
            restarts: self.restarts,
        });
        self.deadline = None;
        self.phase = Phase::Spawning;
        self.actions.push_back(Action::Spawn);
    }

    /// Time passed: a backoff or a start timeout may have run out.
    pub fn handle_time(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        match self.phase {
            Phase::BackingOff => {
                self.phase = Phase::Spawning;
                self.actions.push_back(Action::Spawn);
            }
            Phase::Starting => self.terminate(Ending::StartTimeout),
            _ => {}
        }
    }

    /// What to do next.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for subscribers.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<DaemonEvent> {
        self.events.pop_front()
    }

    /// When [`Supervisor::handle_time`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Where the daemon is.
    pub fn state(&self) -> DaemonState {
        match self.phase {
            Phase::Spawning | Phase::Starting => DaemonState::Starting,
            Phase::Running => DaemonState::Running,
            Phase::Ending => match self.ending {
                Some(Ending::Stop) => DaemonState::Stopped,
                _ => DaemonState::Starting,
            },
            Phase::BackingOff => DaemonState::BackingOff,
            Phase::Stopped => DaemonState::Stopped,
            Phase::GaveUp => DaemonState::GaveUp,
        }
    }

    /// Whether supervision is over (stopped or gave up).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Stopped | Phase::GaveUp)
    }

    /// Whether a readiness signal from the current run is awaited now: it
    /// has started, is not up yet, and the policy waits for one. Front ends
    /// listen for readiness only then (a set flag must not wake them again
    /// once the run is up or being stopped).
    pub fn awaits_ready(&self) -> bool {
        self.phase == Phase::Starting && self.policy.waits_for_ready
    }

    /// Whether the current run is up (ready).
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Running
    }

    /// The current run's pid.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Restarts made.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// How the last run ended.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }

    fn become_ready(&mut self, now: Instant) {
        self.phase = Phase::Running;
        self.deadline = None;
        self.up_since = Some(now);
        if let Some(pid) = self.pid {
            self.events.push_back(DaemonEvent::Ready { pid });
        }
    }

    fn terminate(&mut self, why: Ending) {
        self.ending = Some(why);
        self.deadline = None;
        self.phase = Phase::Ending;
        self.actions.push_back(Action::Terminate);
    }

    fn finish(&mut self, event: DaemonEvent, phase: Phase) {
        self.deadline = None;
        self.phase = phase;
        self.events.push_back(event);
    }

    /// After a run ended (`failed` or not) with no stop or restart asked.
    fn after_run(&mut self, now: Instant, failed: bool) {
        self.up_since = None;
        let restart = match self.policy.restart {
            Restart::Always => true,
            Restart::OnFailure => failed,
            Restart::Never => false,
        };
        if !restart {
            self.finish(DaemonEvent::Stopped, Phase::Stopped);
            return;
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > self.policy.restart_window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            self.finish(
                DaemonEvent::GaveUp {
                    restarts: self.restarts,
                },
                Phase::GaveUp,
            );
            return;
        }
        self.recent.push_back(now);
        self.restarts += 1;
        let spread = 0.9 + 0.2 * (self.jitter)().clamp(0.0, 1.0);
        let delay = self.next_delay.mul_f64(spread);
        self.next_delay = (self.next_delay * 2).min(self.policy.backoff_cap);
        self.events.push_back(DaemonEvent::Restarting {
            delay,
            restarts: self.restarts,
        });
        self.phase = Phase::BackingOff;
        self.deadline = Some(now + delay);
    }
}

/// Whether a run that ended with `status` failed: a non-zero exit, or a
/// death by a signal other than the clean-stop ones.
pub fn is_failure(status: ExitStatus) -> bool {
    use netrunner_sys::Signal;
    match status.signal() {
        Some(sig) => ![Signal::TERM, Signal::INT, Signal::HUP, Signal::PIPE].contains(&sig),
        None => !status.success(),
    }
}

/// Longest output line handed to a daemon's output callback; longer lines
/// are cut there.
pub const MAX_LINE: usize = 64 << 10;

/// How many past events a new subscriber is given first.
pub const HISTORY: usize = 256;

/// How much of a run's stderr its `Exited` event keeps: the last lines,
/// up to this many bytes.
pub const STDERR_TAIL: usize = 4 << 10;

/// Which of the command's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// When a run counts as up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ready {
    /// As soon as it started.
    #[default]
    Spawned,
    /// Once a line on stdout or stderr contains this text.
    Line(String),
    /// Once it sends `READY=1` to the socket named in its `NOTIFY_SOCKET`
    /// environment variable, as under systemd (`sd_notify(3)`,
    /// `systemd-notify --ready`).
    SdNotify,
    /// Once it writes a newline to this descriptor number, which it is
    /// given (the write end of a pipe), as s6 does.
    NotifyFd(i32),
}

/// A daemon's output callback.
pub type OutputCallback = dyn FnMut(OutputStream, &[u8]) + Send;

/// A front end that can supervise daemons.
pub trait DaemonFrontEnd: crate::FrontEnd {
    /// The handle to a supervised daemon.
    type Daemon;
    /// Starts the first run and supervision.
    fn start_daemon(builder: DaemonBuilder<Self>) -> Result<Self::Daemon, crate::Error>;
}

/// A daemon being configured; `start()` hands it to the front end.
pub struct DaemonBuilder<F> {
    /// The command each run executes.
    pub command: crate::Command<F>,
    /// The supervision policy.
    pub policy: Policy,
    /// When a run counts as up.
    pub ready: Ready,
    /// The output callback, if any.
    pub on_output: Option<Box<OutputCallback>>,
}

impl<F> std::fmt::Debug for DaemonBuilder<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonBuilder")
            .field("policy", &self.policy)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl<F> DaemonBuilder<F> {
    /// A daemon running `command`, with the default policy.
    pub fn new(command: crate::Command<F>) -> Self {
        DaemonBuilder {
            command,
            policy: Policy::default(),
            ready: Ready::Spawned,
            on_output: None,
        }
    }

    /// When to restart (default [`Restart::OnFailure`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.policy.restart = restart;
        self
    }

    /// First delay before a restart and its cap (default 100 ms, 30 s).
    /// Each delay doubles the last, with ±10 % jitter; a run that stayed up
    /// longer than the cap starts over at the first.
    pub fn backoff(mut self, first: Duration, cap: Duration) -> Self {
        self.policy.backoff_first = first;
        self.policy.backoff_cap = cap.max(first);
        self
    }

    /// Gives up after more than `restarts` restarts within `window`
    /// (default 5 in 10 s).
    pub fn max_restarts(mut self, restarts: u32, window: Duration) -> Self {
        self.policy.max_restarts = restarts;
        self.policy.restart_window = window;
        self
    }

    /// When a run counts as up (default [`Ready::Spawned`]).
    pub fn ready(mut self, ready: Ready) -> Self {
        self.policy.waits_for_ready = ready != Ready::Spawned;
        self.ready = ready;
        self
    }

    /// A run not ready this long after it started has failed: it is
    /// terminated, and restarted by policy.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.policy.start_timeout = Some(timeout);
        self
    }

    /// Called with every line of output (without its `\n`). Without it
    /// output is discarded (still drained).
    pub fn on_output(mut self, f: impl FnMut(OutputStream, &[u8]) + Send + 'static) -> Self {
        self.on_output = Some(Box::new(f));
        self
    }

    /// The line handling this configuration asks for.
    pub fn line_sink(&mut self) -> LineSink {
        LineSink {
            ready_line: match &self.ready {
                Ready::Line(text) => Some(text.clone().into_bytes()),
                Ready::Spawned | Ready::SdNotify | Ready::NotifyFd(_) => None,
            },
            output: std::sync::Arc::new(std::sync::Mutex::new(
                self.on_output
                    .take()
                    .unwrap_or_else(|| Box::new(|_: OutputStream, _: &[u8]| {})),
            )),
            stderr_tail: Default::default(),
        }
    }
}

impl<F: DaemonFrontEnd> DaemonBuilder<F> {
    /// Starts the first run and supervision. A spawn error of the first
    /// run (not found, ...) is returned here, and nothing is left running.
    pub fn start(self) -> Result<F::Daemon, crate::Error> {
        F::start_daemon(self)
    }
}

/// Where a daemon's output lines go: the callback, the readiness check,
/// and the tail of stderr kept for the run's `Exited` event.
#[derive(Clone)]
pub struct LineSink {
    ready_line: Option<Vec<u8>>,
    output: std::sync::Arc<std::sync::Mutex<Box<OutputCallback>>>,
    stderr_tail: std::sync::Arc<std::sync::Mutex<VecDeque<u8>>>,
}

impl LineSink {
    /// Hands one line (as read, with or without its `\n`) to the callback;
    /// returns whether it contains the ready text.
    pub fn deliver(&self, which: OutputStream, line: &[u8]) -> bool {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let ready = self.ready_line.as_ref().is_some_and(|needle| {
            needle.is_empty() || text.windows(needle.len()).any(|w| w == &needle[..])
        });
        if which == OutputStream::Stderr {
            let mut tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
            tail.extend(text);
            tail.push_back(b'\n');
            // Whole lines only: drop from the front up to a line start.
            while tail.len() > STDERR_TAIL {
                while tail.pop_front().is_some_and(|b| b != b'\n') {}
            }
        }
        (self.output.lock().unwrap_or_else(|e| e.into_inner()))(which, text);
        ready
    }

    /// The kept tail of stderr, emptied for the next run.
    pub fn take_stderr_tail(&self) -> Vec<u8> {
        let mut tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.drain(..).collect()
    }
}

/// What a daemon's handle shows of its supervisor, and the events so far.
#[derive(Debug, Default)]
pub struct Published {
    /// Where the daemon is (`None` before the first publication).
    pub state: Option<DaemonState>,
    /// The current run's pid.
    pub pid: Option<u32>,
    /// Restarts so far.
    pub restarts: u32,
    /// How the last run ended.
    pub last_exit: Option<ExitStatus>,
    /// Whether the current run is up.
    pub ready: bool,
    /// Whether supervision is over.
    pub finished: bool,
    /// The latest [`HISTORY`] events, replayed to a new subscriber.
    pub history: VecDeque<DaemonEvent>,
}

impl Published {
    /// Takes `supervisor`'s new events (each handed to `send` and kept in
    /// the history) and its state.
    pub fn update(&mut self, supervisor: &mut Supervisor, mut send: impl FnMut(&DaemonEvent)) {
        while let Some(event) = supervisor.poll_event() {
            send(&event);
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(event);
        }
        self.state = Some(supervisor.state());
        self.pid = supervisor.pid();
        self.restarts = supervisor.restarts();
        self.last_exit = supervisor.last_exit();
        self.ready = supervisor.is_ready();
        self.finished = supervisor.is_finished();
    }

    /// The error `wait_ready` gives once supervision is over.
    pub fn over(&self) -> crate::Error {
        crate::Error::Daemon(
            match self.state {
                Some(DaemonState::GaveUp) => "gave up: too many restarts",
                _ => "was stopped",
            }
            .into(),
        )
    }
}

/// The socket a run reports readiness on, as under systemd: its path is
/// in `NOTIFY_SOCKET`, and a datagram with a `READY=1` line means ready.
///
/// It lives in a directory of its own (mode 0700) under the temporary
/// directory, so only this user's processes can reach it; both go when it
/// is dropped.
#[derive(Debug)]
pub struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    dir: std::path::PathBuf,
}

impl NotifySocket {
    /// A new socket in a new private directory.
    pub fn new() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "netrunner-notify-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        match std::os::unix::net::UnixDatagram::bind(dir.join("notify")) {
            Ok(socket) => Ok(NotifySocket { socket, dir }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.join("notify")
    }

    /// The socket, to read datagrams from.
    pub fn socket(&self) -> &std::os::unix::net::UnixDatagram {
        &self.socket
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Whether a notification datagram says the service is ready (a
/// `READY=1` line, as `sd_notify(3)` sends it).
pub fn says_ready(datagram: &[u8]) -> bool {
    datagram
        .split(|&b| b == b'\n')
        .any(|line| line == b"READY=1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use netrunner_proto::WireStatus;

    fn code(c: i32) -> ExitStatus {
        ExitStatus::from_wire(WireStatus::Code(c))
    }

    fn signal(s: i32) -> ExitStatus {
        ExitStatus::from_wire(WireStatus::Signal {
            signal: s,
            core_dumped: false,
        })
    }

    fn policy() -> Policy {
        Policy {
            backoff_first: Duration::from_millis(50),
            backoff_cap: Duration::from_millis(200),
            max_restarts: 3,
            restart_window: Duration::from_secs(10),
            ..Policy::default()
        }
    }

    /// No jitter: the middle of the range.
    fn steady() -> impl FnMut() -> f64 + Send + 'static {
        || 0.5
    }

    fn events(s: &mut Supervisor) -> Vec<DaemonEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// Drives `s` through one run that starts at `t` and exits with
    /// `status` `up` later; returns the time of the exit.
    fn run_once(
        s: &mut Supervisor,
        t: Instant,
        pid: u32,
        up: Duration,
        status: ExitStatus,
    ) -> Instant {
        assert_eq!(s.poll_action(), Some(Action::Spawn));
        s.handle_started(t, pid);
        s.handle_exited(t + up, status);
        t + up
    }

    #[test]
    fn a_crash_loop_backs_off_doubling_then_gives_up() {
        let t0 = Instant::now();
        let mut s = Supervisor::new(policy(), steady());
        let mut t = t0;
        let mut delays = Vec::new();
        for pid in 1..=4 {
            t = run_once(&mut s, t, pid, Duration::from_millis(1), code(3));
            if let Some(at) = s.poll_timeout() {
                delays.push(at - t);
                t = at;
                s.handle_time(t);
            }
        }
        assert_eq!(
            delays,
            [50, 100, 200].map(Duration::from_millis).to_vec(),
            "first delay, doubled, capped"
        );
        assert_eq!(s.state(), DaemonState::GaveUp);
        assert_eq!(s.restarts(), 3);
        assert_eq!(s.last_exit(), Some(code(3)));
        assert_eq!(s.poll_action(), None, "no fifth run");
        let all = events(&mut s);
        assert_eq!(all.last(), Some(&DaemonEvent::GaveUp { restarts: 3 }));
        assert_eq!(
            all.iter()
                .filter(|e| matches!(e, DaemonEvent::Started { .. }))
                .count(),
            4
        );
    }

    #[test]
    fn jitter_spreads_a_delay_by_ten_percent_either_way() {
        for (j, expected) in [(0.0, 45), (1.0, 55)] {
            let mut s = Supervisor::new(policy(), move || j);
            let t = run_once(&mut s, Instant::now(), 1, Duration::ZERO, code(1));
            assert_eq!(
                s.poll_timeout().unwrap() - t,
                Duration::from_millis(expected)
            );
        }
    }

    #[test]
    fn ready_datagrams() {
        assert!(says_ready(b"READY=1"));
        assert!(says_ready(b"STATUS=up\nREADY=1\n"));
        assert!(!says_ready(b"READY=0\nSTATUS=READY=1"));
        let socket = NotifySocket::new().unwrap();
        let path = socket.path();
        let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
        sender.send_to(b"READY=1", &path).unwrap();
        let mut buf = [0u8; 64];
        let n = socket.socket().recv(&mut buf).unwrap();
        assert!(says_ready(&buf[..n]));
        drop(socket);
        assert!(!path.exists());
    }

    #[test]
    fn what_counts_as_failure_follows_systemd() {
        assert!(is_failure(code(3)));
        assert!(!is_failure(code(0)));
        assert!(is_failure(signal(9)));
        assert!(is_failure(signal(11)));
        for clean in [15, 2, 1, 13] {
            assert!(!is_failure(signal(clean)), "signal {clean}");
        }
    }

    #[test]
    fn restart_policies() {
        let t = Instant::now();
        // OnFailure after exit 0: stopped.
        let mut s = Supervisor::new(policy(), steady());
        run_once(&mut s, t, 1, Duration::ZERO, code(0));
        assert_eq!(s.state(), DaemonState::Stopped);
        assert_eq!(events(&mut s).last(), Some(&DaemonEvent::Stopped));
        // Always after exit 0: restarts.
        let mut s = Supervisor::new(
            Policy {
                restart: Restart::Always,
                ..policy()
            },
            steady(),
        );
        run_once(&mut s, t, 1, Duration::ZERO, code(0));
        assert_eq!(s.state(), DaemonState::BackingOff);
        // Never after exit 3: stopped.
        let mut s = Supervisor::new(
            Policy {
                restart: Restart::Never,
                ..policy()
            },
            steady(),
        );
        run_once(&mut s, t, 1, Duration::ZERO, code(3));
        assert_eq!(s.state(), DaemonState::Stopped);
    }

    #[test]
    fn a_long_run_resets_the_delay_and_old_restarts_leave_the_window() {
        let mut s = Supervisor::new(policy(), steady());
        let mut t = Instant::now();
        for _ in 0..2 {
            run_once(&mut s, t, 1, Duration::ZERO, code(1));
            t = s.poll_timeout().unwrap();
            s.handle_time(t);
        }
        // Third delay would be 200 ms; a run up 1 s (> cap) resets it.
        t = run_once(&mut s, t, 2, Duration::from_secs(1), code(1));
        assert_eq!(s.poll_timeout().unwrap() - t, Duration::from_millis(50));
        // Eleven seconds later the earlier restarts no longer count.
        t = s.poll_timeout().unwrap();
        s.handle_time(t);
        t = run_once(&mut s, t, 3, Duration::from_secs(11), code(1));
        assert_eq!(s.state(), DaemonState::BackingOff, "not given up");
        assert!(s.poll_timeout().is_some_and(|d| d > t));
    }

    #[test]
    fn readiness_and_the_start_timeout() {
        let waits = Policy {
            waits_for_ready: true,
            start_timeout: Some(Duration::from_millis(300)),
            ..policy()
        };
        let t = Instant::now();
        let mut s = Supervisor::new(waits.clone(), steady());
        assert_eq!(s.poll_action(), Some(Action::Spawn));
        s.handle_started(t, 7);
        assert_eq!(s.state(), DaemonState::Starting);
        s.handle_ready(t + Duration::from_millis(100));
        assert!(s.is_ready());
        assert_eq!(s.poll_timeout(), None);

        // Never ready: terminated at the deadline, and that run failed.
        let mut s = Supervisor::new(waits, steady());
        assert_eq!(s.poll_action(), Some(Action::Spawn));
        s.handle_started(t, 8);
        let deadline = s.poll_timeout().unwrap();
        assert_eq!(deadline - t, Duration::from_millis(300));
        s.handle_time(deadline);
        assert_eq!(s.poll_action(), Some(Action::Terminate));
        s.handle_exited(deadline, signal(15));
        assert_eq!(
            s.state(),
            DaemonState::BackingOff,
            "a start timeout is a failure"
        );
        assert_eq!(s.restarts(), 1);
    }

    #[test]
    fn stop_and_restart_on_request() {
        let t = Instant::now();
        let mut s = Supervisor::new(policy(), steady());
        assert_eq!(s.poll_action(), Some(Action::Spawn));
        s.handle_started(t, 1);
        // Restart: terminate, then a new run at once, announced with no
        // delay and kept out of the intensity window.
        s.handle_restart(t);
        assert_eq!(s.poll_action(), Some(Action::Terminate));
        s.handle_exited(t, signal(15));
        assert_eq!(s.poll_action(), Some(Action::Spawn));
        assert_eq!(s.restarts(), 1);
        assert!(events(&mut s).contains(&DaemonEvent::Restarting {
            delay: Duration::ZERO,
            restarts: 1
        }));
        assert!(s.recent.is_empty());
        s.handle_started(t, 2);
        // Stop: terminate, then nothing.
        s.handle_stop(t);
        assert_eq!(s.poll_action(), Some(Action::Terminate));
        s.handle_exited(t, code(1));
        assert_eq!(s.state(), DaemonState::Stopped);
        assert_eq!(s.poll_action(), None);
        // Stop while backing off: at once.
        let mut s = Supervisor::new(policy(), steady());
        run_once(&mut s, t, 1, Duration::ZERO, code(1));
        s.handle_stop(t);
        assert_eq!(s.state(), DaemonState::Stopped);
        assert_eq!(s.poll_timeout(), None);
    }
}
