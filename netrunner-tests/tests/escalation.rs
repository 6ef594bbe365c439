//! The grace period reaches every descendant, wakes stopped ones, and the
//! shepherd itself cannot be stopped or killed by a stray signal.

use std::time::Duration;

use netrunner_blocking::{Command, Signal, Stdio};
use netrunner_sys::process::{self, Pid};
use netrunner_tests::{
    alive, eventually, proc_stat_fields, read_pid_lines, shepherd_of, wait_gone, KillOnDrop,
};

fn state(pid: u32) -> u8 {
    process::process_state(pid as i32).unwrap_or(b'?')
}

#[test]
fn a_stopped_tree_gets_sigcont_with_sigterm_and_exits_in_its_grace_period() {
    let mut guard = KillOnDrop::new("sh");
    let mut child = Command::new("sh")
        .args([
            "-c",
            // A loop without forks: a shell stopped inside a vfork waits
            // uninterruptibly for its child's exec instead of showing `T`.
            "trap 'exit 0' TERM; echo $$; while :; do :; done",
        ])
        .stdout(Stdio::piped())
        .kill_timeout(Duration::from_secs(5))
        .spawn()
        .unwrap();
    let pid = read_pid_lines(&mut child, 1)[0];
    guard.add([pid]);
    process::kill_process_group(Pid::from_raw(pid as i32).unwrap(), Signal::STOP).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || state(pid) == b'T'),
        "the shell stopped: {}",
        state(pid) as char
    );
    drop(child);
    // A stopped process sleeps through SIGTERM; only SIGCONT lets the trap
    // run. Without it the tree would last until SIGKILL, 5 s from now.
    let left = wait_gone(&[pid], Duration::from_secs(2));
    assert!(left.is_empty(), "still there, state {}", state(pid) as char);
}

#[test]
fn a_setsid_descendant_gets_sigterm_at_the_start_of_the_grace_period() {
    let mut guard = KillOnDrop::new("sleep");
    // The sleep leaves the process group while its parent lives, so a
    // group signal misses it and it is not (yet) the shepherd's child. The
    // shell ignores SIGTERM and so keeps the grace period running.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "setsid sleep 1000 & echo $!; trap '' TERM; echo $$; while :; do sleep 0.2; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pids = read_pid_lines(&mut child, 2);
    guard.add(pids.clone());
    let (escapee, shell) = (pids[0], pids[1]);
    let shepherd = shepherd_of(shell);
    assert_eq!(
        process::parent_pid_of(escapee as i32).unwrap(),
        shell as i32,
        "the escapee is the shell's child, not the shepherd's"
    );
    drop(child);
    // Dead, that is: reaping its zombie is its parent shell's business.
    let left = netrunner_tests::wait_dead(&[escapee], Duration::from_secs(1));
    assert!(
        left.is_empty(),
        "the setsid sleep outlived 1 s of a 5 s grace"
    );
    assert!(alive(shell), "the shell is still in its grace period");
    // And the rest ends as usual: SIGKILL at the end of the grace period.
    assert!(wait_gone(&[shell, shepherd], Duration::from_secs(7)).is_empty());
}

/// The signal mask `field` (`SigIgn`, `SigBlk`) of `pid`.
fn mask(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// The process group of `pid`.
fn pgid(pid: u32) -> String {
    proc_stat_fields(pid).expect("the process exists")[2].clone()
}

#[test]
fn the_shepherd_is_in_a_group_of_its_own_and_shrugs_off_stray_signals() {
    let mut guard = KillOnDrop::new("sleep");
    let mut child = Command::new("sleep")
        .arg("1000")
        .kill_timeout(Duration::from_millis(200))
        .spawn()
        .unwrap();
    let pid = child.id();
    guard.add([pid]);
    let shepherd = shepherd_of(pid);
    assert_eq!(pgid(shepherd), shepherd.to_string(), "leads its own group");
    assert_ne!(pgid(shepherd), pgid(std::process::id()), "not in ours");

    let bit = |sig: i32| 1u64 << (sig - 1);
    let ignored = mask(shepherd, "SigIgn");
    for sig in [
        Signal::QUIT,
        Signal::PIPE,
        Signal::USR1,
        Signal::USR2,
        Signal::ALARM,
        Signal::TSTP,
        Signal::TTIN,
        Signal::TTOU,
        Signal::XCPU,
        Signal::PROF,
    ] {
        assert!(ignored & bit(sig.as_raw()) != 0, "{sig} is ignored");
    }
    assert!(ignored & bit(64) != 0, "real-time signals are ignored");
    let blocked = mask(shepherd, "SigBlk");
    for sig in [Signal::TERM, Signal::INT, Signal::HUP, Signal::CHILD] {
        assert!(
            blocked & bit(sig.as_raw()) != 0,
            "{sig} is read from a signalfd"
        );
    }

    // What would have killed or stopped it by default does nothing now.
    let target = Pid::from_raw(shepherd as i32).unwrap();
    for sig in [
        Signal::QUIT,
        Signal::USR1,
        Signal::PIPE,
        Signal::ALARM,
        Signal::TSTP,
    ] {
        process::kill(target, sig).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        alive(shepherd) && state(shepherd) != b'T',
        "the shepherd runs on"
    );
    assert!(alive(pid));
    assert_eq!(child.try_wait().unwrap(), None);
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));
}
