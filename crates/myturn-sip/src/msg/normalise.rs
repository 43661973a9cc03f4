//! The normaliser: checks lexed header lines (RFC 3261 §7.3, §8.1.1,
//! §18.3, §20) and renders the canonical text `rsip` is given, one header
//! per value, the body framed by `Content-Length`; builds the
//! [`Message`] from `rsip`'s view and the values parsed on the way.

use super::header::{split_outside_quotes, NameAddr, Via};
use super::lex::{find, Lexed, RawStart};
use super::{Message, Method, ParseError, StartLine, MAX_CSEQ};

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

pub(super) fn normalise(lexed: &Lexed<'_>) -> Result<Message, ParseError> {
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
