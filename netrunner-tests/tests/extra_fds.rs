//! `Command::fd`: extra descriptors placed in the child at given numbers.

use std::io::Read;

use netrunner_blocking::{Command, Error};

#[test]
fn a_descriptor_reaches_the_child_at_its_number_and_nowhere_else() {
    let (read, write) = netrunner_sys::fd::pipe2_cloexec().unwrap();
    let (read9, write9) = netrunner_sys::fd::pipe2_cloexec().unwrap();
    let out = Command::new("sh")
        .args(["-c", "echo five >&5; echo nine >&9; ls /proc/$$/fd"])
        .fd(5, write)
        .fd(9, write9)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n2\n5\n9\n");
    let mut got = String::new();
    std::fs::File::from(read).read_to_string(&mut got).unwrap();
    assert_eq!(got, "five\n");
    got.clear();
    std::fs::File::from(read9).read_to_string(&mut got).unwrap();
    assert_eq!(got, "nine\n");
}

#[test]
fn numbers_out_of_range_are_refused_before_anything_starts() {
    for bad in [0, 2, 1024, -1] {
        let (_, write) = netrunner_sys::fd::pipe2_cloexec().unwrap();
        let err = Command::new("true").fd(bad, write).status().unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err:?}");
    }
}
