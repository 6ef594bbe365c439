//! Bad input is rejected before any process exists.
//!
//! The commands use a stand-in "shepherd" that only records that it ran; the
//! control case shows the record does appear when a launch does happen.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use netrunner_blocking::{Command, Error};

#[test]
fn invalid_input_spawns_nothing() {
    let dir = std::env::temp_dir().join(format!("netrunner-nospawn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let fake = dir.join("fake-shepherd");
    std::fs::write(&fake, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let bad: Vec<Command> = vec![
        Command::new(""),
        Command::new("ec\0ho"),
        {
            let mut c = Command::new("echo");
            c.arg("x\0");
            c
        },
        {
            let mut c = Command::new("echo");
            c.env("K\0", "v");
            c
        },
        {
            let mut c = Command::new("echo");
            c.current_dir("a\0b");
            c
        },
        Command::new("no-such-program-netrunner"),
    ];
    for mut cmd in bad {
        let err = cmd.shepherd_path(&fake).output().unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { .. } | Error::Spawn { .. }),
            "{err:?}"
        );
        assert!(
            !Path::new(&marker).exists(),
            "a process was started for {cmd:?}"
        );
    }

    // Control: a valid command does start the (fake) shepherd, which speaks no
    // protocol, so the launch fails cleanly as a shepherd error.
    let err = Command::new("true")
        .shepherd_path(&fake)
        .output()
        .unwrap_err();
    assert!(matches!(err, Error::Shepherd(_)), "{err:?}");
    assert!(
        marker.exists(),
        "the control launch should have run the stand-in"
    );
    assert!(netrunner_tests::zombie_children().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
