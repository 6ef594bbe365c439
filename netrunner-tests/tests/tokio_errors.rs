//! Spawn errors through the tokio front end, and spawning outside a runtime.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;

use netrunner_tests::on_both_runtimes;
use netrunner_tokio::{Command, Error};

fn spawn_kind(result: Result<netrunner_tokio::Output, Error>) -> ErrorKind {
    match result {
        Err(Error::Spawn { source, .. }) => source.kind(),
        other => panic!("expected Error::Spawn, got {other:?}"),
    }
}

#[test]
fn spawn_errors_carry_the_os_error() {
    let dir = std::env::temp_dir().join(format!("netrunner-tokio-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("plain.txt");
    std::fs::write(&plain, b"echo hi\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    on_both_runtimes(|| {
        let plain = plain.clone();
        async move {
            assert_eq!(
                spawn_kind(Command::new("/nonexistent").output().await),
                ErrorKind::NotFound
            );
            assert_eq!(
                spawn_kind(Command::new(&plain).output().await),
                ErrorKind::PermissionDenied
            );
            assert!(matches!(
                Command::new("").output().await,
                Err(Error::InvalidInput { .. })
            ));
            assert!(matches!(
                Command::new("echo").arg("a\0b").status().await,
                Err(Error::InvalidInput { .. })
            ));
        }
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
    match Command::new("sleep").arg("100").spawn() {
        Err(Error::Io(e)) => assert!(e.to_string().contains("tokio runtime"), "{e}"),
        other => panic!("expected an Io error, got {other:?}"),
    }
    // Refused before launching: not even a shepherd was started.
    assert!(netrunner_tests::settle());
    assert!(netrunner_tests::children_except_spare().is_empty());
    assert!(matches!(Command::new("yes").stream(), Err(Error::Io(_))));
}
