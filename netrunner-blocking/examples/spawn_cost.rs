//! Measures spawn + wait + collect of `/bin/true` for netrunner and std,
//! alternating in one run, and prints medians and the ratio.
//!
//! `cargo run --release -p netrunner-blocking --example spawn_cost [ROUNDS]`
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    // Warm up both (page cache, the embedded shepherd's memfd).
    netrunner_blocking::Command::new("/bin/true")
        .output()
        .unwrap();
    std::process::Command::new("/bin/true").output().unwrap();
    let (mut ours, mut std_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let out = netrunner_blocking::Command::new("/bin/true")
            .output()
            .unwrap();
        ours.push(t.elapsed());
        assert!(out.status.success());
        let t = Instant::now();
        let out = std::process::Command::new("/bin/true").output().unwrap();
        std_times.push(t.elapsed());
        assert!(out.status.success());
    }
    let (a, b) = (median(ours), median(std_times));
    println!("rounds: {rounds}");
    println!("netrunner-blocking output(): median {a:?}");
    println!("std::process output():       median {b:?}");
    println!("ratio: {:.2}x", a.as_secs_f64() / b.as_secs_f64());
}
