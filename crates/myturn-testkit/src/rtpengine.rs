//! rtpengine (Debian's `rtpengine-daemon`): started in userspace with
//! its media on an interface the test names and its ng control port on
//! loopback. (A test talks ng with myturn-pbx's own `ng::Ben`.)

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::Command;

use crate::ports::{free_media_range, free_udp_port};
use crate::process::Peer;

/// rtpengine in userspace, media on `interface`, ng control on a free
/// loopback port: the daemon, its ng port and its media ports.
pub fn start(dir: &Path, interface: IpAddr) -> (Peer, u16, RangeInclusive<u16>) {
    let ng = free_udp_port();
    let (min, max) = free_media_range(interface, 40);
    let mut cmd = Command::new("rtpengine");
    cmd.args([
        // Not the packaged /etc/rtpengine/rtpengine.conf.
        "--config-file=none",
        "--foreground",
        "--log-stderr",
        "--no-log-timestamps",
        "--log-level=6",
        // Userspace forwarding only (no kernel module; and no
        // --no-fallback, which would demand it).
        "--table=-1",
        // One forwarding thread: with several, two can read the same
        // socket, and a descheduled one (a loaded CI machine) forwards
        // its packet late. Seen: the first audio frame after the next
        // three; the client writes --output-wav in arrival order, so a
        // byte-exact comparison would fail.
        "--num-threads=1",
    ])
    .arg(format!("--interface={interface}"))
    .arg(format!("--listen-ng=127.0.0.1:{ng}"))
    .arg(format!("--port-min={min}"))
    .arg(format!("--port-max={max}"));
    (Peer::spawn("rtpengine", &mut cmd, dir), ng, min..=max)
}

/// Waits until the rtpengine `peer` answers an ng `ping` on loopback port
/// `ng` (a Kamailio started before that disables it for a minute);
/// panics after 30 s (a loaded machine starts it slowly) or if it exited.
pub fn wait_ready(peer: &mut Peer, ng: u16) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut buf = [0u8; 256];
    loop {
        peer.assert_running();
        let _ = sock.send_to(b"ready1 d7:command4:pinge", ("127.0.0.1", ng));
        if let Ok(n) = sock.recv(&mut buf) {
            if buf[..n].windows(4).any(|w| w == b"pong") {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < end,
            "rtpengine does not answer ng ping on {ng}:\n{}",
            peer.log()
        );
    }
}
