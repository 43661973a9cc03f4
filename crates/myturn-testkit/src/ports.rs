//! Free ports for peers started by a test: one UDP or TCP port, or an
//! even-based UDP range for a media relay.

use std::net::{IpAddr, TcpListener, UdpSocket};

use rand_core::{OsRng, RngCore};

/// A free UDP port on loopback (an ephemeral one, free when asked).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free TCP port on loopback (an ephemeral one, free when asked).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free on loopback for both UDP and TCP now, for a SIP peer that
/// listens on both at one port (baresip does: its `sip_listen` opens UDP
/// and TCP, and fails if either is taken).
pub fn free_udp_tcp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `len` UDP ports from an even base, all free on `ip` now, for a media
/// relay. Below Linux's ephemeral range (32768–60999), so ephemeral
/// sockets do not race for them, and off the 10000–19999 and 30000–40000
/// that packaged relays use by default.
pub fn free_media_range(ip: IpAddr, len: u16) -> (u16, u16) {
    for _ in 0..100 {
        let base = (20_000 + (OsRng.next_u32() % 9_000) as u16) & !1;
        let all_free = (base..base + len).all(|p| UdpSocket::bind((ip, p)).is_ok());
        if all_free {
            return (base, base + len - 1);
        }
    }
    panic!("no free UDP port range for a media relay");
}
