//! The lexer: a datagram's start line and header lines, read as text
//! before anything is validated. Folded lines are joined, compact and
//! oddly cased names get their canonical spelling, and a malformed line
//! is remembered rather than fatal, so that the request can still be
//! answered with 400 from the headers that could be read.

use std::borrow::Cow;

use super::{is_token, ParseError};

/// The expansion of a compact header name (RFC 3261 §7.3.3, RFC 3265,
/// RFC 3515, RFC 4028), or `None`.
fn compact_name(c: &str) -> Option<&'static str> {
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

pub(super) enum RawStart<'a> {
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

pub(super) struct Lexed<'a> {
    pub(super) start: RawStart<'a>,
    /// (canonical name, unfolded value)
    pub(super) headers: Vec<(Cow<'static, str>, String)>,
    pub(super) body: &'a [u8],
    /// The first malformed header line, if any.
    pub(super) bad: Option<ParseError>,
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn lex(data: &[u8]) -> Result<Lexed<'_>, ParseError> {
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

pub(super) fn reply_headers(headers: &[(Cow<'static, str>, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| matches!(n.as_ref(), "Via" | "From" | "To" | "Call-ID" | "CSeq"))
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}
