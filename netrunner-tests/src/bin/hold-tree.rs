//! Test helper: starts process trees through netrunner, prints every pid in
//! them, then blocks forever, waiting to be killed by the test.
//!
//! Usage: `hold-tree blocking|tokio|async-std|cgroup:NAME|daemon|daemon-tokio|daemon-backoff
//! KILL_TIMEOUT_MS`. Prints one pid per line, then `ready`. `daemon` runs
//! the trees as supervised daemons; `daemon-backoff` runs a crash loop and
//! says `ready` while it waits to restart (printing its first run's pid).
#![forbid(unsafe_code)]

use std::io::Write;
use std::time::Duration;

use netrunner_tests::TREES;

fn report(pids: &[u8]) {
    let mut out = std::io::stdout().lock();
    out.write_all(pids).unwrap();
    out.flush().unwrap();
}

fn lines_of(buf: &[u8], n: usize) -> bool {
    buf.iter().filter(|&&b| b == b'\n').count() >= n
}

/// The trees through the blocking front end; with `cgroup`, each in its
/// own cgroup (`NAME-0`, `NAME-1`).
fn blocking(grace: Duration, cgroup: Option<&str>) -> Vec<netrunner_blocking::Child> {
    use std::io::Read;
    let mut children = Vec::new();
    for (i, (script, n)) in TREES.into_iter().enumerate() {
        let mut cmd = netrunner_blocking::Command::new("sh");
        cmd.args(["-c", script])
            .stdout(netrunner_blocking::Stdio::piped())
            .kill_timeout(grace);
        if let Some(base) = cgroup {
            cmd.cgroup(format!("{base}-{i}"));
        }
        let mut child = cmd.spawn().expect("spawn through netrunner");
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !lines_of(&buf, n) {
            child
                .stdout
                .as_mut()
                .unwrap()
                .read_exact(&mut byte)
                .expect("read a pid");
            buf.push(byte[0]);
        }
        report(&buf);
        children.push(child);
    }
    children
}

async fn tokio_trees(grace: Duration) -> Vec<netrunner_tokio::Child> {
    use tokio::io::AsyncReadExt;
    let mut children = Vec::new();
    for (script, n) in TREES {
        let mut child = netrunner_tokio::Command::new("sh")
            .args(["-c", script])
            .stdout(netrunner_tokio::Stdio::piped())
            .kill_timeout(grace)
            .spawn()
            .expect("spawn through netrunner");
        let mut buf = Vec::new();
        while !lines_of(&buf, n) {
            buf.push(
                child
                    .stdout
                    .as_mut()
                    .unwrap()
                    .read_u8()
                    .await
                    .expect("read a pid"),
            );
        }
        report(&buf);
        children.push(child);
    }
    children
}

async fn async_std_trees(grace: Duration) -> Vec<netrunner_core::aio::AsyncChild> {
    use netrunner_core::launch::StdioPlan;
    let rt = netrunner_tests::async_std_rt::AsyncStdRuntime;
    let mut children = Vec::new();
    for (script, n) in TREES {
        let mut cmd = netrunner_core::Command::<()>::new("sh");
        cmd.args(["-c", script])
            .stdout(netrunner_core::Stdio::piped())
            .kill_timeout(grace);
        let child = netrunner_core::aio::AsyncChild::spawn(&rt, &cmd, StdioPlan::for_spawn(&cmd))
            .expect("spawn through netrunner");
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !lines_of(&buf, n) {
            child
                .stdout
                .as_ref()
                .unwrap()
                .read(&mut byte)
                .await
                .expect("read a pid");
            buf.push(byte[0]);
        }
        report(&buf);
        children.push(child);
    }
    children
}

/// The trees as supervised daemons (restart always, so a death would be
/// followed by a new run if the supervisor survived).
fn daemons(grace: Duration) -> Vec<netrunner_blocking::Daemon> {
    TREES
        .into_iter()
        .map(|(script, n)| {
            let (pids, seen) = std::sync::mpsc::channel();
            let mut cmd = netrunner_blocking::Command::new("sh");
            cmd.args(["-c", script]).kill_timeout(grace);
            let daemon = netrunner_blocking::Daemon::new(cmd)
                .restart(netrunner_blocking::Restart::Always)
                .backoff(Duration::from_millis(50), Duration::from_millis(100))
                .on_output(move |_, line| {
                    let _ = pids.send(line.to_vec());
                })
                .start()
                .expect("start the daemon");
            for _ in 0..n {
                let mut line = seen.recv().expect("a pid line");
                line.push(b'\n');
                report(&line);
            }
            daemon
        })
        .collect()
}

/// [`daemons`] on tokio.
async fn tokio_daemons(grace: Duration) -> Vec<netrunner_tokio::Daemon> {
    let mut daemons = Vec::new();
    for (script, n) in TREES {
        let (pids, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let mut cmd = netrunner_tokio::Command::new("sh");
        cmd.args(["-c", script]).kill_timeout(grace);
        let daemon = netrunner_tokio::Daemon::new(cmd)
            .restart(netrunner_tokio::Restart::Always)
            .backoff(Duration::from_millis(50), Duration::from_millis(100))
            .on_output(move |_, line| {
                let _ = pids.send(line.to_vec());
            })
            .start()
            .expect("start the daemon");
        for _ in 0..n {
            let mut line = seen.recv().await.expect("a pid line");
            line.push(b'\n');
            report(&line);
        }
        daemons.push(daemon);
    }
    daemons
}

/// A crash loop with a long backoff, reported once it is backing off.
fn daemon_backing_off() -> netrunner_blocking::Daemon {
    let mut cmd = netrunner_blocking::Command::new("sh");
    cmd.args(["-c", "echo $$; exit 3"]);
    let daemon = netrunner_blocking::Daemon::new(cmd)
        .backoff(Duration::from_millis(700), Duration::from_secs(1))
        .on_output(|_, line| {
            let mut line = line.to_vec();
            line.push(b'\n');
            report(&line);
        })
        .start()
        .expect("start the daemon");
    while daemon.state() != netrunner_blocking::DaemonState::BackingOff {
        std::thread::sleep(Duration::from_millis(5));
    }
    daemon
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "blocking".into());
    let grace = Duration::from_millis(
        std::env::args()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1000),
    );
    let held: Box<dyn std::any::Any> = match mode.as_str() {
        "blocking" => Box::new(blocking(grace, None)),
        "tokio" => {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let children = rt.block_on(tokio_trees(grace));
            Box::new((children, rt))
        }
        "async-std" => Box::new(async_std::task::block_on(async_std_trees(grace))),
        // `cgroup:NAME`: the blocking trees, each in its own cgroup
        // (`NAME-0`, `NAME-1`).
        m if m.starts_with("cgroup:") => Box::new(blocking(grace, Some(&m["cgroup:".len()..]))),
        "daemon" => Box::new(daemons(grace)),
        "daemon-tokio" => {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let daemons = rt.block_on(tokio_daemons(grace));
            Box::new((daemons, rt))
        }
        "daemon-backoff" => Box::new(daemon_backing_off()),
        other => panic!("unknown mode {other}"),
    };
    report(b"ready\n");
    let _keep = held;
    loop {
        std::thread::park();
    }
}
