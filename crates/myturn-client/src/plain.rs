//! Line mode (`myturn --plain`): commands in on stdin, one event per line
//! out on stdout. For scripts, screen readers and tests.
//!
//! Commands: `ready` (wait for a partner and call), `say TEXT`, `mute`,
//! `unmute`, `stats`, `hangup`, `next` (hang up and draw again), `quit`.
//! End of input and Ctrl-C quit too (SIP unregister and logout first).
//!
//! Events: `registered name=… extension=…`, `sip registered`, `waiting`,
//! `paired peer=… role=…`, `connected sas=…`, `chat TEXT`, `stats …`,
//! `ended by=us|peer`, `error …`, `bye`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use myturn_media::session::Event as MediaEvent;
use myturn_media::wav;
use myturn_sip::ua::{EndedBy, Event as SipEvent};
use tokio::io::AsyncBufReadExt;

use crate::call::{Call, Client, Progress};
use crate::ClientError;

/// Where a call's outgoing audio comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A WAV file (PCM16, resampled to the call rate), then silence.
    Wav(PathBuf),
    /// Nothing is sent.
    None,
}

/// Where a call's incoming audio goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// A WAV file at the call rate, written as frames arrive.
    Wav(PathBuf),
    /// Nowhere.
    None,
}

/// Line-mode settings.
#[derive(Debug, Clone)]
pub struct PlainOptions {
    pub server: String,
    pub name: String,
    pub bind: std::net::IpAddr,
    pub rate: u32,
    pub input: Input,
    pub output: Output,
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
        Progress::Waiting => "waiting".into(),
        Progress::Paired { peer, role } => {
            format!("paired peer={peer} role={role:?}").to_lowercase()
        }
        Progress::Ringing => "ringing".into(),
        Progress::Connected { sas } => format!("connected sas={sas}"),
        Progress::Chat { from, text } => format!("chat {from}: {text}"),
        Progress::Ended { by_us } => format!("ended by={}", if *by_us { "us" } else { "peer" }),
    }
}

struct InCall {
    call: Call,
    input: Vec<Vec<u8>>,
    next: usize,
    muted: bool,
    out: Option<wav::Writer>,
    sent: u64,
    received: u64,
}

impl InCall {
    fn finish(self) {
        if let Some(w) = self.out {
            if let Err(e) = w.finalize() {
                say(&format!("error output wav: {e}"));
            }
        }
    }
}

/// Runs line mode until `quit`, end of input or Ctrl-C.
pub async fn run(opts: PlainOptions) -> Result<(), ClientError> {
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel();
    let mut client =
        Client::connect(&opts.server, &opts.name, opts.bind, opts.rate, Some(ptx)).await?;
    while let Ok(p) = prx.try_recv() {
        say(&progress_line(&p));
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut call: Option<InCall> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        while let Ok(p) = prx.try_recv() {
            say(&progress_line(&p));
        }
        tokio::select! {
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
                            c.finish();
                        }
                        match client.ready_and_call().await {
                            Ok(c) => {
                                while let Ok(p) = prx.try_recv() {
                                    say(&progress_line(&p));
                                }
                                let input = match &opts.input {
                                    Input::Wav(p) => match wav::read(p, c.rate) {
                                        Ok(samples) => wav::frames(&samples, (c.rate / 50) as usize),
                                        Err(e) => { say(&format!("error input wav: {e}")); Vec::new() }
                                    },
                                    Input::None => Vec::new(),
                                };
                                let out = match &opts.output {
                                    Output::Wav(p) => match wav::Writer::create(p, c.rate) {
                                        Ok(w) => Some(w),
                                        Err(e) => { say(&format!("error output wav: {e}")); None }
                                    },
                                    Output::None => None,
                                };
                                call = Some(InCall { call: c, input, next: 0, muted: false, out, sent: 0, received: 0 });
                            }
                            Err(e) => say(&format!("error {e}")),
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
                            c.muted = cmd == "mute";
                            let _ = c.call.media.set_muted(c.muted).await;
                            say(if c.muted { "muted" } else { "unmuted" });
                        }
                        None => say("error not in a call"),
                    },
                    "stats" => match call.as_ref() {
                        Some(c) => {
                            let s = c.call.media.stats();
                            say(&format!(
                                "stats sent={} received={} dropped={} muted_frames={}",
                                c.sent, c.received, s.session.dropped.values().sum::<u64>(), s.muted_frames
                            ));
                        }
                        None => say("error not in a call"),
                    },
                    "hangup" => match call.take() {
                        Some(c) => {
                            if let Err(e) = client.hang_up(&c.call).await {
                                say(&format!("error {e}"));
                            }
                            c.finish();
                        }
                        None => say("error not in a call"),
                    },
                    "quit" => break,
                    other => say(&format!("error unknown command `{other}` (ready, say TEXT, mute, unmute, stats, hangup, next, quit)")),
                }
            }
            _ = tick.tick(), if call.is_some() => {
                if let Some(c) = call.as_mut() {
                    if let Some(f) = c.input.get(c.next) {
                        c.next += 1;
                        if !c.muted && c.call.media.send_audio(f.clone()).await.is_ok() {
                            c.sent += 1;
                        }
                    }
                }
            }
            ev = async { match call.as_mut() { Some(c) => c.call.media.events.recv().await, None => std::future::pending().await } } => {
                match ev {
                    Some(MediaEvent::Audio { pcm, .. }) => {
                        if let Some(c) = call.as_mut() {
                            c.received += 1;
                            if let Some(w) = c.out.as_mut() {
                                let _ = w.write_frame(&pcm);
                            }
                        }
                    }
                    Some(MediaEvent::Text(t)) => {
                        let peer = call.as_ref().map(|c| c.call.peer.peer.name.clone()).unwrap_or_default();
                        say(&format!("chat {peer}: {t}"));
                    }
                    Some(MediaEvent::Failed(f)) => say(&format!("error secure channel: {f}")),
                    Some(MediaEvent::Established { .. }) => {}
                    None => {}
                }
            }
            ev = client.sip.events.recv() => {
                if let Some(SipEvent::CallEnded { call: id, by: EndedBy::Remote }) = ev {
                    if call.as_ref().is_some_and(|c| c.call.sip_call == id) {
                        if let Some(c) = call.take() {
                            c.finish();
                        }
                        say("ended by=peer");
                        let _ = client.api.status("busy", None).await;
                    }
                }
            }
            _ = &mut ctrl_c => break,
        }
    }
    if let Some(c) = call.take() {
        let _ = client.hang_up(&c.call).await;
        c.finish();
    }
    while let Ok(p) = prx.try_recv() {
        say(&progress_line(&p));
    }
    client.quit().await?;
    say("bye");
    Ok(())
}
