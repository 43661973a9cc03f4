//! The fuzz target body (`fuzz/fuzz_targets/pbx_receive.rs`), also run by
//! the stable test suite. Must never panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use myturn_sip::fuzzing::Counter;

use crate::core::{Account, Config, Pbx};

/// One datagram through a PBX that has accounts, then timers.
pub fn receive(data: &[u8]) {
    let now = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 5060));
    let mut pbx = Pbx::new(Config::new(addr), Box::new(Counter(3)), now);
    pbx.set_accounts([Account {
        username: "alice".into(),
        extension: "111000".into(),
        password: "pw".into(),
    }]);
    let from = SocketAddr::from((Ipv4Addr::LOCALHOST, 5070));
    pbx.handle_datagram(now, from, data);
    pbx.handle_datagram(now, from, data);
    pbx.handle_timeout(now + Duration::from_secs(40));
    while pbx.poll_transmit().is_some() {}
    while pbx.poll_event().is_some() {}
}

/// The media side's network-facing parsers (`fuzz/fuzz_targets/media_anchor.rs`):
/// the datagram as an rtpengine ng reply, as an SDP to anchor, and fed to
/// a PBX that anchors through rtpengine (with an offer parked) and to one
/// with the built-in relay.
pub fn anchor(data: &[u8]) {
    use crate::media::MediaMode;
    let _ = crate::ng::Reply::parse(data);
    let _ = crate::ng::Ben::decode(data);
    let to = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 20_000));
    if let Ok(r) = crate::relay::rewrite_sdp(data, to) {
        // A rewritten SDP rewrites to itself.
        let again = crate::relay::rewrite_sdp(&r.body, to).map(|a| a.body);
        assert_eq!(again.as_deref(), Ok(r.body.as_slice()));
    }
    let now = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 5060));
    for media in [
        MediaMode::Rtpengine {
            control: SocketAddr::from((Ipv4Addr::LOCALHOST, 2223)),
        },
        MediaMode::Relay {
            addr: Ipv4Addr::LOCALHOST.into(),
            ports: 20_000..=20_003,
        },
    ] {
        let mut cfg = Config::new(addr);
        cfg.media = media;
        let mut pbx = Pbx::new(cfg, Box::new(Counter(3)), now);
        pbx.handle_control(now, data);
        pbx.handle_datagram(now, SocketAddr::from((Ipv4Addr::LOCALHOST, 5070)), data);
        pbx.handle_timeout(now + Duration::from_secs(40));
        while pbx.poll_transmit().is_some() {}
        while pbx.poll_control().is_some() {}
        while pbx.poll_media().is_some() {}
    }
}
