//! The grammar of header values the normaliser checks and the
//! accessors hand out: `Via` (RFC 3261 §20.42), `name-addr` / `addr-spec`
//! with header parameters (§20.10), `host[:port]`, parameters, and the
//! quoting and comma splitting they share.

use std::fmt;

use super::{is_token, ParseError};

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
