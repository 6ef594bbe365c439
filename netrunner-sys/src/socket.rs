//! The library↔shepherd socket: creation and file-descriptor passing.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// Most descriptors one message may carry: those of a spawn request.
pub const MAX_FDS_PER_MESSAGE: usize = netrunner_proto::MAX_PASSED_FDS;

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`.
///
/// No filesystem path and no listener: nobody else can connect.
///
/// # References
/// - [`socketpair(2)`](https://man7.org/linux/man-pages/man2/socketpair.2.html)
pub fn socketpair_stream() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// `sendmsg` with `SCM_RIGHTS`: sends `data` with `fds` attached to its first byte.
///
/// Returns how many bytes of `data` were sent; the descriptors travel with
/// the first byte, so a short send still delivered all of them. Uses
/// `MSG_NOSIGNAL`: a closed peer is `EPIPE`, not a SIGPIPE.
///
/// # References
/// - [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html),
///   [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn sendmsg_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors for one message",
        ));
    }
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("ancillary buffer too small"));
    }
    let iov = [io::IoSlice::new(data)];
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// `send(MSG_NOSIGNAL)`: plain bytes, no SIGPIPE on a closed peer.
pub fn send(sock: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(sock, data, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// Shuts the socket down both ways: the peer reads end of stream now, even
/// while other descriptors of the socket stay open (a copy of this process
/// made by `fork`).
///
/// # References
/// - [`shutdown(2)`](https://man7.org/linux/man-pages/man2/shutdown.2.html)
pub fn shutdown(sock: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::net::shutdown(sock, rustix::net::Shutdown::Both)?)
}

/// `recvmsg(MSG_CMSG_CLOEXEC)`: reads bytes, collecting any passed descriptors.
///
/// Received descriptors are close-on-exec from birth and appended to `fds`.
/// Returns the byte count; 0 is end of stream.
///
/// # References
/// - [`recvmsg(2)`](https://man7.org/linux/man-pages/man2/recvmsg.2.html)
pub fn recvmsg_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = loop {
        match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut received_now = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            received_now.extend(received);
        }
    }
    if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        // The peer sent more descriptors than any message of ours carries;
        // the kernel closed the rest. The bytes are consumed, so the link
        // cannot go on: say so (closing what did arrive).
        drop(received_now);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {MAX_FDS_PER_MESSAGE} descriptors in one message"),
        ));
    }
    fds.extend(received_now);
    Ok(msg.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn too_many_descriptors_are_an_error_not_a_silent_loss() {
        let (a, b) = socketpair_stream().unwrap();
        // Twice what a message may carry: more than the receive buffer
        // holds even with its alignment slack.
        let pipes: Vec<_> = (0..MAX_FDS_PER_MESSAGE)
            .map(|_| crate::fd::pipe2_cloexec().unwrap())
            .collect();
        let too_many: Vec<BorrowedFd<'_>> = pipes
            .iter()
            .flat_map(|(r, w)| [r.as_fd(), w.as_fd()])
            .collect();
        let mut space =
            [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2 * MAX_FDS_PER_MESSAGE))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&too_many)));
        rustix::net::sendmsg(
            a.as_fd(),
            &[io::IoSlice::new(b"x")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        let before = crate::fd::count_open_fds().unwrap();
        let mut fds = Vec::new();
        let err = recvmsg_with_fds(b.as_fd(), &mut [0u8; 4], &mut fds).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(fds.is_empty());
        assert_eq!(
            crate::fd::count_open_fds().unwrap(),
            before,
            "nothing leaked"
        );
    }

    #[test]
    fn passes_descriptors_that_arrive_cloexec() {
        let (a, b) = socketpair_stream().unwrap();
        let (r, w) = crate::fd::pipe2_cloexec().unwrap();
        assert_eq!(
            sendmsg_with_fds(a.as_fd(), b"hello", &[r.as_fd(), w.as_fd()]).unwrap(),
            5
        );
        drop((r, w));
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = recvmsg_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 2);
        for fd in &fds {
            assert!(crate::fd::is_cloexec(fd.as_fd()).unwrap());
        }
        // The passed pipe still works end to end.
        rustix::io::write(&fds[1], b"x").unwrap();
        let mut one = [0u8; 1];
        assert_eq!(rustix::io::read(&fds[0], &mut one).unwrap(), 1);
        drop(a);
        assert_eq!(recvmsg_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap(), 0);
    }

    #[test]
    fn send_to_closed_peer_is_epipe_not_sigpipe() {
        let (a, b) = socketpair_stream().unwrap();
        drop(b);
        let err = send(a.as_fd(), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
