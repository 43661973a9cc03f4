//! rtpengine (Debian's `rtpengine-daemon`): started in userspace with
//! its media on an interface the test names, and driven over its ng
//! control protocol (`cookie SP bencoded-dict` over UDP,
//! <https://rtpengine.readthedocs.io/en/latest/ng_control_protocol.html>).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::bencode::{bstr, Ben};
use crate::ports::{free_media_range, free_udp_port};
use crate::process::Peer;

/// rtpengine in userspace, media on `interface`, ng control on a free
/// loopback port: the daemon, its ng port and its media ports.
pub fn start(dir: &Path, interface: IpAddr) -> (Peer, u16, RangeInclusive<u16>) {
    let ng = free_udp_port();
    let (min, max) = free_media_range(interface, 40);
    let mut cmd = Command::new("rtpengine");
    cmd.args([
        // Not the packaged /etc/rtpengine/rtpengine.conf.
        "--config-file=none",
        "--foreground",
        "--log-stderr",
        "--no-log-timestamps",
        "--log-level=6",
        // Userspace forwarding only (no kernel module; and no
        // --no-fallback, which would demand it).
        "--table=-1",
        // One forwarding thread: with several, two can read the same
        // socket, and a descheduled one (a loaded CI machine) forwards
        // its packet late. Seen: the first audio frame after the next
        // three; the client writes --output-wav in arrival order, so a
        // byte-exact comparison would fail.
        "--num-threads=1",
    ])
    .arg(format!("--interface={interface}"))
    .arg(format!("--listen-ng=127.0.0.1:{ng}"))
    .arg(format!("--port-min={min}"))
    .arg(format!("--port-max={max}"));
    (Peer::spawn("rtpengine", &mut cmd, dir), ng, min..=max)
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
                return Ben::parse(body);
            }
            // A late reply to an earlier cookie: keep waiting.
        }
    }

    /// Waits until rtpengine answers `ping` with `pong`.
    pub async fn wait_ready(&mut self, rtpengine: &mut Peer) {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            rtpengine.assert_running();
            let r = self
                .command("d7:command4:pinge", Duration::from_millis(300))
                .await;
            if r.as_ref()
                .and_then(|r| r.get("result"))
                .and_then(Ben::text)
                .as_deref()
                == Some("pong")
            {
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
            r.get("result").and_then(Ben::text).as_deref(),
            Some("ok"),
            "ng {dict}: {r:?}"
        );
        r
    }

    /// The Call-IDs rtpengine holds.
    pub async fn list(&mut self) -> Vec<String> {
        let r = self.ok("d7:command4:liste").await;
        r.get("calls")
            .map(|c| c.items().iter().filter_map(Ben::text).collect())
            .unwrap_or_default()
    }

    /// Per call party (SIP tag): the RTP packets rtpengine received from
    /// it (and relayed to the other party).
    pub async fn rtp_received_by_tag(&mut self, call_id: &str) -> Vec<(String, i64)> {
        let r = self
            .ok(&format!("d7:call-id{}7:command5:querye", bstr(call_id)))
            .await;
        let tags = r.get("tags").expect("query has tags");
        tags.entries()
            .iter()
            .map(|(tag, t)| {
                let packets = t
                    .get("medias")
                    .map(Ben::items)
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|m| m.get("streams").map(Ben::items).unwrap_or_default())
                    .filter(|s| {
                        s.get("flags")
                            .map(Ben::items)
                            .unwrap_or_default()
                            .iter()
                            .any(|f| f.text().as_deref() == Some("RTP"))
                    })
                    .filter_map(|s| s.get("stats")?.get("packets")?.int())
                    .sum();
                (String::from_utf8_lossy(tag).into_owned(), packets)
            })
            .collect()
    }
}
