//! The SDP myTurn offers and answers (RFC 4566, RFC 3264): one audio
//! stream of PCM16 (`L16`, dynamic payload type, 8 or 16 kHz, 20 ms) at the
//! client's media address, optionally Opus beside it (`opus/48000/2`,
//! RFC 7587, with `useinbandfec=1`) so that a PBX routes and passes Opus
//! through, and the media key fingerprint `a=myturn-key:sha-256
//! <base64url>` (see `docs/protocol.md`). SDP only says what the path
//! carries: the codec a call really uses is agreed end to end inside the
//! sealed handshake, since a back-to-back agent rewrites SDP.

use std::net::{IpAddr, SocketAddr};

/// The attribute carrying the media key fingerprint.
pub const KEY_ATTRIBUTE: &str = "myturn-key";
/// The dynamic payload type our offers give Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// One audio stream description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// Where to send media (connection address and m-line port).
    pub media: SocketAddr,
    /// The L16 payload type.
    pub payload_type: u8,
    /// 8000 or 16000.
    pub rate: u32,
    /// The Opus payload type, when the stream lists `opus/48000/2`.
    pub opus: Option<u8>,
    /// The media key fingerprint, base64url (the part after `sha-256 `).
    pub key: Option<String>,
    /// `o=` session id and version.
    pub session: (u64, u64),
}

/// Why an SDP body is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    /// The body is not UTF-8.
    Encoding,
    #[error("no audio m-line")]
    /// No `m=audio` line.
    NoAudio,
    #[error("no usable connection address")]
    /// No `c=` line with an address this agent can send to.
    NoAddress,
    #[error("no L16 payload type at 8 or 16 kHz")]
    /// No L16 payload type at 8 or 16 kHz.
    NoCodec,
}

impl Sdp {
    /// Our offer or answer: L16 at `rate` on `media`, with the media key fingerprint `key`.
    pub fn new(media: SocketAddr, rate: u32, key: Option<String>, session_id: u64) -> Sdp {
        Sdp {
            media,
            payload_type: if rate == 16_000 { 97 } else { 96 },
            rate,
            opus: None,
            key,
            session: (session_id, 1),
        }
    }

    /// The same description, offering Opus beside L16 (as
    /// [`OPUS_PAYLOAD_TYPE`]).
    pub fn with_opus(mut self) -> Sdp {
        self.opus = Some(OPUS_PAYLOAD_TYPE);
        self
    }

    /// Renders the body (CRLF line ends).
    pub fn render(&self) -> String {
        let ip = self.media.ip();
        let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let formats = match self.opus {
            Some(o) => format!("{o} {}", self.payload_type),
            None => self.payload_type.to_string(),
        };
        let mut s = format!(
            "v=0\r\no=myturn {} {} IN {fam} {ip}\r\ns=myTurn\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {formats}\r\n",
            self.session.0,
            self.session.1,
            self.media.port(),
        );
        if let Some(o) = self.opus {
            s.push_str(&format!(
                "a=rtpmap:{o} opus/48000/2\r\na=fmtp:{o} useinbandfec=1;usedtx=1;maxplaybackrate={}\r\n",
                self.rate
            ));
        }
        s.push_str(&format!(
            "a=rtpmap:{} L16/{}\r\na=ptime:20\r\na=sendrecv\r\n",
            self.payload_type, self.rate
        ));
        if let Some(k) = &self.key {
            s.push_str(&format!("a={KEY_ATTRIBUTE}:sha-256 {k}\r\n"));
        }
        s
    }

    /// Reads the first audio stream that offers L16 at 8 or 16 kHz.
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Encoding)?;
        let mut session_addr: Option<IpAddr> = None;
        let mut session = (0, 0);
        let mut media_addr: Option<IpAddr> = None;
        let mut port = None;
        let mut pts: Vec<u8> = Vec::new();
        let mut codec: Option<(u8, u32)> = None;
        let mut opus: Option<u8> = None;
        let mut key = None;
        let mut in_audio = false;
        let mut seen_audio = false;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match kind {
                "o" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if let (Some(id), Some(ver)) = (f.get(1), f.get(2)) {
                        session = (id.parse().unwrap_or(0), ver.parse().unwrap_or(0));
                    }
                }
                "c" => {
                    let addr = value
                        .split_whitespace()
                        .nth(2)
                        .and_then(|a| a.split('/').next())
                        .and_then(|a| a.parse().ok());
                    if in_audio {
                        media_addr = addr;
                    } else if !seen_audio {
                        session_addr = addr;
                    }
                }
                "m" => {
                    if seen_audio {
                        in_audio = false;
                        continue;
                    }
                    let f: Vec<&str> = value.split_whitespace().collect();
                    in_audio = f.first() == Some(&"audio");
                    if in_audio {
                        seen_audio = true;
                        port = f.get(1).and_then(|p| p.parse::<u16>().ok());
                        pts = f.iter().skip(3).filter_map(|p| p.parse().ok()).collect();
                    }
                }
                "a" if in_audio || !seen_audio => {
                    if let Some(rest) = value.strip_prefix("rtpmap:") {
                        let mut it = rest.split_whitespace();
                        let pt = it.next().and_then(|p| p.parse::<u8>().ok());
                        let enc = it.next().unwrap_or_default();
                        let mut e = enc.split('/');
                        let name = e.next().unwrap_or_default();
                        let rate = e.next().and_then(|r| r.parse::<u32>().ok());
                        let channels = e.next().unwrap_or("1");
                        if let (Some(pt), Some(rate)) = (pt, rate) {
                            if in_audio
                                && opus.is_none()
                                && name.eq_ignore_ascii_case("opus")
                                && rate == 48_000
                                && pts.contains(&pt)
                            {
                                opus = Some(pt);
                            }
                            if in_audio
                                && codec.is_none()
                                && name.eq_ignore_ascii_case("L16")
                                && (rate == 8000 || rate == 16_000)
                                && channels == "1"
                                && pts.contains(&pt)
                            {
                                codec = Some((pt, rate));
                            }
                        }
                    } else if let Some(rest) = value.strip_prefix(KEY_ATTRIBUTE) {
                        if let Some(v) = rest.strip_prefix(':') {
                            let mut it = v.split_whitespace();
                            if it.next().is_some_and(|h| h.eq_ignore_ascii_case("sha-256")) {
                                key = it.next().map(str::to_owned);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !seen_audio {
            return Err(SdpError::NoAudio);
        }
        let ip = media_addr.or(session_addr).ok_or(SdpError::NoAddress)?;
        let port = port.ok_or(SdpError::NoAudio)?;
        let (payload_type, rate) = codec.ok_or(SdpError::NoCodec)?;
        Ok(Sdp {
            media: SocketAddr::new(ip, port),
            payload_type,
            rate,
            opus,
            key,
            session,
        })
    }

    /// The answer to `offer` from a side listening on `media`: the same
    /// payload type and rate, our own key; no Opus (see
    /// [`Sdp::answer_with_opus`]).
    pub fn answer(offer: &Sdp, media: SocketAddr, key: Option<String>, session_id: u64) -> Sdp {
        Sdp {
            media,
            payload_type: offer.payload_type,
            rate: offer.rate,
            opus: None,
            key,
            session: (session_id, 1),
        }
    }

    /// [`Sdp::answer`], keeping Opus (under the offer's number) when the
    /// offer lists it.
    pub fn answer_with_opus(
        offer: &Sdp,
        media: SocketAddr,
        key: Option<String>,
        session_id: u64,
    ) -> Sdp {
        let mut a = Sdp::answer(offer, media, key, session_id);
        a.opus = offer.opus;
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_round_trips() {
        let o = Sdp::new(
            "127.0.0.1:40000".parse().unwrap(),
            16_000,
            Some("abc-_".into()),
            7,
        );
        let text = o.render();
        assert!(text.contains("m=audio 40000 RTP/AVP 97\r\n"));
        assert!(text.contains("a=rtpmap:97 L16/16000\r\n"));
        assert!(text.contains("a=myturn-key:sha-256 abc-_\r\n"));
        assert_eq!(Sdp::parse(text.as_bytes()).unwrap(), o);
    }

    #[test]
    fn picks_l16_among_others_and_media_level_address() {
        let body = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                    m=audio 5004 RTP/AVP 0 8 118\r\nc=IN IP4 192.0.2.7\r\na=rtpmap:0 PCMU/8000\r\n\
                    a=rtpmap:118 L16/8000\r\nm=video 5006 RTP/AVP 31\r\n";
        let s = Sdp::parse(body.as_bytes()).unwrap();
        assert_eq!(s.media, "192.0.2.7:5004".parse().unwrap());
        assert_eq!((s.payload_type, s.rate), (118, 8000));
        assert_eq!(s.key, None);
        assert_eq!(s.session, (1, 2));
    }

    #[test]
    fn opus_is_offered_beside_l16_and_read_back_under_any_number() {
        let o = Sdp::new("192.0.2.1:4000".parse().unwrap(), 8000, None, 3).with_opus();
        let text = o.render();
        assert!(text.contains("m=audio 4000 RTP/AVP 111 96\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(text.contains("a=fmtp:111 useinbandfec=1"));
        assert!(text.contains("a=rtpmap:96 L16/8000\r\n"));
        assert_eq!(Sdp::parse(text.as_bytes()).unwrap(), o);
        // A B2BUA renumbers Opus and drops the fmtp: still Opus.
        let b2b = "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 5004 RTP/AVP 107 118\r\n\
                   a=rtpmap:107 OPUS/48000/2\r\na=rtpmap:118 L16/8000\r\n";
        let s = Sdp::parse(b2b.as_bytes()).unwrap();
        assert_eq!((s.opus, s.payload_type), (Some(107), 118));
        let a = Sdp::answer_with_opus(&s, "192.0.2.1:4000".parse().unwrap(), None, 1);
        assert!(a.render().contains("RTP/AVP 107 118\r\n"));
        assert_eq!(Sdp::answer(&s, a.media, None, 1).opus, None);
        // Opus alone is not enough: L16 is the design's codec.
        let only = "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 5004 RTP/AVP 107\r\na=rtpmap:107 opus/48000/2\r\n";
        assert_eq!(Sdp::parse(only.as_bytes()), Err(SdpError::NoCodec));
        // Opus not listed on the m-line is not offered.
        let stray = "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 5004 RTP/AVP 118\r\n\
                     a=rtpmap:107 opus/48000/2\r\na=rtpmap:118 L16/8000\r\n";
        assert_eq!(Sdp::parse(stray.as_bytes()).unwrap().opus, None);
    }

    #[test]
    fn refuses_what_it_cannot_play() {
        let pcmu = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert_eq!(Sdp::parse(pcmu.as_bytes()), Err(SdpError::NoCodec));
        assert_eq!(Sdp::parse(b"v=0\r\n"), Err(SdpError::NoAudio));
        let noc = "v=0\r\nm=audio 5004 RTP/AVP 96\r\na=rtpmap:96 L16/8000\r\n";
        assert_eq!(Sdp::parse(noc.as_bytes()), Err(SdpError::NoAddress));
        assert_eq!(Sdp::parse(&[0xff, 0xfe]), Err(SdpError::Encoding));
    }
}
