//! The browser's media bridge (`GET /media`, issue #28) over a real
//! WebSocket and real UDP: it says where it sends from, carries a page's
//! datagrams to the relay port it names and back, only from that port;
//! what is no RTP packet, comes before the peer is named or past the rate
//! is dropped and counted in `/metrics`; a peer that is no relay port ends
//! the bridge (1008), so it is no open UDP proxy. And the `web_media`
//! fuzz body (the bridge's messages, str0m's SDP offer parser) survives
//! mutations of a real chromium offer and of a page's messages; data
//! channels take their ports from `--webrtc-ports`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

/// The next data message on the socket (pings skipped).
async fn next(ws: &mut common::ws::Ws) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the socket is open")
            .expect("a readable frame");
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

fn rtp(seq: u8) -> Vec<u8> {
    let mut d = vec![0u8; 40];
    d[0] = 0x80;
    d[3] = seq;
    d
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_carries_a_pages_datagrams_to_the_relay_and_drops_the_rest() {
    let cfg = common::config();
    let ports = cfg.media_ports.0.clone();
    let env = common::live(&cfg).await;
    let user = env.register("pagey").await;
    let token = common::token(&user);
    let proto = [(
        "sec-websocket-protocol",
        format!("myturn-media, bearer.{token}"),
    )];
    let req = env.api.ws_request("/media", &proto);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"].to_str().unwrap(),
        "myturn-media"
    );
    let Message::Text(hello) = next(&mut ws).await else {
        panic!("the first message is text")
    };
    let hello: Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["type"], "bound");
    let bound: std::net::SocketAddr = hello["addr"].as_str().unwrap().parse().unwrap();

    // Before the peer: garbage, a text that is no control message, and a
    // good packet with nowhere to go.
    ws.send(Message::binary(vec![0xff; 5])).await.unwrap();
    ws.send(Message::text("not json")).await.unwrap();
    ws.send(Message::binary(rtp(1))).await.unwrap();

    // A stand-in for the relay, on one of its ports (no call holds it).
    let relay = UdpSocket::bind(("127.0.0.1", *ports.end() - 1))
        .await
        .unwrap();
    let relay_addr = relay.local_addr().unwrap();
    ws.send(Message::text(
        json!({"type": "peer", "addr": relay_addr.to_string()}).to_string(),
    ))
    .await
    .unwrap();
    ws.send(Message::binary(rtp(2))).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), relay.recv_from(&mut buf))
        .await
        .expect("the relay gets the page's datagram")
        .unwrap();
    assert_eq!(&buf[..n], &rtp(2)[..], "unchanged");
    assert_eq!(from, bound, "from the address the bridge announced");

    // Back: a stranger's datagram is not carried, the relay's is.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger.send_to(&rtp(66), bound).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    relay.send_to(&rtp(3), bound).await.unwrap();
    let Message::Binary(back) = next(&mut ws).await else {
        panic!("a datagram comes back as a binary message")
    };
    assert_eq!(&back[..], &rtp(3)[..], "only the relay's datagram");

    // Past the rate: a burst of 200 at once loses some.
    for k in 0..200u8 {
        ws.send(Message::binary(rtp(k))).await.unwrap();
    }
    let mut carried = 0;
    while tokio::time::timeout(Duration::from_millis(500), relay.recv_from(&mut buf))
        .await
        .is_ok()
    {
        carried += 1;
    }
    assert!(
        (40..200).contains(&carried),
        "{carried} of a burst of 200 carried"
    );

    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "myturn_web_media_dropped_total{reason=\"malformed\"} "),
        2
    );
    assert_eq!(
        metric(&m, "myturn_web_media_dropped_total{reason=\"no_peer\"} "),
        1
    );
    assert_eq!(
        metric(&m, "myturn_web_media_dropped_total{reason=\"rate\"} "),
        200 - carried
    );
    assert_eq!(metric(&m, "myturn_web_media_bridges "), 1);
    assert_eq!(
        metric(
            &m,
            "myturn_web_media_datagrams_total{direction=\"to_page\"} "
        ),
        1
    );

    // A peer that is no relay port ends the bridge: no open proxy.
    let req = env.api.ws_request("/media", &proto);
    let (mut other, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let _hello = next(&mut other).await;
    other
        .send(Message::text(
            json!({"type": "peer", "addr": "127.0.0.1:53"}).to_string(),
        ))
        .await
        .unwrap();
    match next(&mut other).await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 1008);
            assert!(f.reason.contains("peer_refused"), "{}", f.reason);
        }
        m => panic!("not closed: {m:?}"),
    }
}

/// The offer Debian's chromium 156 makes for the page's data channel
/// (captured with `createOffer()` on `{ordered: false, maxRetransmits:
/// 0}`; CRLF line ends as sent).
const CHROMIUM_OFFER: &str = include_str!("fixtures/chromium-offer.sdp");

#[test]
fn the_fuzz_body_survives_mutated_offers_and_page_messages() {
    // The real offer parses and is answered (the fuzz body would
    // otherwise test only refusals).
    let offer = str0m::change::SdpOffer::from_sdp_string(CHROMIUM_OFFER).unwrap();
    let mut rtc = str0m::Rtc::builder()
        .set_ice_lite(true)
        .build(std::time::Instant::now());
    assert!(rtc.sdp_api().accept_offer(offer).is_ok());
    let seeds: [&[u8]; 3] = [
        CHROMIUM_OFFER.as_bytes(),
        br#"{"type":"peer","addr":"203.0.113.5:10002"}"#,
        &[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x20, 1, 3, 3],
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for seed in seeds {
        myturn_server::fuzzing::web_media(seed);
        for _ in 0..400 {
            let mut v = seed.to_vec();
            for _ in 0..(next() % 8) {
                let pos = next() as usize % (v.len() + 1);
                match next() % 3 {
                    0 if pos < v.len() => v[pos] = next() as u8,
                    1 => v.insert(pos, next() as u8),
                    _ if pos < v.len() => {
                        v.remove(pos);
                    }
                    _ => {}
                }
            }
            myturn_server::fuzzing::web_media(&v);
        }
    }
}

/// The port of the answer's host candidate.
fn candidate_port(sdp: &str) -> u16 {
    let line = sdp
        .lines()
        .find(|l| l.starts_with("a=candidate:"))
        .unwrap_or_else(|| panic!("no candidate in {sdp}"));
    // a=candidate:FOUNDATION COMPONENT udp PRIORITY IP PORT typ host
    line.split_whitespace().nth(5).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channels_take_their_ports_from_webrtc_ports() {
    let (lo, hi) = (47_110, 47_111);
    let mut cfg = common::config();
    cfg.webrtc_ports = Some(format!("{lo}-{hi}").parse().unwrap());
    let env = common::live(&cfg).await;
    let user = env.register("ported").await;
    let token = common::token(&user);
    let offer = || {
        env.post(
            "/media/webrtc",
            Some(&token),
            json!({ "sdp": CHROMIUM_OFFER }),
        )
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = offer().await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let port = candidate_port(body["sdp"].as_str().unwrap());
        assert!((lo..=hi).contains(&port), "port {port}");
        seen.push(port);
    }
    assert_ne!(seen[0], seen[1], "one port per page");
    // Both ports held (neither channel opened yet): the third page is told.
    let r = offer().await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--webrtc-ports"),
        "{body}"
    );
}
