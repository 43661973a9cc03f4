//! The client's address behind a reverse proxy (`--trusted-proxy`).
//!
//! Only when the TCP peer is a trusted proxy are `Forwarded` (RFC 7239)
//! or, failing that, `X-Forwarded-For` believed. The list is read from the
//! right (the hop nearest to us) and trusted proxies are skipped, so a
//! client cannot pick its own address by sending the header itself: the
//! first untrusted address is the client. Anything unreadable means the
//! peer itself, never a guess.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::config::{canonical, Cidr};

/// One `for=` value of `Forwarded`: `1.2.3.4`, `"1.2.3.4:5"`,
/// `"[2001:db8::1]:5"`; obfuscated identifiers and `unknown` are `None`.
fn forwarded_node(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    v.rsplit_once(':')?.0.parse().ok()
}

/// The addresses a proxy chain reported, nearest hop last.
fn chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        let mut out = Vec::new();
        for element in forwarded.iter().flat_map(|h| h.split(',')) {
            let for_ = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v)
            })?;
            out.push(forwarded_node(for_)?);
        }
        return Some(out);
    }
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if xff.is_empty() {
        return None;
    }
    xff.iter()
        .flat_map(|h| h.split(','))
        .map(forwarded_node)
        .collect()
}

/// The client's address for a request from `peer` with `headers`.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(hops) = chain(headers) else {
        return peer;
    };
    let mut client = peer;
    for ip in hops.into_iter().rev() {
        client = canonical(ip);
        if !is_trusted(client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.200.1.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        // A client sending the header itself changes nothing.
        assert_eq!(
            client_ip(ip("198.51.100.4"), &h, &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // A forged left part is skipped: the nearest untrusted hop wins.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.5")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // Forwarded wins over X-Forwarded-For, with ports and IPv6.
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.5",
            ),
            ("x-forwarded-for", "192.0.2.1"),
        ]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=\"198.51.100.3:1234\"")]);
        assert_eq!(client_ip(ip("10.1.1.1"), &h, &trusted), ip("198.51.100.3"));
        // Unreadable or obfuscated: the peer, never a guess.
        for v in ["for=unknown", "for=_hidden", "proto=https"] {
            let h = headers(&[("forwarded", v)]);
            assert_eq!(
                client_ip(ip("127.0.0.1"), &h, &trusted),
                ip("127.0.0.1"),
                "{v}"
            );
        }
        let h = headers(&[("x-forwarded-for", "garbage, 203.0.113.9")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        // Nothing trusted: headers ignored.
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"));
    }
}
