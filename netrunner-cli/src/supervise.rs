//! `netrunner supervise`: run a command as a supervised daemon, restarting
//! it by policy, with one line on stderr per supervision event.

use std::time::Duration;

use netrunner_tokio::{Command, Daemon, DaemonEvent, ExitStatus, OutputStream, Ready, Restart};

use crate::units;

/// `supervise`'s arguments.
#[derive(clap::Args, Debug)]
pub struct SuperviseArgs {
    /// When to restart the command.
    #[arg(long, value_enum, default_value = "on-failure")]
    restart: RestartArg,
    /// First delay before a restart and its cap, as FIRST..CAP (doubling,
    /// with jitter).
    #[arg(long, value_parser = parse_backoff, default_value = "100ms..30s")]
    backoff: (Duration, Duration),
    /// Give up after more than N restarts within WINDOW, as N/WINDOW.
    #[arg(long, value_parser = parse_max_restarts, default_value = "5/10s")]
    max_restarts: (u32, Duration),
    /// The command is up once a line of its output contains TEXT.
    #[arg(long, value_name = "TEXT", conflicts_with = "ready_notify")]
    ready_line: Option<String>,
    /// The command is up once it sends READY=1 to $NOTIFY_SOCKET, as under
    /// systemd.
    #[arg(long, conflicts_with = "ready_fd")]
    ready_notify: bool,
    /// The command is up once it writes a newline to its descriptor N (3
    /// to 1023), as under s6.
    #[arg(long, value_name = "N", conflicts_with = "ready_line")]
    ready_fd: Option<i32>,
    /// A run not up this long after it started has failed (with a
    /// readiness flag).
    #[arg(long, value_parser = units::parse_duration)]
    start_timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL when a run is stopped.
    #[arg(long, value_parser = units::parse_duration, default_value = "5s")]
    kill_timeout: Duration,
    /// Set an environment variable (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = crate::parse_env)]
    env: Vec<(String, String)>,
    /// Working directory of the command.
    #[arg(long)]
    cwd: Option<std::path::PathBuf>,
    /// The program and its arguments.
    #[arg(required = true, last = true, value_name = "PROGRAM [ARGS]...")]
    command: Vec<std::ffi::OsString>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum RestartArg {
    Always,
    OnFailure,
    Never,
}

fn parse_backoff(text: &str) -> Result<(Duration, Duration), String> {
    let (first, cap) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?}: expected FIRST..CAP, e.g. 100ms..30s"))?;
    Ok((units::parse_duration(first)?, units::parse_duration(cap)?))
}

fn parse_max_restarts(text: &str) -> Result<(u32, Duration), String> {
    let (n, window) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected N/WINDOW, e.g. 5/10s"))?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?}: not a number of restarts"))?;
    Ok((n, units::parse_duration(window)?))
}

/// The exit code for a run that ended with `status`, as `netrunner run`
/// gives it.
fn exit_code(status: Option<ExitStatus>) -> u8 {
    match status {
        Some(status) => match status.code() {
            Some(code) => code as u8,
            None => 128u8.wrapping_add(status.raw_signal().unwrap_or(0) as u8),
        },
        None => 0,
    }
}

/// Runs the daemon until it gives up, ends by policy, or we are told to
/// stop (SIGTERM, SIGINT, SIGHUP: a graceful stop, exit 0).
pub async fn supervise(args: SuperviseArgs) -> u8 {
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]).kill_timeout(args.kill_timeout);
    for (k, v) in &args.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &args.cwd {
        cmd.current_dir(dir);
    }
    let Some([mut term, mut int, mut hup]) = crate::stop_signals() else {
        return crate::EXIT_INTERNAL;
    };
    let mut daemon = Daemon::new(cmd)
        .restart(match args.restart {
            RestartArg::Always => Restart::Always,
            RestartArg::OnFailure => Restart::OnFailure,
            RestartArg::Never => Restart::Never,
        })
        .backoff(args.backoff.0, args.backoff.1)
        .max_restarts(args.max_restarts.0, args.max_restarts.1)
        .on_output(|stream, line| {
            use std::io::Write;
            // Our reader gone is the command's business, as for `run`.
            let _ = match stream {
                OutputStream::Stderr => {
                    writeln!(std::io::stderr(), "{}", String::from_utf8_lossy(line))
                }
                _ => writeln!(std::io::stdout(), "{}", String::from_utf8_lossy(line)),
            };
        });
    let announce_ready = args.ready_line.is_some() || args.ready_notify || args.ready_fd.is_some();
    if let Some(n) = args.ready_fd {
        daemon = daemon.ready(Ready::NotifyFd(n));
    }
    if let Some(text) = args.ready_line {
        daemon = daemon.ready(Ready::Line(text));
    }
    if args.ready_notify {
        daemon = daemon.ready(Ready::SdNotify);
    }
    if let Some(timeout) = args.start_timeout {
        daemon = daemon.start_timeout(timeout);
    }
    let daemon = match daemon.start() {
        Ok(d) => d,
        Err(e) => return crate::spawn_failure(&args.command[0], e),
    };
    let mut events = daemon.subscribe();
    let mut exited: Option<String> = None;
    loop {
        let event = tokio::select! {
            event = next_event(&mut events) => event,
            _ = term.recv() => None,
            _ = int.recv() => None,
            _ = hup.recv() => None,
        };
        let Some(event) = event else {
            say!("netrunner: stopping");
            let _ = daemon.stop().await;
            return 0;
        };
        match event {
            DaemonEvent::Started { pid, run } => say!("netrunner: started pid {pid} (run {run})"),
            DaemonEvent::Ready { pid } if announce_ready => say!("netrunner: pid {pid} is ready"),
            DaemonEvent::Exited { status, uptime, .. } => {
                exited = Some(format!(
                    "exited with {status} after {:.1}s",
                    uptime.as_secs_f64()
                ));
            }
            DaemonEvent::Restarting { delay, restarts } => say!(
                "netrunner: {}; restarting in {}ms (restart {restarts})",
                exited.take().unwrap_or_default(),
                delay.as_millis()
            ),
            DaemonEvent::GaveUp { restarts } => {
                say!(
                    "netrunner: {}; giving up after {restarts} restarts",
                    exited.take().unwrap_or_default()
                );
                return exit_code(daemon.last_exit());
            }
            DaemonEvent::Stopped => {
                say!(
                    "netrunner: {}; not restarting",
                    exited.take().unwrap_or_default()
                );
                return exit_code(daemon.last_exit());
            }
            _ => {}
        }
    }
}

/// The next item of a stream (no combinator crate for one call).
async fn next_event<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}
