//! Collecting a command's output under a byte cap, and feeding its input.

use crate::machine::ExitInfo;
use crate::stats::{Stats, StreamKind};
use crate::{Error, Output};

/// Buffers stdout and stderr, keeping at most `limit` bytes in total.
#[derive(Debug, Default)]
pub struct Collector {
    limit: Option<usize>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    limit_hit: bool,
}

impl Collector {
    /// A collector keeping at most `limit` bytes of stdout + stderr.
    pub fn new(limit: Option<usize>) -> Self {
        Collector {
            limit,
            ..Collector::default()
        }
    }

    /// Takes bytes read from `stream`. Returns `false` once more arrived
    /// than the limit allows: exactly the limit is kept, the excess dropped.
    pub fn push(&mut self, stream: StreamKind, data: &[u8]) -> bool {
        let kept = self.stdout.len() + self.stderr.len();
        let room = self.limit.map_or(usize::MAX, |l| l.saturating_sub(kept));
        let take = data.len().min(room);
        let buf = if stream == StreamKind::Stderr {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        buf.extend_from_slice(&data[..take]);
        if take < data.len() {
            self.limit_hit = true;
        }
        !self.limit_hit
    }

    /// Whether the limit was exceeded.
    pub fn limit_hit(&self) -> bool {
        self.limit_hit
    }

    /// How many more bytes fit before the limit (`usize::MAX` without one).
    pub fn room(&self) -> usize {
        let kept = self.stdout.len() + self.stderr.len();
        self.limit.map_or(usize::MAX, |l| l.saturating_sub(kept))
    }

    /// The result of an `output()` run: `Timeout` or `OutputLimit` carrying
    /// the partial output, or the output itself.
    pub fn finish(self, exit: &ExitInfo, stats: Stats) -> Result<Output, Error> {
        let output = Output {
            status: exit.status,
            stdout: self.stdout,
            stderr: self.stderr,
            stats,
        };
        if exit.timed_out {
            Err(Error::Timeout {
                partial: Box::new(output),
            })
        } else if self.limit_hit {
            Err(Error::OutputLimit {
                partial: Box::new(output),
            })
        } else {
            Ok(output)
        }
    }
}

/// The `input` bytes still to write to the command's stdin.
#[derive(Debug, Default)]
pub struct Feeder {
    data: Vec<u8>,
    written: usize,
}

impl Feeder {
    /// Feeds `data`.
    pub fn new(data: Vec<u8>) -> Self {
        Feeder { data, written: 0 }
    }
    /// What remains to be written.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.written..]
    }
    /// `n` more bytes were written.
    pub fn advance(&mut self, n: usize) {
        self.written = (self.written + n).min(self.data.len());
    }
    /// Everything was written.
    pub fn is_done(&self) -> bool {
        self.written == self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExitStatus;
    use netrunner_proto::{Rusage, WireStatus};
    use std::time::Instant;

    fn exit(timed_out: bool) -> ExitInfo {
        ExitInfo {
            status: ExitStatus::from_wire(WireStatus::Code(0)),
            rusage: Rusage::default(),
            timed_out,
            at: Instant::now(),
        }
    }

    #[test]
    fn keeps_exactly_the_limit_across_streams() {
        let mut c = Collector::new(Some(10));
        assert!(c.push(StreamKind::Stdout, b"12345"));
        assert!(c.push(StreamKind::Stderr, b"678"));
        assert_eq!(c.room(), 2);
        assert!(!c.push(StreamKind::Stdout, b"9abc"));
        match c.finish(&exit(false), Stats::default()) {
            Err(Error::OutputLimit { partial }) => {
                assert_eq!(partial.stdout, b"123459a");
                assert_eq!(partial.stderr, b"678");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exactly_the_limit_is_not_exceeding_it() {
        let mut c = Collector::new(Some(4));
        assert!(c.push(StreamKind::Stdout, b"abcd"));
        assert!(c.finish(&exit(false), Stats::default()).is_ok());
        let mut c = Collector::new(Some(0));
        assert!(c.push(StreamKind::Stdout, b""));
        assert!(!c.push(StreamKind::Stdout, b"x"));
    }

    #[test]
    fn timeout_wins_and_carries_output() {
        let mut c = Collector::new(None);
        c.push(StreamKind::Stdout, b"partial");
        match c.finish(&exit(true), Stats::default()) {
            Err(Error::Timeout { partial }) => assert_eq!(partial.stdout, b"partial"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn feeder_tracks_progress() {
        let mut f = Feeder::new(b"hello".to_vec());
        f.advance(2);
        assert_eq!(f.pending(), b"llo");
        f.advance(10);
        assert!(f.is_done());
    }
}
