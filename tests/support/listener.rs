//! A TCP listener that never accepts, for the tests that show a guest reached nothing: a
//! connection to it stays queued until accepted, so the test can tell afterwards whether
//! anything connected.

use std::io::ErrorKind;
use std::net::TcpListener;

/// A listener on a free loopback port that never accepts, and its port.
pub fn untouched_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Whether a connection to `listener` ever completed.
pub fn was_connected(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept failed: {e}"),
    }
}
