//! Building messages with rsip, and the RFC 3261 rules shared by every
//! element (user agent and proxy): response addressing, transaction keys,
//! forwarding edits.

use std::net::SocketAddr;

use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use crate::msg::{self, Message, Method, NameAddr, ParseError, Rejected};

/// `n` (at most 32) random alphanumerics for tags, branches, Call-IDs and
/// cnonces, from one RNG call (an OS-backed RNG costs a syscall per call).
pub fn token(rng: &mut dyn rand_core::RngCore, n: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut raw = [0u8; 32];
    let raw = &mut raw[..n.min(32)];
    rng.fill_bytes(raw);
    raw.iter()
        .map(|b| A[(*b as usize) % A.len()] as char)
        .collect()
}

/// A Request-URI rsip cannot represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request URI `{0}`")]
pub struct BadUri(pub String);

/// Serialises a request through rsip, adding `Content-Length`.
pub fn request(
    method: rsip::Method,
    uri: &str,
    mut headers: Vec<Header>,
    body: &[u8],
) -> Result<Vec<u8>, BadUri> {
    let uri = rsip::Uri::try_from(uri).map_err(|_| BadUri(uri.to_owned()))?;
    headers.push(h::ContentLength::new(body.len().to_string()).into());
    let req = rsip::Request {
        method,
        uri,
        version: rsip::Version::V2,
        headers: headers.into(),
        body: body.to_vec(),
    };
    Ok(req.to_string().into_bytes())
}

/// The Via, From, To, Call-ID and CSeq values of `m`, in order: what a
/// response copies.
#[doc(hidden)] // for tests that forge responses; use [`Reply`]
pub fn raw_of(m: &Message) -> Vec<(String, String)> {
    let mut raw = Vec::new();
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in m.headers(name) {
            raw.push((name.to_owned(), v.to_owned()));
        }
    }
    raw
}

/// Builds a response copying Via, From, To (adding `to_tag` when the
/// request had none and the code is above 100), Call-ID and CSeq from
/// `raw`, then `extra`, then `Content-Length` and `body`.
#[doc(hidden)] // for tests that forge responses; use [`Reply`]
pub fn response_raw(
    code: u16,
    reason: &str,
    raw: &[(String, String)],
    to_tag: Option<&str>,
    extra: Vec<Header>,
    body: &[u8],
) -> Vec<u8> {
    let mut headers: Vec<Header> = Vec::with_capacity(raw.len() + extra.len() + 1);
    for (name, value) in raw {
        let hv: Header = match name.as_str() {
            "Via" => h::Via::new(value.clone()).into(),
            "From" => h::From::new(value.clone()).into(),
            "To" => {
                let has_tag = NameAddr::parse("To", value).is_ok_and(|t| t.tag().is_some());
                match to_tag {
                    Some(tag) if !has_tag && code > 100 => {
                        h::To::new(format!("{value};tag={tag}")).into()
                    }
                    _ => h::To::new(value.clone()).into(),
                }
            }
            "Call-ID" => h::CallId::new(value.clone()).into(),
            "CSeq" => h::CSeq::new(value.clone()).into(),
            _ => continue,
        };
        headers.push(hv);
    }
    headers.extend(extra);
    headers.push(h::ContentLength::new(body.len().to_string()).into());
    let resp = rsip::Response {
        status_code: rsip::StatusCode::Other(code, reason.to_owned()),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: body.to_vec(),
    };
    resp.to_string().into_bytes()
}

/// A response being built: status, the To tag to add, extra headers and
/// body. Serialised against the request it answers, by the user agent
/// ([`Reply::for_request`]) and the PBX ([`Reply::for_source`]) alike.
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    code: u16,
    reason: std::borrow::Cow<'a, str>,
    to_tag: Option<&'a str>,
    extra: Vec<Header>,
    body: &'a [u8],
}

impl<'a> Reply<'a> {
    /// `code reason`, no To tag, no extra header, no body.
    pub fn new(code: u16, reason: impl Into<std::borrow::Cow<'a, str>>) -> Self {
        Reply {
            code,
            reason: reason.into(),
            to_tag: None,
            extra: Vec::new(),
            body: b"",
        }
    }

    /// The To tag to add (when the request has none and the code is above
    /// 100).
    pub fn tag(mut self, tag: &'a str) -> Self {
        self.to_tag = Some(tag);
        self
    }

    /// Adds a header after the copied ones.
    pub fn header(mut self, header: impl Into<Header>) -> Self {
        self.extra.push(header.into());
        self
    }

    /// Adds headers after the copied ones.
    pub fn headers(mut self, headers: impl IntoIterator<Item = Header>) -> Self {
        self.extra.extend(headers);
        self
    }

    /// The body (its Content-Type goes in with [`Reply::header`]).
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// The status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The response to `req`, its Via, From, To, Call-ID and CSeq copied
    /// as received (what a user agent sends).
    pub fn for_request(self, req: &Message) -> Vec<u8> {
        self.for_raw(&raw_of(req))
    }

    /// The response to `req` from `src`, its top Via completed with
    /// `received` and `rport` (what a proxy or registrar sends).
    pub fn for_source(self, req: &Message, src: SocketAddr) -> Vec<u8> {
        response(
            req,
            src,
            self.code,
            &self.reason,
            self.to_tag,
            self.extra,
            self.body,
        )
    }

    /// The response copying the header values `raw` (see [`raw_of`]).
    pub fn for_raw(self, raw: &[(String, String)]) -> Vec<u8> {
        response_raw(
            self.code,
            &self.reason,
            raw,
            self.to_tag,
            self.extra,
            self.body,
        )
    }
}

/// A response to `req`, with the top Via completed with `received` and
/// `rport` for the source `src` (RFC 3261 §18.2.1, RFC 3581 §4).
///
/// Written straight into the datagram (the registrar's every answer goes
/// through here): the same bytes [`response_raw`] renders through rsip,
/// without copying each header into a `String` and an rsip header first.
fn response(
    req: &Message,
    src: SocketAddr,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: Vec<Header>,
    body: &[u8],
) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(512 + body.len());
    let _ = write!(out, "SIP/2.0 {code} {reason}\r\n");
    let mut line = |name: &str, value: &str, tail: Option<&str>| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        if let Some(t) = tail {
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    };
    for (i, v) in req.headers("Via").enumerate() {
        match i {
            0 => line("Via", &via_with_source(v, src), None),
            _ => line("Via", v, None),
        }
    }
    for v in req.headers("From") {
        line("From", v, None);
    }
    for v in req.headers("To") {
        let has_tag = NameAddr::parse("To", v).is_ok_and(|t| t.tag().is_some());
        let tail = to_tag.filter(|_| !has_tag && code > 100);
        line("To", v, tail);
    }
    for v in req.headers("Call-ID") {
        line("Call-ID", v, None);
    }
    for v in req.headers("CSeq") {
        line("CSeq", v, None);
    }
    for h in extra {
        let _ = write!(out, "{h}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    // rsip renders a body lossily; the answers built here carry none or
    // text, where the two agree.
    out.extend_from_slice(String::from_utf8_lossy(body).as_bytes());
    out
}

/// `via` with `received` (when the source IP differs from sent-by) and the
/// `rport` value filled in (when the sender asked for it).
pub fn via_with_source(via: &str, src: SocketAddr) -> String {
    let Ok(mut v) = crate::msg::Via::parse(via) else {
        return via.to_owned();
    };
    let ip = src.ip().to_string();
    let host = v.host.trim_matches(['[', ']']).to_owned();
    if let Some(p) = v.params.iter_mut().find(|(n, _)| n == "rport") {
        p.1 = Some(src.port().to_string());
    }
    v.params.retain(|(n, _)| n != "received");
    if host != ip || v.param("rport").is_some() {
        v.params.push(("received".into(), Some(ip)));
    }
    v.to_string()
}

/// Where responses to `req` from `src` go (RFC 3261 §18.2.2 with
/// RFC 3581: the source IP, and the source port with `rport`).
pub fn response_dest(req: &Message, src: SocketAddr) -> SocketAddr {
    match req.top_via() {
        Some(v) if v.param("rport").is_none() => SocketAddr::new(src.ip(), v.port.unwrap_or(5060)),
        _ => src,
    }
}

/// Where a response goes next, read from its (new) top Via: `received`
/// and `rport` when present, else sent-by (IP literals only).
pub fn via_dest(via: &crate::msg::Via) -> Option<SocketAddr> {
    let ip = via
        .param("received")
        .flatten()
        .unwrap_or(&via.host)
        .trim_matches(['[', ']'])
        .parse()
        .ok()?;
    let port = via
        .param("rport")
        .flatten()
        .and_then(|p| p.parse().ok())
        .or(via.port)
        .unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

/// The server transaction a request belongs to: branch + sent-by + method
/// (ACK and CANCEL map to their INVITE's), or RFC 2543 matching (§17.2.3)
/// when the branch lacks the magic cookie.
pub fn server_key(m: &Message) -> String {
    let via = m.top_via();
    let method = match m.method() {
        Method::Known(rsip::Method::Ack) | Method::Known(rsip::Method::Cancel) => {
            "INVITE".to_owned()
        }
        other => other.to_string(),
    };
    match via {
        Some(v) if v.has_rfc3261_branch() => {
            format!(
                "{}|{}|{method}",
                v.branch().unwrap_or_default(),
                v.sent_by()
            )
        }
        v => format!(
            "2543|{}|{}|{}|{}|{}|{method}",
            m.request_uri(),
            m.from()
                .and_then(|f| f.tag().map(str::to_owned))
                .unwrap_or_default(),
            m.call_id(),
            m.cseq(),
            v.map(|v| v.to_string()).unwrap_or_default()
        ),
    }
}

/// The answer to a datagram that did not parse, when one is due: a
/// request whose headers could be read (and that is not an ACK) gets 400
/// (505 for the version, 513 when too large) with `tag()` as To tag, as
/// RFC 4475 §3.1.2 asks. `None`: drop it (keep-alives, responses, noise).
pub(crate) fn answer_malformed(
    data: &[u8],
    rejected: &Rejected,
    tag: impl FnOnce() -> String,
) -> Option<Vec<u8>> {
    let raw = rejected.reply_headers.as_ref()?;
    if !raw.iter().any(|(n, _)| n == "Via") || data.starts_with(b"ACK ") {
        return None;
    }
    let error = &rejected.error;
    let reason = match error {
        ParseError::Version => "Version Not Supported".to_owned(),
        ParseError::TooLarge { .. } => "Message Too Large".to_owned(),
        _ => format!("Bad Request ({error})"),
    };
    Some(response_raw(
        error.status(),
        &reason,
        raw,
        Some(&tag()),
        Vec::new(),
        b"",
    ))
}

/// The address of a SIP URI whose host is an IP literal (port 5060 when
/// none is given); `None` for host names (no DNS here).
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let uri = uri.trim().trim_start_matches('<');
    let rest = uri.split_once(':')?.1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = host.find([';', '?', '>']).unwrap_or(host.len());
    let (host, port) = msg::split_host_port(&host[..end])?;
    let ip: std::net::IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
    Some(SocketAddr::new(ip, port.unwrap_or(5060)))
}

/// The user part of a SIP URI (`""` when it has none).
pub fn uri_user(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    match rest.rsplit_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or_default(),
        None => "",
    }
}

/// Re-serialises `m` with its real method and `ruri`, `prepend` headers
/// first, and every header passed through `edit` (which may drop it, keep
/// it, or change it). `Content-Length` is rewritten to the body's length.
pub fn forward(
    m: &Message,
    ruri: &str,
    prepend: &[Header],
    mut edit: impl FnMut(&Header) -> Option<Header>,
) -> Vec<u8> {
    let mut out = String::with_capacity(512 + m.body().len());
    match m.status() {
        None => out.push_str(&format!("{} {ruri} SIP/2.0\r\n", m.method())),
        Some(code) => out.push_str(&format!("SIP/2.0 {code} {}\r\n", m.reason())),
    }
    for hdr in prepend {
        out.push_str(&hdr.to_string());
        out.push_str("\r\n");
    }
    let headers = match &m.sip {
        rsip::SipMessage::Request(r) => &r.headers,
        rsip::SipMessage::Response(r) => &r.headers,
    };
    for hdr in headers.iter() {
        if matches!(hdr, Header::ContentLength(_)) {
            continue;
        }
        // CSeq carries the real method (rsip saw a stand-in for extensions).
        if let Header::CSeq(_) = hdr {
            out.push_str(&format!("CSeq: {} {}\r\n", m.cseq(), m.cseq_method()));
            continue;
        }
        if let Some(e) = edit(hdr) {
            out.push_str(&e.to_string());
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", m.body().len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(m.body());
    bytes
}

#[cfg(test)]
mod tests {
    /// The direct writer gives the bytes rsip renders, for every request of
    /// the torture corpus and each kind of answer.
    #[test]
    fn answers_are_byte_for_byte_what_rsip_renders() {
        use super::*;
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");
        let src: SocketAddr = "192.0.2.7:5999".parse().unwrap();
        let mut n = 0;
        for dir in ["rfc4475", "rfc5118"] {
            for e in std::fs::read_dir(format!("{base}/{dir}")).unwrap() {
                let data = std::fs::read(e.unwrap().path()).unwrap();
                let Ok(m) = msg::parse(&data) else { continue };
                if !m.is_request() {
                    continue;
                }
                for (code, tag) in [(100, None), (401, Some("t1")), (200, Some("t2"))] {
                    let extra: Vec<Header> = vec![
                        h::WwwAuthenticate::new("Digest realm=\"r\", nonce=\"n\"").into(),
                        h::Contact::new("<sip:a@192.0.2.1>;expires=60").into(),
                    ];
                    let mut raw = raw_of(&m);
                    if let Some((_, top)) = raw.iter_mut().find(|(n, _)| n == "Via") {
                        *top = via_with_source(top, src);
                    }
                    let old = response_raw(code, "Why", &raw, tag, extra.clone(), b"");
                    let mut reply = Reply::new(code, "Why").headers(extra);
                    if let Some(t) = tag {
                        reply = reply.tag(t);
                    }
                    let new = reply.for_source(&m, src);
                    assert_eq!(String::from_utf8_lossy(&new), String::from_utf8_lossy(&old));
                    n += 1;
                }
            }
        }
        assert!(n >= 60, "{n}");
    }

    use super::*;

    #[test]
    fn via_display_round_trips() {
        let v =
            crate::msg::Via::parse("SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKabc").unwrap();
        assert_eq!(crate::msg::Via::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn uri_helpers() {
        assert_eq!(
            uri_addr("sip:111000@127.0.0.1:5070;ob"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            uri_addr("<sip:127.0.0.1;lr>"),
            Some("127.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            uri_addr("sip:[::1]:5062"),
            Some("[::1]:5062".parse().unwrap())
        );
        assert_eq!(uri_addr("sip:pbx.example.com"), None);
        assert_eq!(uri_user("sip:111001@127.0.0.1"), "111001");
        assert_eq!(uri_user("sip:alice;x=y@h"), "alice");
        assert_eq!(uri_user("sip:127.0.0.1"), "");
    }

    #[test]
    fn received_and_rport_are_filled_in() {
        let src: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let v = via_with_source("SIP/2.0/UDP 10.0.0.2:5060;rport;branch=z9hG4bKa", src);
        assert_eq!(
            v,
            "SIP/2.0/UDP 10.0.0.2:5060;rport=40000;branch=z9hG4bKa;received=203.0.113.9"
        );
        let parsed = crate::msg::Via::parse(&v).unwrap();
        assert_eq!(via_dest(&parsed), Some(src));
        // No rport asked, same host: untouched.
        let same = via_with_source("SIP/2.0/UDP 203.0.113.9:5062;branch=z9hG4bKb", src);
        assert_eq!(same, "SIP/2.0/UDP 203.0.113.9:5062;branch=z9hG4bKb");
        assert_eq!(
            via_dest(&crate::msg::Via::parse(&same).unwrap()),
            Some("203.0.113.9:5062".parse().unwrap())
        );
    }

    #[test]
    fn forward_keeps_an_extension_method_and_the_body() {
        let raw = b"FOO sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKx\r\n\
From: <sip:b@192.0.2.2>;tag=1\r\nTo: <sip:a@192.0.2.1>\r\nCall-ID: c\r\nCSeq: 3 FOO\r\n\
Max-Forwards: 70\r\nContent-Length: 2\r\n\r\nhi";
        let m = crate::msg::parse(raw).unwrap();
        let via: Header = h::Via::new("SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKp").into();
        let out = forward(&m, "sip:a@192.0.2.7", &[via], |hdr| match hdr {
            Header::MaxForwards(_) => Some(h::MaxForwards::new("69").into()),
            other => Some(other.clone()),
        });
        let back = crate::msg::parse(&out).unwrap();
        assert_eq!(back.method().to_string(), "FOO");
        assert_eq!(back.cseq_method().to_string(), "FOO");
        assert_eq!(back.request_uri(), "sip:a@192.0.2.7");
        assert_eq!(back.vias().len(), 2);
        assert_eq!(back.header("Max-Forwards"), Some("69"));
        assert_eq!(back.body(), b"hi");
    }
}
