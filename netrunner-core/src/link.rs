//! The library's end of a shepherd link, minus the socket: shared by every front end.
//!
//! A front end owns the socket and its readiness; it hands what it reads to
//! [`LinkState::handle_bytes`] / [`LinkState::handle_eof`], writes
//! [`LinkState::outgoing`] and reports progress with [`LinkState::sent`].
//! Events are acted on as soon as they arrive — including an exit report
//! that came in the same read as `Started` during the launch — so the
//! shepherd is reaped the moment it reports. Dropping the state reaps a
//! shepherd that has not reported (now, or through [`crate::reaper`]).

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Instant;

use crate::machine::{ChildMachine, Event, ExitInfo};
use crate::stats::IoCounters;
use crate::tree::TreeHandles;
use crate::{reaper, Error, ExitStatus, ShepherdError, Stats};

/// `read(2)` on the shepherd socket; 0 is end of stream.
///
/// ECONNRESET is end of stream too: a unix socket closed with unread data
/// in its receive queue resets its peer, which happens whenever the
/// shepherd exits before reading a late request of ours (a terminate sent
/// as the command was already dying). Everything it sent is read first.
pub fn read_socket(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::CONNRESET) => return Ok(0),
            other => return other.map_err(Into::into),
        }
    }
}

/// Machine, shepherd process, counters and unsent bytes of one child.
#[derive(Debug)]
pub struct LinkState {
    /// The protocol state machine.
    pub machine: ChildMachine,
    /// I/O counters shared with the child's pipe handles.
    pub counters: Arc<IoCounters>,
    shepherd: Option<std::process::Child>,
    unsent: Vec<u8>,
    lost: Option<ShepherdError>,
    tree: TreeHandles,
    /// The process that started the child: a `fork` copy of it shares the
    /// socket, and must not end the command by shutting it down.
    owner: netrunner_sys::process::Pid,
}

impl LinkState {
    /// State for a freshly launched child, with the library's own handles
    /// on its tree (see [`crate::tree`]).
    pub fn new(machine: ChildMachine, shepherd: std::process::Child, tree: TreeHandles) -> Self {
        let mut state = LinkState {
            machine,
            counters: Arc::new(IoCounters::default()),
            shepherd: Some(shepherd),
            unsent: Vec::new(),
            lost: None,
            tree,
            owner: netrunner_sys::process::getpid(),
        };
        // The exit report may have arrived with `Started`.
        state.process_events();
        state
    }

    /// Whether this is the process that started the child (not a copy of
    /// it made by `fork`): only it may shut the socket down.
    pub fn in_owner_process(&self) -> bool {
        netrunner_sys::process::getpid() == self.owner
    }

    /// Bytes that must be written to the shepherd socket next.
    pub fn outgoing(&mut self) -> &[u8] {
        if let Some(more) = self.machine.poll_transmit() {
            self.unsent.extend_from_slice(&more);
        }
        &self.unsent
    }

    /// `n` bytes of [`LinkState::outgoing`] were written.
    pub fn sent(&mut self, n: usize) {
        self.unsent.drain(..n.min(self.unsent.len()));
    }

    /// The socket is gone: nothing more can be sent.
    pub fn discard_outgoing(&mut self) {
        self.unsent.clear();
    }

    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        self.machine.handle_bytes(Instant::now(), bytes);
        self.process_events();
    }

    /// The socket reached EOF.
    pub fn handle_eof(&mut self) {
        self.machine.handle_eof(Instant::now());
        self.process_events();
        if let Some(shepherd) = &mut self.shepherd {
            if matches!(shepherd.try_wait(), Ok(Some(_))) {
                self.shepherd = None;
            }
        }
    }

    /// Acts on what the machine learnt: reaps a shepherd that reported the
    /// exit; records a lost one and takes its tree down.
    fn process_events(&mut self) {
        while let Some(event) = self.machine.poll_event() {
            match event {
                Event::Exited(_) => {
                    // It exits right after reporting. Reap it now if it is
                    // already gone, else in the background: the caller never
                    // waits for a shepherd's own teardown.
                    if let Some(shepherd) = self.shepherd.take() {
                        reaper::reap(shepherd);
                    }
                }
                Event::Lost(e) => {
                    // The shepherd vanished (EOF) or broke the protocol:
                    // either way it will not take the tree down; we do.
                    self.tree.take_down();
                    self.lost = Some(e);
                }
                Event::Started { .. } | Event::SpawnFailed { .. } => {}
            }
        }
    }

    /// The exit status if known, an error if the shepherd was lost.
    pub fn status(&self) -> Result<Option<ExitStatus>, Error> {
        match self.machine.exit() {
            Some(info) => Ok(Some(info.status)),
            None if self.machine.is_finished() => Err(match &self.lost {
                Some(ShepherdError::Protocol(e)) => ShepherdError::Protocol(e.clone()),
                _ => ShepherdError::Lost,
            }
            .into()),
            None => Ok(None),
        }
    }

    /// The full exit report, once known.
    pub fn exit_info(&self) -> Result<ExitInfo, Error> {
        self.machine
            .exit()
            .copied()
            .ok_or_else(|| ShepherdError::Lost.into())
    }

    /// Statistics as of now.
    pub fn stats(&self) -> Stats {
        self.machine.stats(Instant::now(), &self.counters)
    }

    /// The command's pid.
    pub fn pid(&self) -> u32 {
        self.machine.pid().unwrap_or(0)
    }
}

impl Drop for LinkState {
    /// The shepherd takes the tree down once our socket closes; the owner's
    /// terminal is taken back now, not after the tree's grace period. A
    /// shepherd that already died unnoticed leaves the tree to us.
    fn drop(&mut self) {
        self.tree.give_back_terminal();
        if let Some(mut shepherd) = self.shepherd.take() {
            if !self.machine.is_finished() && matches!(shepherd.try_wait(), Ok(Some(_))) {
                self.tree.take_down();
            }
            reaper::reap(shepherd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netrunner_proto::{Encode, FromShepherd, Rusage, WireStatus, PROTOCOL_VERSION};
    use std::os::fd::AsFd;

    /// Our end of a socket whose peer sent `report` and then closed without
    /// reading the request we had sent it.
    fn reset_socket() -> std::os::fd::OwnedFd {
        let (ours, theirs) = netrunner_sys::socket::socketpair_stream().unwrap();
        let request = netrunner_proto::ToShepherd::Terminate.to_frame();
        netrunner_sys::socket::send(ours.as_fd(), &request).unwrap();
        netrunner_sys::socket::send(theirs.as_fd(), b"report").unwrap();
        drop(theirs);
        ours
    }

    #[test]
    fn a_reset_after_the_report_reads_as_end_of_stream() {
        let mut buf = [0u8; 64];
        // What the kernel does: data first, then ECONNRESET rather than EOF.
        let raw = reset_socket();
        assert_eq!(rustix::io::read(&raw, &mut buf), Ok(6));
        assert_eq!(
            rustix::io::read(&raw, &mut buf),
            Err(rustix::io::Errno::CONNRESET)
        );
        // What we make of it: data, then end of stream.
        let ours = reset_socket();
        assert_eq!(read_socket(ours.as_fd(), &mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"report");
        assert_eq!(read_socket(ours.as_fd(), &mut buf).unwrap(), 0);
    }

    /// A stand-in shepherd process that has already exited, and the bytes a
    /// shepherd sends when the command exits before the launch returns.
    fn fast_exit() -> (std::process::Child, u32, Vec<u8>) {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Make sure it has exited (but leave it unreaped).
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = &mut child;
        let mut bytes = FromShepherd::Hello {
            version: PROTOCOL_VERSION,
        }
        .to_frame();
        FromShepherd::Started {
            pid: 1,
            shepherd_pid: 1,
        }
        .encode(&mut bytes);
        FromShepherd::Exited {
            status: WireStatus::Code(0),
            rusage: Rusage::default(),
            timed_out: false,
            cgroup: None,
        }
        .encode(&mut bytes);
        (child, pid, bytes)
    }

    #[test]
    fn an_exit_reported_with_started_reaps_the_shepherd_at_once() {
        let (child, pid, bytes) = fast_exit();
        let mut machine = ChildMachine::new(Instant::now());
        machine.handle_bytes(Instant::now(), &bytes);
        // The launch takes only `Started`, as `await_start` does.
        assert!(matches!(machine.poll_event(), Some(Event::Started { .. })));
        let state = LinkState::new(machine, child, TreeHandles::default());
        assert!(state.status().unwrap().unwrap().success());
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the shepherd was reaped when the state was built, not left for drop"
        );
    }
}
