//! The proxy's message surgery, bytes in and bytes out (RFC 3261 §16.6,
//! §16.7, §17.1.1.3): a request forwarded with our Via on top (and our
//! Record-Route, for a dialog-creating INVITE), a response passed up
//! without our Via, and the hop-by-hop CANCEL and ACK the proxy sends
//! itself; and a message with its body (the SDP media anchoring
//! rewrote) replaced.

use std::net::SocketAddr;

use myturn_sip::build::{self, uri_addr};
use myturn_sip::msg::Message;
use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

/// Our Via, with `branch`, as the PBX at `addr` sends it.
pub(crate) fn our_via(addr: SocketAddr, branch: &str) -> String {
    format!("SIP/2.0/UDP {addr};branch={branch}")
}

/// Whether a Route (or Record-Route) value names the PBX at `addr`.
pub(crate) fn is_own_route(addr: SocketAddr, route: &str) -> bool {
    uri_addr(route) == Some(addr)
}

/// `req` (from `src`) as the PBX at `addr` forwards it to `ruri`: our Via
/// on top, the caller's Via completed, Max-Forwards decremented, our
/// credentials and our own Route removed, and `record_route` (ours) added
/// when given.
pub(crate) fn forward_request(
    req: &Message,
    src: SocketAddr,
    addr: SocketAddr,
    ruri: &str,
    our_via: &str,
    record_route: Option<&str>,
) -> Vec<u8> {
    let mut prepend: Vec<Header> = vec![h::Via::new(our_via.to_owned()).into()];
    if let Some(rr) = record_route {
        prepend.push(h::RecordRoute::new(rr.to_owned()).into());
    }
    let mut first_via = true;
    let mut route_stripped = false;
    build::forward(req, ruri, &prepend, |hdr| match hdr {
        Header::Via(v) if first_via => {
            first_via = false;
            Some(h::Via::new(build::via_with_source(v.value(), src)).into())
        }
        Header::MaxForwards(m) => {
            let n = m
                .value()
                .trim()
                .parse::<u32>()
                .unwrap_or(70)
                .saturating_sub(1);
            Some(h::MaxForwards::new(n.to_string()).into())
        }
        Header::ProxyAuthorization(_) => None,
        Header::Route(r) if !route_stripped && is_own_route(addr, r.value()) => {
            route_stripped = true;
            None
        }
        other => Some(other.clone()),
    })
}

/// A branch for a request forwarded statelessly, derived from its own top
/// Via, so that retransmissions are forwarded identically (§16.11).
pub(crate) fn stateless_branch(req: &Message) -> String {
    let incoming = req
        .top_via()
        .map(|v| format!("{}{}", v.branch().unwrap_or_default(), v.sent_by()))
        .unwrap_or_default();
    format!("z9hG4bKsl{}", short_hash(&incoming))
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .take(9)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The response without its top Via (ours), to pass upstream.
pub(crate) fn strip_top_via(resp: &Message) -> Vec<u8> {
    let mut first = true;
    build::forward(resp, "", &[], |hdr| match hdr {
        Header::Via(_) if first => {
            first = false;
            None
        }
        other => Some(other.clone()),
    })
}

/// The CANCEL for the INVITE `invite` we forwarded to `ruri` with
/// `our_via` (§9.1).
pub(crate) fn cancel(invite: &Message, ruri: &str, our_via: &str) -> Option<Vec<u8>> {
    let from = invite.header("From").unwrap_or_default();
    let to = invite.header("To").unwrap_or_default();
    hop_request(rsip::Method::Cancel, invite, from, to, ruri, our_via)
}

/// The ACK a proxy sends for a non-2xx final it received (§17.1.1.3).
pub(crate) fn hop_ack(resp: &Message, ruri: &str, our_via: &str) -> Option<Vec<u8>> {
    let (from, to) = (resp.header("From")?, resp.header("To")?);
    hop_request(rsip::Method::Ack, resp, from, to, ruri, our_via)
}

/// A request of the proxy's own to the hop below, in the INVITE
/// transaction `m` belongs to (the INVITE, or a response to it).
fn hop_request(
    method: rsip::Method,
    m: &Message,
    from: &str,
    to: &str,
    ruri: &str,
    our_via: &str,
) -> Option<Vec<u8>> {
    let headers: Vec<Header> = vec![
        h::Via::new(our_via.to_owned()).into(),
        h::From::new(from.to_owned()).into(),
        h::To::new(to.to_owned()).into(),
        h::CallId::new(m.call_id().to_owned()).into(),
        h::CSeq::new(format!("{} {method}", m.cseq())).into(),
        h::MaxForwards::new("70").into(),
    ];
    build::request(method, ruri, headers, b"").ok()
}

/// The body of a message we built (`forward` ends its head with
/// `Content-Length`), and the offset where it starts.
pub(crate) fn body_of(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((bytes.get(at..)?, at))
}

/// `bytes` with its body replaced and its (last) `Content-Length` header
/// fixed.
pub(crate) fn with_body(bytes: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let (_, at) = body_of(bytes)?;
    let head = bytes.get(..at - 4)?;
    let cl = head
        .windows(17)
        .rposition(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length:"))?;
    let line_end = head
        .get(cl + 2..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(head.len(), |p| cl + 2 + p);
    let mut out = Vec::with_capacity(bytes.len() + body.len());
    out.extend_from_slice(head.get(..cl)?);
    out.extend_from_slice(format!("\r\nContent-Length: {}", body.len()).as_bytes());
    out.extend_from_slice(head.get(line_end..)?);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn body_is_replaced_and_its_length_fixed() {
        let m = b"SIP/2.0 200 OK\r\nVia: x\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\nabc";
        let out = with_body(m, b"hello").unwrap();
        assert_eq!(
            out,
            b"SIP/2.0 200 OK\r\nVia: x\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nhello"
        );
        assert_eq!(body_of(&out).unwrap().0, b"hello");
        assert_eq!(with_body(b"no head end", b"x"), None);
        assert_eq!(with_body(b"A\r\nB: 1\r\n\r\n", b"x"), None);
    }
}
