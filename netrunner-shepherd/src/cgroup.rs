//! The child's cgroup: create and configure it, signal everything in it, remove it.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use netrunner_proto::{CgroupSpec, CgroupUsage};
use netrunner_sys::cgroup::write_control;
use netrunner_sys::process::{self, Pid};
use netrunner_sys::Signal;

/// How long teardown waits for the kernel to release an emptied cgroup.
const REMOVE_GRACE: Duration = Duration::from_secs(2);

/// A cgroup this shepherd created for its child.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    /// `cgroup.procs`, open for the child to write itself into.
    procs: File,
}

/// How long a freeze is given to take hold before signalling anyway.
const FREEZE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl Cgroup {
    /// Creates the directory and writes the limits (the library has
    /// already enabled their controllers in the parent). Nothing is left
    /// behind on failure.
    pub fn create(spec: &CgroupSpec) -> io::Result<Cgroup> {
        let dir = PathBuf::from(OsStr::from_bytes(&spec.path));
        let limits: Vec<(&str, String)> = [
            spec.memory_max.map(|m| ("memory.max", m.to_string())),
            spec.pids_max.map(|p| ("pids.max", p.to_string())),
            spec.cpu_max.map(|(q, p)| ("cpu.max", format!("{q} {p}"))),
        ]
        .into_iter()
        .flatten()
        .collect();
        fs::create_dir(&dir)?;
        let configured = limits
            .iter()
            .try_for_each(|(file, value)| write_control(&dir.join(file), value))
            .and_then(|()| {
                OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
            });
        match configured {
            Ok(procs) => Ok(Cgroup { dir, procs }),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// `cgroup.procs`, for the child to join before exec.
    pub fn procs(&self) -> BorrowedFd<'_> {
        self.procs.as_fd()
    }

    fn members(&self) -> Vec<Pid> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter_map(Pid::from_raw)
            .collect()
    }

    /// Whether no live process is left in the cgroup.
    pub fn is_empty(&self) -> bool {
        self.members().is_empty()
    }

    /// Sends `sig` to every process in the cgroup, wherever in the process
    /// tree it is.
    ///
    /// SIGKILL uses `cgroup.kill` (Linux 5.14+), which kills everything in
    /// it at once. Otherwise the cgroup is frozen while its members are
    /// listed and signalled: a frozen process cannot reap a child, so no
    /// listed pid can be released and recycled before it is signalled.
    pub fn signal_all(&self, sig: Signal) {
        if sig == Signal::KILL && netrunner_sys::cgroup::cgroup_kill(&self.dir).is_ok() {
            return;
        }
        let frozen = write_control(&self.dir.join("cgroup.freeze"), "1").is_ok();
        if frozen {
            // Freezing is asynchronous: until `frozen 1`, a member can
            // still fork one we would not list.
            self.wait_frozen();
        }
        for pid in self.members() {
            let _ = process::kill(pid, sig);
        }
        if frozen {
            let _ = write_control(&self.dir.join("cgroup.freeze"), "0");
        }
    }

    fn wait_frozen(&self) {
        wait_frozen(&self.dir, FREEZE_WAIT);
    }

    /// What the cgroup measured.
    pub fn usage(&self) -> CgroupUsage {
        let read_u64 = |file: &str| {
            fs::read_to_string(self.dir.join(file))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let cpu_usage_us = fs::read_to_string(self.dir.join("cpu.stat"))
            .ok()
            .and_then(|stat| {
                stat.lines()
                    .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
            });
        CgroupUsage {
            memory_peak: read_u64("memory.peak"),
            cpu_usage_us,
        }
    }

    /// Removes the (empty) cgroup. The kernel may take a moment to release
    /// the last exited task; that wait is bounded and watched through
    /// `cgroup.events`, never slept through blindly.
    pub fn remove(self) -> io::Result<()> {
        let Cgroup { dir, procs } = self;
        drop(procs);
        netrunner_sys::cgroup::remove_when_empty(&dir, REMOVE_GRACE)
    }
}

/// Waits, at most `limit`, until `dir/cgroup.events` says `frozen 1`;
/// returns whether it did. A cgroup without the file cannot say.
fn wait_frozen(dir: &std::path::Path, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let Ok(events) = fs::read_to_string(dir.join("cgroup.events")) else {
            return false;
        };
        if events.lines().any(|l| l.trim() == "frozen 1") {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freeze_is_waited_for_until_the_kernel_reports_it() {
        let dir = std::env::temp_dir().join(format!("netrunner-freeze-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let flip = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
            })
        };
        let began = std::time::Instant::now();
        assert!(wait_frozen(&dir, std::time::Duration::from_secs(5)));
        assert!(began.elapsed() >= std::time::Duration::from_millis(100));
        flip.join().unwrap();
        fs::write(dir.join("cgroup.events"), "frozen 0\n").unwrap();
        assert!(!wait_frozen(&dir, std::time::Duration::from_millis(20)));
        fs::remove_dir_all(&dir).unwrap();
    }
}
