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

use std::borrow::Cow;
use std::fmt;

use rsip::headers::UntypedHeader;
use rsip::Header;

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
        match rsip::Method::all()
            .into_iter()
            .find(|m| m.to_string() == token)
        {
            Some(m) => Some(Method::Known(m)),
            None => Some(Method::Extension(token.to_owned())),
        }
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

/// The expansion of a compact header name (RFC 3261 §7.3.3, RFC 3265,
/// RFC 3515, RFC 4028), or `None`.
pub(crate) fn compact_name(c: &str) -> Option<&'static str> {
    let b = c.as_bytes();
    if b.len() != 1 {
        return None;
    }
    Some(match b[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        _ => return None,
    })
}

/// One `Via` value, parsed (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, … upper-cased.
    pub transport: String,
    /// Host as written (IPv6 with brackets).
    pub host: String,
    /// The port, when written.
    pub port: Option<u16>,
    /// Parameters in order; names lower-cased, values as written.
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    /// Parses and validates one Via value (after comma splitting).
    pub fn parse(v: &str) -> Result<Via, ParseError> {
        let bad = |why| ParseError::header("Via", why);
        let (proto, rest) = split_sent_protocol(v).ok_or(bad("sent-protocol"))?;
        let [name, version, transport] = proto;
        if !name.eq_ignore_ascii_case("SIP") {
            return Err(bad("protocol name"));
        }
        if version != "2.0" {
            return Err(ParseError::Version);
        }
        if transport.is_empty() || !transport.bytes().all(is_token) {
            return Err(bad("transport"));
        }
        let rest = rest.trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim_end(), &rest[i..]),
            None => (rest.trim_end(), ""),
        };
        let (host, port) = split_host_port(sent_by).ok_or(bad("sent-by"))?;
        let params = parse_params(params).ok_or(bad("parameters"))?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_owned(),
            port,
            params,
        })
    }

    /// Parameter `name`: `None` when absent, `Some(None)` when it has no value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// True for an RFC 3261 branch: the magic cookie and something after it
    /// (RFC 4475 `badbranch`: the cookie alone is not).
    pub(crate) fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }

    /// `host[:port]` as sent (the sent-by of transaction matching).
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        write_params(f, &self.params)
    }
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[(String, Option<String>)]) -> fmt::Result {
    for (n, v) in params {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

/// `SIP / 2.0 / UDP` with optional LWS around the slashes.
fn split_sent_protocol(v: &str) -> Option<([&str; 3], &str)> {
    let mut rest = v.trim_start();
    let mut out = [""; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.trim_start().strip_prefix('/')?.trim_start();
        }
        let end = rest.find(|c: char| !c.is_ascii() || !is_token(c as u8))?;
        let end = if end == 0 { return None } else { end };
        *slot = &rest[..end];
        rest = &rest[end..];
    }
    Some((out, rest))
}

/// `host[:port]`, IPv6 in brackets. Hosts are hostnames or IP literals.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return None,
        };
        host[1..end].parse::<std::net::Ipv6Addr>().ok()?;
        (host, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty()
        || !host.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

/// `*( SEMI name [ EQUAL value ] )` with LWS allowed around `;` and `=`.
/// An empty name (`;;`) is an error.
fn parse_params(s: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let s = s.trim();
    if s.is_empty() {
        return Some(out);
    }
    let s = s.strip_prefix(';')?;
    for part in split_outside_quotes(s, b';') {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (part.trim(), None),
        };
        if name.is_empty() || !name.bytes().all(is_token) {
            return None;
        }
        if let Some(v) = value {
            let ok = if v.starts_with('"') {
                quoted_len(v) == Some(v.len())
            } else {
                !v.is_empty()
                    && v.bytes()
                        .all(|b| is_token(b) || b"[]:".contains(&b) || b >= 0x80)
            };
            if !ok {
                return None;
            }
        }
        out.push((name.to_ascii_lowercase(), value.map(str::to_owned)));
    }
    Some(out)
}

/// Length of a quoted-string at the start of `s` (with its quotes), or
/// `None` if it is unterminated.
fn quoted_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits on `sep` outside quoted strings and `<…>`.
pub(crate) fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    let (mut quoted, mut angle) = (false, false);
    while i < b.len() {
        let c = b[i];
        if quoted {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                quoted = false;
            }
        } else if c == b'"' {
            quoted = true;
        } else if c == b'<' {
            angle = true;
        } else if c == b'>' {
            angle = false;
        } else if c == sep && !angle {
            out.push(&s[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&s[start.min(s.len())..]);
    out
}

/// A `name-addr` or `addr-spec` with header parameters (From, To, Contact,
/// Route, Record-Route; RFC 3261 §20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name without quotes, if any.
    pub display: Option<String>,
    /// The URI as written between `<>` (or bare).
    pub uri: String,
    /// Header parameters; names lower-cased.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses and validates one value (after comma splitting).
    pub fn parse(header: &str, v: &str) -> Result<NameAddr, ParseError> {
        let bad = |why| ParseError::header(header, why);
        let v = v.trim();
        let (display, uri, rest) = if let Some(lt) = find_unquoted(v, b'<') {
            let disp = v[..lt].trim();
            let display = if disp.is_empty() {
                None
            } else if disp.starts_with('"') {
                if quoted_len(disp) != Some(disp.len()) {
                    return Err(bad("display name quoting"));
                }
                Some(unquote(disp))
            } else {
                // An unquoted display name is tokens separated by LWS.
                if !disp
                    .bytes()
                    .all(|b| is_token(b) || b == b' ' || b == b'\t' || b >= 0x80)
                {
                    return Err(bad("unquoted display name"));
                }
                Some(disp.to_owned())
            };
            let after = &v[lt + 1..];
            let gt = after.find('>').ok_or(bad("unterminated <"))?;
            let uri = &after[..gt];
            if uri.is_empty() || uri.bytes().any(|b| b == b' ' || b == b'\t') {
                return Err(bad("whitespace inside <>"));
            }
            (display, uri.to_owned(), &after[gt + 1..])
        } else {
            if v.contains('"') {
                return Err(bad("quotes without <>"));
            }
            if v == "*" {
                return Ok(NameAddr {
                    display: None,
                    uri: "*".into(),
                    params: Vec::new(),
                });
            }
            let end = v.find(';').unwrap_or(v.len());
            let uri = v[..end].trim();
            // Without <>, the URI can hold neither parameters nor headers.
            if uri.is_empty() || uri.contains(['?', ',', ' ', '\t', '>']) {
                return Err(bad("addr-spec needs <>"));
            }
            (None, uri.to_owned(), &v[end..])
        };
        if !uri.contains(':') {
            return Err(bad("URI without scheme"));
        }
        let params = parse_params(rest).ok_or(bad("parameters"))?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// Parameter `name`'s value (`None` when absent or valueless).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }

    /// The URI's scheme, lower-cased.
    pub fn scheme(&self) -> String {
        self.uri
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

fn find_unquoted(s: &str, c: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            x if x == c && !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn unquote(s: &str) -> String {
    let inner = &s[1..s.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut esc = false;
    for ch in inner.chars() {
        if esc {
            out.push(ch);
            esc = false;
        } else if ch == '\\' {
            esc = true;
        } else {
            out.push(ch);
        }
    }
    out
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
    build(&lexed).map_err(|error| Rejected {
        reply_headers: is_request.then(|| reply_headers(&lexed.headers)),
        error,
    })
}

enum RawStart<'a> {
    Request {
        method: &'a str,
        uri: &'a str,
    },
    Response {
        code: u16,
        reason: &'a str,
    },
    /// A malformed request line: the request is still answerable (400, or
    /// 505 for the version) when its headers can be read.
    BadRequestLine(ParseError),
}

struct Lexed<'a> {
    start: RawStart<'a>,
    start_line: &'a str,
    /// (canonical name, unfolded value)
    headers: Vec<(Cow<'static, str>, String)>,
    body: &'a [u8],
    /// The first malformed header line, if any.
    bad: Option<ParseError>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn lex(data: &[u8]) -> Result<Lexed<'_>, ParseError> {
    let hend = find(data, b"\r\n\r\n").ok_or(ParseError::Headers("no end of headers"))?;
    let head = std::str::from_utf8(&data[..hend])
        .map_err(|_| ParseError::Headers("headers are not UTF-8"))?;
    let body = &data[hend + 4..];
    let (start_line, rest) = head.split_once("\r\n").unwrap_or((head, ""));
    let start = match lex_start(start_line) {
        Ok(s) => s,
        Err(e) if !start_line.starts_with("SIP/") => RawStart::BadRequestLine(e),
        Err(e) => return Err(e),
    };
    let mut headers: Vec<(Cow<'static, str>, String)> = Vec::with_capacity(16);
    let mut bad = None;
    for line in rest.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers
                .last_mut()
                .ok_or(ParseError::Headers("continuation before any header"))?;
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        // A malformed line does not stop the lexer: the request can still
        // be answered with 400 from the headers that are readable.
        let Some((name, value)) = line.split_once(':') else {
            bad.get_or_insert(ParseError::header(
                line.get(..40).unwrap_or(line),
                "no colon",
            ));
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token) {
            bad.get_or_insert(ParseError::header(name, "name is not a token"));
            continue;
        }
        let name = compact_name(name)
            .map(Cow::Borrowed)
            .unwrap_or_else(|| canonical(name));
        headers.push((name, value.trim().to_owned()));
    }
    Ok(Lexed {
        start,
        start_line,
        headers,
        body,
        bad,
    })
}

/// Well-known names in their usual spelling; others as written.
fn canonical(name: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
        "Route",
        "Record-Route",
        "Expires",
        "Min-Expires",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "Require",
        "Proxy-Require",
        "Supported",
        "Accept",
        "Date",
        "Allow",
        "Unsupported",
        "User-Agent",
        "Server",
        "Retry-After",
        "Warning",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| Cow::Borrowed(*k))
        .unwrap_or_else(|| Cow::Owned(name.to_owned()))
}

fn lex_start(line: &str) -> Result<RawStart<'_>, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (ver, rest) = rest
            .split_once(' ')
            .ok_or(ParseError::StartLine("status line"))?;
        if ver != "2.0" {
            return Err(ParseError::Version);
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StartLine("status code"));
        }
        let code: u16 = code
            .parse()
            .map_err(|_| ParseError::StartLine("status code"))?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StartLine("status code out of range"));
        }
        return Ok(RawStart::Response { code, reason });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two SPs.
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine("request line"));
    };
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(ParseError::StartLine("method"));
    }
    let Some(v) = version.get(..4).filter(|p| p.eq_ignore_ascii_case("SIP/")) else {
        return Err(ParseError::StartLine("version"));
    };
    let _ = v;
    if &version[4..] != "2.0" {
        return Err(ParseError::Version);
    }
    if uri.is_empty() || uri.starts_with('<') || uri.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(ParseError::StartLine("Request-URI"));
    }
    let (scheme, opaque) = uri
        .split_once(':')
        .ok_or(ParseError::StartLine("Request-URI without scheme"))?;
    if scheme.is_empty()
        || !scheme.as_bytes()[0].is_ascii_alphabetic()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        || opaque.is_empty()
    {
        return Err(ParseError::StartLine("Request-URI scheme"));
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        check_sip_uri_host(opaque)?;
    }
    Ok(RawStart::Request { method, uri })
}

/// The host part of a SIP Request-URI (after the last `@`): an IPv6
/// literal must be in brackets (RFC 5118 `ipv6-bad`), and no `?headers`
/// may follow it (RFC 4475 `escruri`). `?` and `;` inside the user part
/// are legal (`intmeth`, `semiuri`).
fn check_sip_uri_host(opaque: &str) -> Result<(), ParseError> {
    let host = opaque.rsplit_once('@').map_or(opaque, |(_, h)| h);
    let hostport = if let Some(rest) = host.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or(ParseError::StartLine("unterminated IPv6 reference"))?;
        &rest[end + 1..]
    } else {
        host
    };
    let hostport_end = hostport.find([';', '?']).unwrap_or(hostport.len());
    if hostport[..hostport_end].matches(':').count() > 1 {
        return Err(ParseError::StartLine("IPv6 address without brackets"));
    }
    if hostport.contains('?') {
        return Err(ParseError::StartLine("headers in Request-URI"));
    }
    Ok(())
}

fn reply_headers(headers: &[(Cow<'static, str>, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| matches!(n.as_ref(), "Via" | "From" | "To" | "Call-ID" | "CSeq"))
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

fn parse_number(name: &str, v: &str, max: u64) -> Result<u64, ParseError> {
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::header(name, "not a number"));
    }
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ParseError::header(name, "number out of range")),
    }
}

/// The headers that must appear at most once (RFC 3261 §7.3.1).
const SINGLE: &[&str] = &[
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
    "Min-Expires",
];

/// What `rsip` is given for a Request-URI it cannot parse.
const URI_STAND_IN: &str = "sip:unparsed.invalid";

/// Headers whose comma-separated values are split into one header each.
const MULTI: &[&str] = &["Via", "Contact", "Route", "Record-Route"];

fn build(lexed: &Lexed<'_>) -> Result<Message, ParseError> {
    if let Some(e) = &lexed.bad {
        return Err(e.clone());
    }
    let start = match lexed.start {
        RawStart::BadRequestLine(ref e) => return Err(e.clone()),
        RawStart::Request { method, uri } => StartLine::Request {
            method: Method::parse(method).ok_or(ParseError::StartLine("method"))?,
            uri: uri.to_owned(),
        },
        RawStart::Response { code, reason } => StartLine::Response {
            code,
            reason: reason.to_owned(),
        },
    };
    for name in SINGLE {
        if lexed.headers.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(ParseError::Headers(match *name {
                "Content-Length" => "Content-Length repeated",
                "From" | "To" => "From or To repeated",
                "Call-ID" => "Call-ID repeated",
                "CSeq" => "CSeq repeated",
                _ => "a single-valued header is repeated",
            }));
        }
    }
    for (n, _) in [
        ("Via", ()),
        ("From", ()),
        ("To", ()),
        ("Call-ID", ()),
        ("CSeq", ()),
    ] {
        if !lexed.headers.iter().any(|(h, _)| h == n) {
            return Err(ParseError::Headers(match n {
                "Via" => "missing Via",
                "From" => "missing From",
                "To" => "missing To",
                "Call-ID" => "missing Call-ID",
                _ => "missing CSeq",
            }));
        }
    }

    // The canonical rendering rsip is handed, written as we validate. An
    // extension method gets a stand-in that rsip accepts; `start` keeps
    // the real one.
    let mut text = String::with_capacity(lexed.start_line.len() + 48 * lexed.headers.len() + 64);
    match &start {
        StartLine::Request { method, uri } => {
            match method {
                Method::Known(m) => text.push_str(&m.to_string()),
                Method::Extension(_) => text.push_str("OPTIONS"),
            }
            text.push(' ');
            text.push_str(uri);
            text.push_str(" SIP/2.0\r\n");
        }
        StartLine::Response { code, reason } => {
            text.push_str(&format!("SIP/2.0 {code} {reason}\r\n"));
        }
    }
    let mut cseq = None;
    let mut content_length = None;
    let (mut vias, mut from, mut to, mut contacts) = (Vec::new(), None, None, Vec::new());
    for (name, value) in &lexed.headers {
        match name.as_ref() {
            "Via" => {
                for v in split_outside_quotes(value, b',') {
                    if v.trim().is_empty() {
                        return Err(ParseError::header("Via", "empty value"));
                    }
                    let via = Via::parse(v)?;
                    put(&mut text, name, &via.to_string());
                    vias.push(via);
                }
            }
            n if MULTI.contains(&n) => {
                for v in split_outside_quotes(value, b',') {
                    let na = NameAddr::parse(n, v)?;
                    put(&mut text, name, v.trim());
                    if n == "Contact" {
                        contacts.push(na);
                    }
                }
            }
            "From" | "To" => {
                let na = NameAddr::parse(name, value)?;
                put(&mut text, name, value);
                if name == "From" {
                    from = Some(na);
                } else {
                    to = Some(na);
                }
            }
            "CSeq" => {
                let mut it = value.split_whitespace();
                let (Some(num), Some(m), None) = (it.next(), it.next(), it.next()) else {
                    return Err(ParseError::header("CSeq", "want number and method"));
                };
                let num = parse_number("CSeq", num, MAX_CSEQ)? as u32;
                let m = Method::parse(m).ok_or(ParseError::header("CSeq", "method"))?;
                match &m {
                    Method::Extension(_) => put(&mut text, name, &format!("{num} OPTIONS")),
                    Method::Known(k) => put(&mut text, name, &format!("{num} {k}")),
                }
                cseq = Some((num, m));
            }
            "Content-Length" => {
                content_length = Some(parse_number(name, value, u32::MAX as u64)? as usize);
                // Re-written below to the framed length.
            }
            "Max-Forwards" => {
                let n = parse_number(name, value, 255)?;
                put(&mut text, name, &n.to_string());
            }
            "Expires" | "Min-Expires" => {
                parse_number(name, value, u32::MAX as u64)?;
                put(&mut text, name, value);
            }
            "Date" => {
                // rfc1123-date ends in "GMT" (RFC 3261 §20.17).
                if !value.ends_with(" GMT") {
                    return Err(ParseError::header("Date", "not GMT"));
                }
                put(&mut text, name, value);
            }
            "Call-ID" => {
                if value.is_empty() || value.contains([' ', '\t']) {
                    return Err(ParseError::header("Call-ID", "empty or spaced"));
                }
                put(&mut text, name, value);
            }
            _ => put(&mut text, name, value),
        }
    }
    let Some(cseq) = cseq else {
        return Err(ParseError::Headers("missing CSeq"));
    };
    if let StartLine::Request { method, .. } = &start {
        if *method != cseq.1 {
            return Err(ParseError::Headers(
                "CSeq method does not match the request",
            ));
        }
    }
    let body = match content_length {
        Some(n) if n > lexed.body.len() => {
            return Err(ParseError::ContentLength("longer than the datagram"))
        }
        Some(n) => &lexed.body[..n],
        // Over UDP the body is the rest of the datagram (RFC 3261 §18.3).
        None => lexed.body,
    };
    put(&mut text, "Content-Length", &body.len().to_string());
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    let sip = match rsip::SipMessage::try_from(bytes.as_slice()) {
        Ok(sip) => sip,
        // rsip 0.4 cannot read every valid Request-URI (unknown schemes,
        // `;` in the user part, IPv6 references): it then gets a stand-in,
        // and `start` keeps the real one.
        Err(e) => match &start {
            StartLine::Request { uri, .. } => {
                let line_end = find(&bytes, b"\r\n").unwrap_or(0);
                let line = String::from_utf8_lossy(&bytes[..line_end]);
                let fixed = line.replacen(uri.as_str(), URI_STAND_IN, 1);
                let mut retry = fixed.into_bytes();
                retry.extend_from_slice(&bytes[line_end..]);
                rsip::SipMessage::try_from(retry.as_slice())
                    .map_err(|_| ParseError::Rsip(e.to_string()))?
            }
            StartLine::Response { .. } => return Err(ParseError::Rsip(e.to_string())),
        },
    };
    Ok(Message {
        start,
        sip,
        cseq,
        vias,
        from,
        to,
        contacts,
    })
}

fn put(text: &mut String, name: &str, value: &str) {
    text.push_str(name);
    text.push_str(": ");
    text.push_str(value);
    text.push_str("\r\n");
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
