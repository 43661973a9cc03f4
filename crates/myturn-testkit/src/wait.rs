//! Waiting for a peer to be up: something listening on a UDP or TCP
//! port, while the peer's process still runs.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::process::Peer;

/// Waits until something listens on UDP `port` of loopback (binding it
/// fails); panics after `timeout`, or at once if `peer` has exited.
pub fn udp_listening(port: u16, timeout: Duration, peer: Option<&mut Peer>) {
    udp_listening_at(SocketAddr::from(([127, 0, 0, 1], port)), timeout, peer);
}

/// [`udp_listening`] on any local address (another loopback address, a
/// veth's).
pub fn udp_listening_at(addr: SocketAddr, timeout: Duration, mut peer: Option<&mut Peer>) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(p) = peer.as_deref_mut() {
            p.assert_running();
        }
        if UdpSocket::bind(addr).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let who = peer.map_or("nothing", |p| p.name);
    panic!("{who} does not listen on udp/{addr}");
}

/// Waits until `addr` accepts TCP connections; panics after `timeout`,
/// or at once if `peer` has exited.
pub async fn tcp_listening(addr: SocketAddr, timeout: Duration, mut peer: Option<&mut Peer>) {
    let end = Instant::now() + timeout;
    while TcpStream::connect(addr).is_err() {
        if let Some(p) = peer.as_deref_mut() {
            p.assert_running();
        }
        let who = peer.as_deref().map_or("nothing", |p| p.name);
        assert!(Instant::now() < end, "{who} does not listen on tcp/{addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
