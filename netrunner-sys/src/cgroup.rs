//! cgroup v2 files: killing everything in a cgroup, removing it once empty.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes `value` to the existing control file `path` (never creates one).
pub fn write_control(path: &Path, value: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// `echo 1 > cgroup.kill`: SIGKILL every process in the cgroup at `dir` and
/// its descendants at once, wherever they are in the process tree (Linux
/// 5.14+). `ENOENT` when the kernel lacks it or the cgroup is gone.
///
/// # References
/// - [`cgroups(7)`](https://man7.org/linux/man-pages/man7/cgroups.7.html),
///   [cgroup v2: `cgroup.kill`](https://docs.kernel.org/admin-guide/cgroup-v2.html)
pub fn cgroup_kill(dir: &Path) -> io::Result<()> {
    write_control(&dir.join("cgroup.kill"), "1")
}

/// Removes the cgroup at `dir`, waiting up to `grace` for the kernel to
/// release tasks that were just killed in it (`rmdir` says `EBUSY` until
/// then). The wait is a `poll` on `cgroup.events`, which signals `POLLPRI`
/// when "populated" changes, never a blind sleep.
pub fn remove_when_empty(dir: &Path, grace: Duration) -> io::Result<()> {
    let deadline = Instant::now() + grace;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(e);
                }
                let events = File::open(dir.join("cgroup.events"))?;
                let mut pfd = [rustix::event::PollFd::new(
                    &events,
                    rustix::event::PollFlags::PRI,
                )];
                let step = left.min(Duration::from_millis(50));
                let ts = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: step.as_nanos() as i64,
                };
                let _ = rustix::event::poll(&mut pfd, Some(&ts));
            }
            Err(e) => return Err(e),
        }
    }
}
