//! A host whose SIGPIPE disposition is the default (a C host, a CLI that
//! resets it) survives netrunner writing input to a command that stopped
//! reading: the write is `BrokenPipe` inside netrunner, never a signal.
//!
//! The test process itself is that host: if a SIGPIPE escaped, it would die
//! of it and the test would fail by signal.

/// More than a pipe buffer, so the writer is still writing when the
/// command exits.
const INPUT: usize = 1 << 20;

fn with_default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_DFL installs no handler code. This binary's tests each run
    // in a process of their own (nextest), which is the host under test.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.unwrap();
}

#[test]
fn blocking_output_with_unread_input_does_not_kill_the_host() {
    with_default_sigpipe();
    for script in ["true", "head -c 1 >/dev/null"] {
        let out = netrunner_blocking::Command::new("sh")
            .args(["-c", script])
            .input(vec![b'x'; INPUT])
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
    }
}

#[test]
fn tokio_output_with_unread_input_does_not_kill_the_host() {
    with_default_sigpipe();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for script in ["true", "head -c 1 >/dev/null"] {
            let out = netrunner_tokio::Command::new("sh")
                .args(["-c", script])
                .input(vec![b'x'; INPUT])
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{script}: {out:?}");
        }
    });
}
