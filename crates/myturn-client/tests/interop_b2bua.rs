//! Interop through a back-to-back-agent-like path (issue #11): two real
//! `myturn --plain` clients, paired by a real myturn-server (no built-in
//! PBX), register to and call each other through Kamailio (Debian's
//! `kamailio`) with
//!
//! * the `topoh` module masking the Call-ID (`mask_callid=1`): the callee
//!   sees a different Call-ID from the one the caller sent, as behind a
//!   B2BUA; and
//! * the `rtpengine` module in front of a real rtpengine (Debian's
//!   `rtpengine-daemon`, userspace forwarding): every SDP is rewritten so
//!   that the media of the call is anchored in rtpengine.
//!
//! The test starts rtpengine and Kamailio itself, on loopback and free
//! ports, and checks: the same SAS on both sides, chat both ways, each
//! side's output WAV bit-exact to the other side's input, rtpengine really
//! relayed the call's media both ways (its ng `query`), and topoh really
//! gave the two sides different Call-IDs (the clients' `call connected`
//! log lines).
//!
//! `.ci/run` installs the peers. When one is missing the test fails under
//! CI (`CI` set) or with `MYTURN_REQUIRE_INTEROP=1`, and is skipped with a
//! `SKIPPED` notice otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::daemon::Daemon;
use common::{write_wav, Proc};

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use myturn_client::speech;
use myturn_media::wav;

use tokio::process::Command;

/// topoh's `mask_callid`: 1 makes Kamailio hand the callee a Call-ID of
/// its own (`!!:` + the encoded original).
const MASK_CALLID: u8 = 1;
/// Audio each side sends: 2 s, 100 frames of 20 ms.
const FRAMES: usize = 100;

// ---------------------------------------------------------------------
// Skip policy (as crates/myturn-sip/tests/peers).

fn required() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var("MYTURN_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// Fails when required, else prints `SKIPPED` (the caller returns).
fn missing(what: &str) {
    assert!(
        !required(),
        "{what}; `bash .ci/run` installs the interop peers from Debian's packages"
    );
    eprintln!("SKIPPED: {what} (run `bash .ci/run` to install the interop peers)");
}

fn installed(bin: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        missing(&format!("{bin} is not installed"));
    }
    found
}

/// Kamailio's module directory, if it holds topoh and rtpengine.
fn kamailio_modules() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["x86_64", "aarch64", "i386", "arm"]
        .iter()
        .map(|a| PathBuf::from(format!("/usr/lib/{a}-linux-gnu/kamailio/modules")))
        .collect();
    dirs.extend(
        [
            "/usr/lib/kamailio/modules",
            "/usr/lib64/kamailio/modules",
            "/usr/local/lib64/kamailio/modules",
            "/usr/local/lib/kamailio/modules",
        ]
        .map(PathBuf::from),
    );
    let found = dirs
        .into_iter()
        .find(|d| d.join("topoh.so").is_file() && d.join("rtpengine.so").is_file());
    if found.is_none() {
        missing("Kamailio's topoh.so and rtpengine.so modules are not installed");
    }
    found
}

// ---------------------------------------------------------------------
// Peers: rtpengine and Kamailio.

/// A free UDP port on loopback (an ephemeral one).
fn free_port() -> u16 {
    StdUdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kamailio as registrar and record-routing proxy, with topoh and
/// rtpengine. The request route follows Kamailio's default kamailio.cfg
/// (WITH_RTPENGINE): rtpengine_manage() offers on the INVITE's branch,
/// answers on the reply with SDP, deletes on BYE, CANCEL and failure.
///
/// Docs: https://kamailio.org/docs/modules/5.6.x/modules/topoh.html,
/// https://kamailio.org/docs/modules/5.6.x/modules/rtpengine.html.
fn kamailio_config(port: u16, ng: u16, modules: &Path, ctl: &Path) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
dns=no
rev_dns=no
auto_aliases=no
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="{modules}/"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
# After rr (topoh needs record-routing to decode in-dialog requests).
loadmodule "topoh.so"
loadmodule "rtpengine.so"
loadmodule "ctl.so"
loadmodule "htable.so"

modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_lr", 1)
# Extension -> user name, as the pairing server hands them out; the test
# provisions it over RPC (kamcmd), as the server would provision a PBX.
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("htable", "htable", "ext=>size=4;")

# Topology hiding. mask_callid=1: the Call-ID the callee sees is
# `!!:` + the masked original; topoh decodes it again on the way back,
# so the script (and rtpengine) only ever see the caller's Call-ID.
# mask_ip only labels the masked URIs (never routed to; it must not be an
# address a client uses); 127.0.0.8 keeps even a misrouted packet on
# loopback.
modparam("topoh", "mask_key", "myturn-interop-b2bua")
modparam("topoh", "mask_ip", "127.0.0.8")
modparam("topoh", "mask_callid", {MASK_CALLID})

modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:{ng}")
modparam("rtpengine", "rtpengine_tout_ms", 2000)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{
            if (is_method("BYE")) {{ rtpengine_manage(); }}
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{ rtpengine_manage(); t_relay(); }}
        exit;
    }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        # No digest authentication: with --pbx none the pairing server
        # provisions no PBX, so the per-user SIP passwords it hands out are
        # unknown here. (Kamailio's digest auth is covered by
        # myturn-sip's interop_kamailio test.)
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    record_route();
    # The caller dials the callee's extension; its SIP user is its name.
    if ($sht(ext=>$rU) != $null) {{ $rU = $sht(ext=>$rU); }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    if (is_method("INVITE")) {{
        t_on_branch("MEDIA");
        t_on_reply("MEDIA");
        t_on_failure("MEDIA");
    }}
    t_relay();
}}

branch_route[MEDIA] {{
    if (has_body("application/sdp")) {{
        rtpengine_manage("replace-origin replace-session-connection");
    }}
}}

onreply_route[MEDIA] {{
    if (has_body("application/sdp")) {{
        rtpengine_manage("replace-origin replace-session-connection");
    }}
}}

failure_route[MEDIA] {{
    rtpengine_manage();
}}
"#,
        modules = modules.display(),
        ctl = ctl.display(),
    )
}

/// Waits until something listens on UDP `port` (a peer is up).
fn wait_listening(d: &mut Daemon, port: u16, timeout: Duration) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        d.assert_running();
        if StdUdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} does not listen on UDP port {port}", d.name);
}

/// Kamailio, and its RPC socket for `kamcmd -s`.
fn start_kamailio(dir: &Path, ng: u16, modules: &Path) -> (Daemon, u16, PathBuf) {
    let port = free_port();
    let cfg = dir.join("kamailio.cfg");
    let ctl = dir.join("kamailio_ctl");
    std::fs::write(&cfg, kamailio_config(port, ng, modules, &ctl)).unwrap();
    let check = std::process::Command::new("kamailio")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "kamailio rejects the config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = std::process::Command::new("kamailio");
    cmd.arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-m", "64", "-M", "8"])
        .arg("-Y")
        .arg(dir)
        .arg("-w")
        .arg(dir);
    let mut k = Daemon::spawn("kamailio", &mut cmd, dir);
    wait_listening(&mut k, port, Duration::from_secs(10));
    (k, port, ctl)
}

/// Tells Kamailio which user name an extension belongs to.
async fn provision(ctl: &Path, extension: &str, name: &str) {
    let out = Command::new("kamcmd")
        .arg("-s")
        .arg(format!("unix:{}", ctl.display()))
        // `s:`: a string, though it looks like a number.
        .args(["htable.sets", "ext", &format!("s:{extension}"), name])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "kamcmd htable.sets: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------
// rtpengine's ng control protocol: `cookie SP bencoded-dict` over UDP
// (https://rtpengine.readthedocs.io/en/latest/ng_control_protocol.html).
// Its dictionaries are not always in key order; the decoder keeps them as
// they come.

/// A bencoded value.
#[derive(Debug, Clone, PartialEq)]
enum Ben {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Ben>),
    Dict(Vec<(Vec<u8>, Ben)>),
}

impl Ben {
    fn parse(b: &[u8]) -> Option<Ben> {
        let mut i = 0;
        let v = Self::at(b, &mut i)?;
        (i == b.len()).then_some(v)
    }

    fn at(b: &[u8], i: &mut usize) -> Option<Ben> {
        match *b.get(*i)? {
            b'i' => {
                let end = *i + b[*i..].iter().position(|&c| c == b'e')?;
                let n = std::str::from_utf8(&b[*i + 1..end]).ok()?.parse().ok()?;
                *i = end + 1;
                Some(Ben::Int(n))
            }
            b'l' => {
                *i += 1;
                let mut v = Vec::new();
                while *b.get(*i)? != b'e' {
                    v.push(Self::at(b, i)?);
                }
                *i += 1;
                Some(Ben::List(v))
            }
            b'd' => {
                *i += 1;
                let mut v = Vec::new();
                while *b.get(*i)? != b'e' {
                    let Ben::Bytes(k) = Self::at(b, i)? else {
                        return None;
                    };
                    v.push((k, Self::at(b, i)?));
                }
                *i += 1;
                Some(Ben::Dict(v))
            }
            b'0'..=b'9' => {
                let colon = *i + b[*i..].iter().position(|&c| c == b':')?;
                let n: usize = std::str::from_utf8(&b[*i..colon]).ok()?.parse().ok()?;
                let s = b.get(colon + 1..colon + 1 + n)?.to_vec();
                *i = colon + 1 + n;
                Some(Ben::Bytes(s))
            }
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Ben> {
        self.entries()
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v)
    }

    fn entries(&self) -> &[(Vec<u8>, Ben)] {
        match self {
            Ben::Dict(d) => d,
            _ => &[],
        }
    }

    fn items(&self) -> &[Ben] {
        match self {
            Ben::List(l) => l,
            _ => &[],
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Ben::Int(n) => Some(*n),
            _ => None,
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Ben::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A bencoded string.
fn bstr(s: &str) -> String {
    format!("{}:{s}", s.len())
}

struct Ng {
    socket: tokio::net::UdpSocket,
    to: SocketAddr,
    sent: u32,
}

impl Ng {
    async fn new(port: u16) -> Ng {
        Ng {
            socket: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            to: SocketAddr::from(([127, 0, 0, 1], port)),
            sent: 0,
        }
    }

    /// Sends one command (a bencoded dict) and returns the reply, or None
    /// without one within `wait`.
    async fn command(&mut self, dict: &str, wait: Duration) -> Option<Ben> {
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
    async fn wait_ready(&mut self, rtpengine: &mut Daemon) {
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

    async fn ok(&mut self, dict: &str) -> Ben {
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
    async fn list(&mut self) -> Vec<String> {
        let r = self.ok("d7:command4:liste").await;
        r.get("calls")
            .map(|c| c.items().iter().filter_map(Ben::text).collect())
            .unwrap_or_default()
    }

    /// Per call party (SIP tag): the RTP packets rtpengine received from
    /// it (and relayed to the other party).
    async fn rtp_received_by_tag(&mut self, call_id: &str) -> Vec<(String, i64)> {
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

/// Drops ANSI escape sequences (in case the log is coloured anyway).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            if it.peek() == Some(&'[') {
                it.next();
                for c in it.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The field `name` of the client's `call connected` log line.
fn logged(log: &[String], name: &str) -> Option<String> {
    let key = format!(" {name}=");
    log.iter().map(|l| strip_ansi(l)).find_map(|l| {
        if !l.contains("call connected") {
            return None;
        }
        let rest = &l[l.find(&key)? + key.len()..];
        Some(match rest.strip_prefix('"') {
            // Debug-formatted: a quoted string with escapes.
            Some(q) => {
                let mut v = String::new();
                let mut chars = q.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => v.extend(chars.next()),
                        '"' => break,
                        c => v.push(c),
                    }
                }
                v
            }
            None => rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        })
    })
}

// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_talk_through_kamailio_topoh_and_rtpengine() {
    if !installed("kamailio") || !installed("kamcmd") || !installed("rtpengine") {
        return;
    }
    let Some(modules) = kamailio_modules() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // rtpengine first: Kamailio's module pings it when starting, and
    // would leave a dead one disabled for a minute.
    let (mut rtpengine, ng_port, media_ports) =
        common::daemon::rtpengine(dir.path(), "127.0.0.1".parse().unwrap());
    let mut ng = Ng::new(ng_port).await;
    ng.wait_ready(&mut rtpengine).await;
    let (mut kamailio, sip_port, ctl) = start_kamailio(dir.path(), ng_port, &modules);

    // The pairing server, without a PBX of its own: clients register to
    // Kamailio.
    let mut cfg = myturn_server::Config::defaults();
    cfg.pbx = myturn_server::pbx::PbxKind::None;
    cfg.sip_domain = Some(format!("127.0.0.1:{sip_port}"));
    let server = common::serve(&cfg).await;

    let (a_in, b_in) = (dir.path().join("alice.wav"), dir.path().join("bob.wav"));
    let (a_out, b_out) = (
        dir.path().join("alice-heard.wav"),
        dir.path().join("bob-heard.wav"),
    );
    let (a_frames, b_frames) = (speech::frames(21, 8000, 2.0), speech::frames(22, 8000, 2.0));
    assert_eq!(a_frames.len(), FRAMES);
    write_wav(&a_in, &a_frames);
    write_wav(&b_in, &b_frames);

    let mut alice = Proc::start(&server, "alice", &a_in, &a_out);
    let mut bob = Proc::start(&server, "bob", &b_in, &b_out);
    for p in [&mut alice, &mut bob] {
        let l = p.expect("registered name=").await;
        let extension = l.split_once(" extension=").expect("an extension").1;
        provision(&ctl, extension, p.name).await;
        p.expect("sip registered").await;
    }
    assert!(
        ng.list().await.is_empty(),
        "no media session before the call"
    );
    alice.send("ready").await;
    bob.send("ready").await;
    let (pa, pb) = tokio::join!(alice.expect("paired "), bob.expect("paired "));
    assert!(
        pa.contains("peer=bob") && pb.contains("peer=alice"),
        "{pa} / {pb}"
    );
    let alice_calls = pa.contains("role=caller");
    assert!(
        alice_calls != pb.contains("role=caller"),
        "one caller: {pa} / {pb}"
    );
    let (ca, cb) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(ca, cb, "both sides show the same SAS");

    alice.send("say hello from alice").await;
    bob.send("say hi from bob").await;
    assert_eq!(bob.expect("chat ").await, "chat alice: hello from alice");
    assert_eq!(alice.expect("chat ").await, "chat bob: hi from bob");

    // All 2 s of audio went through, both ways, nothing dropped.
    for p in [&mut alice, &mut bob] {
        let stats = p.all_audio_through(FRAMES).await;
        assert!(
            stats.contains("loss=0.0%") && stats.contains(" dropped=0"),
            "{}: {stats}",
            p.name
        );
    }

    // The media was anchored in rtpengine: one call, and from each party
    // (SIP tag) it received, and relayed, at least all the audio frames.
    let calls = ng.list().await;
    assert_eq!(calls.len(), 1, "one call in rtpengine: {calls:?}");
    let rtp_call_id = calls[0].clone();
    let by_tag = ng.rtp_received_by_tag(&rtp_call_id).await;
    eprintln!("rtpengine call {rtp_call_id}: RTP packets received per tag {by_tag:?}");
    assert_eq!(by_tag.len(), 2, "two parties: {by_tag:?}");
    for (tag, packets) in &by_tag {
        assert!(
            *packets >= FRAMES as i64,
            "rtpengine relayed only {packets} packets from {tag}"
        );
    }
    kamailio.assert_running();
    rtpengine.assert_running();

    common::hang_up_and_quit(&mut alice, &mut bob).await;

    // Each output WAV holds exactly what the other side sent, as PCM16
    // at 8 kHz.
    for (heard, sent) in [(&b_out, &a_frames), (&a_out, &b_frames)] {
        let samples = wav::read(heard, 8000).unwrap();
        let frames = wav::frames(&samples, 160);
        assert_eq!(frames.len(), sent.len(), "{}", heard.display());
        if let Some(i) = (0..sent.len()).find(|&i| frames[i] != sent[i]) {
            // Say whether it is the right audio in the wrong order (the
            // WAV takes frames as they arrive) or other audio.
            let order: Vec<String> = frames
                .iter()
                .map(|f| match sent.iter().position(|s| s == f) {
                    Some(j) => j.to_string(),
                    None => "?".into(),
                })
                .collect();
            panic!(
                "{} differs from frame {i}; heard the sent frames in this order: {}",
                heard.display(),
                order.join(" ")
            );
        }
        assert!(frames.iter().map(|f| speech::rms(f)).sum::<f64>() / frames.len() as f64 > 100.0);
    }

    // topoh masked the Call-ID: the two sides knew the call by different
    // Call-IDs; the caller's is the one Kamailio (unmasking on the way
    // back) gave rtpengine.
    let (a_log, b_log) = (alice.finish_log().await, bob.finish_log().await);
    let a_id =
        logged(&a_log, "sip_call_id").expect("alice logs `call connected` with sip_call_id=");
    let b_id = logged(&b_log, "sip_call_id").expect("bob logs `call connected` with sip_call_id=");
    let (caller_id, callee_id) = if alice_calls {
        (a_id, b_id)
    } else {
        (b_id, a_id)
    };
    assert_ne!(
        caller_id, callee_id,
        "topoh gave the callee a Call-ID of its own"
    );
    assert_eq!(
        caller_id, rtp_call_id,
        "rtpengine knows the call by the caller's Call-ID"
    );
    // And where each side sent its media, as its SDP said (when the log
    // line names it): one of rtpengine's ports.
    for (name, log) in [("alice", &a_log), ("bob", &b_log)] {
        if let Some(m) = logged(log, "remote_media") {
            let m: SocketAddr = m.parse().unwrap();
            assert!(
                media_ports.contains(&m.port()),
                "{name} sent media to {m}, not to rtpengine ({media_ports:?})"
            );
        }
    }
    drop(kamailio);
    drop(rtpengine);
}
