//! Side-by-side benchmarks of netrunner against `std::process` and `tokio::process`.
//!
//! Every scenario runs its contestants alternately, round by round, in one
//! process on one machine, so drift (thermal, page cache, other load) hits
//! all of them alike. Results are a markdown table: median, min, max, and the
//! ratio of the median to the peer's (`std` for blocking contestants,
//! `tokio::process` for async ones). These are measurements, not tests:
//! nothing here fails on a threshold.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::process::Stdio as StdStdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes per read for every contestant, so the read size is not what differs.
const BUF: usize = 64 * 1024;

/// Sizes and repetitions for one run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Rounds of the spawn scenario.
    pub spawn_rounds: usize,
    /// Bytes read in the throughput scenario.
    pub read_bytes: u64,
    /// Rounds of the throughput scenario.
    pub read_rounds: usize,
    /// Bytes through `cat` in the round-trip scenario.
    pub cat_bytes: usize,
    /// Rounds of the round-trip scenario.
    pub cat_rounds: usize,
    /// Concurrent children in the fan-out scenario.
    pub fanout: usize,
    /// Rounds of the fan-out scenario.
    pub fanout_rounds: usize,
    /// Bytes written by the child in the stalled-consumer scenario.
    pub stall_bytes: u64,
}

impl Plan {
    /// The full run recorded in `docs/benchmarks.md`.
    pub const FULL: Plan = Plan {
        spawn_rounds: 300,
        read_bytes: 1 << 30,
        read_rounds: 5,
        cat_bytes: 256 << 20,
        cat_rounds: 5,
        fanout: 500,
        fanout_rounds: 3,
        stall_bytes: 1 << 30,
    };

    /// A smoke run for CI: every code path, few iterations, small sizes.
    pub const QUICK: Plan = Plan {
        spawn_rounds: 5,
        read_bytes: 16 << 20,
        read_rounds: 1,
        cat_bytes: 4 << 20,
        cat_rounds: 1,
        fanout: 20,
        fanout_rounds: 1,
        stall_bytes: 16 << 20,
    };
}

/// One measured contestant.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Who ran.
    pub contestant: String,
    /// The samples.
    pub samples: Vec<f64>,
    /// Unit of the samples.
    pub unit: &'static str,
    /// Index of the row this one is compared with (its peer), if any.
    pub peer: Option<usize>,
}

impl Row {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.samples.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    }
    /// Median sample.
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        v[v.len() / 2]
    }
}

/// Runs every scenario with the full or quick plan and prints the table.
pub fn run(quick: bool) {
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    raise_fd_limit();
    // Warm both spawn paths (page cache, the embedded shepherd's memfd).
    netrunner_blocking::Command::new("/bin/true")
        .output()
        .expect("netrunner runs /bin/true");
    let mut rows = Vec::new();
    spawn_scenario(&plan, &mut rows);
    read_scenario(&plan, &mut rows);
    cat_scenario(&plan, &mut rows);
    fanout_scenario(&plan, &mut rows);
    stall_scenario(&plan, &mut rows);
    println!("{}", machine());
    println!("{}", table(&rows));
}

/// The machine the numbers come from.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("machine: {cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// The results as a markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | contestant | median | min | max | vs peer |\n|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let s = row.sorted();
        let ratio = row
            .peer
            .map(|p| {
                format!(
                    "{:.2}x {}",
                    row.median() / rows[p].median(),
                    rows[p].contestant
                )
            })
            .unwrap_or_else(|| "peer".into());
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} {u} | {:.3} {u} | {:.3} {u} | {} |",
            row.scenario,
            row.contestant,
            row.median(),
            s[0],
            s[s.len() - 1],
            ratio,
            u = row.unit
        );
    }
    out
}

fn raise_fd_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Adds rows for `names`, the first being the peer of the blocking group and
/// `async_peer` (an index into `names`) the peer of the async group.
fn push_rows(
    rows: &mut Vec<Row>,
    scenario: &str,
    unit: &'static str,
    names: &[&str],
    samples: Vec<Vec<f64>>,
    peer_of: &[Option<usize>],
) {
    let base = rows.len();
    for ((name, samples), peer) in names.iter().zip(samples).zip(peer_of) {
        rows.push(Row {
            scenario: scenario.into(),
            contestant: (*name).into(),
            samples,
            unit,
            peer: peer.map(|p| base + p),
        });
    }
}

// ---------------------------------------------------------------------------
// 1. spawn + wait + collect of /bin/true

fn spawn_scenario(plan: &Plan, rows: &mut Vec<Row>) {
    let rt = tokio_rt();
    let mut samples = vec![Vec::new(); 4];
    for _ in 0..plan.spawn_rounds {
        let t = Instant::now();
        let out = std::process::Command::new("/bin/true").output().unwrap();
        samples[0].push(ms(t.elapsed()));
        assert!(out.status.success());

        let t = Instant::now();
        let out = netrunner_blocking::Command::new("/bin/true")
            .output()
            .unwrap();
        samples[1].push(ms(t.elapsed()));
        assert!(out.status.success());

        rt.block_on(async {
            let t = Instant::now();
            let out = tokio::process::Command::new("/bin/true")
                .output()
                .await
                .unwrap();
            samples[2].push(ms(t.elapsed()));
            assert!(out.status.success());

            let t = Instant::now();
            let out = netrunner_tokio::Command::new("/bin/true")
                .output()
                .await
                .unwrap();
            samples[3].push(ms(t.elapsed()));
            assert!(out.status.success());
        });
    }
    push_rows(
        rows,
        "1. spawn+wait+collect /bin/true",
        "ms",
        &[
            "std::process",
            "netrunner-blocking",
            "tokio::process",
            "netrunner-tokio",
        ],
        samples,
        &[None, Some(0), None, Some(2)],
    );
}

// ---------------------------------------------------------------------------
// 2. read N bytes from `head -c N /dev/zero`

fn drain_verify(mut r: impl Read) -> u64 {
    let mut buf = vec![1u8; BUF];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            return total;
        }
        assert!(buf[..n].iter().all(|&b| b == 0), "bytes verified");
        total += n as u64;
    }
}

async fn drain_verify_async(mut r: impl tokio::io::AsyncRead + Unpin) -> u64 {
    let mut buf = vec![1u8; BUF];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            return total;
        }
        assert!(buf[..n].iter().all(|&b| b == 0), "bytes verified");
        total += n as u64;
    }
}

fn read_scenario(plan: &Plan, rows: &mut Vec<Row>) {
    let rt = tokio_rt();
    let n = plan.read_bytes;
    let arg = n.to_string();
    let mb = n as f64 / (1 << 20) as f64;
    let mut samples = vec![Vec::new(); 5];
    for _ in 0..plan.read_rounds {
        // The limit: an in-process pipe, a thread writing zeros.
        let t = Instant::now();
        let (r, w) = netrunner_sys::fd::pipe2_cloexec().unwrap();
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::File::from(w);
            let zeros = vec![0u8; BUF];
            let mut left = n;
            while left > 0 {
                let k = left.min(BUF as u64) as usize;
                w.write_all(&zeros[..k]).unwrap();
                left -= k as u64;
            }
        });
        assert_eq!(drain_verify(std::fs::File::from(r)), n);
        writer.join().unwrap();
        samples[0].push(mb / t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut child = std::process::Command::new("head")
            .args(["-c", &arg])
            .arg("/dev/zero")
            .stdout(StdStdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(drain_verify(child.stdout.take().unwrap()), n);
        assert!(child.wait().unwrap().success());
        samples[1].push(mb / t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut child = netrunner_blocking::Command::new("head")
            .args(["-c", &arg])
            .arg("/dev/zero")
            .stdout(netrunner_blocking::Stdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(drain_verify(child.stdout.take().unwrap()), n);
        assert!(child.wait().unwrap().success());
        samples[2].push(mb / t.elapsed().as_secs_f64());

        rt.block_on(async {
            let t = Instant::now();
            let mut child = tokio::process::Command::new("head")
                .args(["-c", &arg])
                .arg("/dev/zero")
                .stdout(StdStdio::piped())
                .spawn()
                .unwrap();
            assert_eq!(drain_verify_async(child.stdout.take().unwrap()).await, n);
            assert!(child.wait().await.unwrap().success());
            samples[3].push(mb / t.elapsed().as_secs_f64());

            let t = Instant::now();
            let mut child = netrunner_tokio::Command::new("head")
                .args(["-c", &arg])
                .arg("/dev/zero")
                .stdout(netrunner_tokio::Stdio::piped())
                .spawn()
                .unwrap();
            assert_eq!(drain_verify_async(child.stdout.take().unwrap()).await, n);
            assert!(child.wait().await.unwrap().success());
            samples[4].push(mb / t.elapsed().as_secs_f64());
        });
    }
    let scenario = format!("2. read {} MiB from a child (throughput)", n >> 20);
    push_rows(
        rows,
        &scenario,
        "MiB/s",
        &[
            "in-process pipe (limit)",
            "std::process",
            "netrunner-blocking",
            "tokio::process",
            "netrunner-tokio",
        ],
        samples,
        &[None, None, Some(1), None, Some(3)],
    );
}

// ---------------------------------------------------------------------------
// 3. round trip through cat

fn cat_scenario(plan: &Plan, rows: &mut Vec<Row>) {
    let rt = tokio_rt();
    let data: Vec<u8> = (0..plan.cat_bytes).map(|i| (i % 251) as u8).collect();
    let mb = plan.cat_bytes as f64 / (1 << 20) as f64;
    let mut samples = vec![Vec::new(); 4];
    for _ in 0..plan.cat_rounds {
        let t = Instant::now();
        let mut child = std::process::Command::new("cat")
            .stdin(StdStdio::piped())
            .stdout(StdStdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = data.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
        let mut out = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        writer.join().unwrap();
        assert!(child.wait().unwrap().success() && out == data);
        samples[0].push(mb / t.elapsed().as_secs_f64());

        let t = Instant::now();
        let out = netrunner_blocking::Command::new("cat")
            .input(data.clone())
            .output()
            .unwrap();
        assert!(out.status.success() && out.stdout == data);
        samples[1].push(mb / t.elapsed().as_secs_f64());

        rt.block_on(async {
            let t = Instant::now();
            let mut child = tokio::process::Command::new("cat")
                .stdin(StdStdio::piped())
                .stdout(StdStdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = child.stdout.take().unwrap();
            let input = data.clone();
            let write = async move {
                stdin.write_all(&input).await.unwrap();
            };
            let mut out = Vec::new();
            let read = stdout.read_to_end(&mut out);
            let ((), read) = tokio::join!(write, read);
            read.unwrap();
            assert!(child.wait().await.unwrap().success() && out == data);
            samples[2].push(mb / t.elapsed().as_secs_f64());

            let t = Instant::now();
            let out = netrunner_tokio::Command::new("cat")
                .input(data.clone())
                .output()
                .await
                .unwrap();
            assert!(out.status.success() && out.stdout == data);
            samples[3].push(mb / t.elapsed().as_secs_f64());
        });
    }
    let scenario = format!("3. {} MiB round trip through cat", plan.cat_bytes >> 20);
    push_rows(
        rows,
        &scenario,
        "MiB/s",
        &[
            "std::process (+writer thread)",
            "netrunner-blocking output()",
            "tokio::process (join)",
            "netrunner-tokio output()",
        ],
        samples,
        &[None, Some(0), None, Some(2)],
    );
}

// ---------------------------------------------------------------------------
// 4. many concurrent children on one runtime

/// Peak RSS (VmHWM) of this process in KiB.
fn peak_rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// Resets the peak RSS to the current RSS (`clear_refs` value 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn fanout_scenario(plan: &Plan, rows: &mut Vec<Row>) {
    let rt = tokio_rt();
    let mut wall = vec![Vec::new(); 2];
    let mut rss = vec![Vec::new(); 2];
    for _ in 0..plan.fanout_rounds {
        rt.block_on(async {
            reset_peak_rss();
            let t = Instant::now();
            let mut children: Vec<_> = (0..plan.fanout)
                .map(|_| {
                    tokio::process::Command::new("sleep")
                        .arg("0.5")
                        .kill_on_drop(true)
                        .spawn()
                        .unwrap()
                })
                .collect();
            for c in &mut children {
                assert!(c.wait().await.unwrap().success());
            }
            wall[0].push(ms(t.elapsed()));
            rss[0].push(peak_rss_kib() / 1024.0);

            reset_peak_rss();
            let t = Instant::now();
            let mut children: Vec<_> = (0..plan.fanout)
                .map(|_| {
                    netrunner_tokio::Command::new("sleep")
                        .arg("0.5")
                        .spawn()
                        .unwrap()
                })
                .collect();
            for c in &mut children {
                assert!(c.wait().await.unwrap().success());
            }
            wall[1].push(ms(t.elapsed()));
            rss[1].push(peak_rss_kib() / 1024.0);
        });
    }
    let scenario = format!("4. {} concurrent `sleep 0.5`", plan.fanout);
    push_rows(
        rows,
        &scenario,
        "ms",
        &["tokio::process", "netrunner-tokio"],
        wall,
        &[None, Some(0)],
    );
    let scenario = format!("4. {} concurrent `sleep 0.5`: peak RSS", plan.fanout);
    push_rows(
        rows,
        &scenario,
        "MiB",
        &["tokio::process", "netrunner-tokio"],
        rss,
        &[None, Some(0)],
    );
}

// ---------------------------------------------------------------------------
// 5. memory under a stalled consumer

/// Reads everything slowly: one chunk, then a pause, every 8 chunks.
fn slow_drain(mut r: impl Read) -> u64 {
    let mut buf = vec![0u8; BUF];
    let (mut total, mut chunks) = (0u64, 0u64);
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
        chunks += 1;
        if chunks % 8 == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

fn stall_scenario(plan: &Plan, rows: &mut Vec<Row>) {
    let rt = tokio_rt();
    let arg = plan.stall_bytes.to_string();
    let mut rss = vec![Vec::new(); 4];

    reset_peak_rss();
    let mut child = std::process::Command::new("head")
        .args(["-c", &arg, "/dev/zero"])
        .stdout(StdStdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(slow_drain(child.stdout.take().unwrap()), plan.stall_bytes);
    child.wait().unwrap();
    rss[0].push(peak_rss_kib() / 1024.0);

    reset_peak_rss();
    let mut stream = netrunner_blocking::Command::new("head")
        .args(["-c", &arg, "/dev/zero"])
        .stream()
        .unwrap();
    let mut total = 0u64;
    for (i, chunk) in (&mut stream).enumerate() {
        total += chunk.unwrap().len() as u64;
        if i % 8 == 7 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    assert_eq!(total, plan.stall_bytes);
    stream.finish().unwrap();
    rss[1].push(peak_rss_kib() / 1024.0);

    rt.block_on(async {
        reset_peak_rss();
        let mut child = tokio::process::Command::new("head")
            .args(["-c", &arg, "/dev/zero"])
            .stdout(StdStdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = vec![0u8; BUF];
        let (mut total, mut chunks) = (0u64, 0u64);
        loop {
            let n = stdout.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
            chunks += 1;
            if chunks % 8 == 0 {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        assert_eq!(total, plan.stall_bytes);
        child.wait().await.unwrap();
        rss[2].push(peak_rss_kib() / 1024.0);

        reset_peak_rss();
        let mut stream = netrunner_tokio::Command::new("head")
            .args(["-c", &arg, "/dev/zero"])
            .stream()
            .unwrap();
        let (mut total, mut chunks) = (0u64, 0u64);
        while let Some(chunk) = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
        })
        .await
        {
            total += chunk.unwrap().len() as u64;
            chunks += 1;
            if chunks % 8 == 0 {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        assert_eq!(total, plan.stall_bytes);
        stream.finish().await.unwrap();
        rss[3].push(peak_rss_kib() / 1024.0);
    });
    let scenario = format!(
        "5. stalled consumer, child writes {} MiB: peak RSS",
        plan.stall_bytes >> 20
    );
    push_rows(
        rows,
        &scenario,
        "MiB",
        &[
            "std::process",
            "netrunner-blocking stream()",
            "tokio::process",
            "netrunner-tokio stream()",
        ],
        rss,
        &[None, Some(0), None, Some(2)],
    );
}
