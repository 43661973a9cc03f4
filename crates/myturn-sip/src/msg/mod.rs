//! SIP messages: framing, normalisation and validation around `rsip` 0.4.
//!
//! `rsip` models messages and serialises them well, but its parser has gaps
//! that a real network exposes. [`parse`] closes them before `rsip` sees the
//! bytes, and checks what `rsip` does not:
//!
//! * **Framing.** Leading CRLFs (keep-alives) are skipped; the body is framed
//!   by `Content-Length` (a longer datagram is cut, a shorter one is an error,
//!   RFC 3261 §18.3); a negative, huge or repeated `Content-Length` is refused.
//! * **Header lines.** Folded lines (LWS continuation) are joined, `Name :`
//!   with space before the colon is accepted, and the compact forms
//!   (`i v f t m l c k s e o r u`) are expanded to their full names, which
//!   `rsip` would otherwise keep as unknown headers.
//! * **Several values on one line.** `Via`, `Contact`, `Route` and
//!   `Record-Route` lines holding comma-separated values are split into one
//!   header per value (quote- and angle-bracket-aware).
//! * **Unknown methods.** `rsip` refuses any method outside its list; the
//!   method is kept here as [`Method::Extension`] and `rsip` is handed a
//!   stand-in, so such a request can still be answered (501).
//! * **Strictness `rsip` lacks.** One space between start-line elements, no
//!   `<>` or escaped headers in the Request-URI, version `SIP/2.0`, a 3-digit
//!   status code, balanced quotes, no LWS inside `<>`, no empty parameters,
//!   CSeq numbers below 2³¹ whose method matches the request's, a GMT
//!   `Date`, scalar limits on `Max-Forwards`/`Expires`.
//!
//! Digest `algorithm=SHA-256` (which `rsip` only spells `sha256`) is handled
//! by [`crate::digest`], which parses challenges and credentials itself.
//!
//! This file holds the message types, [`parse`] and the [`Message`]
//! accessors; its parts are the lexer (`lex`), the normaliser that
//! validates and renders for `rsip` (`normalise`), and the grammar of
//! header values, [`Via`] and [`NameAddr`] (`header`).

mod header;
mod lex;
mod normalise;

use std::fmt;

use rsip::headers::UntypedHeader;
use rsip::Header;

pub(crate) use self::header::{split_host_port, split_outside_quotes};
pub use self::header::{NameAddr, Via};
use self::lex::{lex, reply_headers, RawStart};
use self::normalise::normalise;

/// Largest datagram accepted by default. Generous for UDP (RFC 3261 keeps
/// requests under the path MTU), small enough to bound work per packet.
pub const DEFAULT_MAX_SIZE: usize = 16 * 1024;

/// Largest CSeq number (RFC 3261 §8.1.1.5: less than 2³¹).
pub const MAX_CSEQ: u64 = (1 << 31) - 1;

/// Why a datagram is not a usable SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Bigger than the configured limit.
    #[error("message of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The datagram's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Only CRLFs: a keep-alive, to be ignored.
    #[error("keep-alive")]
    KeepAlive,
    /// The start line is malformed.
    #[error("bad start line: {0}")]
    StartLine(&'static str),
    /// A SIP version other than 2.0 (answered with 505).
    #[error("unsupported SIP version")]
    Version,
    /// A header line or value is malformed.
    #[error("bad {name} header: {why}")]
    Header {
        /// The header's name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A required header is missing or repeated.
    #[error("{0}")]
    Headers(&'static str),
    /// The body does not match `Content-Length`.
    #[error("bad Content-Length: {0}")]
    ContentLength(&'static str),
    /// `rsip` refused what the normaliser passed on.
    #[error("unparsable: {0}")]
    Rsip(String),
}

impl ParseError {
    /// The status code a UAS answers a request with when it fails this way.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Version => 505,
            ParseError::TooLarge { .. } => 513,
            _ => 400,
        }
    }

    fn header(name: &str, why: &'static str) -> Self {
        ParseError::Header {
            name: name.to_owned(),
            why,
        }
    }
}

/// A request method, including ones `rsip` does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// One of `rsip`'s methods.
    Known(rsip::Method),
    /// Any other `token` (answered with 501 by a UA).
    Extension(String),
}

impl Method {
    /// `INVITE`.
    pub const INVITE: Method = Method::Known(rsip::Method::Invite);
    /// `ACK`.
    pub const ACK: Method = Method::Known(rsip::Method::Ack);
    /// `BYE`.
    pub const BYE: Method = Method::Known(rsip::Method::Bye);
    /// `CANCEL`.
    pub const CANCEL: Method = Method::Known(rsip::Method::Cancel);
    /// `REGISTER`.
    pub const REGISTER: Method = Method::Known(rsip::Method::Register);
    /// `OPTIONS`.
    pub const OPTIONS: Method = Method::Known(rsip::Method::Options);
    /// `UPDATE`.
    pub const UPDATE: Method = Method::Known(rsip::Method::Update);

    /// Parses a method token; anything that is a valid token but not one of
    /// `rsip`'s methods is an extension.
    pub fn parse(token: &str) -> Option<Method> {
        if token.is_empty() || !token.bytes().all(is_token) {
            return None;
        }
        // rsip matches case-insensitively; SIP methods are case-sensitive.
        // Compared as rsip spells them, without rendering each one.
        use rsip::Method as M;
        let known = match token {
            "ACK" => M::Ack,
            "BYE" => M::Bye,
            "CANCEL" => M::Cancel,
            "INFO" => M::Info,
            "INVITE" => M::Invite,
            "MESSAGE" => M::Message,
            "NOTIFY" => M::Notify,
            "OPTIONS" => M::Options,
            "PRACK" => M::PRack,
            "PUBLISH" => M::Publish,
            "REFER" => M::Refer,
            "REGISTER" => M::Register,
            "SUBSCRIBE" => M::Subscribe,
            "UPDATE" => M::Update,
            _ => return Some(Method::Extension(token.to_owned())),
        };
        Some(Method::Known(known))
    }

    /// Whether this is `rsip`'s method `m`.
    pub fn is(&self, m: rsip::Method) -> bool {
        *self == Method::Known(m)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Known(m) => write!(f, "{m}"),
            Method::Extension(s) => f.write_str(s),
        }
    }
}

/// RFC 3261 `token` characters.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// The start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD Request-URI SIP/2.0`.
    Request {
        /// The method.
        method: Method,
        /// The Request-URI as written.
        uri: String,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
}

/// A parsed, validated SIP message. `sip` is `rsip`'s view of it; the
/// accessors here read the normalised headers.
#[derive(Debug, Clone)]
pub struct Message {
    /// The start line.
    pub start: StartLine,
    /// `rsip`'s message. For an extension method its request line carries a
    /// stand-in method; use [`Message::method`].
    pub sip: rsip::SipMessage,
    cseq: (u32, Method),
    /// Parsed once while validating; the accessors hand these out.
    vias: Vec<Via>,
    from: Option<NameAddr>,
    to: Option<NameAddr>,
    contacts: Vec<NameAddr>,
}

/// What a UAS needs to answer a request that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Why it failed.
    pub error: ParseError,
    /// The raw header lines to copy into the error response (Via, From,
    /// To, Call-ID, CSeq), present when the datagram was a request whose
    /// headers could be read.
    pub reply_headers: Option<Vec<(String, String)>>,
}

/// Parses one datagram with the default size limit.
pub fn parse(data: &[u8]) -> Result<Message, Rejected> {
    parse_with_limit(data, DEFAULT_MAX_SIZE)
}

/// Parses one datagram. Never panics, whatever the bytes.
pub fn parse_with_limit(data: &[u8], limit: usize) -> Result<Message, Rejected> {
    let plain = |error| Rejected {
        error,
        reply_headers: None,
    };
    if data.len() > limit {
        return Err(plain(ParseError::TooLarge {
            size: data.len(),
            limit,
        }));
    }
    let mut data = data;
    while let Some(rest) = data.strip_prefix(b"\r\n") {
        data = rest;
    }
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(plain(ParseError::KeepAlive));
    }
    let lexed = lex(data).map_err(plain)?;
    let is_request = !matches!(lexed.start, RawStart::Response { .. });
    normalise(&lexed).map_err(|error| Rejected {
        reply_headers: is_request.then(|| reply_headers(&lexed.headers)),
        error,
    })
}

impl Message {
    /// Whether it is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request's method, or for a response the CSeq method.
    pub fn method(&self) -> &Method {
        match &self.start {
            StartLine::Request { method, .. } => method,
            StartLine::Response { .. } => &self.cseq.1,
        }
    }

    /// The response's status code (`None` for requests).
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase (`""` for a request).
    pub fn reason(&self) -> &str {
        match &self.start {
            StartLine::Response { reason, .. } => reason,
            StartLine::Request { .. } => "",
        }
    }

    /// The Request-URI as written (`""` for responses).
    pub fn request_uri(&self) -> &str {
        match &self.start {
            StartLine::Request { uri, .. } => uri,
            StartLine::Response { .. } => "",
        }
    }

    /// The CSeq number.
    pub fn cseq(&self) -> u32 {
        self.cseq.0
    }

    /// The CSeq method.
    pub fn cseq_method(&self) -> &Method {
        &self.cseq.1
    }

    /// Every value of the header `name` (full, canonical spelling), in order.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let headers = match &self.sip {
            rsip::SipMessage::Request(r) => &r.headers,
            rsip::SipMessage::Response(r) => &r.headers,
        };
        headers.iter().filter_map(move |h| header_value(h, name))
    }

    /// The first value of header `name` (any case, compact forms too).
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers(name).next()
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_default()
    }

    /// The topmost Via (validated by [`parse`]).
    pub fn top_via(&self) -> Option<&Via> {
        self.vias.first()
    }

    /// Every Via, top first.
    pub fn vias(&self) -> &[Via] {
        &self.vias
    }

    /// The From header.
    pub fn from(&self) -> Option<&NameAddr> {
        self.from.as_ref()
    }

    /// The To header.
    pub fn to(&self) -> Option<&NameAddr> {
        self.to.as_ref()
    }

    /// Every value of an address header (Contact is parsed once, at
    /// parse time; others on demand).
    pub fn name_addrs(&self, name: &'static str) -> Vec<NameAddr> {
        if name == "Contact" {
            return self.contacts.clone();
        }
        self.headers(name)
            .filter_map(|v| NameAddr::parse(name, v).ok())
            .collect()
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.sip.body()
    }

    /// `Expires` as seconds, if present and numeric.
    pub fn expires(&self) -> Option<u32> {
        self.header("Expires").and_then(|v| v.trim().parse().ok())
    }
}

/// The value of `h` if its name is `name` (canonical spelling).
fn header_value<'a>(h: &'a Header, name: &str) -> Option<&'a str> {
    let (n, v): (&str, &str) = match h {
        Header::Via(x) => ("Via", x.value()),
        Header::From(x) => ("From", x.value()),
        Header::To(x) => ("To", x.value()),
        Header::CallId(x) => ("Call-ID", x.value()),
        Header::CSeq(x) => ("CSeq", x.value()),
        Header::Contact(x) => ("Contact", x.value()),
        Header::MaxForwards(x) => ("Max-Forwards", x.value()),
        Header::ContentLength(x) => ("Content-Length", x.value()),
        Header::ContentType(x) => ("Content-Type", x.value()),
        Header::Route(x) => ("Route", x.value()),
        Header::RecordRoute(x) => ("Record-Route", x.value()),
        Header::Expires(x) => ("Expires", x.value()),
        Header::MinExpires(x) => ("Min-Expires", x.value()),
        Header::WwwAuthenticate(x) => ("WWW-Authenticate", x.value()),
        Header::ProxyAuthenticate(x) => ("Proxy-Authenticate", x.value()),
        Header::Authorization(x) => ("Authorization", x.value()),
        Header::ProxyAuthorization(x) => ("Proxy-Authorization", x.value()),
        Header::Require(x) => ("Require", x.value()),
        Header::ProxyRequire(x) => ("Proxy-Require", x.value()),
        Header::Supported(x) => ("Supported", x.value()),
        Header::Accept(x) => ("Accept", x.value()),
        Header::Allow(x) => ("Allow", x.value()),
        Header::Date(x) => ("Date", x.value()),
        Header::UserAgent(x) => ("User-Agent", x.value()),
        Header::Server(x) => ("Server", x.value()),
        Header::Unsupported(x) => ("Unsupported", x.value()),
        Header::Subject(x) => ("Subject", x.value()),
        Header::Event(x) => ("Event", x.value()),
        Header::Warning(x) => ("Warning", x.value()),
        Header::RetryAfter(x) => ("Retry-After", x.value()),
        Header::ContentEncoding(x) => ("Content-Encoding", x.value()),
        Header::ContentDisposition(x) => ("Content-Disposition", x.value()),
        Header::AuthenticationInfo(x) => ("Authentication-Info", x.value()),
        Header::Timestamp(x) => ("Timestamp", x.value()),
        Header::Other(n, v) => {
            return n.eq_ignore_ascii_case(name).then_some(v.as_str());
        }
        _ => return None,
    };
    (n == name).then_some(v)
}
