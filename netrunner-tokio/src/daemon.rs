//! Supervised daemons for tokio: one task per daemon drives
//! [`netrunner_core::supervise::Supervisor`] and owns the runs; no thread
//! per daemon.
//!
//! Each run is a plain [`Child`]: its tree dies on stop, drop and owner
//! death like any other. Its stdout and stderr are always piped and drained
//! by one task each, split into lines of at most [`MAX_LINE`] bytes, and
//! handed to the output callback.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use netrunner_core::supervise::{
    says_ready, Action, DaemonFrontEnd, LineSink, NotifySocket, Published, Supervisor,
};
pub use netrunner_core::supervise::{
    DaemonEvent, DaemonState, OutputStream, Ready, Restart, MAX_LINE,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use crate::{Child, ChildStdin, Command, Error, ExitStatus, Signal, Stdio, Tokio};

/// A daemon being configured: [`Daemon::new`], then `start()`.
pub type DaemonBuilder = netrunner_core::supervise::DaemonBuilder<Tokio>;

#[derive(Default)]
struct Shared {
    published: Published,
    subscribers: Vec<mpsc::UnboundedSender<DaemonEvent>>,
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

impl Daemon {
    /// A daemon running `command`; configure it, then `start()` (inside a
    /// tokio runtime).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(command: Command) -> DaemonBuilder {
        DaemonBuilder::new(command)
    }
}

impl DaemonFrontEnd for Tokio {
    type Daemon = Daemon;

    fn start_daemon(mut builder: DaemonBuilder) -> Result<Daemon, Error> {
        let lines = builder.line_sink();
        let mut command = builder.command;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let shared = Arc::new(Mutex::new(Shared::default()));
        let changed = Arc::new(Notify::new());
        let stdin = Arc::new(tokio::sync::Mutex::new(None));
        let mut supervisor = Supervisor::new(builder.policy, Supervisor::clock_jitter());
        let mut runner = Runner {
            command,
            lines,
            sd_notify: builder.ready == Ready::SdNotify,
            notify_fd: match builder.ready {
                Ready::NotifyFd(n) => Some(n),
                _ => None,
            },
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
                    if shared.published.ready {
                        return Ok(true);
                    }
                    if shared.published.finished {
                        return Err(shared.published.over());
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
        self.lock().published.state.unwrap_or(DaemonState::Starting)
    }

    /// The current run's pid.
    pub fn pid(&self) -> Option<u32> {
        self.lock().published.pid
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.lock().published.restarts
    }

    /// How the last run ended.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.lock().published.last_exit
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
        for event in &shared.published.history {
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
    /// The task listening on the run's notify pipe.
    pipe_listener: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let listeners = self
            .notify
            .iter()
            .map(|(_, l)| l)
            .chain(&self.pipe_listener);
        for listener in listeners {
            listener.abort();
        }
    }
}

struct Runner {
    command: Command,
    lines: LineSink,
    sd_notify: bool,
    notify_fd: Option<i32>,
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
        // A pipe per run, its write end the command's descriptor `n`.
        let pipe_listener = match self.notify_fd {
            Some(n) => {
                let (read, write) = netrunner_sys::fd::pipe2_cloexec()?;
                self.command.fd(n, write);
                Some(self.listen_for_newline(read, ready.clone())?)
            }
            None => None,
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
            pipe_listener,
        })
    }

    /// A task reading the notify pipe, setting `ready` at the first newline.
    fn listen_for_newline(
        &self,
        read: std::os::fd::OwnedFd,
        ready: Arc<AtomicBool>,
    ) -> Result<tokio::task::JoinHandle<()>, Error> {
        let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read)?;
        let changed = self.changed.clone();
        Ok(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                if buf[..n].contains(&b'\n') {
                    ready.store(true, Ordering::Relaxed);
                    changed.notify_waiters();
                    return;
                }
            }
        }))
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
        let lines = self.lines.clone();
        let changed = self.changed.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::with_capacity(MAX_LINE, stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                    .await
                {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if lines.deliver(which, &line) {
                    ready.store(true, Ordering::Relaxed);
                    changed.notify_waiters();
                }
            }
        })
    }

    fn publish(&self, supervisor: &mut Supervisor) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let Shared {
            published,
            subscribers,
        } = &mut *shared;
        published.update(supervisor, |event| {
            subscribers.retain(|s| s.send(event.clone()).is_ok());
        });
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
        let waiting_for_ready = supervisor.awaits_ready();
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
                    let tail = self.lines.take_stderr_tail();
                    supervisor.handle_exited_with_tail(Instant::now(), status, tail);
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
