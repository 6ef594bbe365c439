//! The `Command` builder, written once for every front end, and its validation.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// Default grace between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a standard stream of the command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stdio(pub(crate) StdioMode);

/// The three kinds of [`Stdio`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioMode {
    /// A pipe to this process.
    Piped,
    /// `/dev/null`.
    Null,
    /// This process's own stream.
    Inherit,
}

impl Stdio {
    /// A new pipe between this process and the command.
    pub fn piped() -> Self {
        Stdio(StdioMode::Piped)
    }
    /// `/dev/null`.
    pub fn null() -> Self {
        Stdio(StdioMode::Null)
    }
    /// This process's own stream, shared with the command.
    pub fn inherit() -> Self {
        Stdio(StdioMode::Inherit)
    }
    /// Which kind this is.
    pub fn mode(&self) -> StdioMode {
        self.0
    }
}

/// What a front end does with a configured [`Command`].
///
/// `netrunner-blocking` and `netrunner-tokio` implement this; the builder
/// methods and validation live once, here, and `output()`, `status()`,
/// `spawn()` and `stream()` dispatch to the front end, which picks its own
/// return types (a `Result`, or a future resolving to one).
pub trait FrontEnd: Sized {
    /// The handle to a running command.
    type Child;
    /// What `output()` returns.
    type Output;
    /// What `status()` returns.
    type Status;
    /// What `stream()` returns.
    type Stream;

    /// Starts the command.
    fn spawn(cmd: &Command<Self>) -> Result<Self::Child, Error>;
    /// Runs the command to completion, collecting its output.
    fn output(cmd: &Command<Self>) -> Self::Output;
    /// Runs the command to completion with inherited streams.
    fn status(cmd: &Command<Self>) -> Self::Status;
    /// Starts the command and yields its stdout as chunks.
    fn stream(cmd: &Command<Self>) -> Result<Self::Stream, Error>;
}

/// A command to run, built like [`std::process::Command`].
///
/// Defaults follow std: `spawn()` and `status()` inherit all three streams;
/// `output()` pipes stdout and stderr and gives stdin `/dev/null` (or a pipe
/// fed from [`Command::input`]); `stream()` pipes stdout.
pub struct Command<F> {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env_clear: bool,
    pub(crate) env: BTreeMap<OsString, Option<OsString>>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdio: [Option<Stdio>; 3],
    pub(crate) stderr_to_stdout: bool,
    /// Shared, so cloning the command (as an async `output()` does) never
    /// copies the input.
    pub(crate) input: Option<std::sync::Arc<Vec<u8>>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_output: Option<usize>,
    pub(crate) kill_timeout: Duration,
    pub(crate) shepherd_path: Option<PathBuf>,
    pub(crate) pty: Option<PtyConfig>,
    pub(crate) foreground: bool,
    pub(crate) cgroup: crate::cgroup::CgroupConfig,
    /// Extra descriptors for the child, by their number there.
    pub(crate) extra_fds: BTreeMap<i32, std::sync::Arc<std::os::fd::OwnedFd>>,
    front: PhantomData<fn() -> F>,
}

/// Terminal settings for [`Command::pty`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtyConfig {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
    /// Whether the terminal echoes its input.
    pub echo: bool,
}

impl Default for PtyConfig {
    fn default() -> Self {
        PtyConfig {
            rows: 24,
            cols: 80,
            echo: true,
        }
    }
}

impl<F> Clone for Command<F> {
    fn clone(&self) -> Self {
        Command {
            program: self.program.clone(),
            args: self.args.clone(),
            env_clear: self.env_clear,
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            stdio: self.stdio,
            stderr_to_stdout: self.stderr_to_stdout,
            input: self.input.clone(),
            timeout: self.timeout,
            max_output: self.max_output,
            kill_timeout: self.kill_timeout,
            shepherd_path: self.shepherd_path.clone(),
            pty: self.pty,
            foreground: self.foreground,
            cgroup: self.cgroup.clone(),
            extra_fds: self.extra_fds.clone(),
            front: PhantomData,
        }
    }
}

impl<F> fmt::Debug for Command<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env_clear", &self.env_clear)
            .field("env", &self.env)
            .field("cwd", &self.cwd)
            .field("timeout", &self.timeout)
            .field("max_output", &self.max_output)
            .field("kill_timeout", &self.kill_timeout)
            .finish_non_exhaustive()
    }
}

impl<F> Command<F> {
    /// A command that runs `program` (looked up on `PATH` if it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdio: [None; 3],
            stderr_to_stdout: false,
            input: None,
            timeout: None,
            max_output: None,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
            shepherd_path: None,
            pty: None,
            foreground: true,
            cgroup: crate::cgroup::CgroupConfig::default(),
            extra_fds: BTreeMap::new(),
            front: PhantomData,
        }
    }

    /// Gives the command `fd` as its descriptor `child_fd` (3 to 1023; at
    /// most 8 of them), for socket activation, a readiness pipe and the
    /// like. Setting the same number again replaces the descriptor. The
    /// command's other descriptors above 2 are closed as always; this one
    /// is kept open here until the command is dropped.
    ///
    /// Numbers out of range are an [`Error::InvalidInput`] at spawn time.
    pub fn fd(&mut self, child_fd: i32, fd: impl Into<std::os::fd::OwnedFd>) -> &mut Self {
        self.extra_fds
            .insert(child_fd, std::sync::Arc::new(fd.into()));
        self
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes a variable from the command's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Starts from an empty environment instead of this process's.
    pub fn env_clear(&mut self) -> &mut Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Working directory of the command.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Bytes written to the command's stdin while its output is read
    /// (`output()`); stdin is then closed so the command sees EOF.
    pub fn input(&mut self, input: impl Into<Vec<u8>>) -> &mut Self {
        self.input = Some(std::sync::Arc::new(input.into()));
        self
    }

    /// Limit on the whole run. When it expires the tree is terminated
    /// (SIGTERM, grace, SIGKILL) and `output()`/`status()` return
    /// [`Error::Timeout`]. Enforced by the shepherd, so it holds even when
    /// nobody is waiting on the child.
    ///
    /// A zero timeout is refused with [`Error::InvalidInput`] at spawn
    /// time, before anything starts: whether a command could finish in no
    /// time would be a race. Leave the timeout unset for no limit.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Most stdout + stderr bytes `output()` keeps. When more arrive the tree
    /// is terminated and [`Error::OutputLimit`] holds exactly this many bytes.
    pub fn max_output(&mut self, bytes: usize) -> &mut Self {
        self.max_output = Some(bytes);
        self
    }

    /// Grace between SIGTERM and SIGKILL when the tree is taken down (default 5 s).
    pub fn kill_timeout(&mut self, grace: Duration) -> &mut Self {
        self.kill_timeout = grace;
        self
    }

    /// The command's stdin.
    pub fn stdin(&mut self, cfg: Stdio) -> &mut Self {
        self.stdio[0] = Some(cfg);
        self
    }

    /// The command's stdout.
    pub fn stdout(&mut self, cfg: Stdio) -> &mut Self {
        self.stdio[1] = Some(cfg);
        self
    }

    /// The command's stderr.
    pub fn stderr(&mut self, cfg: Stdio) -> &mut Self {
        self.stdio[2] = Some(cfg);
        self
    }

    /// Sends stderr to wherever stdout goes: one pipe, interleaved as written.
    pub fn stderr_to_stdout(&mut self) -> &mut Self {
        self.stderr_to_stdout = true;
        self
    }

    /// Runs this shepherd binary instead of the embedded one.
    ///
    /// Takes precedence over the `NETRUNNER_SHEPHERD` environment variable.
    pub fn shepherd_path(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.shepherd_path = Some(path.as_ref().to_owned());
        self
    }

    /// Runs the command on a new pseudo-terminal: it gets a new session with
    /// the pty as its controlling terminal and as stdin, stdout and stderr.
    /// The child's `stdin` handle writes to the terminal and its `stdout`
    /// reads everything the terminal shows (there is no separate stderr).
    /// Termios and size are set before the command starts; echo is on, as a
    /// terminal would have it, unless [`Command::pty_echo`] turns it off.
    pub fn pty(&mut self, enabled: bool) -> &mut Self {
        self.pty = enabled.then(|| self.pty.unwrap_or_default());
        self
    }

    /// Whether the command takes the terminal's foreground for its run when
    /// one of its standard streams is inherited from this process's
    /// controlling terminal and this process is in the foreground (default
    /// `true`, as a job-control shell does for the job it runs: the command
    /// can read the terminal, and Ctrl-C typed there reaches it, not you).
    ///
    /// Turn it off for commands that never read the terminal and run side
    /// by side (compilers in a build): the terminal then stays yours, and
    /// Ctrl-C keeps reaching your program. A command in the background that
    /// reads the terminal is stopped by SIGTTIN, as under a shell.
    pub fn foreground(&mut self, take: bool) -> &mut Self {
        self.foreground = take;
        self
    }

    /// Initial size of the pty (default 24 rows × 80 columns); implies `pty(true)`.
    pub fn pty_size(&mut self, rows: u16, cols: u16) -> &mut Self {
        let pty = self.pty.get_or_insert_with(PtyConfig::default);
        pty.rows = rows;
        pty.cols = cols;
        self
    }

    /// Whether the pty echoes input (default on); implies `pty(true)`.
    pub fn pty_echo(&mut self, echo: bool) -> &mut Self {
        self.pty.get_or_insert_with(PtyConfig::default).echo = echo;
        self
    }

    /// Runs the command in a new cgroup v2 named `name`, created under this
    /// process's own cgroup (or [`Command::cgroup_parent`]). The child joins
    /// it before exec, so nothing it ever starts is outside; on every exit
    /// path everything in it is killed and the directory removed. A cgroup
    /// that cannot be created is an error, never a run without isolation.
    pub fn cgroup(&mut self, name: impl Into<String>) -> &mut Self {
        self.cgroup.name = Some(name.into());
        self
    }

    /// Creates the cgroup under this one (a path from the hierarchy root,
    /// like `/batch/jobs`) instead of under this process's cgroup.
    pub fn cgroup_parent(&mut self, parent: impl Into<String>) -> &mut Self {
        self.cgroup.parent = Some(parent.into());
        self
    }

    /// `memory.max` of the command's cgroup (implies one; named
    /// `netrunner-<pid>-<n>` unless [`Command::cgroup`] names it). Needs the
    /// memory controller: without it, spawning is
    /// [`CgroupError::ControllerUnavailable`](crate::cgroup::CgroupError).
    pub fn memory_max(&mut self, bytes: u64) -> &mut Self {
        self.cgroup.memory_max = Some(bytes);
        self
    }

    /// `pids.max` of the command's cgroup (implies one; needs the pids controller).
    pub fn pids_max(&mut self, max: u64) -> &mut Self {
        self.cgroup.pids_max = Some(max);
        self
    }

    /// `cpu.max` of the command's cgroup: `quota` of CPU time per `period`
    /// (implies one; needs the cpu controller).
    pub fn cpu_max(&mut self, quota: Duration, period: Duration) -> &mut Self {
        self.cgroup.cpu_max = Some((quota, period));
        self
    }

    /// The pty settings, if the command runs on one.
    pub fn get_pty(&self) -> Option<PtyConfig> {
        self.pty
    }

    /// The program as given.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments as given.
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(|a| a.as_os_str())
    }

    /// The run's timeout, if any.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The output limit, if any.
    pub fn get_max_output(&self) -> Option<usize> {
        self.max_output
    }

    /// The input bytes, if any.
    pub fn get_input(&self) -> Option<&[u8]> {
        self.input.as_deref().map(Vec::as_slice)
    }

    /// The input bytes, shared (no copy), if any.
    pub fn get_input_shared(&self) -> Option<std::sync::Arc<Vec<u8>>> {
        self.input.clone()
    }

    /// Whether stderr is merged into stdout.
    pub fn get_stderr_to_stdout(&self) -> bool {
        self.stderr_to_stdout
    }

    /// The configured stream for stdin (0), stdout (1) or stderr (2), or
    /// `default` if none was set.
    pub fn stdio_or(&self, index: usize, default: Stdio) -> Stdio {
        self.stdio.get(index).copied().flatten().unwrap_or(default)
    }
}

impl<F: FrontEnd> Command<F> {
    /// Starts the command and returns a handle to it.
    pub fn spawn(&mut self) -> Result<F::Child, Error> {
        F::spawn(self)
    }

    /// Runs the command to completion and collects stdout and stderr.
    ///
    /// Both are drained at once while `input` is written, so no size of
    /// either deadlocks; memory is bounded by what is returned (and by
    /// [`Command::max_output`]).
    pub fn output(&mut self) -> F::Output {
        F::output(self)
    }

    /// Runs the command to completion and returns its status.
    pub fn status(&mut self) -> F::Status {
        F::status(self)
    }

    /// Starts the command and yields its stdout in chunks as they arrive.
    /// Dropping the stream early kills the command.
    pub fn stream(&mut self) -> Result<F::Stream, Error> {
        F::stream(self)
    }
}

/// A validated command: every string is NUL-free bytes and the program is resolved.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The program as given, for error messages.
    pub program: OsString,
    /// The path to exec.
    pub path: Vec<u8>,
    /// argv, `argv[0]` = the program as given.
    pub argv: Vec<Vec<u8>>,
    /// The whole environment as `KEY=VALUE`.
    pub env: Vec<Vec<u8>>,
    /// Working directory.
    pub cwd: Option<Vec<u8>>,
}

fn check_nul(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<(), Error> {
    match bytes.iter().position(|&b| b == 0) {
        Some(at) => Err(Error::invalid(
            what(),
            format!("contains a NUL byte at offset {at}"),
        )),
        None => Ok(()),
    }
}

impl<F> Command<F> {
    /// Checks every field and resolves the program on `PATH`.
    ///
    /// Nothing is spawned when this fails: bad input is an
    /// [`Error::InvalidInput`], a program that cannot be found or executed is
    /// an [`Error::Spawn`] with `NotFound` or `PermissionDenied`.
    pub fn prepare(&self) -> Result<Prepared, Error> {
        let program = self.program.as_bytes();
        if program.is_empty() {
            return Err(Error::invalid("program", "is empty"));
        }
        if let Some((&bad, _)) = self
            .extra_fds
            .iter()
            .find(|(&n, _)| !(3..=netrunner_proto::MAX_CHILD_FD as i32).contains(&n))
        {
            return Err(Error::invalid(
                format!("descriptor {bad}"),
                format!(
                    "is not a number an extra descriptor can take (3 to {})",
                    netrunner_proto::MAX_CHILD_FD
                ),
            ));
        }
        if self.extra_fds.len() > netrunner_proto::MAX_EXTRA_FDS {
            return Err(Error::invalid(
                "extra descriptors",
                format!("are more than {}", netrunner_proto::MAX_EXTRA_FDS),
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(Error::invalid(
                "timeout",
                "is zero (leave it unset for no limit)",
            ));
        }
        check_nul(|| "program".into(), program)?;
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(program.to_vec());
        for (i, arg) in self.args.iter().enumerate() {
            check_nul(|| format!("argument {}", i + 1), arg.as_bytes())?;
            argv.push(arg.as_bytes().to_vec());
        }
        let mut vars: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (key, value) in &self.env {
            let k = key.as_bytes();
            let name = || format!("environment variable {:?}", key);
            if k.is_empty() {
                return Err(Error::invalid("environment variable name", "is empty"));
            }
            if k.contains(&b'=') {
                return Err(Error::invalid(name(), "name contains '='"));
            }
            check_nul(name, k)?;
            match value {
                Some(v) => {
                    check_nul(name, v.as_bytes())?;
                    vars.insert(key.clone(), v.clone());
                }
                None => {
                    vars.remove(key);
                }
            }
        }
        let env = vars
            .iter()
            .map(|(k, v)| {
                let mut e = k.as_bytes().to_vec();
                e.push(b'=');
                e.extend_from_slice(v.as_bytes());
                e
            })
            .collect();
        let cwd = match &self.cwd {
            None => None,
            Some(dir) => {
                let bytes = dir.as_os_str().as_bytes();
                if bytes.is_empty() {
                    return Err(Error::invalid("cwd", "is empty"));
                }
                check_nul(|| "cwd".into(), bytes)?;
                Some(bytes.to_vec())
            }
        };
        let path_var = vars
            .get(OsStr::new("PATH"))
            .cloned()
            .or_else(|| std::env::var_os("PATH"));
        let path =
            resolve_program(&self.program, path_var.as_deref()).map_err(|source| Error::Spawn {
                program: self.program.clone(),
                source,
            })?;
        Ok(Prepared {
            program: self.program.clone(),
            path: path.into_os_string().into_vec(),
            argv,
            env,
            cwd,
        })
    }
}

/// Finds `program` the way `execvp` would, before anything is spawned.
///
/// A name with a `/` is used as given (relative to the child's working
/// directory). A bare name is searched in `PATH` (the command's own `PATH`
/// if it sets one): the first regular file with an execute bit wins; if only
/// non-executable matches exist the error is `PermissionDenied`, otherwise
/// `NotFound`. Unlike `execvp`, a file that is not a valid executable is not
/// retried through `/bin/sh`: that is an `ENOEXEC` spawn error.
pub fn resolve_program(program: &OsStr, path_var: Option<&OsStr>) -> io::Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let default_path = OsStr::new("/usr/local/bin:/usr/bin:/bin");
    let search = path_var.unwrap_or(default_path);
    let mut saw_non_executable = false;
    for dir in search.as_bytes().split(|&b| b == b':') {
        // An empty entry means the current directory, as in POSIX.
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                if meta.permissions().mode() & 0o111 != 0 {
                    return Ok(candidate);
                }
                saw_non_executable = true;
            }
            _ => {}
        }
    }
    Err(if saw_non_executable {
        io::Error::from(io::ErrorKind::PermissionDenied)
    } else {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{:?} not found in PATH", program),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoFront;
    type Cmd = Command<NoFront>;

    fn invalid_what(r: Result<Prepared, Error>) -> String {
        match r {
            Err(Error::InvalidInput { what, .. }) => what,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_input_and_says_which() {
        assert_eq!(invalid_what(Cmd::new("").prepare()), "program");
        assert_eq!(invalid_what(Cmd::new("a\0b").prepare()), "program");
        assert_eq!(
            invalid_what(Cmd::new("sh").args(["ok", "b\0d"]).prepare()),
            "argument 2"
        );
        assert!(invalid_what(Cmd::new("sh").env("K", "v\0").prepare()).contains("\"K\""));
        assert!(invalid_what(Cmd::new("sh").env("A=B", "v").prepare()).contains("A=B"));
        assert_eq!(
            invalid_what(Cmd::new("sh").current_dir("/t\0mp").prepare()),
            "cwd"
        );
    }

    #[test]
    fn resolves_on_the_commands_own_path() {
        let p = Cmd::new("sh")
            .env_clear()
            .env("PATH", "/nonexistent:/bin")
            .prepare()
            .unwrap();
        assert_eq!(p.path, b"/bin/sh");
        assert_eq!(p.env, vec![b"PATH=/nonexistent:/bin".to_vec()]);
        let err = Cmd::new("definitely-not-a-program-xyz")
            .prepare()
            .unwrap_err();
        match err {
            Error::Spawn { source, .. } => assert_eq!(source.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_executable_on_path_is_permission_denied() {
        let dir = std::env::temp_dir().join(format!("netrunner-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plain"), b"not a program").unwrap();
        let err = resolve_program(OsStr::new("plain"), Some(dir.as_os_str())).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn env_edits_apply_in_order() {
        let p = Cmd::new("/bin/true")
            .env_clear()
            .env("A", "1")
            .env("B", "2")
            .env_remove("A")
            .prepare()
            .unwrap();
        assert_eq!(p.env, vec![b"B=2".to_vec()]);
        assert_eq!(p.argv, vec![b"/bin/true".to_vec()]);
    }
}
