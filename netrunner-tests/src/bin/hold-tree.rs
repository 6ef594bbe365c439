//! Test helper: starts process trees through netrunner, prints every pid in
//! them, then blocks forever, waiting to be killed by the test.
//!
//! Usage: `hold-tree KILL_TIMEOUT_MS`. Prints one pid per line, then `ready`.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use netrunner_blocking::{Command, Stdio};
use netrunner_tests::{ESCAPING_TREE, STUBBORN_TREE};

fn main() {
    let grace: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut children = Vec::new();
    let mut out = std::io::stdout().lock();
    for (script, lines) in [(STUBBORN_TREE, 4), (ESCAPING_TREE, 2)] {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .kill_timeout(Duration::from_millis(grace))
            .spawn()
            .expect("spawn through netrunner");
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        for _ in 0..lines {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read a pid");
            write!(out, "{line}").unwrap();
        }
        children.push((child, reader));
    }
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    loop {
        std::thread::park();
    }
}
