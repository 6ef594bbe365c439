//! Runs a few commands the way the README shows.
use std::time::Duration;

use netrunner_blocking::{Command, Error};

fn main() -> Result<(), Error> {
    let out = Command::new("echo").arg("hello from netrunner").output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    println!("status: {}, took {:?}", out.status, out.stats.duration);

    // A tree that ignores SIGTERM, with a background grandchild: the timeout
    // takes all of it down (SIGTERM, 500 ms grace, SIGKILL).
    let started = std::time::Instant::now();
    let slow = Command::new("sh")
        .args(["-c", "sleep 1000 & trap '' TERM; sleep 1000"])
        .timeout(Duration::from_millis(300))
        .kill_timeout(Duration::from_millis(500))
        .output();
    match slow {
        Err(Error::Timeout { partial }) => {
            println!(
                "timed out after {:?}: {}",
                started.elapsed(),
                partial.status
            )
        }
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
