//! A client of rtpengine's ng control protocol (`cookie SP bencoded-dict`
//! over UDP, <https://rtpengine.readthedocs.io/en/latest/ng_control_protocol.html>),
//! decoding with myturn-pbx's own `ng::Ben`: enough to see that rtpengine
//! is up and what it relayed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_pbx::ng::Ben;

/// A bencoded string.
fn bstr(s: &str) -> String {
    format!("{}:{s}", s.len())
}

/// A list's items (none for anything else).
fn items(b: &Ben) -> &[Ben] {
    match b {
        Ben::List(l) => l,
        _ => &[],
    }
}

/// A dictionary's entries (none for anything else).
fn entries(b: &Ben) -> &[(Vec<u8>, Ben)] {
    match b {
        Ben::Dict(d) => d,
        _ => &[],
    }
}

/// An ng control client.
#[derive(Debug)]
pub struct Ng {
    socket: tokio::net::UdpSocket,
    to: SocketAddr,
    sent: u32,
}

impl Ng {
    /// A client of the ng port `port` on loopback.
    pub async fn new(port: u16) -> Ng {
        Ng {
            socket: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            to: SocketAddr::from(([127, 0, 0, 1], port)),
            sent: 0,
        }
    }

    /// Sends one command (a bencoded dict) and returns the reply, or None
    /// without one within `wait`.
    pub async fn command(&mut self, dict: &str, wait: Duration) -> Option<Ben> {
        self.sent += 1;
        let cookie = format!("myturn{}x{}", std::process::id(), self.sent);
        self.socket
            .send_to(format!("{cookie} {dict}").as_bytes(), self.to)
            .await
            .unwrap();
        let mut buf = vec![0u8; 65_536];
        let end = tokio::time::Instant::now() + wait;
        loop {
            let n = match tokio::time::timeout_at(end, self.socket.recv(&mut buf)).await {
                Ok(Ok(n)) => n,
                // Nobody listening yet (ICMP port unreachable) or no reply.
                Ok(Err(_)) | Err(_) => return None,
            };
            let reply = &buf[..n];
            if let Some(body) = reply
                .strip_prefix(cookie.as_bytes())
                .and_then(|r| r.strip_prefix(b" "))
            {
                return Ben::decode(body);
            }
            // A late reply to an earlier cookie: keep waiting.
        }
    }

    /// Waits until rtpengine answers `ping` with `pong`.
    pub async fn wait_ready(&mut self, rtpengine: &mut myturn_testkit::Peer) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            rtpengine.assert_running();
            let r = self
                .command("d7:command4:pinge", Duration::from_millis(300))
                .await;
            if r.as_ref().and_then(|r| r.get("result")).and_then(Ben::text) == Some("pong") {
                return;
            }
            assert!(
                Instant::now() < end,
                "rtpengine does not answer ng pings:\n{}",
                rtpengine.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `dict` and returns the reply, which must say `result: ok`.
    pub async fn ok(&mut self, dict: &str) -> Ben {
        let r = self
            .command(dict, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no ng reply to {dict}"));
        assert_eq!(
            r.get("result").and_then(Ben::text),
            Some("ok"),
            "ng {dict}: {r:?}"
        );
        r
    }

    /// The Call-IDs rtpengine holds.
    pub async fn list(&mut self) -> Vec<String> {
        let r = self.ok("d7:command4:liste").await;
        r.get("calls")
            .map(|c| {
                items(c)
                    .iter()
                    .filter_map(Ben::text)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Per call party (SIP tag): the RTP packets rtpengine received from
    /// it (and relayed to the other party).
    pub async fn rtp_received_by_tag(&mut self, call_id: &str) -> Vec<(String, i64)> {
        let r = self
            .ok(&format!("d7:call-id{}7:command5:querye", bstr(call_id)))
            .await;
        let tags = r.get("tags").expect("query has tags");
        entries(tags)
            .iter()
            .map(|(tag, t)| {
                let packets = t
                    .get("medias")
                    .map(items)
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|m| m.get("streams").map(items).unwrap_or_default())
                    .filter(|s| {
                        s.get("flags")
                            .map(items)
                            .unwrap_or_default()
                            .iter()
                            .any(|f| f.text() == Some("RTP"))
                    })
                    .filter_map(|s| s.get("stats")?.get("packets")?.int())
                    .sum();
                (String::from_utf8_lossy(tag).into_owned(), packets)
            })
            .collect()
    }
}
