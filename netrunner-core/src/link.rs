//! The library's end of a shepherd link, minus the socket: shared by every front end.
//!
//! A front end owns the socket and its readiness; it hands what it reads to
//! [`LinkState::handle_bytes`] / [`LinkState::handle_eof`], writes
//! [`LinkState::outgoing`] and reports progress with [`LinkState::sent`],
//! then calls [`LinkState::process_events`]. Dropping the state reaps the
//! shepherd (now, or through [`crate::reaper`] if it is still running).

use std::sync::Arc;
use std::time::Instant;

use crate::machine::{ChildMachine, Event, ExitInfo};
use crate::stats::IoCounters;
use crate::{reaper, Error, ExitStatus, ShepherdError, Stats};

/// How to reap a shepherd once it has reported the exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapShepherd {
    /// Block until it is gone: it exits right after reporting, so this is
    /// brief, and it keeps the reaper thread out of the common path.
    Wait,
    /// Never block (async executors): reap now if it is gone, else hand it
    /// to the reaper.
    NoBlock,
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
    reap: ReapShepherd,
}

impl LinkState {
    /// State for a freshly launched child.
    pub fn new(machine: ChildMachine, shepherd: std::process::Child, reap: ReapShepherd) -> Self {
        LinkState {
            machine,
            counters: Arc::new(IoCounters::default()),
            shepherd: Some(shepherd),
            unsent: Vec::new(),
            reap,
        }
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
    }

    /// The socket reached EOF.
    pub fn handle_eof(&mut self) {
        self.machine.handle_eof(Instant::now());
        if let Some(shepherd) = &mut self.shepherd {
            if matches!(shepherd.try_wait(), Ok(Some(_))) {
                self.shepherd = None;
            }
        }
    }

    /// Acts on what the machine learnt; an error if the shepherd was lost.
    pub fn process_events(&mut self) -> Result<(), Error> {
        let mut lost = None;
        while let Some(event) = self.machine.poll_event() {
            match event {
                Event::Exited(_) => {
                    if let Some(mut shepherd) = self.shepherd.take() {
                        match self.reap {
                            ReapShepherd::Wait => {
                                let _ = shepherd.wait();
                            }
                            ReapShepherd::NoBlock => reaper::reap(shepherd),
                        }
                    }
                }
                Event::Lost(e) => lost = Some(e),
                Event::Started { .. } | Event::SpawnFailed { .. } => {}
            }
        }
        match lost {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The exit status if known, an error if the shepherd was lost.
    pub fn status(&self) -> Result<Option<ExitStatus>, Error> {
        match self.machine.exit() {
            Some(info) => Ok(Some(info.status)),
            None if self.machine.is_finished() => Err(ShepherdError::Lost.into()),
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
    fn drop(&mut self) {
        if let Some(shepherd) = self.shepherd.take() {
            reaper::reap(shepherd);
        }
    }
}
