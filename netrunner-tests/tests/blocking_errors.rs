//! Spawn failures are typed errors carrying the real OS error, never an exit status.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;

use netrunner_blocking::{Command, Error};

fn spawn_kind(result: Result<netrunner_blocking::Output, Error>) -> (ErrorKind, Option<i32>) {
    match result {
        Err(Error::Spawn { source, .. }) => (source.kind(), source.raw_os_error()),
        other => panic!("expected Error::Spawn, got {other:?}"),
    }
}

fn temp_file(name: &str, contents: &[u8], mode: u32) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netrunner-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn missing_program_is_not_found() {
    assert_eq!(
        spawn_kind(Command::new("/nonexistent").output()).0,
        ErrorKind::NotFound
    );
    assert_eq!(
        spawn_kind(Command::new("no-such-program-netrunner").output()).0,
        ErrorKind::NotFound
    );
    // Through the io::Error conversion the kind survives too.
    let io: std::io::Error = Command::new("/nonexistent").spawn().unwrap_err().into();
    assert_eq!(io.kind(), ErrorKind::NotFound);
}

#[test]
fn non_executable_file_is_permission_denied() {
    let path = temp_file("plain.txt", b"echo hi\n", 0o644);
    assert_eq!(
        spawn_kind(Command::new(&path).output()),
        (ErrorKind::PermissionDenied, Some(13))
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bad_format_is_enoexec_not_a_shell_fallback() {
    let path = temp_file("garbage", b"\x7fnot really an ELF file", 0o755);
    let (_, errno) = spawn_kind(Command::new(&path).output());
    assert_eq!(errno, Some(8), "ENOEXEC");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn missing_working_directory_is_a_spawn_error() {
    let (kind, _) = spawn_kind(
        Command::new("true")
            .current_dir("/nonexistent-dir")
            .output(),
    );
    assert_eq!(kind, ErrorKind::NotFound);
}

#[test]
fn invalid_input_names_the_field() {
    let what = |r: Result<netrunner_blocking::Output, Error>| match r {
        Err(Error::InvalidInput { what, .. }) => what,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    assert_eq!(what(Command::new("").output()), "program");
    assert_eq!(what(Command::new("ec\0ho").output()), "program");
    assert_eq!(
        what(Command::new("echo").arg("a\0b").output()),
        "argument 1"
    );
    assert!(what(Command::new("echo").env("KEY", "v\0").output()).contains("KEY"));
    assert_eq!(
        what(Command::new("echo").current_dir("/tm\0p").output()),
        "cwd"
    );
}
