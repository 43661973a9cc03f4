//! rtpengine's ng control protocol, as Kamailio's `rtpengine` module
//! speaks it: one UDP datagram per message, `COOKIE SP BENCODED-DICT`, the
//! reply carrying the same cookie
//! (<https://rtpengine.readthedocs.io/en/latest/ng_control_protocol.html>).
//!
//! Only bytes in, bytes out: [`Ben`] encodes and decodes bencode (never
//! panicking, with a depth limit), [`offer`], [`answer`], [`delete`] and
//! [`query`] build the commands the PBX sends, and [`Reply::parse`] reads
//! rtpengine's answers.

use std::net::IpAddr;

/// Deepest nesting accepted when decoding (rtpengine's replies nest four
/// levels; a hostile datagram must not recurse the stack away).
const MAX_DEPTH: usize = 32;

/// A bencoded value. Dictionaries keep the order they came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ben {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Ben>),
    Dict(Vec<(Vec<u8>, Ben)>),
}

impl Ben {
    /// A byte string from text.
    pub fn str(s: &str) -> Ben {
        Ben::Bytes(s.as_bytes().to_vec())
    }

    /// A list of byte strings.
    pub fn strs(items: &[&str]) -> Ben {
        Ben::List(items.iter().map(|s| Ben::str(s)).collect())
    }

    /// A dictionary, keys sorted as bencode requires.
    pub fn dict(mut entries: Vec<(&str, Ben)>) -> Ben {
        entries.sort_by(|a, b| a.0.cmp(b.0));
        Ben::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ben::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Ben::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Ben::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Ben::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Ben::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes exactly one value filling `b`.
    pub fn decode(b: &[u8]) -> Option<Ben> {
        let mut i = 0;
        let v = Self::at(b, &mut i, 0)?;
        (i == b.len()).then_some(v)
    }

    fn at(b: &[u8], i: &mut usize, depth: usize) -> Option<Ben> {
        if depth > MAX_DEPTH {
            return None;
        }
        match *b.get(*i)? {
            b'i' => {
                let rest = b.get(*i + 1..)?;
                let end = rest.iter().position(|&c| c == b'e')?;
                let n = std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()?;
                *i += end + 2;
                Some(Ben::Int(n))
            }
            b'l' => {
                *i += 1;
                let mut v = Vec::new();
                while *b.get(*i)? != b'e' {
                    v.push(Self::at(b, i, depth + 1)?);
                }
                *i += 1;
                Some(Ben::List(v))
            }
            b'd' => {
                *i += 1;
                let mut v = Vec::new();
                while *b.get(*i)? != b'e' {
                    let Ben::Bytes(k) = Self::at(b, i, depth + 1)? else {
                        return None;
                    };
                    v.push((k, Self::at(b, i, depth + 1)?));
                }
                *i += 1;
                Some(Ben::Dict(v))
            }
            b'0'..=b'9' => {
                let rest = b.get(*i..)?;
                let colon = rest.iter().position(|&c| c == b':')?;
                let n: usize = std::str::from_utf8(rest.get(..colon)?).ok()?.parse().ok()?;
                let start = colon.checked_add(1)?;
                let s = rest.get(start..start.checked_add(n)?)?.to_vec();
                *i += start + n;
                Some(Ben::Bytes(s))
            }
            _ => None,
        }
    }

    /// A dictionary's value for `key`.
    pub fn get(&self, key: &str) -> Option<&Ben> {
        match self {
            Ben::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Ben::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Ben::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        self.bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
}

/// One command on the wire: `cookie SP dict`.
pub fn frame(cookie: &str, dict: &Ben) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(cookie.as_bytes());
    out.push(b' ');
    dict.encode(&mut out);
    out
}

/// The flags every offer and answer carries, as Kamailio's
/// `rtpengine_manage("replace-origin replace-session-connection
/// SIP-source-address strict-source ICE=remove")` would send them: the
/// media address is the SIP source's IP (clients behind NATs write private
/// ones), rtpengine latches on it and then drops other sources.
fn anchoring(
    command: &str,
    call_id: &str,
    from_tag: &str,
    sdp: &[u8],
    sip_source: IpAddr,
) -> Vec<(&'static str, Ben)> {
    let fam = if sip_source.is_ipv4() { "IP4" } else { "IP6" };
    vec![
        ("command", Ben::str(command)),
        ("call-id", Ben::str(call_id)),
        ("from-tag", Ben::str(from_tag)),
        ("sdp", Ben::Bytes(sdp.to_vec())),
        ("flags", Ben::strs(&["SIP-source-address", "strict-source"])),
        ("replace", Ben::strs(&["origin", "session-connection"])),
        ("ICE", Ben::str("remove")),
        (
            "received-from",
            Ben::List(vec![Ben::str(fam), Ben::str(&sip_source.to_string())]),
        ),
    ]
}

/// `offer`: the SDP of a request (an INVITE or re-INVITE) whose From tag
/// is `from_tag`, sent from `sip_source`.
pub fn offer(call_id: &str, from_tag: &str, sdp: &[u8], sip_source: IpAddr) -> Ben {
    Ben::dict(anchoring("offer", call_id, from_tag, sdp, sip_source))
}

/// `answer`: the SDP of a response; `from_tag` and `to_tag` are the
/// response's From and To tags.
pub fn answer(call_id: &str, from_tag: &str, to_tag: &str, sdp: &[u8], sip_source: IpAddr) -> Ben {
    let mut d = anchoring("answer", call_id, from_tag, sdp, sip_source);
    d.push(("to-tag", Ben::str(to_tag)));
    Ben::dict(d)
}

/// `delete`: the call is over.
pub fn delete(call_id: &str, from_tag: &str) -> Ben {
    Ben::dict(vec![
        ("command", Ben::str("delete")),
        ("call-id", Ben::str(call_id)),
        ("from-tag", Ben::str(from_tag)),
    ])
}

/// `query`: the call's counters.
pub fn query(call_id: &str) -> Ben {
    Ben::dict(vec![
        ("command", Ben::str("query")),
        ("call-id", Ben::str(call_id)),
    ])
}

/// Packet counters from a `query` or `delete` reply (`totals.RTP`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
}

/// rtpengine's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub cookie: String,
    /// `result` was `ok` (or `pong`).
    pub ok: bool,
    /// `error-reason` when not ok.
    pub error: Option<String>,
    /// The rewritten SDP (offer, answer).
    pub sdp: Option<Vec<u8>>,
    pub totals: Option<Totals>,
}

impl Reply {
    /// Reads a reply datagram; `None` for anything that is not one.
    pub fn parse(datagram: &[u8]) -> Option<Reply> {
        let sp = datagram.iter().position(|&c| c == b' ')?;
        let cookie = std::str::from_utf8(datagram.get(..sp)?).ok()?.to_owned();
        let dict = Ben::decode(datagram.get(sp + 1..)?)?;
        let result = dict.get("result")?.text()?;
        let totals = dict.get("totals").and_then(|t| t.get("RTP")).map(|r| {
            let n = |k: &str| r.get(k).and_then(Ben::int).map_or(0, |v| v.max(0) as u64);
            Totals {
                packets: n("packets"),
                bytes: n("bytes"),
                errors: n("errors"),
            }
        });
        Some(Reply {
            cookie,
            ok: result == "ok" || result == "pong",
            error: dict
                .get("error-reason")
                .and_then(Ben::text)
                .map(str::to_owned),
            sdp: dict.get("sdp").and_then(Ben::bytes).map(<[u8]>::to_vec),
            totals,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_offer_is_bencoded_in_key_order() {
        let o = offer("c1", "t1", b"v=0\r\n", "198.51.100.2".parse().unwrap());
        let wire = frame("k1", &o);
        let text = String::from_utf8(wire).unwrap();
        assert_eq!(
            text,
            "k1 d3:ICE6:remove7:call-id2:c17:command5:offer5:flagsl18:SIP-source-address\
13:strict-sourcee8:from-tag2:t113:received-froml3:IP412:198.51.100.2e7:replacel6:origin\
18:session-connectione3:sdp5:v=0\r\ne"
        );
        let back = Ben::decode(text.split_once(' ').unwrap().1.as_bytes()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn replies_are_read() {
        let r = Reply::parse(b"k1 d3:sdp5:v=0\r\n6:result2:oke").unwrap();
        assert!(r.ok);
        assert_eq!(r.cookie, "k1");
        assert_eq!(r.sdp.as_deref(), Some(&b"v=0\r\n"[..]));
        let e = Reply::parse(b"k2 d6:result5:error12:error-reason13:Unknown call-e").unwrap();
        assert!(!e.ok);
        assert_eq!(e.error.as_deref(), Some("Unknown call-"));
        let q = Reply::parse(
            b"k3 d6:result2:ok6:totalsd3:RTPd7:packetsi12e5:bytesi1200e6:errorsi0eeee",
        )
        .unwrap();
        assert_eq!(
            q.totals,
            Some(Totals {
                packets: 12,
                bytes: 1200,
                errors: 0
            })
        );
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        for bad in [
            &b""[..],
            b"k1",
            b"k1 ",
            b"k1 d",
            b"k1 d6:result",
            b"k1 i12",
            b"k1 99999999999999999999:x",
            b"k1 18446744073709551615:x",
            b"k1 d6:resulti1ee",
            b"k1 le",
        ] {
            assert_eq!(
                Reply::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("k {}{}", "l".repeat(10_000), "e".repeat(10_000));
        assert_eq!(Reply::parse(deep.as_bytes()), None);
    }
}
