//! Line mode (`myturn --plain`): commands in on stdin, one event per line
//! out on stdout. For scripts, screen readers and tests.
//!
//! Commands: `ready [INTEREST, …]` (wait for a partner, among those who
//! share an interest if given, and call), `say TEXT`,
//! `lobby TEXT` (the waiting room's chat), `mute`,
//! `unmute`, `stats`, `hangup` (also stops waiting), `next` (hang up and
//! draw again), `quit`. End of input and Ctrl-C quit too (SIP unregister
//! and logout first). Every command is served while waiting for a partner.
//!
//! Events, each printed when it happens: `registered name=… extension=…`,
//! `sip registered`, `waiting`, `paired peer=… role=…`, `ringing`
//! (caller), `redraw WHY` (the partner did not make it; drawing again),
//! `connected sas=…`, `chat TEXT`, `lobby TEXT`, `stats …`,
//! `ended by=us|peer|timeout`, `ended by=server reason=…`, `stopped
//! waiting`, `server lost`, `server back`, `removed …`, `error …`, `bye`.

use std::io::Write as _;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::call::{Call, CallSignal, Client, ClientConfig, Progress};
use crate::pump::{Heard, Pump};
pub use crate::pump::{Input, Output};
use crate::ClientError;

/// Line-mode settings.
#[derive(Debug, Clone)]
pub struct PlainOptions {
    /// The pairing server's URL (`--server`).
    pub server: String,
    /// Whom to trust for TLS (`--ca-cert`).
    pub trust: crate::tls::Trust,
    /// The nickname (`--name`; the full-screen interface asks when empty).
    pub name: String,
    /// The local address of the SIP and media sockets (`--bind`);
    /// unspecified: the address of the route to the PBX.
    pub bind: std::net::IpAddr,
    /// The audio sample rate offered (`--rate`).
    pub rate: u32,
    /// Silence from the partner that ends a call (`--peer-timeout`).
    pub peer_timeout: std::time::Duration,
    /// How long each set-up step waits on a new partner (`--answer-timeout`).
    pub answer_timeout: std::time::Duration,
    /// Where the outgoing audio comes from.
    pub input: Input,
    /// Where the incoming audio goes.
    pub output: Output,
    /// The interests to be paired on (`--interests`, `--interest-wait`,
    /// `--only-interests`).
    pub interests: Option<crate::api::Interests>,
    /// The codecs offered, most preferred first (`--codec`).
    pub codecs: Vec<myturn_media::codec::Codec>,
    /// Echo cancellation, noise suppression and gain control on sound
    /// devices (off with `--no-audio-processing`; never on WAV files).
    pub processing: bool,
}

impl PlainOptions {
    /// How the client connects: server, trust, bind address and rate.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            trust: self.trust.clone(),
            codecs: self.codecs.clone(),
            ..ClientConfig::new(&self.server, self.bind, self.rate)
        }
    }
}

/// The line for a call the server ended: the partner hung up (its BYE may
/// still be on the way), or left the service.
fn ended_by_server(reason: myturn_wire::LeaveReason) -> String {
    match reason {
        myturn_wire::LeaveReason::HungUp => "ended by=peer".to_owned(),
        other => format!("ended by=server reason={}", other.as_str()),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn progress_line(p: &Progress) -> String {
    match p {
        Progress::Registered { name, extension } => {
            format!("registered name={name} extension={extension}")
        }
        Progress::SipRegistered => "sip registered".into(),
        Progress::Waiting { interests, only } => match (interests.is_empty(), only) {
            (true, _) => "waiting".into(),
            (false, false) => format!("waiting interests={}", interests.join(",")),
            (false, true) => format!(
                "waiting interests={} only (no fallback to anyone)",
                interests.join(",")
            ),
        },
        Progress::Paired { peer, role, shared } => {
            let line = format!("paired peer={peer} role={role:?}").to_lowercase();
            if shared.is_empty() {
                line
            } else {
                format!("{line} shared={}", shared.join(","))
            }
        }
        Progress::Ringing => "ringing".into(),
        Progress::Connected { sas } => format!("connected sas={sas}"),
        Progress::Chat { from, text } => format!("chat {from}: {text}"),
        Progress::Lobby { from, text } => format!("lobby {from}: {text}"),
        Progress::Ended { by_us } => format!("ended by={}", if *by_us { "us" } else { "peer" }),
        Progress::Redraw { why } => format!("redraw {why}"),
        Progress::ServerLost => "server lost".into(),
        Progress::Reconnected => "server back".into(),
    }
}

type Stdin = tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>;

/// How waiting for a partner ended.
enum Waited {
    Call(Box<Call>),
    Failed(ClientError),
    /// `hangup` while waiting.
    Stopped,
    /// `quit`, end of input or Ctrl-C.
    Quit,
}

/// Runs [`Client::ready_and_call`] while still serving stdin, Ctrl-C and
/// the progress feed: `hangup` stops waiting, `quit` quits, `lobby` talks.
async fn wait_for_call<F>(
    client: &mut Client,
    lines: &mut Stdin,
    prx: &mut tokio::sync::mpsc::UnboundedReceiver<Progress>,
    ctrl_c: &mut std::pin::Pin<&mut F>,
) -> Waited
where
    F: std::future::Future,
{
    let lobby = client.lobby_sender();
    let waited = {
        let setup = client.ready_and_call();
        tokio::pin!(setup);
        loop {
            tokio::select! {
                r = &mut setup => break match r {
                    Ok(c) => Waited::Call(Box::new(c)),
                    Err(e) => Waited::Failed(e),
                },
                Some(p) = prx.recv() => say(&progress_line(&p)),
                line = lines.next_line() => {
                    let line = match line {
                        Ok(Some(l)) => l,
                        _ => break Waited::Quit,
                    };
                    let (cmd, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
                    match cmd {
                        "" => {}
                        "quit" => break Waited::Quit,
                        "hangup" => break Waited::Stopped,
                        "lobby" => match &lobby {
                            Some(l) if !rest.is_empty() => {
                                if let Err(e) = l.lobby_say(rest) {
                                    say(&format!("error {e}"));
                                }
                            }
                            Some(_) => say("error lobby needs a message"),
                            None => say("error no event stream: the lobby is unavailable"),
                        },
                        "ready" | "next" => say("error already looking for a partner"),
                        "say" | "mute" | "unmute" | "stats" => {
                            say("error not in a call yet (hangup stops waiting)")
                        }
                        other => say(&format!("error unknown command `{other}`")),
                    }
                }
                _ = ctrl_c.as_mut() => break Waited::Quit,
            }
        }
    };
    if matches!(waited, Waited::Stopped | Waited::Quit) {
        client.abandon().await;
    }
    while let Ok(p) = prx.try_recv() {
        say(&progress_line(&p));
    }
    waited
}

fn finish(p: Pump) {
    if let Some(e) = p.finish() {
        say(&format!("error {e}"));
    }
}

/// Runs line mode until `quit`, end of input or Ctrl-C.
pub async fn run(opts: PlainOptions) -> Result<(), ClientError> {
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel();
    let mut client = Client::connect_with(opts.client_config(), &opts.name, Some(ptx)).await?;
    client.peer_timeout = opts.peer_timeout;
    client.answer_timeout = opts.answer_timeout;
    client.interests = opts.interests.clone();
    while let Ok(p) = prx.try_recv() {
        say(&progress_line(&p));
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut call: Option<Pump> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // After the server's event stream closed: try to get it back every
    // second (register again once idle if the server forgot us).
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            Some(p) = prx.recv() => say(&progress_line(&p)),
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(l)) => l,
                    _ => "quit".to_owned(),
                };
                let (cmd, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
                match cmd {
                    "" => {}
                    "ready" | "next" => {
                        if let Some(c) = call.take() {
                            if cmd == "ready" {
                                say("error already in a call (use next)");
                                call = Some(c);
                                continue;
                            }
                            let _ = client.hang_up(&c.call).await;
                            finish(c);
                        }
                        if client.is_removed() {
                            say("error removed by a moderator: quit and come back later");
                            continue;
                        }
                        if !rest.trim().is_empty() {
                            // `ready music, rust`: these interests from now on.
                            match crate::api::Interests::parse(rest) {
                                Ok(tags) => {
                                    let base = client.interests.take().unwrap_or_default();
                                    client.interests = Some(crate::api::Interests { tags, ..base });
                                }
                                Err(e) => {
                                    say(&format!("error {e}"));
                                    continue;
                                }
                            }
                        }
                        match wait_for_call(&mut client, &mut lines, &mut prx, &mut ctrl_c).await {
                            Waited::Call(c) => {
                                let (pump, warnings) = Pump::new(*c, &opts.input, &opts.output, opts.processing);
                                for w in warnings {
                                    say(&format!("error {w}"));
                                }
                                call = Some(pump);
                                // The 20 ms clock starts with the call: the
                                // ticks missed while idle are not owed (a
                                // burst of them would send the first
                                // frames at once).
                                tick.reset();
                            }
                            Waited::Failed(e) => say(&format!("error {e}")),
                            Waited::Stopped => say("stopped waiting"),
                            Waited::Quit => break,
                        }
                    }
                    "say" => match call.as_ref() {
                        Some(c) if !rest.is_empty() => {
                            if c.call.media.send_text(rest.to_owned()).await.is_err() {
                                say("error the call has ended");
                            }
                        }
                        Some(_) => say("error say needs a message"),
                        None => say("error not in a call"),
                    },
                    "mute" | "unmute" => match call.as_mut() {
                        Some(c) => {
                            c.set_muted(cmd == "mute").await;
                            say(if c.muted { "muted" } else { "unmuted" });
                        }
                        None => say("error not in a call"),
                    },
                    "stats" => match call.as_ref() {
                        Some(c) => {
                            let s = c.call.media.stats();
                            let q = c.quality();
                            say(&format!(
                                "stats sent={} received={} loss={:.1}% jitter={:.1}ms dropped={} muted_frames={} codec={} kbps={:.1} concealed={} recovered={} delay={:.0}ms trimmed={} peer_loss={:.1}% redundancy={} fec={}%",
                                c.sent, c.received, q.loss_percent, q.jitter_ms, s.session.dropped.values().sum::<u64>(), s.muted_frames,
                                q.codec, q.kbps, q.concealed, q.recovered, q.delay_ms, q.trimmed, q.peer_loss_percent, q.protection.0, q.protection.1
                            ));
                        }
                        None => say("error not in a call"),
                    },
                    "hangup" => match call.take() {
                        Some(c) => {
                            if let Err(e) = client.hang_up(&c.call).await {
                                say(&format!("error {e}"));
                            }
                            finish(c);
                        }
                        None => say("error not in a call"),
                    },
                    "lobby" => match client.lobby_sender() {
                        Some(l) if !rest.is_empty() => {
                            if let Err(e) = l.lobby_say(rest) {
                                say(&format!("error {e}"));
                            }
                        }
                        Some(_) => say("error lobby needs a message"),
                        None => say("error no event stream: the lobby is unavailable"),
                    },
                    "quit" => break,
                    other => say(&format!("error unknown command `{other}` (ready, say TEXT, lobby TEXT, mute, unmute, stats, hangup, next, quit)")),
                }
            }
            _ = tick.tick(), if call.is_some() => {
                if let Some(c) = call.as_mut() {
                    c.tick().await;
                }
            }
            ev = async { match call.as_mut() { Some(c) => c.call.media.events.recv().await, None => std::future::pending().await } } => {
                let peer = call.as_ref().map(|c| c.call.peer.peer.name.clone()).unwrap_or_default();
                match call.as_mut().and_then(|c| c.on_media(ev)) {
                    Some(Heard::Text(t)) => say(&format!("chat {peer}: {t}")),
                    Some(Heard::Failed(f)) => say(&format!("error secure channel: {f}")),
                    Some(Heard::PeerGone(why)) => {
                        if let Some(c) = call.take() {
                            let _ = client.end_dead(&c.call).await;
                            finish(c);
                        }
                        say(&format!("info {why}"));
                        say("ended by=timeout");
                    }
                    None => {}
                }
            }
            push = crate::events::next_push(&mut client.events) => match push {
                // The server says the partner is gone (logged out, kicked,
                // its client vanished): end the call now, do not wait for
                // the media timeout.
                Some(myturn_wire::ServerEvent::PeerLeft { reason }) => {
                    if let Some(c) = call.take() {
                        let _ = client.end_dead(&c.call).await;
                        finish(c);
                        say(&ended_by_server(reason));
                    }
                }
                Some(myturn_wire::ServerEvent::LobbyMessage { from, text, .. }) => {
                    say(&progress_line(&Progress::Lobby { from, text }));
                }
                Some(myturn_wire::ServerEvent::Kicked) => {
                    client.removed();
                    say("removed by=moderator");
                }
                Some(myturn_wire::ServerEvent::Banned { until }) => {
                    client.removed();
                    say(&format!("removed by=ban until={until}"));
                }
                Some(_) => {}
                None => client.lost_server(),
            },
            _ = retry.tick(), if client.needs_reconnect() => {
                // Within a call only the stream can come back: the SIP
                // dialog lives on the current agent.
                if let Err(e) = client.reconnect(call.is_none()).await {
                    say(&format!("error cannot register again: {e}"));
                }
            }
            ev = client.sip.events.recv() => {
                let signal = match (ev, call.as_ref()) {
                    (Some(ev), Some(c)) => c.call.on_sip(&ev).await,
                    _ => CallSignal::Nothing,
                };
                match signal {
                    CallSignal::EndedByPeer => {
                        if let Some(c) = call.take() {
                            finish(c);
                        }
                        say("ended by=peer");
                        let _ = client.api.status(myturn_wire::RequestedStatus::Busy, None).await;
                    }
                    CallSignal::SignallingLost => {
                        if let Some(c) = call.take() {
                            finish(c);
                        }
                        say("info the PBX stopped refreshing the SIP session");
                        say("ended by=timeout");
                        let _ = client.api.status(myturn_wire::RequestedStatus::Busy, None).await;
                    }
                    CallSignal::MediaMoved => say("media moved"),
                    CallSignal::Nothing => {}
                }
            }
            _ = &mut ctrl_c => break,
        }
    }
    if let Some(c) = call.take() {
        let _ = client.hang_up(&c.call).await;
        finish(c);
    }
    while let Ok(p) = prx.try_recv() {
        say(&progress_line(&p));
    }
    client.quit().await?;
    say("bye");
    Ok(())
}
