//! `NETRUNNER_SHEPHERD` is honoured, and `Command::shepherd_path` beats it.
//!
//! Stand-in "shepherds" record that they ran, then exit without speaking the
//! protocol, so each launch fails as a shepherd error after running exactly
//! the binary that was selected.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use netrunner_blocking::{Command, Error};

fn stand_in(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let marker = dir.join(format!("{name}.ran"));
    let script = dir.join(name);
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, marker)
}

#[test]
fn environment_override_and_explicit_path_precedence() {
    let dir = std::env::temp_dir().join(format!("netrunner-override-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (from_env, env_marker) = stand_in(&dir, "env-shepherd");
    let (explicit, explicit_marker) = stand_in(&dir, "explicit-shepherd");
    // This test binary runs this one test only, so no other thread reads
    // the environment concurrently.
    std::env::set_var("NETRUNNER_SHEPHERD", &from_env);

    let err = Command::new("true").output().unwrap_err();
    assert!(matches!(err, Error::Shepherd(_)), "{err:?}");
    assert!(env_marker.exists(), "NETRUNNER_SHEPHERD was not used");

    let err = Command::new("true")
        .shepherd_path(&explicit)
        .output()
        .unwrap_err();
    assert!(matches!(err, Error::Shepherd(_)), "{err:?}");
    assert!(explicit_marker.exists(), "shepherd_path was not used");

    // Back to the embedded shepherd: an empty variable means unset.
    std::env::set_var("NETRUNNER_SHEPHERD", "");
    let out = Command::new("echo").arg("embedded").output().unwrap();
    assert_eq!(out.stdout, b"embedded\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
