//! Supervised daemons for tokio: one task per daemon drives
//! [`netrunner_core::supervise::Supervisor`] and owns the runs; no thread
//! per daemon.
//!
//! Each run is a plain [`Child`]: its tree dies on stop, drop and owner
//! death like any other. Its stdout and stderr are always piped and drained
//! by one task each, split into lines of at most [`MAX_LINE`] bytes, and
//! handed to the output callback.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use netrunner_core::supervise::{says_ready, Action, NotifySocket, Policy, Supervisor};
pub use netrunner_core::supervise::{DaemonEvent, DaemonState, Restart};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use crate::{Child, ChildStdin, Command, Error, ExitStatus, Signal, Stdio};

/// Longest output line handed to the callback; longer lines are cut there.
pub const MAX_LINE: usize = 64 << 10;

/// How many past events a new subscriber is given first.
const HISTORY: usize = 256;

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
    /// environment variable, as under systemd (`sd_notify(3)`).
    SdNotify,
}

type OutputCallback = dyn FnMut(OutputStream, &[u8]) + Send;

#[derive(Debug, Default)]
struct Shared {
    state: Option<DaemonState>,
    pid: Option<u32>,
    restarts: u32,
    last_exit: Option<ExitStatus>,
    ready: bool,
    finished: bool,
    subscribers: Vec<mpsc::UnboundedSender<DaemonEvent>>,
    history: VecDeque<DaemonEvent>,
}

enum Request {
    Stop,
    Restart,
    Signal(Signal, tokio::sync::oneshot::Sender<Result<(), Error>>),
}

/// A supervised daemon on tokio; see the README's "Daemons" section.
pub struct Daemon {
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    requests: mpsc::UnboundedSender<Request>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("state", &self.state())
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// A daemon being configured: [`Daemon::new`], then [`DaemonBuilder::start`].
pub struct DaemonBuilder {
    command: Command,
    policy: Policy,
    ready: Ready,
    on_output: Option<Box<OutputCallback>>,
}

impl std::fmt::Debug for DaemonBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonBuilder")
            .field("policy", &self.policy)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// A daemon running `command`; configure it, then
    /// [`DaemonBuilder::start`].
    #[allow(clippy::new_ret_no_self)]
    pub fn new(command: Command) -> DaemonBuilder {
        DaemonBuilder {
            command,
            policy: Policy::default(),
            ready: Ready::Spawned,
            on_output: None,
        }
    }
}

impl DaemonBuilder {
    /// When to restart (default [`Restart::OnFailure`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.policy.restart = restart;
        self
    }

    /// First delay before a restart and its cap (default 100 ms, 30 s).
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

    /// A run not ready this long after it started has failed.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.policy.start_timeout = Some(timeout);
        self
    }

    /// Called with every line of output (without its `\n`).
    pub fn on_output(mut self, f: impl FnMut(OutputStream, &[u8]) + Send + 'static) -> Self {
        self.on_output = Some(Box::new(f));
        self
    }

    /// Starts the first run and supervision, inside a tokio runtime. A
    /// spawn error of the first run is returned here.
    pub fn start(self) -> Result<Daemon, Error> {
        let mut command = self.command;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let shared = Arc::new(Mutex::new(Shared::default()));
        let changed = Arc::new(Notify::new());
        let stdin = Arc::new(tokio::sync::Mutex::new(None));
        let mut supervisor = Supervisor::new(self.policy, Supervisor::clock_jitter());
        let mut runner = Runner {
            command,
            sd_notify: self.ready == Ready::SdNotify,
            ready_line: match self.ready {
                Ready::Line(text) => Some(text.into_bytes()),
                Ready::Spawned | Ready::SdNotify => None,
            },
            output: Arc::new(Mutex::new(
                self.on_output
                    .unwrap_or_else(|| Box::new(|_: OutputStream, _: &[u8]| {})),
            )),
            shared: shared.clone(),
            changed: changed.clone(),
            stdin: stdin.clone(),
            current: None,
        };
        let _ = supervisor.poll_action();
        let mut run = runner.spawn_run()?;
        if let Ok(mut slot) = stdin.try_lock() {
            // Nobody else has the lock yet: the daemon is not handed out.
            *slot = run.child.stdin.take();
        }
        supervisor.handle_started(Instant::now(), run.child.id());
        runner.current = Some(run);
        runner.publish(&mut supervisor);
        let (requests, mailbox) = mpsc::unbounded_channel();
        let task = tokio::spawn(runner.supervise(supervisor, mailbox));
        Ok(Daemon {
            shared,
            changed,
            stdin,
            requests,
            task: Some(task),
        })
    }
}

impl Daemon {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for the current run to be up: `true` once it
    /// is, `false` on time-out, an error once supervision ended.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<bool, Error> {
        let waiting = async {
            loop {
                let notified = self.changed.notified();
                {
                    let shared = self.lock();
                    if shared.ready {
                        return Ok(true);
                    }
                    if shared.finished {
                        return Err(Error::Daemon(
                            match shared.state {
                                Some(DaemonState::GaveUp) => "gave up: too many restarts",
                                _ => "was stopped",
                            }
                            .into(),
                        ));
                    }
                }
                notified.await;
            }
        };
        match tokio::time::timeout(timeout, waiting).await {
            Ok(result) => result,
            Err(_) => Ok(false),
        }
    }

    /// Where the daemon is.
    pub fn state(&self) -> DaemonState {
        self.lock().state.unwrap_or(DaemonState::Starting)
    }

    /// The current run's pid.
    pub fn pid(&self) -> Option<u32> {
        self.lock().pid
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.lock().restarts
    }

    /// How the last run ended.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.lock().last_exit
    }

    /// Writes `bytes` to the current run's stdin (the command must have
    /// `stdin(Stdio::piped())`).
    pub async fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut stdin = self.stdin.lock().await;
        let stdin = stdin
            .as_mut()
            .ok_or_else(|| Error::Daemon("stdin is not piped, or no run is up".into()))?;
        stdin.write_all(bytes).await?;
        Ok(stdin.flush().await?)
    }

    /// Sends `sig` to the current run's process group.
    pub async fn signal(&self, sig: Signal) -> Result<(), Error> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.request(Request::Signal(sig, reply))?;
        answer
            .await
            .unwrap_or_else(|_| Err(Error::Daemon("is not running".into())))
    }

    /// Restarts now: the current run is stopped gracefully and the next
    /// starts at once.
    pub async fn restart(&self) -> Result<(), Error> {
        self.request(Request::Restart)
    }

    /// Events: those so far (the latest 256), then each as it happens.
    pub fn subscribe(&self) -> impl futures_core::Stream<Item = DaemonEvent> + Send + Unpin {
        let (send, receive) = mpsc::unbounded_channel();
        let mut shared = self.lock();
        for event in &shared.history {
            let _ = send.send(event.clone());
        }
        shared.subscribers.push(send);
        Events(receive)
    }

    /// Stops gracefully, with no restart, and waits until the whole tree
    /// is gone; returns how the last run ended.
    pub async fn stop(mut self) -> Result<Option<ExitStatus>, Error> {
        let _ = self.request(Request::Stop);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        Ok(self.last_exit())
    }

    fn request(&self, request: Request) -> Result<(), Error> {
        self.requests
            .send(request)
            .map_err(|_| Error::Daemon("is no longer supervised".into()))
    }
}

impl Drop for Daemon {
    /// Stops supervision without waiting: the task takes the current run's
    /// tree down and starts nothing more.
    fn drop(&mut self) {
        let _ = self.request(Request::Stop);
    }
}

/// A daemon's events as a `Stream`.
struct Events(mpsc::UnboundedReceiver<DaemonEvent>);

impl futures_core::Stream for Events {
    type Item = DaemonEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<DaemonEvent>> {
        self.0.poll_recv(cx)
    }
}

struct Run {
    child: Child,
    ready: Arc<AtomicBool>,
    drains: Vec<tokio::task::JoinHandle<()>>,
    /// The run's `NOTIFY_SOCKET` and the task listening on it.
    notify: Option<(NotifySocket, tokio::task::JoinHandle<()>)>,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some((_, listener)) = &self.notify {
            listener.abort();
        }
    }
}

struct Runner {
    command: Command,
    ready_line: Option<Vec<u8>>,
    sd_notify: bool,
    output: Arc<Mutex<Box<OutputCallback>>>,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    current: Option<Run>,
}

impl Runner {
    fn spawn_run(&mut self) -> Result<Run, Error> {
        let ready = Arc::new(AtomicBool::new(false));
        // A socket per run: a late READY=1 of a run that ended cannot mark
        // the next one up.
        let notify = match self.sd_notify {
            true => {
                let socket = NotifySocket::new()?;
                self.command.env("NOTIFY_SOCKET", socket.path());
                let listener = self.listen_for_ready(&socket, ready.clone())?;
                Some((socket, listener))
            }
            false => None,
        };
        let mut child = self.command.spawn()?;
        let mut drains = Vec::new();
        if let Some(out) = child.stdout.take() {
            drains.push(self.drain(out, OutputStream::Stdout, ready.clone()));
        }
        if let Some(err) = child.stderr.take() {
            drains.push(self.drain(err, OutputStream::Stderr, ready.clone()));
        }
        Ok(Run {
            child,
            ready,
            drains,
            notify,
        })
    }

    /// A task receiving `socket`'s datagrams, setting `ready` at `READY=1`.
    fn listen_for_ready(
        &self,
        socket: &NotifySocket,
        ready: Arc<AtomicBool>,
    ) -> Result<tokio::task::JoinHandle<()>, Error> {
        let socket = socket.socket().try_clone()?;
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UnixDatagram::from_std(socket)?;
        let changed = self.changed.clone();
        Ok(tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf).await {
                if says_ready(&buf[..n]) {
                    ready.store(true, Ordering::Relaxed);
                    changed.notify_waiters();
                }
            }
        }))
    }

    fn drain(
        &self,
        stream: impl tokio::io::AsyncRead + Send + Unpin + 'static,
        which: OutputStream,
        ready: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let output = self.output.clone();
        let ready_line = self.ready_line.clone();
        let changed = self.changed.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::with_capacity(MAX_LINE, stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = match (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                    .await
                {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let text = line.strip_suffix(b"\n").unwrap_or(&line[..n]);
                if ready_line.as_ref().is_some_and(|needle| {
                    text.windows(needle.len().max(1)).any(|w| w == &needle[..])
                }) {
                    ready.store(true, Ordering::Relaxed);
                    changed.notify_waiters();
                }
                (output.lock().unwrap_or_else(|e| e.into_inner()))(which, text);
            }
        })
    }

    fn publish(&self, supervisor: &mut Supervisor) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(event) = supervisor.poll_event() {
            shared.subscribers.retain(|s| s.send(event.clone()).is_ok());
            if shared.history.len() == HISTORY {
                shared.history.pop_front();
            }
            shared.history.push_back(event);
        }
        shared.state = Some(supervisor.state());
        shared.pid = supervisor.pid();
        shared.restarts = supervisor.restarts();
        shared.last_exit = supervisor.last_exit();
        shared.ready = supervisor.is_ready();
        shared.finished = supervisor.is_finished();
        drop(shared);
        self.changed.notify_waiters();
    }

    async fn supervise(
        mut self,
        mut supervisor: Supervisor,
        mut mailbox: mpsc::UnboundedReceiver<Request>,
    ) {
        loop {
            while let Some(action) = supervisor.poll_action() {
                match action {
                    Action::Spawn => match self.spawn_run() {
                        Ok(mut run) => {
                            *self.stdin.lock().await = run.child.stdin.take();
                            supervisor.handle_started(Instant::now(), run.child.id());
                            self.current = Some(run);
                        }
                        Err(_) => supervisor.handle_start_failed(Instant::now()),
                    },
                    Action::Terminate => {
                        if let Some(run) = &mut self.current {
                            let _ = run.child.terminate();
                        }
                    }
                }
            }
            self.publish(&mut supervisor);
            if supervisor.is_finished() {
                return;
            }
            self.step(&mut supervisor, &mut mailbox).await;
        }
    }

    /// Waits for the next thing to happen and tells the machine.
    async fn step(
        &mut self,
        supervisor: &mut Supervisor,
        mailbox: &mut mpsc::UnboundedReceiver<Request>,
    ) {
        let deadline = supervisor.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // Only a run still starting waits for its line; once it is up (or
        // being stopped) a set flag must not wake us again and again.
        let waiting_for_ready = supervisor.state() == DaemonState::Starting
            && (self.ready_line.is_some() || self.sd_notify);
        let ready_flag = self.current.as_ref().map(|r| r.ready.clone());
        let changed = self.changed.clone();
        let readiness = async {
            loop {
                let notified = changed.notified();
                if ready_flag
                    .as_ref()
                    .is_some_and(|f| f.load(Ordering::Relaxed))
                {
                    return;
                }
                notified.await;
            }
        };
        let exit = async {
            match &mut self.current {
                Some(run) => run.child.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = exit => {
                let mut run = self.current.take().expect("a current run");
                for drain in std::mem::take(&mut run.drains) {
                    let _ = drain.await;
                }
                if let Ok(status) = status {
                    supervisor.handle_exited(Instant::now(), status);
                }
            }
            () = readiness, if waiting_for_ready => supervisor.handle_ready(Instant::now()),
            request = mailbox.recv() => match request {
                Some(Request::Restart) => supervisor.handle_restart(Instant::now()),
                Some(Request::Signal(sig, reply)) => {
                    let result = match &mut self.current {
                        Some(run) => run.child.signal(sig),
                        None => Err(Error::Daemon("has no run up".into())),
                    };
                    let _ = reply.send(result);
                }
                // A dropped handle is a stop.
                Some(Request::Stop) | None => supervisor.handle_stop(Instant::now()),
            },
            () = sleep => {}
        }
        supervisor.handle_time(Instant::now());
    }
}
