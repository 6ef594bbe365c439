//! The soak: netrunner's promises repeated many times, survivors counted
//! exactly. Run through `cargo xtask soak [--quick]`.
//!
//! Every process a scenario starts carries `NETRUNNER_SOAK=<tag>` in its
//! environment; after each scenario `/proc/*/environ` is scanned for the
//! tag, so a survivor is counted even if no pid of it was ever printed.
//! Prints one line per scenario and exits non-zero if anything survived or
//! leaked.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use netrunner_tests::{
    eventually, group_kill_leftovers, open_fds, owner_death_leftovers, rss_kib, settle,
    zombie_children, KillOnDrop, GROUP_KILL_OWNERS, TREES, TREES_PIDS,
};

/// The environment variable that tags every process of a scenario.
const TAG_VAR: &str = "NETRUNNER_SOAK";

/// Rounds per scenario: full and `--quick`.
struct Rounds {
    owner_kill: usize,
    group_kill: usize,
    shepherd_kill: usize,
    spawn_drop: usize,
    output: usize,
    cancelled: usize,
}

const FULL: Rounds = Rounds {
    owner_kill: 100,
    group_kill: 50,
    shepherd_kill: 50,
    spawn_drop: 10_000,
    output: 10_000,
    cancelled: 1_000,
};

const QUICK: Rounds = Rounds {
    owner_kill: 3,
    group_kill: 2,
    shepherd_kill: 3,
    spawn_drop: 200,
    output: 200,
    cancelled: 50,
};

/// The short grace used throughout, so rounds are quick.
const GRACE: Duration = Duration::from_millis(300);

/// Live (not zombie) processes whose environment holds `TAG_VAR=tag`.
fn tagged(tag: &str) -> Vec<u32> {
    netrunner_tests::tagged(TAG_VAR, tag)
}

/// Kills whatever carries `tag`, so one failed round does not leak into
/// the next scenario.
fn kill_tagged(tag: &str) {
    for pid in tagged(tag) {
        if let Some(pid) = netrunner_sys::process::Pid::from_raw(pid as i32) {
            let _ = netrunner_sys::process::kill(pid, netrunner_sys::Signal::KILL);
        }
    }
}

/// One scenario's outcome.
struct Report {
    name: &'static str,
    rounds: usize,
    survivors: usize,
    detail: String,
    took: Duration,
}

impl Report {
    fn print(&self) {
        println!(
            "{:<44} {:>6} rounds  {:>3} survivors  {:>7.1} s  {}",
            self.name,
            self.rounds,
            self.survivors,
            self.took.as_secs_f64(),
            self.detail
        );
    }
}

/// Runs `round` `rounds` times with the tag set, then counts survivors:
/// those `round` reports plus any tagged process still alive.
fn scenario(name: &'static str, rounds: usize, mut round: impl FnMut() -> Vec<u32>) -> Report {
    let tag = format!("{name}-{}", std::process::id()).replace(' ', "-");
    std::env::set_var(TAG_VAR, &tag);
    let began = Instant::now();
    let mut reported = 0;
    for _ in 0..rounds {
        reported += round().len();
    }
    // Whatever was killed has this long to go.
    let _ = eventually(GRACE + Duration::from_secs(2), || tagged(&tag).is_empty());
    let stray = tagged(&tag);
    kill_tagged(&tag);
    std::env::remove_var(TAG_VAR);
    Report {
        name,
        rounds,
        survivors: reported.max(stray.len()),
        detail: format!("(reported {reported}, tagged {})", stray.len()),
        took: began.elapsed(),
    }
}

fn helper(name: &str) -> String {
    let exe = std::env::current_exe().expect("own path");
    exe.with_file_name(name).to_string_lossy().into_owned()
}

fn owner_kill(front_end: &'static str, rounds: usize) -> Report {
    let hold_tree = helper("hold-tree");
    let name = match front_end {
        "blocking" => "owner SIGKILL, blocking front end",
        _ => "owner SIGKILL, tokio front end",
    };
    scenario(name, rounds, || {
        owner_death_leftovers(&hold_tree, front_end, GRACE)
    })
}

fn group_kill(rounds: usize) -> Report {
    let hold_tree = helper("hold-tree");
    scenario("group SIGKILL (20 owners at once)", rounds, || {
        let (left, _guard) = group_kill_leftovers(
            || {
                let mut cmd = std::process::Command::new(&hold_tree);
                cmd.args(["blocking", &GRACE.as_millis().to_string()]);
                cmd
            },
            GROUP_KILL_OWNERS,
            TREES_PIDS,
            netrunner_sys::Signal::KILL,
            GRACE + Duration::from_secs(2),
        );
        left
    })
}

/// The shepherd is SIGKILLed; the library takes the tree down.
fn shepherd_kill(rounds: usize) -> Report {
    scenario("shepherd SIGKILL", rounds, || {
        let (script, n) = TREES[0];
        let mut child = netrunner_blocking::Command::new("sh")
            .args(["-c", script])
            .stdout(netrunner_blocking::Stdio::piped())
            .kill_timeout(GRACE)
            .spawn()
            .expect("spawn");
        let pids = netrunner_tests::read_pid_lines(&mut child, n);
        let mut guard = KillOnDrop::new("sleep");
        guard.add(pids.clone());
        let shepherd = netrunner_tests::shepherd_of(child.id());
        let shepherd = netrunner_sys::process::Pid::from_raw(shepherd as i32).expect("pid");
        let _ = netrunner_sys::process::kill(shepherd, netrunner_sys::Signal::KILL);
        let _ = child.wait();
        // Re-parented to init, which reaps when it will: dead is enough.
        netrunner_tests::wait_dead(&pids, Duration::from_secs(2))
    })
}

/// Counts this process's descriptors, threads, zombies and RSS.
fn footprint() -> (usize, usize, usize, u64) {
    settle();
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    (open_fds(), threads, zombie_children().len(), rss_kib())
}

fn leak_check(name: &'static str, rounds: usize, mut round: impl FnMut()) -> Report {
    // The reaper thread, the spare, the memfd: made once, not leaks.
    netrunner_tests::warm_up_one_time_state();
    let before = footprint();
    let report = scenario(name, rounds, || {
        round();
        Vec::new()
    });
    let after = footprint();
    let leaked = after.0 > before.0 || after.1 > before.1 || after.2 > before.2;
    Report {
        survivors: report.survivors + usize::from(leaked),
        detail: format!(
            "fds {}->{}, threads {}->{}, zombies {}->{}, rss {}->{} KiB {}",
            before.0,
            after.0,
            before.1,
            after.1,
            before.2,
            after.2,
            before.3,
            after.3,
            report.detail
        ),
        ..report
    }
}

fn spawn_drop(rounds: usize) -> Report {
    leak_check("spawn + drop (sleep 1000)", rounds, || {
        let child = netrunner_blocking::Command::new("sleep")
            .arg("1000")
            .kill_timeout(GRACE)
            .spawn()
            .expect("spawn");
        drop(child);
    })
}

fn output(rounds: usize) -> Report {
    leak_check("output() of echo", rounds, || {
        let out = netrunner_blocking::Command::new("echo")
            .arg("soak")
            .output()
            .expect("output");
        assert_eq!(out.stdout, b"soak\n");
    })
}

fn cancelled_async_output(rounds: usize) -> Report {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    leak_check("cancelled async output() (sleep 1000)", rounds, || {
        runtime.block_on(async {
            let run = netrunner_tokio::Command::new("sleep")
                .arg("1000")
                .kill_timeout(GRACE)
                .output();
            let _ = tokio::time::timeout(Duration::from_millis(5), run).await;
        });
    })
}

/// Drops with the descriptor table full: the drop must not wait for the
/// command's grace period, and nothing may survive.
fn exhausted_drop(rounds: usize) -> Report {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let slow = Duration::from_secs(3);
    let mut slowest = Duration::ZERO;
    let mut report = scenario("drop with no descriptor left", rounds, || {
        let mut child = netrunner_blocking::Command::new("sh")
            .args(["-c", "trap '' TERM; echo $$; while :; do sleep 0.1; done"])
            .stdout(netrunner_blocking::Stdio::piped())
            .kill_timeout(slow)
            .spawn()
            .expect("spawn");
        let pids = netrunner_tests::read_pid_lines(&mut child, 1);
        let limit = getrlimit(Resource::Nofile);
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(open_fds() as u64 + 1),
                maximum: limit.maximum,
            },
        );
        let mut filler = Vec::new();
        while let Ok(fd) = netrunner_sys::fd::open_dev_null() {
            filler.push(fd);
        }
        let began = Instant::now();
        drop(child);
        slowest = slowest.max(began.elapsed());
        drop(filler);
        let _ = setrlimit(Resource::Nofile, limit);
        netrunner_tests::wait_gone(&pids, slow + Duration::from_secs(2))
    });
    report.survivors += usize::from(slowest >= slow);
    report.detail = format!("slowest drop {slowest:?} {}", report.detail);
    report
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { QUICK } else { FULL };
    println!(
        "netrunner soak ({}), grace {GRACE:?}",
        if quick { "quick" } else { "full" }
    );
    // The survivor count rests on the tag scan: prove it sees a tagged
    // process before trusting it to see none.
    let probe_tag = format!("probe-{}", std::process::id());
    let mut probe = std::process::Command::new("sleep")
        .arg("100")
        .env(TAG_VAR, &probe_tag)
        .spawn()
        .expect("start the probe");
    let seen = eventually(Duration::from_secs(2), || {
        tagged(&probe_tag) == [probe.id()]
    });
    let _ = probe.kill();
    let _ = probe.wait();
    assert!(
        seen,
        "the /proc/*/environ scan does not see a tagged process"
    );
    println!("tag scan: sees a tagged process");
    let scenarios: Vec<Box<dyn FnOnce() -> Report>> = vec![
        Box::new(|| owner_kill("blocking", rounds.owner_kill)),
        Box::new(|| owner_kill("tokio", rounds.owner_kill)),
        Box::new(|| group_kill(rounds.group_kill)),
        Box::new(|| shepherd_kill(rounds.shepherd_kill)),
        Box::new(|| spawn_drop(rounds.spawn_drop)),
        Box::new(|| output(rounds.output)),
        Box::new(|| cancelled_async_output(rounds.cancelled)),
        Box::new(|| exhausted_drop(if quick { 1 } else { 5 })),
    ];
    let mut failed = 0;
    for scenario in scenarios {
        let report = scenario();
        report.print();
        failed += report.survivors;
    }
    if failed > 0 {
        println!("soak: {failed} survivor(s) or leak(s)");
        std::process::exit(1);
    }
    println!("soak: nothing survived, nothing leaked");
}
