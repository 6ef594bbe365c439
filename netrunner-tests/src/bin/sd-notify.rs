//! Test helper: sends `READY=1` to the socket in `$NOTIFY_SOCKET`, as
//! `systemd-notify --ready` does, and exits.
#![forbid(unsafe_code)]

fn main() {
    let path = std::env::var_os("NOTIFY_SOCKET").expect("NOTIFY_SOCKET is set");
    let socket = std::os::unix::net::UnixDatagram::unbound().expect("a datagram socket");
    socket
        .send_to(b"STATUS=starting done\nREADY=1\n", path)
        .expect("send READY=1");
}
