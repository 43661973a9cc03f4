//! Entry points shared by the fuzz targets (`fuzz/`) and the smoke tests
//! that run the same bodies on the stable toolchain. None may panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use web_time::Instant;

use crate::ua::{Config, UserAgent};

/// A fixed, non-random RNG: fuzzing must be deterministic. Also used by
/// the built-in PBX's fuzz target.
pub use myturn_rt::fuzzing::Counter;

/// The whole receive path: parsing, the digest and SDP parsers, and the
/// user agent's handling of the datagram (as request, response, or while a
/// call and a registration are under way).
pub fn receive(data: &[u8]) {
    if let Ok(m) = crate::msg::parse(data) {
        for name in ["WWW-Authenticate", "Proxy-Authenticate", "Authorization"] {
            for v in m.headers(name) {
                let _ = crate::digest::Challenge::parse(v);
                let _ = crate::digest::Credentials::parse(v);
            }
        }
        let _ = crate::sdp::Sdp::parse(m.body());
        let _ = (m.top_via(), m.from(), m.to(), m.name_addrs("Contact"));
    }
    let now = Instant::now();
    let cfg = Config::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 5070)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)),
        "111000",
        "pw",
    );
    let mut ua = UserAgent::new(cfg, Box::new(Counter(7)));
    ua.register(now);
    let _ = ua.invite(now, "111001", "v=0\r\n");
    let from = SocketAddr::from((Ipv4Addr::LOCALHOST, 5060));
    ua.handle_datagram(now, from, data);
    ua.handle_datagram(now, from, data);
    ua.handle_timeout(now + Duration::from_secs(40));
    while ua.poll_transmit().is_some() {}
    while ua.poll_event().is_some() {}
}

/// SIP over a stream (`fuzz/fuzz_targets/sip_stream.rs`): the bytes fed to
/// a server-side and a client-side framer whole and in 1-, 5- and 64-byte
/// pieces; every message framed is parsed. Whatever the split, the
/// frames must be the same.
pub fn stream(data: &[u8]) {
    use crate::stream::{Frame, Framer, Side};
    for side in [Side::Server, Side::Client] {
        let mut whole: Option<Vec<Frame>> = None;
        for piece in [data.len().max(1), 1, 5, 64] {
            let mut f = Framer::new(side, 4096);
            let mut frames = Vec::new();
            'feed: for chunk in data.chunks(piece) {
                f.push(chunk);
                loop {
                    match f.next_frame() {
                        Ok(Some(fr)) => {
                            if let Frame::Message(m) = &fr {
                                let _ = crate::msg::parse(m);
                            }
                            frames.push(fr);
                        }
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
            match &whole {
                None => whole = Some(frames),
                // A framer that failed part-way may have seen fewer frames;
                // the ones it did see must agree.
                Some(w) => assert!(
                    w.iter().zip(&frames).all(|(a, b)| a == b),
                    "framing depends on how the bytes arrive"
                ),
            }
        }
    }
}
