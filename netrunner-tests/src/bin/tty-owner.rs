//! Test helper: a terminal program that runs one command through the
//! blocking API, then reports how it ended and whether this program's
//! process group is the terminal's foreground group again.
//!
//! Usage: `tty-owner PROGRAM [ARGS...]` runs it with `status()` and prints
//! `status=CODE` or `status=signal N`, then `fg=true|false`.
//! `tty-owner --drop-after MS PROGRAM [ARGS...]` spawns it, drops the
//! `Child` after MS milliseconds and prints `dropped fg=true|false` at once.
//! `tty-owner --keep-terminal PROGRAM [ARGS...]` runs it with
//! `foreground(false)`.
#![forbid(unsafe_code)]

use std::time::Duration;

fn in_foreground() -> bool {
    rustix::termios::tcgetpgrp(rustix::stdio::stdin())
        .is_ok_and(|fg| fg == rustix::process::getpgrp())
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let drop_after = if args.peek().map(String::as_str) == Some("--drop-after") {
        args.next();
        Some(Duration::from_millis(
            args.next()
                .and_then(|ms| ms.parse().ok())
                .expect("milliseconds"),
        ))
    } else {
        None
    };
    let keep_terminal = args.peek().map(String::as_str) == Some("--keep-terminal");
    if keep_terminal {
        args.next();
    }
    let program = args.next().expect("a program to run");
    let mut cmd = netrunner_blocking::Command::new(program);
    cmd.args(args)
        .kill_timeout(Duration::from_secs(3))
        .foreground(!keep_terminal);
    if let Some(after) = drop_after {
        let child = cmd.spawn().expect("spawn the command");
        std::thread::sleep(after);
        drop(child);
        println!("dropped fg={}", in_foreground());
        return;
    }
    let status = cmd.status().expect("run the command");
    let ended = match (status.code(), status.signal()) {
        (Some(code), _) => format!("{code}"),
        (None, Some(sig)) => format!("signal {}", sig.as_raw()),
        _ => "?".into(),
    };
    println!("status={ended} fg={}", in_foreground());
}
