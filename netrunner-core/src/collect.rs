//! Collecting a command's output under a byte cap, and feeding its input.

use std::time::Duration;

use crate::machine::ExitInfo;
use crate::stats::{Stats, StreamKind};
use crate::{Error, Output};

/// How long `output()` keeps reading after the exit report when a pipe has
/// not reached EOF. Everything in the tree is dead by then, so only a process
/// outside it (one handed the pipe over a socket, say) can still hold the
/// pipe, and `output()` does not wait for strangers.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Bytes read per `read` call when collecting or streaming.
pub const READ_CHUNK: usize = 64 * 1024;

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

    /// Reads once into the buffer for `stream` with `read`, which appends to
    /// the `Vec` it is given (straight into its spare capacity: no copy),
    /// then applies the limit. Returns what `read` returned; 0 is EOF.
    pub fn read_with(
        &mut self,
        stream: StreamKind,
        read: impl FnOnce(&mut Vec<u8>) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let buf = if stream == StreamKind::Stderr {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        buf.reserve(READ_CHUNK);
        let n = read(buf)?;
        if let Some(limit) = self.limit {
            let kept = self.stdout.len() + self.stderr.len();
            if kept > limit {
                let buf = if stream == StreamKind::Stderr {
                    &mut self.stderr
                } else {
                    &mut self.stdout
                };
                buf.truncate(buf.len() - (kept - limit));
                self.limit_hit = true;
            }
        }
        Ok(n)
    }

    /// Whether the limit was exceeded.
    pub fn limit_hit(&self) -> bool {
        self.limit_hit
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

/// The result of `status()`: the status, or [`Error::Timeout`] if the
/// command's timeout fired.
pub fn status_result(exit: &ExitInfo, stats: Stats) -> Result<crate::ExitStatus, Error> {
    stream_result(exit, stats, false)
}

/// The result of finishing a stream: the status, [`Error::Timeout`] if the
/// timeout fired, or [`Error::OutputLimit`] if `limit_hit`.
pub fn stream_result(
    exit: &ExitInfo,
    stats: Stats,
    limit_hit: bool,
) -> Result<crate::ExitStatus, Error> {
    let partial = || {
        Box::new(Output {
            status: exit.status,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stats: stats.clone(),
        })
    };
    if exit.timed_out {
        Err(Error::Timeout { partial: partial() })
    } else if limit_hit {
        Err(Error::OutputLimit { partial: partial() })
    } else {
        Ok(exit.status)
    }
}

/// The `input` bytes still to write to the command's stdin.
#[derive(Debug, Default)]
pub struct Feeder {
    data: std::sync::Arc<Vec<u8>>,
    written: usize,
}

impl Feeder {
    /// Feeds `data` (shared with the command: nothing is copied).
    pub fn new(data: std::sync::Arc<Vec<u8>>) -> Self {
        Feeder { data, written: 0 }
    }

    /// Feeds the command's `input` (nothing if it has none).
    pub fn for_command<F>(cmd: &crate::Command<F>) -> Self {
        Feeder::new(cmd.get_input_shared().unwrap_or_default())
    }
    /// What remains to be written.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.written..]
    }
    /// `n` more bytes were written.
    pub fn advance(&mut self, n: usize) {
        self.written = self.written.saturating_add(n).min(self.data.len());
    }
    /// Everything was written.
    pub fn is_done(&self) -> bool {
        self.written == self.data.len()
    }
}

/// Applies `max_output` to a stream of chunks.
///
/// Reads ask for one byte more than the limit allows, so output of exactly
/// the limit is not mistaken for more.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimiter {
    limit: Option<usize>,
    remaining: usize,
    hit: bool,
}

impl ChunkLimiter {
    /// A limiter allowing `limit` bytes (unlimited for `None`).
    pub fn new(limit: Option<usize>) -> Self {
        ChunkLimiter {
            limit,
            remaining: limit.unwrap_or(usize::MAX),
            hit: false,
        }
    }

    /// How many bytes the next read should ask for.
    pub fn want(&self) -> usize {
        READ_CHUNK.min(self.remaining.saturating_add(1))
    }

    /// `n` bytes were read; returns how many of them may be delivered.
    pub fn accept(&mut self, n: usize) -> usize {
        let deliver = n.min(self.remaining);
        if deliver < n {
            self.hit = true;
        }
        if self.limit.is_some() {
            self.remaining -= deliver;
        }
        deliver
    }

    /// Whether more arrived than the limit allows.
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// The error a stream yields once, when the limit is exceeded.
    pub fn error(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "output limit of {} bytes reached; the command was terminated",
                self.limit.unwrap_or(0)
            ),
        )
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
            cgroup: None,
            at: Instant::now(),
        }
    }

    #[test]
    fn keeps_exactly_the_limit_across_streams() {
        let mut c = Collector::new(Some(10));
        assert!(c.push(StreamKind::Stdout, b"12345"));
        assert!(c.push(StreamKind::Stderr, b"678"));
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
    fn reads_in_place_and_truncates_at_the_limit() {
        let mut c = Collector::new(Some(6));
        let n = c
            .read_with(StreamKind::Stdout, |v| {
                v.extend_from_slice(b"abcd");
                Ok(4)
            })
            .unwrap();
        assert_eq!(n, 4);
        assert!(!c.limit_hit());
        c.read_with(StreamKind::Stderr, |v| {
            v.extend_from_slice(b"efgh");
            Ok(4)
        })
        .unwrap();
        assert!(c.limit_hit());
        match c.finish(&exit(false), Stats::default()) {
            Err(Error::OutputLimit { partial }) => {
                assert_eq!(
                    (partial.stdout.as_slice(), partial.stderr.as_slice()),
                    (&b"abcd"[..], &b"ef"[..])
                )
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
    fn chunk_limiter_delivers_exactly_the_limit() {
        let mut l = ChunkLimiter::new(Some(5));
        assert_eq!(l.want(), 6);
        assert_eq!(l.accept(3), 3);
        assert_eq!(l.want(), 3);
        assert_eq!(l.accept(3), 2);
        assert!(l.hit());
        let mut exact = ChunkLimiter::new(Some(2));
        assert_eq!(exact.accept(2), 2);
        assert!(!exact.hit(), "EOF after exactly the limit is fine");
        let mut none = ChunkLimiter::new(None);
        assert_eq!(none.want(), READ_CHUNK);
        assert_eq!(none.accept(READ_CHUNK), READ_CHUNK);
        assert!(!none.hit());
    }

    #[test]
    fn feeder_tracks_progress() {
        let mut f = Feeder::new(std::sync::Arc::new(b"hello".to_vec()));
        f.advance(2);
        assert_eq!(f.pending(), b"llo");
        f.advance(10);
        assert!(f.is_done());
    }
}
