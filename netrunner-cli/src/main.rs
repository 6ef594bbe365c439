//! `netrunner`: run a command so that its whole process tree dies with it.
//!
//! A safer `timeout(1)`: the timeout kills the command's whole tree (SIGTERM,
//! grace, SIGKILL), output can be capped, nothing is left running even if
//! `netrunner` itself is SIGKILLed, and `--stats` reports what the command
//! cost.
#![forbid(unsafe_code)]

mod report;
mod units;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use netrunner_tokio::{Command, Error, Stdio};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

use crate::report::Outcome;
use netrunner_core::error::ChildSetupError;

/// `ENOEXEC`: not a valid executable format.
const ENOEXEC: i32 = 8;

/// Exit code when the timeout fired (as `timeout(1)`).
const EXIT_TIMEOUT: u8 = 124;
/// Exit code when the output limit was reached.
const EXIT_OUTPUT_LIMIT: u8 = 123;
/// Exit code for netrunner's own failures (bad usage, no shepherd, bad cwd).
const EXIT_INTERNAL: u8 = 125;
/// Exit code when the program exists but cannot be executed.
const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit code when the program was not found.
const EXIT_NOT_FOUND: u8 = 127;
/// Exit code when whoever reads our output went away before all of it was
/// delivered (128 + SIGPIPE, what a shell shows for `cat` in that spot).
const EXIT_OUTPUT_LOST: u8 = 141;

/// Writes a line to our stderr; a stderr that is gone (closed pipe) is no
/// reason to panic or to change the exit status.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod supervise;

const EXIT_CODES: &str = "\
Exit status:
  the command's own exit code when it exits normally
  128+N   the command was killed by signal N
  124     the timeout fired (the tree was terminated)
  123     the output limit was reached (the tree was terminated)
  125     netrunner itself failed (bad usage, bad --cwd, no shepherd)
  126     the program exists but cannot be executed
  127     the program was not found
  141     our own reader went away before all output was delivered";

#[derive(Parser, Debug)]
#[command(
    name = "netrunner",
    version,
    about = "Run commands so that nothing they start outlives them"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run PROGRAM under a shepherd that kills its whole tree on timeout,
    /// output limit, or when netrunner goes away.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Run PROGRAM as a supervised daemon: restarted by policy (with
    /// backoff and a restart limit), one line on stderr per event; SIGTERM,
    /// SIGINT or SIGHUP stop it gracefully (exit 0). Giving up exits with
    /// the last run's status, as `run` maps it.
    Supervise(supervise::SuperviseArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Limit on the whole run (e.g. 500ms, 10s, 2m); on expiry SIGTERM, grace, SIGKILL.
    /// 0 means no limit, as for timeout(1).
    #[arg(long, value_parser = units::parse_duration)]
    timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL.
    #[arg(long, value_parser = units::parse_duration, default_value = "5s")]
    kill_timeout: Duration,
    /// Pass exactly SIZE bytes of output (stdout + stderr) through, then stop
    /// the command (e.g. 64KiB = 65536, 10MB).
    #[arg(long, value_parser = units::parse_size)]
    max_output: Option<u64>,
    /// Print resource and I/O statistics to stderr when the command ends.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "human")]
    stats: Option<StatsFormat>,
    /// Set an environment variable (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Start from an empty environment.
    #[arg(long)]
    env_clear: bool,
    /// Working directory of the command.
    #[arg(long)]
    cwd: Option<std::path::PathBuf>,
    /// What to do with the command's stderr.
    #[arg(long, value_enum, default_value = "separate")]
    stderr: StderrMode,
    /// Run the command on a pseudo-terminal (its stdout and stderr arrive
    /// merged, as a terminal shows them).
    #[arg(long)]
    pty: bool,
    /// Run the command in a new cgroup v2 named NAME under netrunner's own;
    /// everything in it is killed and the cgroup removed at the end.
    #[arg(long, value_name = "NAME")]
    cgroup: Option<String>,
    /// memory.max of the command's cgroup (e.g. 512MiB); needs the memory controller.
    #[arg(long, value_parser = units::parse_size, value_name = "SIZE")]
    memory_max: Option<u64>,
    /// pids.max of the command's cgroup; needs the pids controller.
    #[arg(long, value_name = "N")]
    pids_max: Option<u64>,
    /// The program and its arguments.
    #[arg(required = true, last = true, value_name = "PROGRAM [ARGS]...")]
    command: Vec<std::ffi::OsString>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum StatsFormat {
    Human,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum StderrMode {
    /// Into netrunner's stdout, interleaved as written.
    Merge,
    /// To netrunner's stderr.
    Separate,
    /// Discarded.
    Null,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_INTERNAL } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("netrunner: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let code = match cli.command {
        Commands::Run(args) => runtime.block_on(run(args)),
        Commands::Supervise(args) => runtime.block_on(supervise::supervise(args)),
    };
    // Blocking readers of our own stdin may still be parked; do not wait for them.
    std::process::exit(i32::from(code));
}

/// Handlers for the signals that stop netrunner's command gracefully:
/// SIGTERM, SIGINT, SIGHUP. `None` (after saying why) if they cannot be
/// installed.
fn stop_signals() -> Option<[tokio::signal::unix::Signal; 3]> {
    let mut installed = Vec::new();
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        match signal(kind) {
            Ok(s) => installed.push(s),
            Err(e) => {
                say!("netrunner: cannot handle signals: {e}");
                return None;
            }
        }
    }
    <[_; 3]>::try_from(installed).ok()
}

/// Shared budget for `--max-output` across stdout and stderr.
struct Budget {
    remaining: AtomicU64,
    exhausted: AtomicBool,
    notify: Notify,
}

impl Budget {
    /// How much of `n` bytes may pass; marks the budget exhausted when `n`
    /// does not fit.
    fn take(&self, n: u64) -> u64 {
        let mut current = self.remaining.load(Ordering::Relaxed);
        loop {
            let granted = n.min(current);
            match self.remaining.compare_exchange(
                current,
                current - granted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if granted < n {
                        self.exhausted.store(true, Ordering::Relaxed);
                        self.notify.notify_one();
                    }
                    return granted;
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// Copies `from` to `to` chunk by chunk, writing each before reading the
/// next (backpressure), and stops at the budget.
/// What one pump got through.
#[derive(Debug, Default, Clone, Copy)]
struct Pumped {
    /// Bytes written to the destination (and flushed).
    delivered: u64,
    /// The destination refused a write: its reader went away.
    lost: bool,
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    budget: Option<Arc<Budget>>,
) -> Pumped {
    let mut pumped = Pumped::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let pass = budget.as_ref().map_or(n as u64, |b| b.take(n as u64)) as usize;
        if to.write_all(&buf[..pass]).await.is_err() || to.flush().await.is_err() {
            // Our reader went away: stop reading, so the command sees a
            // broken pipe as it would in a shell pipeline.
            pumped.lost = true;
            break;
        }
        pumped.delivered += pass as u64;
        if pass < n {
            break;
        }
    }
    pumped
}

async fn run(args: RunArgs) -> u8 {
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]).kill_timeout(args.kill_timeout);
    if args.env_clear {
        cmd.env_clear();
    }
    for (k, v) in &args.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &args.cwd {
        cmd.current_dir(dir);
    }
    // 0 means no timeout, as for timeout(1).
    if let Some(t) = args.timeout.filter(|t| !t.is_zero()) {
        cmd.timeout(t);
    }
    if args.pty {
        cmd.pty(true);
    }
    if let Some(name) = &args.cgroup {
        cmd.cgroup(name);
    }
    if let Some(bytes) = args.memory_max {
        cmd.memory_max(bytes);
    }
    if let Some(n) = args.pids_max {
        cmd.pids_max(n);
    }
    // Output passes through us only when we must count or cap it; otherwise
    // the command writes straight to our streams (a terminal stays a terminal).
    let through_us = args.max_output.is_some() || args.stats.is_some();
    let out_mode = if through_us {
        Stdio::piped()
    } else {
        Stdio::inherit()
    };
    cmd.stdout(out_mode);
    match args.stderr {
        StderrMode::Merge => {
            cmd.stderr_to_stdout();
        }
        StderrMode::Separate => {
            cmd.stderr(out_mode);
        }
        StderrMode::Null => {
            cmd.stderr(Stdio::null());
        }
    }
    // An interactive terminal is handed over as is; anything else is pumped.
    let stdin_is_tty = std::io::stdin().is_terminal();
    cmd.stdin(if stdin_is_tty {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });

    // Install handlers before spawning, so no signal is lost in between.
    let Some(signals) = stop_signals() else {
        return EXIT_INTERNAL;
    };

    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return spawn_failure(&args.command[0], e),
    };

    let budget = args.max_output.map(|max| {
        Arc::new(Budget {
            remaining: AtomicU64::new(max),
            exhausted: AtomicBool::new(false),
            notify: Notify::new(),
        })
    });
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, tokio::io::stdout(), budget.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, tokio::io::stderr(), budget.clone())));
    }
    if let Some(stdin) = child.stdin.take() {
        // Detached: a read of our stdin cannot be cancelled, and the command
        // may finish without wanting all of it.
        tokio::spawn(pump(tokio::io::stdin(), stdin, None));
    }

    let [mut term, mut int, mut hup] = signals;
    let limit_hit = async {
        match &budget {
            Some(b) => {
                while !b.exhausted.load(Ordering::Relaxed) {
                    b.notify.notified().await;
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit_hit);
    let mut limit_handled = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = term.recv() => { let _ = child.terminate(); }
            _ = int.recv() => { let _ = child.terminate(); }
            _ = hup.recv() => { let _ = child.terminate(); }
            _ = &mut limit_hit, if !limit_handled => {
                limit_handled = true;
                let _ = child.terminate();
            }
        }
    };
    // The tree is gone, so the pipes reach EOF once what is left in them
    // is delivered. A reader of ours that stops reading could hold that up
    // forever: a signal then ends the wait, as it would end `cat`.
    let drained = async {
        let mut total = Pumped::default();
        for p in pumps {
            let one = p.await.unwrap_or_default();
            total.delivered += one.delivered;
            total.lost |= one.lost;
        }
        total
    };
    let pumped = tokio::select! {
        total = drained => total,
        _ = term.recv() => Pumped::default(),
        _ = int.recv() => Pumped::default(),
        _ = hup.recv() => Pumped::default(),
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            say!("netrunner: {e}");
            return EXIT_INTERNAL;
        }
    };
    let output_limited = budget
        .as_ref()
        .is_some_and(|b| b.exhausted.load(Ordering::Relaxed));
    let timed_out = child.timed_out();
    let exit = if timed_out {
        EXIT_TIMEOUT
    } else if output_limited {
        EXIT_OUTPUT_LIMIT
    } else if pumped.lost {
        EXIT_OUTPUT_LOST
    } else if let Some(code) = status.code() {
        // Exit codes are 0..=255 on Unix.
        code as u8
    } else {
        128u8.wrapping_add(status.raw_signal().unwrap_or(0) as u8)
    };
    if let Some(format) = args.stats {
        let outcome = Outcome {
            status,
            timed_out,
            output_limited,
            exit: i32::from(exit),
            delivered: pumped.delivered,
            output_lost: pumped.lost,
        };
        let stats = child.stats();
        let line = match format {
            StatsFormat::Human => report::human(&outcome, &stats),
            StatsFormat::Json => report::json(&outcome, &stats),
        };
        say!("{line}");
    }
    exit
}

fn spawn_failure(program: &std::ffi::OsStr, e: Error) -> u8 {
    let name = program.to_string_lossy();
    match &e {
        Error::Spawn { source, .. } => {
            say!("netrunner: {name}: {source}");
            // A failed setup step (e.g. a missing --cwd) is ours, not the program's.
            let setup = source
                .get_ref()
                .is_some_and(|inner| inner.is::<ChildSetupError>());
            match source.kind() {
                _ if setup => EXIT_INTERNAL,
                std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => EXIT_NOT_EXECUTABLE,
                _ if source.raw_os_error() == Some(ENOEXEC) => EXIT_NOT_EXECUTABLE,
                _ => EXIT_INTERNAL,
            }
        }
        other => {
            say!("netrunner: {name}: {other}");
            EXIT_INTERNAL
        }
    }
}
