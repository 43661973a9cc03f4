//! The normaliser: checks lexed header lines (RFC 3261 §7.3, §8.1.1,
//! §18.3, §20) and builds `rsip`'s message from them directly, one header
//! per value, the body framed by `Content-Length` (what `rsip` would read
//! from the canonical text, without its tokenizer: it formats the rest of
//! the input into an error string on every branch it backs out of, which
//! was a tenth of the registrar's CPU); builds the [`Message`] from
//! `rsip`'s view and the values parsed on the way.

use super::header::{split_outside_quotes, NameAddr, Via};
use super::lex::{Lexed, RawStart};
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

    // rsip's view, built as we validate: one header per value, in the
    // order of the datagram. An extension method gets a stand-in that rsip
    // accepts; `start` keeps the real one.
    let mut text: Vec<rsip::Header> = Vec::with_capacity(lexed.headers.len() + 2);
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
    let headers: rsip::Headers = text.into();
    let sip = match &start {
        StartLine::Request { method, uri } => rsip::SipMessage::Request(rsip::Request {
            method: match method {
                Method::Known(m) => *m,
                Method::Extension(_) => rsip::Method::Options,
            },
            // rsip 0.4 cannot read every valid Request-URI (unknown
            // schemes, `;` in the user part, IPv6 references): it then
            // gets a stand-in, and `start` keeps the real one.
            uri: rsip::Uri::try_from(uri.as_str())
                .or_else(|_| rsip::Uri::try_from(URI_STAND_IN))
                .map_err(|e| ParseError::Rsip(e.to_string()))?,
            version: rsip::Version::V2,
            headers,
            body: body.to_vec(),
        }),
        StartLine::Response { code, reason } => rsip::SipMessage::Response(rsip::Response {
            // As rsip reads a status line: a known code keeps its own
            // reason, another the one given.
            status_code: match rsip::StatusCode::from(*code) {
                rsip::StatusCode::Other(c, _) => rsip::StatusCode::Other(c, reason.clone()),
                known => known,
            },
            version: rsip::Version::V2,
            headers,
            body: body.to_vec(),
        }),
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

/// One header as rsip's tokenizer reads `name: value` (spaces after the
/// colon skipped).
fn put(headers: &mut Vec<rsip::Header>, name: &str, value: &str) {
    use rsip::headers::header::tokenizer::Tokenizer;
    let value = value.trim_start_matches([' ', '\t']);
    let h = TryInto::<rsip::Header>::try_into(Tokenizer {
        name: name.as_bytes(),
        value: value.as_bytes(),
    })
    .unwrap_or_else(|_| rsip::Header::Other(name.into(), value.into()));
    headers.push(h);
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Method};

    /// rsip's view, built directly, is what rsip's own tokenizer reads back
    /// from its rendering: for the torture corpus and everyday messages.
    #[test]
    fn the_direct_build_is_what_rsip_reads() {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");
        let mut checked = 0;
        for dir in ["rfc4475", "rfc5118"] {
            for e in std::fs::read_dir(format!("{base}/{dir}")).unwrap() {
                let data = std::fs::read(e.unwrap().path()).unwrap();
                let Ok(m) = parse(&data) else { continue };
                // rsip renders bodies lossily: compare without them.
                let mut ours = m.sip.clone();
                match &mut ours {
                    rsip::SipMessage::Request(r) => r.body.clear(),
                    rsip::SipMessage::Response(r) => r.body.clear(),
                }
                let text = ours.to_string();
                let again = rsip::SipMessage::try_from(text.as_bytes()).unwrap();
                assert_eq!(again, ours, "{text}");
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked}");
    }

    #[test]
    fn methods_are_rsips_spelled_exactly() {
        for m in rsip::Method::all() {
            assert_eq!(Method::parse(&m.to_string()), Some(Method::Known(m)));
        }
        assert_eq!(
            Method::parse("register"),
            Some(Method::Extension("register".into()))
        );
        assert_eq!(Method::parse("FOO"), Some(Method::Extension("FOO".into())));
        assert_eq!(Method::parse(""), None);
    }
}
