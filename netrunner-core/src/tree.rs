//! What the library holds of a command's tree for when its shepherd cannot act.
//!
//! The shepherd takes the tree down in every case but one: its own death
//! (SIGKILL, a crash, the OOM killer). Then the command's leader dies too
//! (`PR_SET_PDEATHSIG`), but its background jobs and a cgroup would stay.
//! The library is the shepherd's parent and still alive, so it finishes the
//! job with what it was given at the start:
//!
//! - a pidfd of the leader, which the shepherd opened while the leader was
//!   its unreaped child (so it names the right process) and passed with
//!   `Started`. `pidfd_send_signal(PIDFD_SIGNAL_PROCESS_GROUP)` (Linux 6.9+)
//!   SIGKILLs the leader's process group through it: the kernel resolves the
//!   group from the pidfd's `struct pid`, so it reaches the members even
//!   after the leader was reaped and never a stranger's group;
//! - on older kernels, `kill(-pgid)`. Race argument: the group's id is the
//!   leader's pid number, which the kernel keeps allocated while any member
//!   of the group lives. It can be handed out again only once every member
//!   has gone, and Linux allocates pids cyclically, so a stranger could be
//!   given that number as its group only after the allocator went once
//!   around the whole pid space between the socket's EOF and our signal;
//! - the cgroup, when the command has one: `cgroup.kill` reaches every
//!   process in it, however it left the group; the emptied directory is
//!   removed in the background.
//!
//! Without a cgroup, a descendant that left the process group (`setsid`)
//! and whose parent died with the shepherd re-parents to init and is out of
//! reach: run such commands in a cgroup.
//!
//! It also holds the owner's terminal while the command's group is its
//! foreground group. The shepherd gives it back when the command exits,
//! before it reports; the library takes it back itself on the ways out the
//! shepherd does not see in time: a drop (at once, not after the grace
//! period) and a lost shepherd.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use netrunner_sys::process::{self, Pid};
use netrunner_sys::Signal;

/// How long a lost shepherd's emptied cgroup is given to become removable.
pub const CGROUP_REMOVE_GRACE: Duration = Duration::from_secs(5);

/// The owner's terminal, lent to the command's process group.
#[derive(Debug)]
pub struct LentTerminal {
    /// A descriptor of the terminal.
    pub tty: OwnedFd,
    /// The owner's process group, which had the foreground.
    pub owner: Pid,
}

/// The library's handles on a running command's tree.
#[derive(Debug, Default)]
pub struct TreeHandles {
    /// pidfd of the command's leader, if the shepherd sent one.
    pub leader: Option<OwnedFd>,
    /// The leader's pid, which is also its process-group id.
    pub pgid: Option<Pid>,
    /// The command's cgroup directory, if it has one.
    pub cgroup: Option<PathBuf>,
    /// The owner's terminal, while the command holds its foreground.
    pub terminal: Option<LentTerminal>,
}

impl TreeHandles {
    /// The owner's group gets the terminal's foreground back, if the
    /// command's group still holds it. Once; later calls do nothing.
    pub fn give_back_terminal(&mut self) {
        if let (Some(lent), Some(pgid)) = (self.terminal.take(), self.pgid) {
            netrunner_sys::terminal::reclaim_foreground(lent.tty.as_fd(), pgid, lent.owner);
        }
    }

    /// The shepherd died without reporting: SIGKILL whatever is left of the
    /// tree (its leader already got SIGKILL from `PR_SET_PDEATHSIG`, so
    /// there is no grace to give) and remove its cgroup. Once.
    pub fn take_down(&mut self) {
        self.give_back_terminal();
        if let Some(pgid) = self.pgid.take() {
            kill_group(self.leader.take(), pgid);
        }
        if let Some(dir) = self.cgroup.take() {
            // No such file: the shepherd removed the cgroup before it went.
            if netrunner_sys::cgroup::cgroup_kill(&dir).is_ok() {
                remove_cgroup_later(dir);
            }
        }
    }
}

fn kill_group(leader: Option<OwnedFd>, pgid: Pid) {
    #[cfg(target_os = "linux")]
    if let Some(pidfd) = &leader {
        match process::pidfd_send_signal_group(pidfd.as_fd(), Signal::KILL) {
            // ESRCH: nobody is left in the group.
            Ok(()) => return,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => return,
            // EINVAL: a kernel before 6.9; see the module docs.
            Err(_) => {}
        }
    }
    drop(leader);
    let _ = process::kill_process_group(pgid, Signal::KILL);
}

/// Removes `dir` once the processes just killed in it are gone, from a
/// short-lived thread: dropping a child must not wait for that.
fn remove_cgroup_later(dir: PathBuf) {
    let fallback = dir.clone();
    let remove = move || {
        let _ = netrunner_sys::cgroup::remove_when_empty(&dir, CGROUP_REMOVE_GRACE);
    };
    if std::thread::Builder::new()
        .name("netrunner-cgroup-rm".into())
        .spawn(remove)
        .is_err()
    {
        // No thread: one attempt now, which succeeds if the kill was quick.
        let _ = std::fs::remove_dir(&fallback);
    }
}
