//! Where the embedded shepherd runs from, tried through the `netrunner`
//! binary: its name, a system that refuses to execute memfds, and a setuid
//! copy that must not let the environment pick the shepherd.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_netrunner");

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory of our own under the temporary directory, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("netrunner-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the shepherd of a command looks like from the command: its process
/// name (the kernel keeps 15 bytes) and its argv[0].
const SHOW_SHEPHERD: &str =
    r#"ps -o comm= -p $PPID; tr "\0" "\n" < /proc/$PPID/cmdline | head -n 1"#;

#[test]
fn the_shepherd_is_called_netrunner_shepherd() {
    let out = Command::new(BIN)
        .args(["run", "--", "sh", "-c", SHOW_SHEPHERD])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "netrunner-sheph\nnetrunner-shepherd\n");
}

#[test]
fn where_memfds_cannot_be_executed_a_checked_private_copy_runs() {
    if !is_root() {
        eprintln!("skipped: vm.memfd_noexec is set in a new pid namespace, which needs root");
        return;
    }
    if !std::path::Path::new("/proc/sys/vm/memfd_noexec").exists() {
        eprintln!("skipped: this kernel has no vm.memfd_noexec (Linux 6.3+)");
        return;
    }
    let tmp = Scratch::new("noexec");
    // vm.memfd_noexec belongs to the pid namespace: 2 there refuses every
    // executable memfd, and the host's setting is untouched.
    let script =
        format!("echo 2 > /proc/sys/vm/memfd_noexec && exec {BIN} run -- sh -c '{SHOW_SHEPHERD}'");
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .env("TMPDIR", &tmp.0)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "netrunner-sheph\nnetrunner-shepherd\n");
    // The copy it ran: 0700 in a 0700 directory of ours.
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp.0.join("netrunner-0");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let copies: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(mode(&copies[0]), 0o700);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/memfd_noexec")
            .unwrap()
            .trim(),
        "0",
        "the host's setting changed"
    );
}

#[test]
fn a_setuid_owner_ignores_netrunner_shepherd() {
    if !is_root() {
        eprintln!("skipped: making a setuid-root copy needs root");
        return;
    }
    let tmp = Scratch::new("setuid");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = tmp.0.join("netrunner");
    std::fs::copy(BIN, &copy).unwrap();
    let run_as_nobody = |mode: u32| {
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(mode)).unwrap();
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&copy)
            .args(["run", "--", "true"])
            .env("NETRUNNER_SHEPHERD", "/bin/false")
            .env("TMPDIR", &tmp.0)
            .output()
            .unwrap()
    };
    // Not setuid: the variable is honoured, and /bin/false is no shepherd.
    let plain = run_as_nobody(0o755);
    assert!(!plain.status.success(), "{plain:?}");
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("netrunner-shepherd"),
        "{plain:?}"
    );
    // Setuid root (AT_SECURE): the variable is ignored, the embedded copy runs.
    let setuid = run_as_nobody(0o4755);
    assert!(setuid.status.success(), "{setuid:?}");
}

/// Every descendant of `pid`, read from /proc (this process's numbering).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        let Some(p) = netrunner_sys::process::Pid::from_raw(p as i32) else {
            continue;
        };
        for child in netrunner_sys::process::children_of(p) {
            let child = child.as_raw_nonzero().get() as u32;
            found.push(child);
            next.push(child);
        }
    }
    found
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn an_owner_in_a_new_pid_namespace_with_the_old_proc_loses_nothing() {
    if !is_root() {
        eprintln!("skipped: a new pid namespace needs root");
        return;
    }
    // The owner runs in a new pid namespace, /proc is still the outer
    // one: its shepherd must not read pids from it. The namespace's init
    // is a shell, so the owner's death is not the namespace's.
    let script = format!(
        "{BIN} run --kill-timeout 1s -- sh -c 'sleep 30 & sleep 30 & echo ready; wait'; exec sleep 30"
    );
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct KillNamespace(std::process::Child);
    impl Drop for KillNamespace {
        fn drop(&mut self) {
            // Its init first: the kernel then kills the whole namespace.
            if let Some(init) = descendants(self.0.id()).first() {
                let _ = Command::new("kill")
                    .args(["-9", &init.to_string()])
                    .status();
            }
            let _ = self.0.wait();
        }
    }
    let mut unshare = KillNamespace(unshare);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(unshare.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    let tree = descendants(unshare.0.id());
    let owner = *tree
        .iter()
        .find(|&&p| comm(p) == "netrunner")
        .expect("the owner runs");
    let below_owner = descendants(owner);
    // The shepherd, sh, two sleeps, and maybe a spare shepherd.
    assert!(below_owner.len() >= 4, "{below_owner:?}");
    Command::new("kill")
        .args(["-9", &owner.to_string()])
        .status()
        .unwrap();
    let left = netrunner_tests::wait_dead(&below_owner, std::time::Duration::from_secs(4));
    assert!(left.is_empty(), "outlived their owner: {left:?}");
}
