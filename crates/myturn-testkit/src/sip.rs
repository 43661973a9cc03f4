//! myturn-sip's tokio agent (`SipHandle`) in tests (feature `sip`): one
//! on a fresh loopback port, and waiting for its events by what they
//! are, failing with what came instead.

use std::net::SocketAddr;
use std::time::Duration;

use myturn_sip::driver::{self, SipHandle};
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{CallHandle, Config, EndedBy, Event};

/// How long an expected event may take.
const EVENT_WAIT: Duration = Duration::from_secs(15);

/// One of our agents on a fresh loopback port, registering for 120 s
/// with `proxy`.
pub async fn agent(user: &str, password: &str, proxy: SocketAddr) -> SipHandle {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut cfg = Config::new(local, proxy, user, password);
    cfg.expires = 120;
    driver::start(socket, cfg, Box::new(rand_core::OsRng)).unwrap()
}

/// The next event for which `f` gives a value, within 15 s; panics
/// naming `what` and the events that came instead.
pub async fn expect<T>(h: &mut SipHandle, what: &str, f: impl FnMut(&Event) -> Option<T>) -> T {
    let mut other = Vec::new();
    match h.wait_for(EVENT_WAIT, &mut other, f).await {
        Some(t) => t,
        None => panic!("no {what}; got {other:?}"),
    }
}

/// [`expect`] for the next event `f` accepts.
pub async fn seen(h: &mut SipHandle, what: &str, mut f: impl FnMut(&Event) -> bool) {
    expect(h, what, |e| f(e).then_some(())).await;
}

/// [`expect`] for the end of a call, ended by `by`.
pub async fn ended(h: &mut SipHandle, what: &str, by: EndedBy) {
    seen(
        h,
        what,
        |e| matches!(e, Event::CallEnded { by: b, .. } if *b == by),
    )
    .await;
}

/// [`expect`] for the failure of `call` with the final status `code`
/// (named `what`).
pub async fn failed(h: &mut SipHandle, what: &str, call: CallHandle, code: u16) {
    seen(
        h,
        what,
        |e| matches!(e, Event::CallFailed { call: c, code: k, .. } if *c == call && *k == code),
    )
    .await;
}

/// [`expect`] for an incoming call: its handle.
pub async fn incoming(h: &mut SipHandle) -> CallHandle {
    expect(h, "IncomingCall", |e| match e {
        Event::IncomingCall { call, .. } => Some(*call),
        _ => None,
    })
    .await
}

/// An SDP offer for L16/8000 media at `media`, with `key` as its
/// myturn-key (none when empty).
pub fn offer(media: SocketAddr, key: &str, session_id: u64) -> String {
    let key = (!key.is_empty()).then(|| key.to_owned());
    Sdp::new(media, 8000, key, session_id).render()
}

/// The first incoming call among a sans-IO agent's `events`.
pub fn first_incoming(events: &[Event]) -> Option<CallHandle> {
    events.iter().find_map(|e| match e {
        Event::IncomingCall { call, .. } => Some(*call),
        _ => None,
    })
}
