//! Wire format between the netrunner library and its per-child shepherd.
//!
//! Every message travels as one frame: a little-endian `u32` payload length
//! followed by the payload, whose first byte is a message tag. The first frame
//! each side sends is [`ToShepherd::Hello`] / [`FromShepherd::Hello`] carrying
//! [`PROTOCOL_VERSION`]; [`FrameDecoder`] refuses anything else first.
//!
//! Decoding is total: any byte string yields a message or a [`DecodeError`],
//! never a panic, and no length read from the wire is trusted before it is
//! checked against [`MAX_FRAME_LEN`] and against the bytes actually present,
//! so a hostile peer cannot make us allocate more than it sent.
#![forbid(unsafe_code)]

use static_assertions::const_assert;

/// Version of this wire format; both sides must agree exactly.
pub const PROTOCOL_VERSION: u16 = 3;

/// Bytes in a frame header (the payload length).
pub const HEADER_LEN: usize = 4;

/// Largest payload accepted. Generous enough for an argv + environment at
/// Linux's `ARG_MAX` limits, small enough to refuse allocation bombs.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// Most extra descriptors a command may be given (`Command::fd`).
pub const MAX_EXTRA_FDS: usize = 8;

/// Highest descriptor number an extra descriptor may take in the child.
pub const MAX_CHILD_FD: u32 = 1023;

/// Largest number of file descriptors one spawn request may reference: the
/// three standard streams, the owner's working directory and the extra
/// descriptors.
pub const MAX_PASSED_FDS: usize = 4 + MAX_EXTRA_FDS;

const_assert!(HEADER_LEN == core::mem::size_of::<u32>());
const_assert!(MAX_FRAME_LEN <= u32::MAX as usize);
// Signal numbers and errnos travel as i32: both sides are `c_int`.
const_assert!(core::mem::size_of::<i32>() == 4);

/// What can go wrong decoding a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload ended before a field did.
    #[error("frame truncated while reading {0}")]
    Truncated(&'static str),
    /// A frame announced a payload larger than [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN} byte limit")]
    FrameTooLong(u64),
    /// The payload was empty (no tag byte).
    #[error("empty frame")]
    Empty,
    /// The tag byte names no known message.
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    /// A field held a value outside its domain.
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
    /// Bytes were left over after the message was complete.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, peer {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The first frame was not a hello.
    #[error("first frame was not a hello")]
    MissingHello,
}

impl From<DecodeError> for std::io::Error {
    fn from(e: DecodeError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// Where a child's standard stream comes from, as the shepherd sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioSpec {
    /// Open `/dev/null`.
    Null,
    /// Use the file descriptor passed alongside the request at this index.
    Passed(u8),
}

/// How the child is isolated from the shepherd's terminal signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// `setpgid(0, 0)`: a new process group led by the child.
    ProcessGroup,
    /// `setsid()`: a new session (and group), e.g. for a pty.
    Session,
}

/// Terminal settings for pty mode (reserved: the shepherd refuses it today).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtySpec {
    /// Initial rows.
    pub rows: u16,
    /// Initial columns.
    pub cols: u16,
    /// Whether the terminal echoes input.
    pub echo: bool,
}

/// cgroup v2 placement and limits (reserved: the shepherd refuses it today).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSpec {
    /// Path of the cgroup directory to create and join.
    pub path: Vec<u8>,
    /// `memory.max` in bytes.
    pub memory_max: Option<u64>,
    /// `pids.max`.
    pub pids_max: Option<u64>,
    /// `cpu.max` as (quota, period) in microseconds.
    pub cpu_max: Option<(u64, u64)>,
}

/// One resource limit to apply with `setrlimit` (reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_*` resource number.
    pub resource: u32,
    /// Soft limit (`u64::MAX` = unlimited).
    pub soft: u64,
    /// Hard limit (`u64::MAX` = unlimited).
    pub hard: u64,
}

/// The owner's terminal, to be handed to the command for its run.
///
/// Sent when one of the command's standard streams is the owner's
/// controlling terminal and the owner's process group is its foreground
/// group: the command's group takes the foreground (as a job-control shell
/// gives it to a job) and the owner's gets it back when the command exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Foreground {
    /// Which standard stream (0, 1 or 2) is the terminal.
    pub stdio: u8,
    /// The owner's process group, which is in the foreground now.
    pub owner_pgid: u32,
}

/// Per-thread attributes a child inherits from the thread that forks it, as
/// a fork of the calling thread would pass them on.
///
/// A shepherd started ahead of time (a spare) was forked by another thread,
/// earlier; it takes these on before it starts the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadAttributes {
    /// Nice value.
    pub nice: i32,
    /// Scheduling policy (`SCHED_*`, without `SCHED_RESET_ON_FORK`).
    pub sched_policy: u32,
    /// Static scheduling priority (real-time policies; 0 otherwise).
    pub sched_priority: u32,
    /// I/O priority, as `ioprio_get` returns it.
    pub ioprio: u32,
    /// CPU affinity mask, 64 CPUs per word, CPU 0 in bit 0 of word 0.
    pub cpu_affinity: Vec<u64>,
    /// Execution domain (`personality`).
    pub personality: u32,
    /// Timer slack in nanoseconds.
    pub timer_slack_ns: u64,
    /// The process's `oom_score_adj`.
    pub oom_score_adj: i32,
}

/// What a spare shepherd checks and takes on before it starts the child, so
/// the child is the one a shepherd forked by the calling thread at that
/// moment would start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpareCheck {
    /// The calling thread's identity: everything a child inherits that a
    /// process cannot take on later (credentials, namespaces, root, ...),
    /// compared byte for byte with the spare's own.
    pub identity: Vec<u8>,
    /// The calling process's `/proc/self/cgroup`; another process can move
    /// the spare, so it is compared at spawn time.
    pub cgroups: Vec<u8>,
    /// Attributes the spare takes on.
    pub attributes: ThreadAttributes,
}

/// Everything the shepherd needs to start the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    /// Path to execute (already resolved against `PATH` by the library).
    pub program: Vec<u8>,
    /// Full argv, `argv[0]` included.
    pub argv: Vec<Vec<u8>>,
    /// Full environment as `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    /// Working directory for the child; relative to `cwd_fd` when that is set.
    pub cwd: Option<Vec<u8>>,
    /// Index of the passed descriptor (an `O_PATH` of the owner's working
    /// directory) the child changes to before `cwd`, if any.
    pub cwd_fd: Option<u8>,
    /// stdin, stdout, stderr.
    pub stdio: [StdioSpec; 3],
    /// Process group or session.
    pub isolation: Isolation,
    /// Grace between SIGTERM and SIGKILL, in milliseconds.
    pub kill_timeout_ms: u64,
    /// Wall-clock limit for the whole run, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Pty mode.
    pub pty: Option<PtySpec>,
    /// cgroup placement.
    pub cgroup: Option<CgroupSpec>,
    /// Resource limits to set in the child before exec.
    pub rlimits: Vec<Rlimit>,
    /// File mode creation mask to set in the child before exec.
    pub umask: Option<u32>,
    /// The owner's terminal to hand to the command, if any.
    pub foreground: Option<Foreground>,
    /// For a spare shepherd: what it must match and take on first.
    pub spare_check: Option<Box<SpareCheck>>,
    /// Extra descriptors for the child: (its number in the child, index of
    /// the passed descriptor).
    pub extra_fds: Vec<(u32, u8)>,
}

/// Which processes a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTarget {
    /// The child's whole process group.
    Group,
    /// Only the child itself.
    Leader,
}

/// Messages from the library to the shepherd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToShepherd {
    /// First frame: the library's protocol version.
    Hello {
        /// [`PROTOCOL_VERSION`] of the sender.
        version: u16,
    },
    /// Start the child.
    Spawn(Box<SpawnRequest>),
    /// Deliver a signal.
    Signal {
        /// Raw signal number.
        signal: i32,
        /// Group or leader.
        target: SignalTarget,
    },
    /// SIGTERM the tree, SIGKILL it after the kill timeout.
    Terminate,
    /// SIGKILL the tree now.
    Kill,
    /// Resize the pty.
    SetWindowSize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

/// Which step of starting the child failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnStage {
    /// The request itself was unusable (bad fd index, unsupported option).
    Request,
    /// `fork` failed.
    Fork,
    /// Joining the new process group or session failed.
    ProcessGroup,
    /// `prctl(PR_SET_PDEATHSIG)` failed.
    ParentDeathSignal,
    /// Installing the standard streams failed.
    Stdio,
    /// `chdir` to the working directory failed.
    Chdir,
    /// Resetting signal dispositions or the mask failed.
    Signals,
    /// `execve` failed.
    Exec,
    /// Setting a resource limit or the umask failed.
    Limits,
    /// Making the pty the controlling terminal failed.
    Terminal,
    /// Creating or joining the cgroup failed.
    Cgroup,
    /// A spare shepherd is not identical to the calling thread (start a
    /// fresh one instead).
    Identity,
    /// Taking on the calling thread's scheduling and placement attributes
    /// failed.
    Attributes,
}

impl SpawnStage {
    /// Wire value.
    pub const fn to_u8(self) -> u8 {
        match self {
            SpawnStage::Request => 0,
            SpawnStage::Fork => 1,
            SpawnStage::ProcessGroup => 2,
            SpawnStage::ParentDeathSignal => 3,
            SpawnStage::Stdio => 4,
            SpawnStage::Chdir => 5,
            SpawnStage::Signals => 6,
            SpawnStage::Exec => 7,
            SpawnStage::Limits => 8,
            SpawnStage::Terminal => 9,
            SpawnStage::Cgroup => 10,
            SpawnStage::Identity => 11,
            SpawnStage::Attributes => 12,
        }
    }

    /// From the wire value.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => SpawnStage::Request,
            1 => SpawnStage::Fork,
            2 => SpawnStage::ProcessGroup,
            3 => SpawnStage::ParentDeathSignal,
            4 => SpawnStage::Stdio,
            5 => SpawnStage::Chdir,
            6 => SpawnStage::Signals,
            7 => SpawnStage::Exec,
            8 => SpawnStage::Limits,
            9 => SpawnStage::Terminal,
            10 => SpawnStage::Cgroup,
            11 => SpawnStage::Identity,
            12 => SpawnStage::Attributes,
            _ => return None,
        })
    }

    /// Human-readable name of the step.
    pub const fn describe(self) -> &'static str {
        match self {
            SpawnStage::Request => "reading the spawn request",
            SpawnStage::Fork => "fork",
            SpawnStage::ProcessGroup => "creating the process group",
            SpawnStage::ParentDeathSignal => "setting the parent-death signal",
            SpawnStage::Stdio => "installing stdin/stdout/stderr",
            SpawnStage::Chdir => "changing directory",
            SpawnStage::Signals => "resetting signals",
            SpawnStage::Exec => "exec",
            SpawnStage::Limits => "setting resource limits",
            SpawnStage::Terminal => "making the pty the controlling terminal",
            SpawnStage::Cgroup => "creating or joining the cgroup",
            SpawnStage::Identity => "matching a spare shepherd to the calling thread",
            SpawnStage::Attributes => "taking on the calling thread's scheduling attributes",
        }
    }
}

/// How the child ended, exactly as `waitid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireStatus {
    /// Normal exit with this code.
    Code(i32),
    /// Killed by a signal.
    Signal {
        /// Raw signal number.
        signal: i32,
        /// Whether a core dump was written.
        core_dumped: bool,
    },
}

/// Resource usage of the child and every descendant the shepherd reaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rusage {
    /// User CPU time, microseconds.
    pub user_time_us: u64,
    /// System CPU time, microseconds.
    pub system_time_us: u64,
    /// Peak resident set size of the largest process, KiB.
    pub max_rss_kib: u64,
}

/// What the command's cgroup measured, when it ran in one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// `memory.peak`, bytes (needs the memory controller).
    pub memory_peak: Option<u64>,
    /// `usage_usec` from `cpu.stat`.
    pub cpu_usage_us: Option<u64>,
}

/// Messages from the shepherd to the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromShepherd {
    /// First frame: the shepherd's protocol version.
    Hello {
        /// [`PROTOCOL_VERSION`] of the sender.
        version: u16,
    },
    /// The child exec'd successfully.
    ///
    /// Where the shepherd could open one, a pidfd of the child travels with
    /// this frame as `SCM_RIGHTS` (opened while the child was the
    /// shepherd's unreaped child, so it names the right process): the
    /// library takes the tree down through it if the shepherd dies.
    Started {
        /// The child's pid, as the shepherd's pid namespace numbers it.
        pid: u32,
        /// The shepherd's own pid as it sees it: when that is not the pid
        /// its owner knows it by, the shepherd was born into another pid
        /// namespace (the owner did `unshare(CLONE_NEWPID)`) and `pid` is
        /// that namespace's number.
        shepherd_pid: u32,
    },
    /// The child could not be started; nothing is left running.
    SpawnFailed {
        /// Which step failed.
        stage: SpawnStage,
        /// The OS error number.
        errno: i32,
    },
    /// The child was reaped and its whole tree is gone.
    Exited {
        /// How it ended.
        status: WireStatus,
        /// What it cost.
        rusage: Rusage,
        /// Whether the run's timeout fired before it ended.
        timed_out: bool,
        /// What the cgroup measured, if the command had one.
        cgroup: Option<CgroupUsage>,
    },
}

// ---------------------------------------------------------------------------
// Encoding

/// Appends one framed message to `out`.
pub trait Encode {
    /// Encode `self` as a complete frame (header included) onto `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Convenience: a fresh buffer holding the frame.
    fn to_frame(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Decodes one message from a frame payload (header already removed).
pub trait Decode: Sized {
    /// Decode the payload, requiring it to be consumed exactly.
    fn decode(payload: &[u8]) -> Result<Self, DecodeError>;
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Writer<'a> {
    fn begin(out: &'a mut Vec<u8>, tag: u8) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        out.push(tag);
        Writer { out, start }
    }
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
    fn bytes(&mut self, v: &[u8]) {
        // Lengths above u32 cannot be framed; the frame cap rejects them on
        // decode, so saturating here only makes an oversize frame, not UB.
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.out.extend_from_slice(v);
    }
    fn list(&mut self, v: &[Vec<u8>]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        for item in v {
            self.bytes(item);
        }
    }
    fn finish(self) {
        let len = self.out.len() - self.start - HEADER_LEN;
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.out[self.start..self.start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidValue(what)),
        }
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, DecodeError> {
        Ok(if self.bool(what)? {
            Some(self.u64(what)?)
        } else {
            None
        })
    }
    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32(what)? as usize;
        // `take` checks the length against what is present before copying.
        Ok(self.take(len, what)?.to_vec())
    }
    fn list(&mut self, what: &'static str) -> Result<Vec<Vec<u8>>, DecodeError> {
        let count = self.u32(what)? as usize;
        // Every entry needs at least its 4-byte length: bound the count by
        // what is present so a forged count cannot reserve a huge Vec.
        if count > self.buf.len() / 4 {
            return Err(DecodeError::Truncated(what));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.bytes(what)?);
        }
        Ok(items)
    }
    fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

fn split_tag(payload: &[u8]) -> Result<(u8, Reader<'_>), DecodeError> {
    match payload.split_first() {
        None => Err(DecodeError::Empty),
        Some((&tag, rest)) => Ok((tag, Reader { buf: rest })),
    }
}

mod tag {
    pub const HELLO: u8 = 0;
    pub const SPAWN: u8 = 1;
    pub const SIGNAL: u8 = 2;
    pub const TERMINATE: u8 = 3;
    pub const KILL: u8 = 4;
    pub const SET_WINDOW_SIZE: u8 = 5;
    pub const STARTED: u8 = 0x81;
    pub const SPAWN_FAILED: u8 = 0x82;
    pub const EXITED: u8 = 0x83;
}

impl StdioSpec {
    fn write(self, w: &mut Writer<'_>) {
        match self {
            StdioSpec::Null => w.u8(0),
            StdioSpec::Passed(i) => {
                w.u8(1);
                w.u8(i);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("stdio kind")? {
            0 => Ok(StdioSpec::Null),
            1 => {
                let index = r.u8("stdio fd index")?;
                if usize::from(index) >= MAX_PASSED_FDS {
                    return Err(DecodeError::InvalidValue("stdio fd index"));
                }
                Ok(StdioSpec::Passed(index))
            }
            _ => Err(DecodeError::InvalidValue("stdio kind")),
        }
    }
}

impl Encode for SpawnRequest {
    /// Encodes the request as a [`ToShepherd::Spawn`] frame, without
    /// copying it into one.
    fn encode(&self, out: &mut Vec<u8>) {
        let req = self;
        let mut w = Writer::begin(out, tag::SPAWN);
        w.bytes(&req.program);
        w.list(&req.argv);
        w.list(&req.env);
        match &req.cwd {
            None => w.u8(0),
            Some(cwd) => {
                w.u8(1);
                w.bytes(cwd);
            }
        }
        for s in req.stdio {
            s.write(&mut w);
        }
        w.u8(match req.isolation {
            Isolation::ProcessGroup => 0,
            Isolation::Session => 1,
        });
        w.u64(req.kill_timeout_ms);
        w.opt_u64(req.timeout_ms);
        match req.pty {
            None => w.u8(0),
            Some(p) => {
                w.u8(1);
                w.u16(p.rows);
                w.u16(p.cols);
                w.bool(p.echo);
            }
        }
        match &req.cgroup {
            None => w.u8(0),
            Some(c) => {
                w.u8(1);
                w.bytes(&c.path);
                w.opt_u64(c.memory_max);
                w.opt_u64(c.pids_max);
                match c.cpu_max {
                    None => w.u8(0),
                    Some((quota, period)) => {
                        w.u8(1);
                        w.u64(quota);
                        w.u64(period);
                    }
                }
            }
        }
        w.u32(u32::try_from(req.rlimits.len()).unwrap_or(u32::MAX));
        for l in &req.rlimits {
            w.u32(l.resource);
            w.u64(l.soft);
            w.u64(l.hard);
        }
        w.opt_u64(req.umask.map(u64::from));
        match req.foreground {
            None => w.u8(0),
            Some(f) => {
                w.u8(1);
                w.u8(f.stdio);
                w.u32(f.owner_pgid);
            }
        }
        match req.cwd_fd {
            None => w.u8(0),
            Some(i) => {
                w.u8(1);
                w.u8(i);
            }
        }
        match &req.spare_check {
            None => w.u8(0),
            Some(check) => {
                w.u8(1);
                w.bytes(&check.identity);
                w.bytes(&check.cgroups);
                let a = &check.attributes;
                w.i32(a.nice);
                w.u32(a.sched_policy);
                w.u32(a.sched_priority);
                w.u32(a.ioprio);
                w.u32(u32::try_from(a.cpu_affinity.len()).unwrap_or(u32::MAX));
                for word in &a.cpu_affinity {
                    w.u64(*word);
                }
                w.u32(a.personality);
                w.u64(a.timer_slack_ns);
                w.i32(a.oom_score_adj);
            }
        }
        w.u32(u32::try_from(req.extra_fds.len()).unwrap_or(u32::MAX));
        for &(child_fd, index) in &req.extra_fds {
            w.u32(child_fd);
            w.u8(index);
        }
        w.finish();
    }
}

impl Encode for ToShepherd {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ToShepherd::Hello { version } => {
                let mut w = Writer::begin(out, tag::HELLO);
                w.u16(*version);
                w.finish();
            }
            ToShepherd::Spawn(req) => req.encode(out),
            ToShepherd::Signal { signal, target } => {
                let mut w = Writer::begin(out, tag::SIGNAL);
                w.i32(*signal);
                w.u8(match target {
                    SignalTarget::Group => 0,
                    SignalTarget::Leader => 1,
                });
                w.finish();
            }
            ToShepherd::Terminate => Writer::begin(out, tag::TERMINATE).finish(),
            ToShepherd::Kill => Writer::begin(out, tag::KILL).finish(),
            ToShepherd::SetWindowSize { rows, cols } => {
                let mut w = Writer::begin(out, tag::SET_WINDOW_SIZE);
                w.u16(*rows);
                w.u16(*cols);
                w.finish();
            }
        }
    }
}

impl Decode for ToShepherd {
    fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let (tag, mut r) = split_tag(payload)?;
        let msg = match tag {
            tag::HELLO => ToShepherd::Hello {
                version: r.u16("version")?,
            },
            tag::SPAWN => {
                let program = r.bytes("program")?;
                let argv = r.list("argv")?;
                let env = r.list("env")?;
                let cwd = if r.bool("cwd present")? {
                    Some(r.bytes("cwd")?)
                } else {
                    None
                };
                let stdio = [
                    StdioSpec::read(&mut r)?,
                    StdioSpec::read(&mut r)?,
                    StdioSpec::read(&mut r)?,
                ];
                let isolation = match r.u8("isolation")? {
                    0 => Isolation::ProcessGroup,
                    1 => Isolation::Session,
                    _ => return Err(DecodeError::InvalidValue("isolation")),
                };
                let kill_timeout_ms = r.u64("kill timeout")?;
                let timeout_ms = r.opt_u64("timeout")?;
                let pty = if r.bool("pty present")? {
                    Some(PtySpec {
                        rows: r.u16("pty rows")?,
                        cols: r.u16("pty cols")?,
                        echo: r.bool("pty echo")?,
                    })
                } else {
                    None
                };
                let cgroup = if r.bool("cgroup present")? {
                    Some(CgroupSpec {
                        path: r.bytes("cgroup path")?,
                        memory_max: r.opt_u64("memory.max")?,
                        pids_max: r.opt_u64("pids.max")?,
                        cpu_max: if r.bool("cpu.max present")? {
                            Some((r.u64("cpu quota")?, r.u64("cpu period")?))
                        } else {
                            None
                        },
                    })
                } else {
                    None
                };
                let count = r.u32("rlimit count")? as usize;
                if count > r.buf.len() / 20 {
                    return Err(DecodeError::Truncated("rlimits"));
                }
                let mut rlimits = Vec::with_capacity(count);
                for _ in 0..count {
                    rlimits.push(Rlimit {
                        resource: r.u32("rlimit resource")?,
                        soft: r.u64("rlimit soft")?,
                        hard: r.u64("rlimit hard")?,
                    });
                }
                let umask = match r.opt_u64("umask")? {
                    None => None,
                    Some(m) if m <= 0o777 => Some(m as u32),
                    Some(_) => return Err(DecodeError::InvalidValue("umask")),
                };
                let foreground = if r.bool("foreground present")? {
                    let stdio = r.u8("foreground stdio")?;
                    let owner_pgid = r.u32("foreground owner")?;
                    if stdio > 2 || owner_pgid == 0 || owner_pgid > i32::MAX as u32 {
                        return Err(DecodeError::InvalidValue("foreground"));
                    }
                    Some(Foreground { stdio, owner_pgid })
                } else {
                    None
                };
                let cwd_fd = if r.bool("cwd fd present")? {
                    let index = r.u8("cwd fd")?;
                    if usize::from(index) >= MAX_PASSED_FDS {
                        return Err(DecodeError::InvalidValue("cwd fd"));
                    }
                    Some(index)
                } else {
                    None
                };
                let spare_check = if r.bool("spare check present")? {
                    let identity = r.bytes("identity")?;
                    let cgroups = r.bytes("cgroups")?;
                    let nice = r.i32("nice")?;
                    let sched_policy = r.u32("scheduling policy")?;
                    let sched_priority = r.u32("scheduling priority")?;
                    let ioprio = r.u32("I/O priority")?;
                    let words = r.u32("affinity length")? as usize;
                    if words > r.buf.len() / 8 {
                        return Err(DecodeError::Truncated("affinity"));
                    }
                    let cpu_affinity = (0..words)
                        .map(|_| r.u64("affinity"))
                        .collect::<Result<Vec<_>, _>>()?;
                    Some(Box::new(SpareCheck {
                        identity,
                        cgroups,
                        attributes: ThreadAttributes {
                            nice,
                            sched_policy,
                            sched_priority,
                            ioprio,
                            cpu_affinity,
                            personality: r.u32("personality")?,
                            timer_slack_ns: r.u64("timer slack")?,
                            oom_score_adj: r.i32("oom_score_adj")?,
                        },
                    }))
                } else {
                    None
                };
                let count = r.u32("extra fd count")? as usize;
                if count > MAX_EXTRA_FDS {
                    return Err(DecodeError::InvalidValue("extra fd count"));
                }
                let mut extra_fds: Vec<(u32, u8)> = Vec::with_capacity(count);
                for _ in 0..count {
                    let child_fd = r.u32("extra fd number")?;
                    let index = r.u8("extra fd index")?;
                    if !(3..=MAX_CHILD_FD).contains(&child_fd)
                        || usize::from(index) >= MAX_PASSED_FDS
                        || extra_fds.iter().any(|&(n, _)| n == child_fd)
                    {
                        return Err(DecodeError::InvalidValue("extra fd"));
                    }
                    extra_fds.push((child_fd, index));
                }
                ToShepherd::Spawn(Box::new(SpawnRequest {
                    cwd_fd,
                    spare_check,
                    extra_fds,
                    umask,
                    foreground,
                    program,
                    argv,
                    env,
                    cwd,
                    stdio,
                    isolation,
                    kill_timeout_ms,
                    timeout_ms,
                    pty,
                    cgroup,
                    rlimits,
                }))
            }
            tag::SIGNAL => ToShepherd::Signal {
                signal: r.i32("signal")?,
                target: match r.u8("signal target")? {
                    0 => SignalTarget::Group,
                    1 => SignalTarget::Leader,
                    _ => return Err(DecodeError::InvalidValue("signal target")),
                },
            },
            tag::TERMINATE => ToShepherd::Terminate,
            tag::KILL => ToShepherd::Kill,
            tag::SET_WINDOW_SIZE => ToShepherd::SetWindowSize {
                rows: r.u16("rows")?,
                cols: r.u16("cols")?,
            },
            other => return Err(DecodeError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

impl Encode for FromShepherd {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FromShepherd::Hello { version } => {
                let mut w = Writer::begin(out, tag::HELLO);
                w.u16(*version);
                w.finish();
            }
            FromShepherd::Started { pid, shepherd_pid } => {
                let mut w = Writer::begin(out, tag::STARTED);
                w.u32(*pid);
                w.u32(*shepherd_pid);
                w.finish();
            }
            FromShepherd::SpawnFailed { stage, errno } => {
                let mut w = Writer::begin(out, tag::SPAWN_FAILED);
                w.u8(stage.to_u8());
                w.i32(*errno);
                w.finish();
            }
            FromShepherd::Exited {
                status,
                rusage,
                timed_out,
                cgroup,
            } => {
                let mut w = Writer::begin(out, tag::EXITED);
                match *status {
                    WireStatus::Code(code) => {
                        w.u8(0);
                        w.i32(code);
                    }
                    WireStatus::Signal {
                        signal,
                        core_dumped,
                    } => {
                        w.u8(1);
                        w.i32(signal);
                        w.bool(core_dumped);
                    }
                }
                w.u64(rusage.user_time_us);
                w.u64(rusage.system_time_us);
                w.u64(rusage.max_rss_kib);
                w.bool(*timed_out);
                match cgroup {
                    None => w.u8(0),
                    Some(c) => {
                        w.u8(1);
                        w.opt_u64(c.memory_peak);
                        w.opt_u64(c.cpu_usage_us);
                    }
                }
                w.finish();
            }
        }
    }
}

impl Decode for FromShepherd {
    fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let (tag, mut r) = split_tag(payload)?;
        let msg = match tag {
            tag::HELLO => FromShepherd::Hello {
                version: r.u16("version")?,
            },
            tag::STARTED => FromShepherd::Started {
                pid: r.u32("pid")?,
                shepherd_pid: r.u32("shepherd pid")?,
            },
            tag::SPAWN_FAILED => FromShepherd::SpawnFailed {
                stage: SpawnStage::from_u8(r.u8("stage")?)
                    .ok_or(DecodeError::InvalidValue("stage"))?,
                errno: r.i32("errno")?,
            },
            tag::EXITED => {
                let status = match r.u8("status kind")? {
                    0 => WireStatus::Code(r.i32("exit code")?),
                    1 => WireStatus::Signal {
                        signal: r.i32("signal")?,
                        core_dumped: r.bool("core dumped")?,
                    },
                    _ => return Err(DecodeError::InvalidValue("status kind")),
                };
                FromShepherd::Exited {
                    status,
                    rusage: Rusage {
                        user_time_us: r.u64("user time")?,
                        system_time_us: r.u64("system time")?,
                        max_rss_kib: r.u64("max rss")?,
                    },
                    timed_out: r.bool("timed out")?,
                    cgroup: if r.bool("cgroup usage present")? {
                        Some(CgroupUsage {
                            memory_peak: r.opt_u64("memory.peak")?,
                            cpu_usage_us: r.opt_u64("cpu usage")?,
                        })
                    } else {
                        None
                    },
                }
            }
            other => return Err(DecodeError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Splits a byte stream into frames and checks the opening hello.
///
/// Feed it whatever the socket returned with [`FrameDecoder::push`]; take
/// complete messages with [`FrameDecoder::next_message`]. The buffer holds at most one
/// partial frame plus what was pushed, and a frame header announcing more than
/// [`MAX_FRAME_LEN`] is an error before any payload is buffered.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    hello_seen: bool,
}

impl FrameDecoder {
    /// A decoder expecting a hello as its first frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the peer.
    ///
    /// Consumed bytes are dropped before new ones are added, so what stays
    /// buffered is at most the pending partial frame plus `bytes`.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held: the unconsumed tail of what was pushed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a partial frame is buffered (EOF now would be a truncation).
    pub fn has_partial(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    ///
    /// The hello is consumed here and checked against [`PROTOCOL_VERSION`];
    /// it is never returned.
    pub fn next_message<M: Decode + HelloFrame>(&mut self) -> Result<Option<M>, DecodeError> {
        loop {
            let avail = &self.buf[self.pos..];
            if avail.len() < HEADER_LEN {
                return Ok(None);
            }
            let mut header = [0; HEADER_LEN];
            header.copy_from_slice(&avail[..HEADER_LEN]);
            let len = u32::from_le_bytes(header) as usize;
            if len > MAX_FRAME_LEN {
                return Err(DecodeError::FrameTooLong(len as u64));
            }
            if avail.len() < HEADER_LEN + len {
                return Ok(None);
            }
            let payload = &avail[HEADER_LEN..HEADER_LEN + len];
            self.pos += HEADER_LEN + len;
            let msg = M::decode(payload)?;
            if self.hello_seen {
                if msg.hello_version().is_some() {
                    return Err(DecodeError::InvalidValue("second hello"));
                }
                return Ok(Some(msg));
            }
            match msg.hello_version() {
                Some(PROTOCOL_VERSION) => self.hello_seen = true,
                Some(theirs) => {
                    return Err(DecodeError::VersionMismatch {
                        ours: PROTOCOL_VERSION,
                        theirs,
                    })
                }
                None => return Err(DecodeError::MissingHello),
            }
        }
    }
}

/// Messages whose first frame is a versioned hello.
pub trait HelloFrame {
    /// The version if this message is the hello.
    fn hello_version(&self) -> Option<u16>;
}

impl HelloFrame for ToShepherd {
    fn hello_version(&self) -> Option<u16> {
        match self {
            ToShepherd::Hello { version } => Some(*version),
            _ => None,
        }
    }
}

impl HelloFrame for FromShepherd {
    fn hello_version(&self) -> Option<u16> {
        match self {
            FromShepherd::Hello { version } => Some(*version),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_spawn() -> SpawnRequest {
        SpawnRequest {
            program: b"/bin/cat".to_vec(),
            argv: vec![b"cat".to_vec(), b"-".to_vec(), vec![0xff, 0x00, 0x80]],
            env: vec![b"K=V".to_vec(), b"EMPTY=".to_vec()],
            cwd: Some(b"/tmp".to_vec()),
            stdio: [StdioSpec::Passed(0), StdioSpec::Null, StdioSpec::Passed(2)],
            isolation: Isolation::Session,
            kill_timeout_ms: 5000,
            timeout_ms: Some(300),
            pty: Some(PtySpec {
                rows: 24,
                cols: 80,
                echo: false,
            }),
            cgroup: Some(CgroupSpec {
                path: b"job-1".to_vec(),
                memory_max: Some(1 << 30),
                pids_max: None,
                cpu_max: Some((50_000, 100_000)),
            }),
            rlimits: vec![Rlimit {
                resource: 7,
                soft: 1024,
                hard: u64::MAX,
            }],
            umask: Some(0o027),
            foreground: Some(Foreground {
                stdio: 2,
                owner_pgid: 4321,
            }),
            cwd_fd: Some(3),
            extra_fds: vec![(3, 4), (7, 5)],
            spare_check: Some(Box::new(SpareCheck {
                identity: b"Uid: 0 0 0 0".to_vec(),
                cgroups: b"0::/user.slice".to_vec(),
                attributes: ThreadAttributes {
                    nice: -5,
                    sched_policy: 3,
                    sched_priority: 0,
                    ioprio: (3 << 13) | 7,
                    cpu_affinity: vec![0b1010, 1 << 63],
                    personality: 0x0040000,
                    timer_slack_ns: 123_456,
                    oom_score_adj: -1000,
                },
            })),
        }
    }

    fn all_to_shepherd() -> Vec<ToShepherd> {
        vec![
            ToShepherd::Hello {
                version: PROTOCOL_VERSION,
            },
            ToShepherd::Spawn(Box::new(sample_spawn())),
            ToShepherd::Spawn(Box::new(SpawnRequest {
                cwd: None,
                timeout_ms: None,
                pty: None,
                cgroup: None,
                rlimits: vec![],
                umask: None,
                foreground: None,
                cwd_fd: None,
                spare_check: None,
                extra_fds: vec![],
                argv: vec![],
                env: vec![],
                isolation: Isolation::ProcessGroup,
                ..sample_spawn()
            })),
            ToShepherd::Signal {
                signal: 10,
                target: SignalTarget::Group,
            },
            ToShepherd::Signal {
                signal: 1,
                target: SignalTarget::Leader,
            },
            ToShepherd::Terminate,
            ToShepherd::Kill,
            ToShepherd::SetWindowSize {
                rows: 50,
                cols: 132,
            },
        ]
    }

    fn all_from_shepherd() -> Vec<FromShepherd> {
        vec![
            FromShepherd::Hello {
                version: PROTOCOL_VERSION,
            },
            FromShepherd::Started {
                pid: 4242,
                shepherd_pid: 4241,
            },
            FromShepherd::SpawnFailed {
                stage: SpawnStage::Exec,
                errno: 2,
            },
            FromShepherd::Exited {
                status: WireStatus::Code(143),
                rusage: Rusage {
                    user_time_us: 1,
                    system_time_us: 2,
                    max_rss_kib: 3,
                },
                timed_out: false,
                cgroup: Some(CgroupUsage {
                    memory_peak: Some(1 << 20),
                    cpu_usage_us: None,
                }),
            },
            FromShepherd::Exited {
                status: WireStatus::Signal {
                    signal: 9,
                    core_dumped: true,
                },
                rusage: Rusage::default(),
                timed_out: true,
                cgroup: None,
            },
        ]
    }

    fn payload(frame: &[u8]) -> &[u8] {
        let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - HEADER_LEN, "header length is exact");
        &frame[HEADER_LEN..]
    }

    #[test]
    fn every_message_round_trips() {
        for msg in all_to_shepherd() {
            let frame = msg.to_frame();
            assert_eq!(ToShepherd::decode(payload(&frame)).unwrap(), msg);
        }
        for msg in all_from_shepherd() {
            let frame = msg.to_frame();
            assert_eq!(FromShepherd::decode(payload(&frame)).unwrap(), msg);
        }
        for stage in 0..=u8::MAX {
            if let Some(s) = SpawnStage::from_u8(stage) {
                assert_eq!(s.to_u8(), stage);
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for msg in all_to_shepherd() {
            let frame = msg.to_frame();
            let p = payload(&frame);
            for cut in 0..p.len() {
                assert!(
                    ToShepherd::decode(&p[..cut]).is_err(),
                    "{msg:?} cut at {cut}"
                );
            }
        }
        for msg in all_from_shepherd() {
            let frame = msg.to_frame();
            let p = payload(&frame);
            for cut in 0..p.len() {
                assert!(
                    FromShepherd::decode(&p[..cut]).is_err(),
                    "{msg:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_and_bad_tags_are_errors() {
        let mut frame = ToShepherd::Terminate.to_frame();
        frame.push(0);
        assert_eq!(
            ToShepherd::decode(&frame[HEADER_LEN..]),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            ToShepherd::decode(&[0x7f]),
            Err(DecodeError::UnknownTag(0x7f))
        );
        assert_eq!(FromShepherd::decode(&[]), Err(DecodeError::Empty));
        // A bool field holding 2.
        assert_eq!(
            FromShepherd::decode(&[tag::EXITED, 1, 9, 0, 0, 0, 2]),
            Err(DecodeError::InvalidValue("core dumped"))
        );
    }

    #[test]
    fn forged_lengths_do_not_allocate() {
        // argv count of 4 billion with nothing behind it.
        let mut p = vec![tag::SPAWN];
        p.extend_from_slice(&0u32.to_le_bytes()); // empty program
        p.extend_from_slice(&u32::MAX.to_le_bytes()); // argv count
        assert_eq!(ToShepherd::decode(&p), Err(DecodeError::Truncated("argv")));
        // A byte string claiming 4 GiB.
        let mut p = vec![tag::SPAWN];
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            ToShepherd::decode(&p),
            Err(DecodeError::Truncated("program"))
        );
    }

    #[test]
    fn consumed_bytes_are_not_kept_while_a_frame_is_pending() {
        let mut d = FrameDecoder::new();
        d.push(
            &ToShepherd::Hello {
                version: PROTOCOL_VERSION,
            }
            .to_frame(),
        );
        let frame = ToShepherd::Terminate.to_frame();
        let mut stream = Vec::new();
        while stream.len() < 1 << 20 {
            stream.extend_from_slice(&frame);
        }
        // Pushed in pieces that always end inside a frame.
        let mut most = 0;
        for piece in stream.chunks(frame.len() * 7 + 3) {
            d.push(piece);
            while d.next_message::<ToShepherd>().unwrap().is_some() {}
            most = most.max(d.buffered());
        }
        assert!(most < 4 * frame.len() * 7, "{most} bytes kept");
    }

    #[test]
    fn decoder_checks_hello_and_frame_cap() {
        let mut d = FrameDecoder::new();
        d.push(&ToShepherd::Terminate.to_frame());
        assert_eq!(
            d.next_message::<ToShepherd>(),
            Err(DecodeError::MissingHello)
        );

        let mut d = FrameDecoder::new();
        d.push(&ToShepherd::Hello { version: 99 }.to_frame());
        assert_eq!(
            d.next_message::<ToShepherd>(),
            Err(DecodeError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: 99
            })
        );

        let mut d = FrameDecoder::new();
        d.push(&((MAX_FRAME_LEN as u32) + 1).to_le_bytes());
        assert_eq!(
            d.next_message::<ToShepherd>(),
            Err(DecodeError::FrameTooLong(MAX_FRAME_LEN as u64 + 1))
        );
    }

    #[test]
    fn a_foreground_outside_the_standard_streams_or_without_a_group_is_refused() {
        for (stdio, owner_pgid) in [(3, 10), (255, 10), (0, 0), (1, u32::MAX), (2, 1 << 31)] {
            let bad = ToShepherd::Spawn(Box::new(SpawnRequest {
                foreground: Some(Foreground { stdio, owner_pgid }),
                ..sample_spawn()
            }));
            let frame = bad.to_frame();
            assert_eq!(
                ToShepherd::decode(&frame[HEADER_LEN..]),
                Err(DecodeError::InvalidValue("foreground")),
                "stdio {stdio}, owner {owner_pgid}"
            );
        }
    }

    #[test]
    fn decoder_reassembles_byte_by_byte() {
        let msgs = all_from_shepherd();
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b));
            while let Some(m) = d.next_message::<FromShepherd>().unwrap() {
                got.push(m);
            }
        }
        assert!(!d.has_partial());
        assert_eq!(
            got,
            msgs[1..].to_vec(),
            "hello is consumed, the rest arrive in order"
        );
    }

    /// Deterministic xorshift so the fuzz-style test is reproducible.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_and_mutated_frames_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let valid: Vec<Vec<u8>> = all_to_shepherd()
            .iter()
            .map(|m| m.to_frame()[HEADER_LEN..].to_vec())
            .chain(
                all_from_shepherd()
                    .iter()
                    .map(|m| m.to_frame()[HEADER_LEN..].to_vec()),
            )
            .collect();
        let mut decoded_ok = 0;
        for i in 0..20_000 {
            let mut bytes = if i % 2 == 0 {
                let len = (xorshift(&mut seed) % 64) as usize;
                (0..len)
                    .map(|_| xorshift(&mut seed) as u8)
                    .collect::<Vec<u8>>()
            } else {
                valid[(xorshift(&mut seed) as usize) % valid.len()].clone()
            };
            if !bytes.is_empty() {
                let flips = 1 + xorshift(&mut seed) % 3;
                for _ in 0..flips {
                    let at = (xorshift(&mut seed) as usize) % bytes.len();
                    bytes[at] = xorshift(&mut seed) as u8;
                }
            }
            decoded_ok += usize::from(ToShepherd::decode(&bytes).is_ok());
            decoded_ok += usize::from(FromShepherd::decode(&bytes).is_ok());
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            while let Ok(Some(_)) = d.next_message::<FromShepherd>() {}
        }
        // Mutations keep some frames valid; the point is that none panicked.
        assert!(decoded_ok > 0);
    }
}
