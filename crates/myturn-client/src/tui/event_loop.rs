//! The terminal runner: [`run`] puts the terminal in raw mode and drives
//! the view-model from keys, the flow's progress, the call's media and
//! SIP events and the server's pushes, until the user quits.

use std::time::{Duration, Instant};

use super::state::{Action, CallFigures, Ui};
use crate::call::{Client, Progress};
use crate::pump::Pump;

/// Restores the terminal however the interface ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = ratatui::crossterm::terminal::disable_raw_mode();
        let _ = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::terminal::LeaveAlternateScreen
        );
    }
}

/// Runs the full-screen interface on the terminal until the user quits
/// (or Ctrl-C); leaves with SIP unregister and logout.
#[cfg_attr(not(feature = "audio"), allow(unused_mut))]
pub async fn run(mut opts: crate::plain::PlainOptions) -> Result<(), crate::ClientError> {
    use crate::pump::Heard;
    use ratatui::crossterm::event::{self, Event};

    let io = crate::ClientError::from;
    // Before anything touches the sound library: its complaints go to a
    // pipe, not over the screen (restored after the terminal, last).
    let (_restore, mut stray) = match super::stderr::capture() {
        Ok((r, rx)) => (Some(r), Some(rx)),
        Err(_) => (None, None),
    };
    let mut seen = super::stderr::Seen::default();
    let mic_off = mic_state(&mut opts);
    ratatui::crossterm::terminal::enable_raw_mode().map_err(io)?;
    ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::terminal::EnterAlternateScreen
    )
    .map_err(io)?;
    let _guard = TerminalGuard;
    let mut term =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))
            .map_err(io)?;

    let (ktx, mut krx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || loop {
        match event::read() {
            Ok(Event::Key(k)) if k.kind == event::KeyEventKind::Press => {
                if ktx.send(k).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    });
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel();
    let mut ui = Ui {
        interests: opts
            .interests
            .as_ref()
            .map(|i| i.tags.clone())
            .unwrap_or_default(),
        mic_off,
        ..Ui::default()
    };
    let mut client: Option<Client> = None;
    let mut lobby: Option<crate::events::LobbySender> = None;
    // `--name`: logs in at once; a refused name is asked again, prefilled.
    if !opts.name.is_empty() {
        let name = opts.name.clone();
        ui.logging_in(name.clone());
        term.draw(|f| ui.render(f)).map_err(io)?;
        match login(&opts, &name, &ptx).await {
            Ok(c) => {
                lobby = c.lobby_sender();
                client = Some(c);
            }
            Err(e) => ui.login_failed(name, e.to_string()),
        }
    }
    let mut pump: Option<Pump> = None;
    // The flow waiting for a partner runs beside the interface; the
    // sender stops it (it then cancels any half-made call and goes busy),
    // and is `None` once it was used.
    type Setup = (
        Client,
        Option<Result<crate::call::Call, crate::ClientError>>,
    );
    let mut pending: Option<(
        tokio::task::JoinHandle<Setup>,
        Option<tokio::sync::oneshot::Sender<()>>,
    )> = None;
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut ticks = 0u64;
    let mut started = Instant::now();
    loop {
        term.draw(|f| ui.render(f)).map_err(io)?;
        tokio::select! {
            k = krx.recv() => {
                let Some(k) = k else { break };
                match ui.on_key(k) {
                    Some(Action::Login(name)) => {
                        ui.logging_in(name.clone());
                        term.draw(|f| ui.render(f)).map_err(io)?;
                        match login(&opts, &name, &ptx).await {
                            Ok(c) => {
                                lobby = c.lobby_sender();
                                client = Some(c);
                            }
                            Err(e) => ui.login_failed(name, e.to_string()),
                        }
                    }
                    Some(Action::Ready) if pending.is_some() => {
                        ui.notice("Still stopping the last wait; press r again in a moment.".into());
                    }
                    Some(a @ (Action::Ready | Action::Next)) => {
                        if let Some(p) = pump.take() {
                            end_call(&mut ui, &p, started, if a == Action::Next {
                                "You hung up, for the next partner."
                            } else {
                                "You hung up."
                            });
                            term.draw(|f| ui.render(f)).map_err(io)?;
                            if let Some(c) = client.as_mut() {
                                let _ = c.hang_up(&p.call).await;
                            }
                            let _ = p.finish();
                        }
                        if let Some(mut c) = client.take() {
                            // The interests the ready screen holds now.
                            let base = c.interests.take().unwrap_or_default();
                            c.interests = Some(crate::api::Interests {
                                tags: ui.interests.clone(),
                                ..base
                            });
                            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                            pending = Some((tokio::spawn(async move {
                                let r = tokio::select! {
                                    r = c.ready_and_call() => Some(r),
                                    _ = stopped => None,
                                };
                                if r.is_none() {
                                    c.abandon().await;
                                }
                                (c, r)
                            }), Some(stop)));
                        }
                    }
                    Some(Action::StopWaiting) => match pending.as_mut() {
                        Some((_, stop)) => {
                            if let Some(stop) = stop.take() {
                                let _ = stop.send(());
                            }
                        }
                        None => ui.stopped_waiting(),
                    },
                    Some(Action::LobbySay(t)) => {
                        let me = ui.name.clone();
                        match lobby.as_ref().map(|l| l.lobby_say(&t)) {
                            Some(Ok(())) => {}
                            _ => ui.on_lobby(&me, "(lobby chat unavailable)"),
                        }
                    }
                    Some(Action::Say(t)) => {
                        if let Some(p) = pump.as_ref() {
                            let _ = p.call.media.send_text(t).await;
                        }
                    }
                    Some(Action::ToggleMic) => {
                        if let Some(p) = pump.as_mut() {
                            let m = !p.muted;
                            p.set_muted(m).await;
                            ui.set_muted(m);
                        }
                    }
                    Some(Action::HangUp) => {
                        if let Some(p) = pump.take() {
                            end_call(&mut ui, &p, started, "You hung up.");
                            term.draw(|f| ui.render(f)).map_err(io)?;
                            if let Some(c) = client.as_mut() {
                                let _ = c.hang_up(&p.call).await;
                            }
                            let _ = p.finish();
                        }
                    }
                    Some(Action::Devices) => {
                        #[cfg(feature = "audio")]
                        match myturn_media::audio::list_devices() {
                            Ok(d) => ui.show_devices(
                                d.iter().filter(|x| x.input).map(|x| x.name.clone()).collect(),
                                d.iter().filter(|x| x.output).map(|x| x.name.clone()).collect(),
                            ),
                            Err(e) => ui.notice(format!("cannot list sound devices: {e}")),
                        }
                        #[cfg(not(feature = "audio"))]
                        ui.notice("This build has no sound devices (built with --no-default-features).".into());
                    }
                    #[cfg(feature = "audio")]
                    Some(Action::UseDevices { input, output }) => {
                        opts.input = crate::plain::Input::Device(input);
                        opts.output = crate::plain::Output::Device(output);
                    }
                    #[cfg(not(feature = "audio"))]
                    Some(Action::UseDevices { .. }) => {}
                    Some(Action::Quit) => break,
                    None => {}
                }
            }
            p = prx.recv() => {
                if let Some(p) = p {
                    ui.on_progress(p);
                }
            }
            line = async { match stray.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                match line {
                    Some(line) => {
                        if let Some(shown) = seen.translate(&line) {
                            if shown == super::stderr::NO_SOUND {
                                ui.mic_off = Some(shown.clone());
                            }
                            ui.info(shown);
                        }
                    }
                    None => stray = None,
                }
            }
            done = async { match pending.as_mut() { Some((t, _)) => t.await, None => std::future::pending().await } } => {
                let stopped = matches!(pending.take(), Some((_, None)));
                // What the flow told before it ended comes first.
                while let Ok(p) = prx.try_recv() {
                    ui.on_progress(p);
                }
                match done {
                    Ok((mut c, r)) => {
                        match r {
                            Some(Ok(call)) if stopped => {
                                // Connected just as the wait was stopped.
                                let _ = c.hang_up(&call).await;
                                ui.stopped_waiting();
                            }
                            None | Some(Err(_)) if stopped => ui.stopped_waiting(),
                            None => {}
                            Some(Ok(call)) => {
                                started = Instant::now();
                                let (p, warnings) = Pump::new(call, &opts.input, &opts.output, opts.processing);
                                pump = Some(p);
                                for w in warnings {
                                    ui.on_progress(crate::call::Progress::Chat { from: "myturn".into(), text: w });
                                }
                            }
                            Some(Err(e)) => ui.notice(e.to_string()),
                        }
                        client = Some(c);
                    }
                    Err(_) => break,
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                if let Some(p) = pump.as_mut() {
                    p.tick().await;
                    if ticks % 10 == 0 {
                        ui.set_figures(figures(p, started));
                    }
                } else if ticks % 10 == 0 {
                    ui.tick();
                }
            }
            ev = async { match pump.as_mut() { Some(p) => p.call.media.events.recv().await, None => std::future::pending().await } } => {
                let peer = pump.as_ref().map(|p| p.call.peer.peer.name.clone()).unwrap_or_default();
                match pump.as_mut().and_then(|p| p.on_media(ev)) {
                    Some(Heard::Text(t)) => ui.on_progress(crate::call::Progress::Chat { from: peer, text: t }),
                    Some(Heard::Failed(f)) => ui.notice(format!("secure channel failed: {f}")),
                    Some(Heard::PeerGone(why)) => {
                        if let Some(p) = pump.take() {
                            end_call(&mut ui, &p, started, format!("The call ended: {why}."));
                            if let Some(c) = client.as_mut() {
                                let _ = c.end_dead(&p.call).await;
                            }
                            let _ = p.finish();
                        }
                    }
                    None => {}
                }
            }
            ev = async {
                match client.as_mut() {
                    Some(c) => tokio::select! {
                        ev = c.sip.events.recv() => FromClient::Sip(ev),
                        push = crate::events::next_push(&mut c.events) => FromClient::Push(push),
                    },
                    None => std::future::pending().await,
                }
            } => {
                let ev = match ev {
                    FromClient::Sip(ev) => ev,
                    FromClient::Push(push) => {
                        on_push(push, &mut ui, &mut client, &mut pump, started).await;
                        continue;
                    }
                };
                let signal = match (ev, pump.as_ref()) {
                    (Some(ev), Some(p)) => p.call.on_sip(&ev).await,
                    _ => crate::call::CallSignal::Nothing,
                };
                if matches!(signal, crate::call::CallSignal::EndedByPeer | crate::call::CallSignal::SignallingLost) {
                    if let Some(p) = pump.take() {
                        end_call(&mut ui, &p, started, if signal == crate::call::CallSignal::SignallingLost {
                            "The call ended: the PBX stopped refreshing the SIP session."
                        } else {
                            "Your partner hung up."
                        });
                        let _ = p.finish();
                    }
                    if let Some(c) = client.as_ref() {
                        let _ = c.api.status(myturn_wire::RequestedStatus::Busy, None).await;
                    }
                }
            }
            _ = retry.tick(), if client.as_ref().is_some_and(|c| c.needs_reconnect()) => {
                if let Some(c) = client.as_mut() {
                    if let Err(e) = c.reconnect(pump.is_none()).await {
                        ui.info(format!("Cannot register again: {e}"));
                    }
                }
            }
        }
    }
    // Quitting while waiting: stop the flow cleanly so it can log out.
    if let Some((t, stop)) = pending.take() {
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        if let Ok((c, _)) = t.await {
            client = Some(c);
        }
    }
    if let Some(mut c) = client.take() {
        if let Some(p) = pump.take() {
            let _ = c.hang_up(&p.call).await;
            let _ = p.finish();
        }
        c.quit().await?;
    }
    Ok(())
}

/// Logs in as `name` with the options' settings; the flow tells its
/// progress on `progress`.
async fn login(
    opts: &crate::plain::PlainOptions,
    name: &str,
    progress: &tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Result<Client, crate::ClientError> {
    let mut c = Client::connect_with(opts.client_config(), name, Some(progress.clone())).await?;
    c.peer_timeout = opts.peer_timeout;
    c.answer_timeout = opts.answer_timeout;
    c.interests = opts.interests.clone();
    Ok(c)
}

/// A call's figures now (`started`: when it was up).
fn figures(p: &Pump, started: Instant) -> CallFigures {
    let q = p.quality();
    CallFigures {
        level: p.level,
        loss_percent: q.loss_percent,
        lost: q.lost,
        late: q.late,
        jitter_ms: q.jitter_ms,
        elapsed: started.elapsed(),
        codec: q.codec.to_owned(),
        kbps: q.kbps,
        concealed: q.concealed,
        recovered: q.recovered,
        delay_ms: q.delay_ms,
    }
}

/// A call's end on the screen: its last figures, then its summary with
/// who ended it and why (`ended`).
fn end_call(ui: &mut Ui, p: &Pump, started: Instant, ended: impl Into<String>) {
    ui.set_figures(figures(p, started));
    ui.call_ended(ended.into());
}

/// Why the microphone is off for good, if it is: `--no-audio`, or no
/// sound card (then the devices are not tried again at each call).
fn mic_state(opts: &mut crate::plain::PlainOptions) -> Option<String> {
    use crate::plain::Input;
    #[cfg(feature = "audio")]
    use crate::plain::Output;
    match &opts.input {
        Input::Wav(_) => None,
        Input::None => Some("--no-audio".into()),
        #[cfg(feature = "audio")]
        Input::Device(_) => {
            let devices = myturn_media::audio::list_devices().unwrap_or_default();
            if devices.iter().any(|d| d.input) {
                return None;
            }
            opts.input = Input::None;
            if !devices.iter().any(|d| d.output) && matches!(opts.output, Output::Device(_)) {
                opts.output = Output::None;
            }
            Some(super::stderr::NO_SOUND.into())
        }
    }
}

/// What the client's side of the select produced.
enum FromClient {
    Sip(Option<myturn_sip::ua::Event>),
    Push(Option<myturn_wire::ServerEvent>),
}

/// A server push while not setting a call up: the partner left (end the
/// call now), lobby lines, removal, or the stream closing.
async fn on_push(
    push: Option<myturn_wire::ServerEvent>,
    ui: &mut Ui,
    client: &mut Option<Client>,
    pump: &mut Option<Pump>,
    started: Instant,
) {
    use myturn_wire::ServerEvent;
    match push {
        Some(ServerEvent::PeerLeft { reason }) => {
            if let Some(p) = pump.take() {
                let ended = if reason == myturn_wire::LeaveReason::HungUp {
                    "Your partner hung up.".to_owned()
                } else {
                    format!("Your partner is gone ({}).", reason.as_str())
                };
                end_call(ui, &p, started, ended);
                if let Some(c) = client.as_mut() {
                    let _ = c.end_dead(&p.call).await;
                }
                let _ = p.finish();
            }
        }
        Some(ServerEvent::LobbyMessage { from, text, .. }) => ui.on_lobby(&from, &text),
        Some(ServerEvent::Kicked) => {
            if let Some(c) = client.as_mut() {
                c.removed();
            }
            ui.notice("A moderator removed you. Quit with q.".into());
        }
        Some(ServerEvent::Banned { .. }) => {
            if let Some(c) = client.as_mut() {
                c.removed();
            }
            ui.notice("You are banned for now. Quit with q.".into());
        }
        Some(_) => {}
        None => {
            if let Some(c) = client.as_mut() {
                c.lost_server();
            }
        }
    }
}
