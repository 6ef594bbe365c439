//! Supervised daemons for the blocking front end: one thread per daemon
//! drives [`netrunner_core::supervise::Supervisor`] and owns the runs.
//!
//! Each run is a plain [`Child`]: its tree dies on stop, drop and owner
//! death like any other. Its stdout and stderr are always piped and drained
//! by two threads per run (no pipe ever blocks the daemon), split into
//! lines of at most [`MAX_LINE`] bytes, and handed to the output callback.

use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netrunner_core::supervise::{
    says_ready, Action, DaemonFrontEnd, LineSink, NotifySocket, Published, Supervisor,
};
pub use netrunner_core::supervise::{
    DaemonEvent, DaemonState, OutputStream, Ready, Restart, MAX_LINE,
};

use crate::{Blocking, Child, ChildStdin, Command, Error, ExitStatus, Signal, Stdio};

/// How often the supervising thread looks at its mailbox while a run lives.
const TICK: Duration = Duration::from_millis(20);

/// A daemon being configured: [`Daemon::new`], then `start()`.
pub type DaemonBuilder = netrunner_core::supervise::DaemonBuilder<Blocking>;

/// What the caller and the supervising thread share.
#[derive(Default)]
struct Shared {
    published: Published,
    stdin: Option<ChildStdin>,
    subscribers: Vec<Sender<DaemonEvent>>,
}

/// Requests from the handle to the supervising thread.
enum Request {
    Stop,
    Restart,
    Signal(Signal, Sender<Result<(), Error>>),
}

/// A supervised daemon: a command restarted by policy, with readiness,
/// backoff and output handling. See the README's "Daemons" section.
pub struct Daemon {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    requests: Sender<Request>,
    thread: Option<JoinHandle<()>>,
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
    /// A daemon running `command`; configure it, then `start()`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(command: Command) -> DaemonBuilder {
        DaemonBuilder::new(command)
    }
}

impl DaemonFrontEnd for Blocking {
    type Daemon = Daemon;

    fn start_daemon(mut builder: DaemonBuilder) -> Result<Daemon, Error> {
        let lines = builder.line_sink();
        let mut command = builder.command;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
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
            current: None,
        };
        // The first run, here: its spawn error is the caller's.
        let _ = supervisor.poll_action();
        let run = runner.spawn_run()?;
        supervisor.handle_started(Instant::now(), run.child.id());
        runner.current = Some(run);
        runner.publish(&mut supervisor);
        let (requests, mailbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("netrunner-daemon".into())
            .spawn(move || runner.supervise(supervisor, mailbox))
            .map_err(Error::from)?;
        Ok(Daemon {
            shared,
            requests,
            thread: Some(thread),
        })
    }
}

impl Daemon {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for the current run to be up: `true` once it
    /// is, `false` on time-out, an error once supervision ended (gave up
    /// or stopped).
    pub fn wait_ready(&self, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut shared = self.lock();
        loop {
            if shared.published.ready {
                return Ok(true);
            }
            if shared.published.finished {
                return Err(shared.published.over());
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Ok(false);
            }
            shared = self
                .shared
                .1
                .wait_timeout(shared, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
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
    pub fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut shared = self.lock();
        let stdin = shared
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Daemon("stdin is not piped, or no run is up".into()))?;
        stdin.write_all(bytes)?;
        Ok(stdin.flush()?)
    }

    /// Sends `sig` to the current run's process group.
    pub fn signal(&self, sig: Signal) -> Result<(), Error> {
        let (reply, answer) = mpsc::channel();
        self.request(Request::Signal(sig, reply))?;
        answer
            .recv()
            .unwrap_or_else(|_| Err(Error::Daemon("is not running".into())))
    }

    /// Restarts now: the current run is stopped gracefully (SIGTERM,
    /// `kill_timeout`, SIGKILL) and the next starts at once.
    pub fn restart(&self) -> Result<(), Error> {
        self.request(Request::Restart)
    }

    /// Events: those so far (the latest 256), then each as it happens.
    pub fn subscribe(&self) -> Receiver<DaemonEvent> {
        let (send, receive) = mpsc::channel();
        let mut shared = self.lock();
        for event in &shared.published.history {
            let _ = send.send(event.clone());
        }
        shared.subscribers.push(send);
        receive
    }

    /// Stops gracefully, with no restart, and waits until the whole tree
    /// is gone; returns how the last run ended.
    pub fn stop(mut self) -> Result<Option<ExitStatus>, Error> {
        let _ = self.request(Request::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
    /// Stops supervision: the current run's tree is taken down by its
    /// shepherd (SIGTERM, grace, SIGKILL) and nothing restarts. Does not
    /// wait for the grace period.
    fn drop(&mut self) {
        let _ = self.request(Request::Stop);
    }
}

/// One run: the child, whether it said it is ready, its output drains.
struct Run {
    child: Child,
    ready: Arc<AtomicBool>,
    drains: Vec<JoinHandle<()>>,
    /// The run's `NOTIFY_SOCKET` and the flag that ends its listener.
    notify: Option<(NotifySocket, Arc<AtomicBool>)>,
    /// The flag that ends the listener on the run's notify pipe.
    pipe_over: Option<Arc<AtomicBool>>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let flags = self.notify.iter().map(|(_, f)| f).chain(&self.pipe_over);
        for over in flags {
            over.store(true, Ordering::Relaxed);
        }
    }
}

/// The supervising thread's side.
struct Runner {
    command: Command,
    lines: LineSink,
    sd_notify: bool,
    notify_fd: Option<i32>,
    shared: Arc<(Mutex<Shared>, Condvar)>,
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
                let over = Arc::new(AtomicBool::new(false));
                listen_for_ready(&socket, ready.clone(), over.clone())?;
                Some((socket, over))
            }
            false => None,
        };
        // A pipe per run, its write end the command's descriptor `n`.
        let pipe_over = match self.notify_fd {
            Some(n) => {
                let (read, write) = netrunner_sys::fd::pipe2_cloexec()?;
                self.command.fd(n, write);
                let over = Arc::new(AtomicBool::new(false));
                listen_for_newline(read, ready.clone(), over.clone())?;
                Some(over)
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
        self.shared
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stdin = child.stdin.take();
        Ok(Run {
            child,
            ready,
            drains,
            notify,
            pipe_over,
        })
    }

    /// A thread reading `stream` line by line until EOF.
    fn drain(
        &self,
        stream: impl Read + Send + 'static,
        which: OutputStream,
        ready: Arc<AtomicBool>,
    ) -> JoinHandle<()> {
        let lines = self.lines.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::with_capacity(MAX_LINE, stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if lines.deliver(which, &line) {
                    ready.store(true, Ordering::Relaxed);
                }
            }
        })
    }

    /// Hands the machine's events to subscribers and its state to callers.
    fn publish(&self, supervisor: &mut Supervisor) {
        let mut shared = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        let Shared {
            published,
            subscribers,
            stdin,
        } = &mut *shared;
        published.update(supervisor, |event| {
            subscribers.retain(|s| s.send(event.clone()).is_ok());
        });
        if published.pid.is_none() {
            *stdin = None;
        }
        self.shared.1.notify_all();
    }

    fn supervise(mut self, mut supervisor: Supervisor, mailbox: Receiver<Request>) {
        loop {
            while let Some(action) = supervisor.poll_action() {
                match action {
                    Action::Spawn => match self.spawn_run() {
                        Ok(run) => {
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
            self.step(&mut supervisor, &mailbox);
        }
    }

    /// Waits for the next thing to happen (an exit, a request, readiness,
    /// a deadline), at most one tick, and tells the machine.
    fn step(&mut self, supervisor: &mut Supervisor, mailbox: &Receiver<Request>) {
        let tick = supervisor.poll_timeout().map_or(TICK, |d| {
            d.saturating_duration_since(Instant::now()).min(TICK)
        });
        match &mut self.current {
            Some(run) => {
                if let Ok(Some(status)) = run.child.wait_timeout(tick) {
                    // Everything the run wrote is delivered before its end is.
                    let mut run = self.current.take().expect("a current run");
                    for drain in std::mem::take(&mut run.drains) {
                        let _ = drain.join();
                    }
                    let tail = self.lines.take_stderr_tail();
                    supervisor.handle_exited_with_tail(Instant::now(), status, tail);
                } else if supervisor.awaits_ready() && run.ready.load(Ordering::Relaxed) {
                    supervisor.handle_ready(Instant::now());
                }
            }
            None => std::thread::sleep(tick),
        }
        loop {
            match mailbox.try_recv() {
                // A dropped handle is a stop.
                Ok(Request::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                    supervisor.handle_stop(Instant::now());
                    break;
                }
                Ok(Request::Restart) => supervisor.handle_restart(Instant::now()),
                Ok(Request::Signal(sig, reply)) => {
                    let result = match &mut self.current {
                        Some(run) => run.child.signal(sig),
                        None => Err(Error::Daemon("has no run up".into())),
                    };
                    let _ = reply.send(result);
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        supervisor.handle_time(Instant::now());
    }
}

/// A thread reading the notify pipe until `over` or EOF, setting `ready`
/// at the first newline.
fn listen_for_newline(
    read: std::os::fd::OwnedFd,
    ready: Arc<AtomicBool>,
    over: Arc<AtomicBool>,
) -> Result<(), Error> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    std::thread::Builder::new()
        .name("netrunner-notify".into())
        .spawn(move || {
            let tick = Timespec {
                tv_sec: 0,
                tv_nsec: TICK.as_nanos() as i64,
            };
            let mut buf = [0u8; 256];
            while !over.load(Ordering::Relaxed) {
                let mut pfd = [PollFd::new(&read, PollFlags::IN)];
                if !matches!(rustix::event::poll(&mut pfd, Some(&tick)), Ok(n) if n > 0) {
                    continue;
                }
                match rustix::io::read(&read, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) if buf[..n].contains(&b'\n') => {
                        ready.store(true, Ordering::Relaxed);
                        return;
                    }
                    Ok(_) => {}
                }
            }
        })?;
    Ok(())
}

/// A thread receiving `socket`'s datagrams until `over`, setting `ready`
/// at a `READY=1`.
fn listen_for_ready(
    socket: &NotifySocket,
    ready: Arc<AtomicBool>,
    over: Arc<AtomicBool>,
) -> Result<(), Error> {
    let socket = socket.socket().try_clone()?;
    socket.set_read_timeout(Some(TICK))?;
    std::thread::Builder::new()
        .name("netrunner-notify".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            while !over.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    if says_ready(&buf[..n]) {
                        ready.store(true, Ordering::Relaxed);
                    }
                }
            }
        })?;
    Ok(())
}
