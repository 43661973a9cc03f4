//! `myturn-demo`: the whole system on loopback, in one command. It starts a
//! real `myturn-server` with its built-in PBX (HTTP and SIP on free ports),
//! then two users, `jeden` and `dwa`, go through everything a person does:
//! register, SIP REGISTER with their own credentials, ready, paired, the
//! SIP call through the PBX (the callee answers, the caller dials the
//! partner's extension), the x25519 + HKDF key agreement (SAS on both
//! sides), a few seconds of speech-like audio both ways, chat both ways,
//! hang-up, SIP unregister and logout.
//!
//! It prints a readable summary (or one JSON object with `--json`) and
//! exits non-zero if any step fails.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use clap::Parser;
use myturn_client::call::{Call, Client, ClientConfig};
use myturn_client::speech;
use myturn_client::talk::{talk, TalkReport};
use myturn_media::codec::Codec;
use myturn_server::{App, Config};
use myturn_wire::Role;
use serde_json::json;

/// One-command demo of myTurn: a real server with its built-in PBX and two
/// users through a whole encrypted call.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Print one JSON object instead of the readable summary.
    #[arg(long)]
    json: bool,
    /// Seconds of audio each side sends.
    #[arg(long, default_value_t = 3.0)]
    seconds: f32,
    /// Log the server's and clients' own lines to stderr.
    #[arg(long)]
    verbose: bool,
}

struct Side {
    name: &'static str,
    client: Client,
    call: Option<Call>,
    sent: Vec<Vec<u8>>,
    chat: Vec<String>,
    report: TalkReport,
}

/// What one direction of the call delivered.
fn direction(from: &Side, to: &Side) -> serde_json::Value {
    let got: Vec<&Vec<u8>> = to.report.received.values().collect();
    let first = to.report.received.keys().next().copied().unwrap_or(0);
    let last = to.report.received.keys().next_back().copied().unwrap_or(0);
    let span = if got.is_empty() { 0 } else { last - first + 1 };
    let lost = from.sent.len() as u64 - got.len() as u64;
    let exact = got.len() == from.sent.len() && got.iter().zip(&from.sent).all(|(a, b)| *a == b);
    let heard_rms = got.iter().map(|f| speech::rms(f)).sum::<f64>() / got.len().max(1) as f64;
    json!({
        "from": from.name,
        "to": to.name,
        "frames_sent": from.report.frames_sent,
        "frames_received": got.len(),
        "frames_lost": lost,
        "sequence_gaps": span.saturating_sub(got.len() as u64),
        "audio_bit_exact": exact,
        "received_rms": heard_rms.round(),
        "chat_sent": from.chat.len(),
        "chat_delivered": to.report.texts.iter().filter(|t| from.chat.contains(t)).count(),
        "chat_in_order": to.report.texts == from.chat,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.verbose {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
    let total = Instant::now();
    let mut cfg = Config::defaults();
    // The built-in PBX is the default; free ports so nothing collides.
    cfg.sip_listen = "127.0.0.1:0".parse()?;
    let app = App::new(&cfg, None).context("starting the server")?;
    let sip = app.sip_addr().context("the built-in PBX is off")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let ip = "127.0.0.1".parse()?;
    let rate = 8000;

    // 1–2. Register over HTTP, then over SIP with each user's own secret.
    // PCM16, whatever this build offers: the demo checks the audio bit for
    // bit, which a lossy codec cannot pass.
    let config = || ClientConfig {
        codecs: vec![Codec::Pcm16],
        ..ClientConfig::new(&base, ip, rate)
    };
    let (j, d) = tokio::try_join!(
        Client::connect_with(config(), "jeden", None),
        Client::connect_with(config(), "dwa", None)
    )?;
    let mut jeden = Side {
        name: "jeden",
        client: j,
        call: None,
        sent: speech::frames(1, rate, args.seconds),
        chat: vec!["cześć!".into(), "słyszysz mnie?".into()],
        report: TalkReport::default(),
    };
    let mut dwa = Side {
        name: "dwa",
        client: d,
        call: None,
        sent: speech::frames(2, rate, args.seconds),
        chat: vec!["hej, słyszę".into(), "do usłyszenia".into()],
        report: TalkReport::default(),
    };

    // 3–5. Ready, paired, SIP call through the PBX, key agreement.
    let (cj, cd) = tokio::try_join!(jeden.client.ready_and_call(), dwa.client.ready_and_call())?;
    ensure!(
        cj.peer.peer.name == "dwa" && cd.peer.peer.name == "jeden",
        "the two sides disagree on the pair"
    );
    ensure!(cj.peer.role != cd.peer.role, "both sides got the same role");
    ensure!(
        cj.sip_call_id == cd.sip_call_id,
        "the two sides are in different SIP calls"
    );
    let sas_match = cj.sas == cd.sas;
    ensure!(sas_match, "SAS mismatch: {} vs {}", cj.sas, cd.sas);
    jeden.call = Some(cj);
    dwa.call = Some(cd);

    // Audio and chat both ways, at once.
    let linger = Duration::from_millis(400);
    {
        let (mj, md) = (
            &mut jeden.call.as_mut().context("call")?.media,
            &mut dwa.call.as_mut().context("call")?.media,
        );
        let (rj, rd) = tokio::join!(
            talk(mj, &jeden.sent, &jeden.chat, linger),
            talk(md, &dwa.sent, &dwa.chat, linger)
        );
        jeden.report = rj;
        dwa.report = rd;
    }

    // 6. The caller hangs up; the callee hears the BYE.
    let (caller, callee) = if jeden.call.as_ref().map(|c| c.peer.role) == Some(Role::Caller) {
        (&mut jeden, &mut dwa)
    } else {
        (&mut dwa, &mut jeden)
    };
    let caller_call = caller.call.take().context("call")?;
    let callee_call = callee.call.take().context("call")?;
    let (hung, heard) = tokio::join!(
        caller.client.hang_up(&caller_call),
        callee
            .client
            .wait_hang_up(&callee_call, Duration::from_secs(5))
    );
    hung?;
    ensure!(heard, "the callee never heard the hang-up");
    let (caller_name, callee_name) = (caller.name, callee.name);
    let timings = json!({
        "pairing_latency_ms": caller_call.pairing_ms.max(callee_call.pairing_ms),
        "call_setup_ms": caller_call.setup_ms,
        "handshake_ms": caller_call.handshake_ms.max(callee_call.handshake_ms),
    });
    let sas = caller_call.sas.clone();
    drop((caller_call, callee_call));

    let j_to_d = direction(&jeden, &dwa);
    let d_to_j = direction(&dwa, &jeden);

    // 7. Quit: SIP unregister and logout.
    let (qj, qd) = tokio::join!(jeden.client.quit(), dwa.client.quit());
    qj?;
    qd?;
    let _ = stop.send(());
    server.await??;

    let ok = [&j_to_d, &d_to_j].iter().all(|d| {
        d["frames_received"].as_u64() > Some(0)
            && d["chat_delivered"] == d["chat_sent"]
            && d["received_rms"].as_f64() > Some(100.0)
            && (d["frames_lost"] != 0 || d["audio_bit_exact"] == true)
    });
    let summary = json!({
        "ok": ok,
        "server": base,
        "pbx": format!("built-in, udp/{sip}"),
        "caller": caller_name,
        "callee": callee_name,
        "timings": timings,
        "sas": sas,
        "sas_matched": sas_match,
        "directions": [j_to_d, d_to_j],
        "total_ms": total.elapsed().as_millis() as u64,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!("myTurn demo: server {base}, built-in PBX udp/{sip}");
        println!("  registered   jeden and dwa over HTTP, then over SIP with their own secrets");
        println!(
            "  paired       {caller_name} calls {callee_name}, in {:.1} ms",
            summary["timings"]["pairing_latency_ms"]
                .as_f64()
                .unwrap_or(0.0)
        );
        println!(
            "  call         INVITE → 407 → INVITE → 180 → 200 → ACK through the PBX in {:.1} ms",
            summary["timings"]["call_setup_ms"].as_f64().unwrap_or(0.0)
        );
        println!(
            "  secure       x25519 + HKDF in {:.1} ms; SAS {sas} on both sides",
            summary["timings"]["handshake_ms"].as_f64().unwrap_or(0.0)
        );
        for d in summary["directions"].as_array().into_iter().flatten() {
            println!(
                "  {} → {}   {} of {} frames ({} lost), bit-exact: {}, chat {}/{} in order: {}",
                d["from"].as_str().unwrap_or(""),
                d["to"].as_str().unwrap_or(""),
                d["frames_received"],
                d["frames_sent"],
                d["frames_lost"],
                d["audio_bit_exact"],
                d["chat_delivered"],
                d["chat_sent"],
                d["chat_in_order"],
            );
        }
        println!("  hang-up      BYE from {caller_name}; both unregistered and logged out");
        println!("  total        {} ms", summary["total_ms"]);
    }
    ensure!(ok, "the call did not deliver what was sent: {summary}");
    Ok(())
}
