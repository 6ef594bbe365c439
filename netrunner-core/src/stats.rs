//! Per-child statistics: I/O counted by our handles, CPU and memory by the kernel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a command did and cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes written to the command's stdin.
    pub bytes_in: u64,
    /// Bytes read from its stdout.
    pub bytes_out: u64,
    /// Bytes read from its stderr.
    pub bytes_err: u64,
    /// Reads from stdout/stderr that returned data.
    pub read_count: u64,
    /// Writes to stdin that accepted data.
    pub write_count: u64,
    /// Wall time from spawn to exit (or to now, while running).
    pub duration: Duration,
    /// User CPU time of the command and every descendant it reaped or we reaped (after exit).
    pub user_time: Duration,
    /// System CPU time, likewise (after exit).
    pub system_time: Duration,
    /// Peak resident set size of the largest process in the tree, bytes (after exit).
    pub max_rss: u64,
    /// Peak memory of the whole cgroup (`memory.peak`), bytes: only with
    /// a cgroup whose memory controller is enabled, after exit.
    pub memory_peak: Option<u64>,
    /// CPU time of the whole cgroup (`cpu.stat` `usage_usec`): only with a
    /// cgroup, after exit.
    pub cgroup_cpu_time: Option<Duration>,
}

/// Shared, lock-free I/O counters; every pipe handle of a child holds one.
#[derive(Debug, Default)]
pub struct IoCounters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    bytes_err: AtomicU64,
    read_count: AtomicU64,
    write_count: AtomicU64,
}

/// Which stream a count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// The command's stdin.
    Stdin,
    /// The command's stdout.
    Stdout,
    /// The command's stderr.
    Stderr,
}

impl IoCounters {
    /// Records a successful read or write of `n` bytes on `stream`.
    pub fn record(&self, stream: StreamKind, n: usize) {
        if n == 0 {
            return;
        }
        let n = n as u64;
        let (bytes, ops) = match stream {
            StreamKind::Stdin => (&self.bytes_in, &self.write_count),
            StreamKind::Stdout => (&self.bytes_out, &self.read_count),
            StreamKind::Stderr => (&self.bytes_err, &self.read_count),
        };
        bytes.fetch_add(n, Ordering::Relaxed);
        ops.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counts into `stats`.
    pub fn fill(&self, stats: &mut Stats) {
        stats.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        stats.bytes_out = self.bytes_out.load(Ordering::Relaxed);
        stats.bytes_err = self.bytes_err.load(Ordering::Relaxed);
        stats.read_count = self.read_count.load(Ordering::Relaxed);
        stats.write_count = self.write_count.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_operations_per_stream() {
        let c = IoCounters::default();
        c.record(StreamKind::Stdin, 10);
        c.record(StreamKind::Stdout, 5);
        c.record(StreamKind::Stdout, 0);
        c.record(StreamKind::Stderr, 7);
        let mut s = Stats::default();
        c.fill(&mut s);
        assert_eq!((s.bytes_in, s.bytes_out, s.bytes_err), (10, 5, 7));
        assert_eq!((s.write_count, s.read_count), (1, 2));
    }
}
