//! The full-screen interface: the four screens the original design
//! planned (Login, Main, Wait, Convo), as a view-model that turns keys
//! into actions and flow [`Progress`] into screens, and a renderer for
//! ratatui. [`run`] drives it on a real terminal; the unit tests drive the
//! model and render into ratatui's `TestBackend`.

use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, List, ListItem, Paragraph, Wrap};
use ratatui::Frame;

use crate::call::Progress;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Login(String),
    Ready,
    LobbySay(String),
    Say(String),
    ToggleMic,
    HangUp,
    Next,
    Quit,
    /// Show the sound devices to pick from.
    Devices,
    /// Use these devices from the next call on (`None`: the default one).
    UseDevices {
        input: Option<String>,
        output: Option<String>,
    },
}

/// Live figures of a call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CallFigures {
    /// Peak level of what we hear, 0..1.
    pub(crate) level: f64,
    pub(crate) loss_percent: f64,
    pub(crate) jitter_ms: f64,
    pub(crate) elapsed: Duration,
}

/// The screen being shown.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Screen {
    Login {
        input: String,
        error: Option<String>,
    },
    Main {
        name: String,
        extension: String,
        notice: Option<String>,
    },
    Wait {
        spinner: usize,
        lobby: Vec<String>,
        input: String,
    },
    Convo {
        peer: String,
        sas: String,
        chat: Vec<(String, String)>,
        input: String,
        muted: bool,
        figures: CallFigures,
        confirm_hangup: bool,
    },
    /// Picking the microphone and the speaker.
    #[cfg_attr(not(feature = "audio"), allow(dead_code))]
    Devices {
        inputs: Vec<String>,
        outputs: Vec<String>,
        /// 0: the microphone column, 1: the speaker column.
        column: usize,
        /// The highlighted row of each column; row 0 is "default".
        chosen: [usize; 2],
    },
}

/// The interface's whole state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ui {
    pub(crate) screen: Screen,
    pub(crate) name: String,
    pub(crate) extension: String,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            screen: Screen::Login {
                input: String::new(),
                error: None,
            },
            name: String::new(),
            extension: String::new(),
        }
    }
}

const SPINNER: [&str; 4] = ["|", "/", "-", "\\"];

impl Ui {
    /// A key press; returns what the user asked for, if anything.
    pub(crate) fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        match &mut self.screen {
            Screen::Login { input, error } => match key.code {
                KeyCode::Enter if !input.trim().is_empty() => {
                    Some(Action::Login(input.trim().to_owned()))
                }
                KeyCode::Backspace => {
                    input.pop();
                    None
                }
                KeyCode::Esc => Some(Action::Quit),
                KeyCode::Char(c) if input.len() < 32 => {
                    input.push(c);
                    *error = None;
                    None
                }
                _ => None,
            },
            Screen::Main { .. } => match key.code {
                KeyCode::Char('r') | KeyCode::Enter => Some(Action::Ready),
                KeyCode::Char('d') => Some(Action::Devices),
                KeyCode::Char('q') | KeyCode::Esc => Some(Action::Quit),
                _ => None,
            },
            Screen::Devices {
                inputs,
                outputs,
                column,
                chosen,
            } => {
                let rows = [inputs.len() + 1, outputs.len() + 1];
                match key.code {
                    KeyCode::Tab | KeyCode::Left | KeyCode::Right | KeyCode::BackTab => {
                        *column = 1 - *column;
                        None
                    }
                    KeyCode::Up => {
                        chosen[*column] = chosen[*column].saturating_sub(1);
                        None
                    }
                    KeyCode::Down => {
                        chosen[*column] = (chosen[*column] + 1).min(rows[*column] - 1);
                        None
                    }
                    KeyCode::Enter => {
                        let pick = |list: &[String], row: usize| {
                            row.checked_sub(1).and_then(|i| list.get(i)).cloned()
                        };
                        let action = Action::UseDevices {
                            input: pick(inputs, chosen[0]),
                            output: pick(outputs, chosen[1]),
                        };
                        self.notice("Sound devices chosen for the next call.".into());
                        Some(action)
                    }
                    KeyCode::Esc | KeyCode::Char('q') => {
                        self.notice(String::new());
                        None
                    }
                    _ => None,
                }
            }
            Screen::Wait { input, .. } => match key.code {
                KeyCode::Enter if !input.trim().is_empty() => {
                    Some(Action::LobbySay(std::mem::take(input)))
                }
                KeyCode::Backspace => {
                    input.pop();
                    None
                }
                KeyCode::Esc if input.is_empty() => Some(Action::Quit),
                KeyCode::Esc => {
                    input.clear();
                    None
                }
                KeyCode::Char(c) if input.len() < 500 => {
                    input.push(c);
                    None
                }
                _ => None,
            },
            Screen::Convo {
                input,
                confirm_hangup,
                chat,
                ..
            } => {
                if *confirm_hangup {
                    *confirm_hangup = false;
                    return matches!(key.code, KeyCode::Char('y') | KeyCode::Enter)
                        .then_some(Action::HangUp);
                }
                // Typing a chat line takes every key; with an empty line the
                // single-letter commands apply.
                match key.code {
                    KeyCode::Enter if !input.trim().is_empty() => {
                        let text = std::mem::take(input);
                        chat.push((self.name.clone(), text.clone()));
                        Some(Action::Say(text))
                    }
                    KeyCode::Backspace => {
                        input.pop();
                        None
                    }
                    KeyCode::Esc => {
                        input.clear();
                        None
                    }
                    KeyCode::Char('m') if input.is_empty() => Some(Action::ToggleMic),
                    KeyCode::Char('n') if input.is_empty() => Some(Action::Next),
                    KeyCode::Char('q') if input.is_empty() => {
                        *confirm_hangup = true;
                        None
                    }
                    KeyCode::Char(c) if input.len() < 500 => {
                        input.push(c);
                        None
                    }
                    _ => None,
                }
            }
        }
    }

    /// A step of the flow.
    pub(crate) fn on_progress(&mut self, p: Progress) {
        match p {
            Progress::Registered { name, extension } => {
                self.name = name.clone();
                self.extension = extension.clone();
                self.screen = Screen::Main {
                    name,
                    extension,
                    notice: None,
                };
            }
            Progress::SipRegistered => {}
            Progress::Waiting => {
                self.screen = Screen::Wait {
                    spinner: 0,
                    lobby: Vec::new(),
                    input: String::new(),
                }
            }
            Progress::Paired { peer, .. } => {
                if let Screen::Wait { lobby, .. } = &mut self.screen {
                    lobby.push(format!("paired with {peer}, calling…"));
                }
            }
            Progress::Ringing => {}
            Progress::Connected { sas } => {
                let peer = match &self.screen {
                    Screen::Wait { lobby, .. } => lobby
                        .iter()
                        .rev()
                        .find_map(|l| {
                            l.strip_prefix("paired with ")
                                .and_then(|r| r.split(',').next())
                        })
                        .unwrap_or("partner")
                        .to_owned(),
                    _ => "partner".into(),
                };
                self.screen = Screen::Convo {
                    peer,
                    sas,
                    chat: Vec::new(),
                    input: String::new(),
                    muted: false,
                    figures: CallFigures::default(),
                    confirm_hangup: false,
                };
            }
            Progress::Lobby { from, text } => self.on_lobby(&from, &text),
            Progress::Chat { from, text } => {
                if let Screen::Convo { chat, .. } = &mut self.screen {
                    chat.push((from, text));
                }
            }
            Progress::Ended { by_us } => {
                self.screen = Screen::Main {
                    name: self.name.clone(),
                    extension: self.extension.clone(),
                    notice: Some(
                        if by_us {
                            "You hung up."
                        } else {
                            "Your partner hung up."
                        }
                        .into(),
                    ),
                };
            }
            Progress::Redraw { why } => {
                self.info(format!("{why}; finding someone else…"));
            }
            Progress::ServerLost => {
                self.info(
                    "Lost the server; reconnecting (a call goes on while the media flows).".into(),
                );
            }
            Progress::Reconnected => self.info("Reconnected to the server.".into()),
        }
    }

    /// A line from the client itself, where the current screen shows
    /// such things: the chat, the lobby, or the main screen's notice.
    pub(crate) fn info(&mut self, text: String) {
        match &mut self.screen {
            Screen::Convo { chat, .. } => chat.push(("myturn".into(), text)),
            Screen::Wait { lobby, .. } => lobby.push(text),
            Screen::Main { notice, .. } => *notice = Some(text),
            Screen::Login { .. } | Screen::Devices { .. } => {}
        }
    }

    /// A lobby chat line (shown while waiting).
    pub(crate) fn on_lobby(&mut self, from: &str, text: &str) {
        if let Screen::Wait { lobby, .. } = &mut self.screen {
            lobby.push(format!("{from}: {text}"));
        }
    }

    /// Login refused: back to the prompt with the server's reason.
    pub(crate) fn login_failed(&mut self, reason: String) {
        self.screen = Screen::Login {
            input: String::new(),
            error: Some(reason),
        };
    }

    /// Something failed outside a call: shown on the main screen.
    pub(crate) fn notice(&mut self, text: String) {
        self.screen = Screen::Main {
            name: self.name.clone(),
            extension: self.extension.clone(),
            notice: (!text.is_empty()).then_some(text),
        };
    }

    /// Shows the sound devices to pick from (microphones, speakers).
    #[cfg_attr(not(feature = "audio"), allow(dead_code))]
    pub(crate) fn show_devices(&mut self, inputs: Vec<String>, outputs: Vec<String>) {
        self.screen = Screen::Devices {
            inputs,
            outputs,
            column: 0,
            chosen: [0, 0],
        };
    }

    pub(crate) fn set_muted(&mut self, m: bool) {
        if let Screen::Convo { muted, .. } = &mut self.screen {
            *muted = m;
        }
    }

    pub(crate) fn set_figures(&mut self, f: CallFigures) {
        if let Screen::Convo { figures, .. } = &mut self.screen {
            *figures = f;
        }
    }

    /// Advances the waiting spinner.
    pub(crate) fn tick(&mut self) {
        if let Screen::Wait { spinner, .. } = &mut self.screen {
            *spinner = (*spinner + 1) % SPINNER.len();
        }
    }

    /// Draws the current screen.
    pub(crate) fn render(&self, f: &mut Frame<'_>) {
        let area = f.area();
        let title = Style::default().add_modifier(Modifier::BOLD);
        match &self.screen {
            Screen::Login { input, error } => {
                let mut lines = vec![
                    Line::from(Span::styled("myTurn", title)),
                    Line::from("Talk to a random stranger, end-to-end encrypted."),
                    Line::from(""),
                    Line::from(format!("Nickname: {input}_")),
                ];
                if let Some(e) = error {
                    lines.push(Line::from(Span::styled(
                        format!("⚠ {e}"),
                        Style::default().fg(Color::Red),
                    )));
                }
                lines.push(Line::from(""));
                lines.push(Line::from("Enter: log in   Esc: quit"));
                f.render_widget(
                    Paragraph::new(lines)
                        .wrap(Wrap { trim: false })
                        .block(Block::default().borders(Borders::ALL).title(" Login ")),
                    area,
                );
            }
            Screen::Main {
                name,
                extension,
                notice,
            } => {
                let mut lines = vec![
                    Line::from(Span::styled(format!("Hello, {name}"), title)),
                    Line::from(format!("Your extension: {extension}")),
                    Line::from(""),
                ];
                if let Some(n) = notice {
                    lines.push(Line::from(n.clone()));
                    lines.push(Line::from(""));
                }
                lines.push(Line::from(
                    "r: I'm ready to talk   d: sound devices   q: quit",
                ));
                f.render_widget(
                    Paragraph::new(lines)
                        .block(Block::default().borders(Borders::ALL).title(" Main ")),
                    area,
                );
            }
            Screen::Devices {
                inputs,
                outputs,
                column,
                chosen,
            } => {
                let [cols, keys] =
                    Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
                let [left, right] =
                    Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                        .areas(cols);
                for (i, (list, title_text, at)) in [
                    (inputs, " Microphone ", left),
                    (outputs, " Speaker ", right),
                ]
                .into_iter()
                .enumerate()
                {
                    let lines: Vec<Line> = std::iter::once("(default)".to_owned())
                        .chain(list.iter().cloned())
                        .enumerate()
                        .map(|(row, name)| {
                            let here = row == chosen[i];
                            let mark = if here { "> " } else { "  " };
                            let style = if here && *column == i {
                                Style::default().add_modifier(Modifier::REVERSED)
                            } else if here {
                                Style::default().add_modifier(Modifier::BOLD)
                            } else {
                                Style::default()
                            };
                            Line::from(Span::styled(format!("{mark}{name}"), style))
                        })
                        .collect();
                    f.render_widget(
                        Paragraph::new(lines)
                            .block(Block::default().borders(Borders::ALL).title(title_text)),
                        at,
                    );
                }
                f.render_widget(
                    Paragraph::new("↑↓: choose   Tab: microphone/speaker   Enter: use   Esc: back"),
                    keys,
                );
            }
            Screen::Wait {
                spinner,
                lobby,
                input,
            } => {
                let [top, rest, line, keys] = Layout::vertical([
                    Constraint::Length(3),
                    Constraint::Min(1),
                    Constraint::Length(3),
                    Constraint::Length(1),
                ])
                .areas(area);
                f.render_widget(
                    Paragraph::new(format!("{} Looking for a partner…", SPINNER[*spinner]))
                        .block(Block::default().borders(Borders::ALL).title(" Waiting ")),
                    top,
                );
                let items: Vec<ListItem> =
                    lobby.iter().map(|l| ListItem::new(l.as_str())).collect();
                f.render_widget(
                    List::new(items).block(Block::default().borders(Borders::ALL).title(" Lobby ")),
                    rest,
                );
                f.render_widget(
                    Paragraph::new(format!("> {input}_"))
                        .block(Block::default().borders(Borders::ALL)),
                    line,
                );
                f.render_widget(
                    Paragraph::new("Enter: say it in the lobby   Esc: quit"),
                    keys,
                );
            }
            Screen::Convo {
                peer,
                sas,
                chat,
                input,
                muted,
                figures,
                confirm_hangup,
            } => {
                let [head, level, body, line, keys] = Layout::vertical([
                    Constraint::Length(3),
                    Constraint::Length(3),
                    Constraint::Min(3),
                    Constraint::Length(3),
                    Constraint::Length(1),
                ])
                .areas(area);
                let secs = figures.elapsed.as_secs();
                f.render_widget(
                    Paragraph::new(Line::from(vec![
                        Span::styled(format!("Talking to {peer}"), title),
                        Span::raw(format!(
                            "   SAS {sas} (compare aloud)   {:02}:{:02}   mic {}   loss {:.1}%   jitter {:.0} ms",
                            secs / 60,
                            secs % 60,
                            if *muted { "OFF" } else { "on" },
                            figures.loss_percent,
                            figures.jitter_ms
                        )),
                    ]))
                    .block(Block::default().borders(Borders::ALL).title(" Call ")),
                    head,
                );
                f.render_widget(
                    Gauge::default()
                        .block(Block::default().borders(Borders::ALL).title(" Level "))
                        .ratio(figures.level.clamp(0.0, 1.0)),
                    level,
                );
                let items: Vec<ListItem> = chat
                    .iter()
                    .map(|(who, t)| ListItem::new(format!("{who}: {t}")))
                    .collect();
                f.render_widget(
                    List::new(items).block(Block::default().borders(Borders::ALL).title(" Chat ")),
                    body,
                );
                f.render_widget(
                    Paragraph::new(format!("> {input}_"))
                        .block(Block::default().borders(Borders::ALL)),
                    line,
                );
                let help = if *confirm_hangup {
                    "Hang up? y: yes, any other key: no"
                } else {
                    "Enter: send   m: mic on/off   q: hang up   n: next partner"
                };
                f.render_widget(Paragraph::new(help), keys);
            }
        }
    }
}

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
    use crate::call::Client;
    use crate::plain::{Heard, Pump};
    use ratatui::crossterm::event::{self, Event};
    use std::time::Instant;

    let io = crate::ClientError::from;
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
    let mut ui = Ui::default();
    if !opts.name.is_empty() {
        ui.screen = Screen::Login {
            input: opts.name.clone(),
            error: None,
        };
    }
    let mut client: Option<Client> = None;
    let mut lobby: Option<crate::events::LobbySender> = None;
    let mut pump: Option<Pump> = None;
    // The flow waiting for a partner runs beside the interface; the
    // sender stops it (it then cancels any half-made call and goes busy).
    type Setup = (
        Client,
        Option<Result<crate::call::Call, crate::ClientError>>,
    );
    let mut pending: Option<(
        tokio::task::JoinHandle<Setup>,
        tokio::sync::oneshot::Sender<()>,
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
                        match Client::connect_with(opts.client_config(), &name, Some(ptx.clone())).await {
                            Ok(mut c) => {
                                c.peer_timeout = opts.peer_timeout;
                                c.answer_timeout = opts.answer_timeout;
                                lobby = c.lobby_sender();
                                client = Some(c);
                            }
                            Err(e) => ui.login_failed(e.to_string()),
                        }
                    }
                    Some(Action::Ready) | Some(Action::Next) => {
                        if let (Some(p), Some(c)) = (pump.take(), client.as_mut()) {
                            let _ = c.hang_up(&p.call).await;
                            let _ = p.finish();
                        }
                        if let Some(mut c) = client.take() {
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
                            }), stop));
                        }
                    }
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
                        if let (Some(p), Some(c)) = (pump.take(), client.as_mut()) {
                            let _ = c.hang_up(&p.call).await;
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
            done = async { match pending.as_mut() { Some((t, _)) => t.await, None => std::future::pending().await } } => {
                pending = None;
                match done {
                    Ok((c, None)) => client = Some(c),
                    Ok((c, Some(Ok(call)))) => {
                        client = Some(c);
                        started = Instant::now();
                        let (p, warnings) = Pump::new(call, &opts.input, &opts.output);
                        pump = Some(p);
                        for w in warnings {
                            ui.on_progress(crate::call::Progress::Chat { from: "myturn".into(), text: w });
                        }
                    }
                    Ok((c, Some(Err(e)))) => {
                        client = Some(c);
                        ui.notice(e.to_string());
                    }
                    Err(_) => break,
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                if let Some(p) = pump.as_mut() {
                    p.tick().await;
                    if ticks % 10 == 0 {
                        let (loss_percent, jitter_ms) = p.quality();
                        ui.set_figures(CallFigures {
                            level: p.level,
                            loss_percent,
                            jitter_ms,
                            elapsed: started.elapsed(),
                        });
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
                            if let Some(c) = client.as_mut() {
                                let _ = c.end_dead(&p.call).await;
                            }
                            let _ = p.finish();
                        }
                        ui.on_progress(crate::call::Progress::Ended { by_us: false });
                        ui.notice(format!("call ended: {why}"));
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
                        on_push(push, &mut ui, &mut client, &mut pump).await;
                        continue;
                    }
                };
                let signal = match (ev, pump.as_ref()) {
                    (Some(ev), Some(p)) => p.call.on_sip(&ev).await,
                    _ => crate::call::CallSignal::Nothing,
                };
                if matches!(signal, crate::call::CallSignal::EndedByPeer | crate::call::CallSignal::SignallingLost) {
                    if let Some(p) = pump.take() {
                        let _ = p.finish();
                    }
                    ui.on_progress(crate::call::Progress::Ended { by_us: false });
                    if signal == crate::call::CallSignal::SignallingLost {
                        ui.notice("The call ended: the PBX stopped refreshing the SIP session.".into());
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
        let _ = stop.send(());
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
    client: &mut Option<crate::call::Client>,
    pump: &mut Option<crate::plain::Pump>,
) {
    use myturn_wire::ServerEvent;
    match push {
        Some(ServerEvent::PeerLeft { reason }) => {
            if let Some(p) = pump.take() {
                if let Some(c) = client.as_mut() {
                    let _ = c.end_dead(&p.call).await;
                }
                let _ = p.finish();
                ui.on_progress(Progress::Ended { by_us: false });
                if reason != myturn_wire::LeaveReason::HungUp {
                    ui.notice(format!("Your partner is gone ({}).", reason.as_str()));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn screen_text(ui: &Ui) -> String {
        let mut t = Terminal::new(TestBackend::new(100, 20)).unwrap();
        t.draw(|f| ui.render(f)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    #[test]
    fn login_screen_takes_a_name_and_shows_refusals() {
        let mut ui = Ui::default();
        assert!(screen_text(&ui).contains("Nickname: _"));
        for c in "alice".chars() {
            assert_eq!(ui.on_key(key(KeyCode::Char(c))), None);
        }
        assert!(screen_text(&ui).contains("Nickname: alice_"));
        assert_eq!(
            ui.on_key(key(KeyCode::Enter)),
            Some(Action::Login("alice".into()))
        );
        ui.login_failed("the name `alice` is taken".into());
        let text = screen_text(&ui);
        assert!(text.contains("the name `alice` is taken"), "{text}");
        assert!(text.contains("Nickname: _"));
    }

    #[test]
    fn main_wait_and_convo_screens() {
        let mut ui = Ui::default();
        ui.on_progress(Progress::Registered {
            name: "alice".into(),
            extension: "111000".into(),
        });
        let text = screen_text(&ui);
        assert!(
            text.contains("Hello, alice") && text.contains("111000"),
            "{text}"
        );
        assert_eq!(ui.on_key(key(KeyCode::Char('r'))), Some(Action::Ready));
        ui.on_progress(Progress::Waiting);
        assert!(screen_text(&ui).contains("Looking for a partner"));
        ui.tick();
        // The lobby chat while waiting.
        for c in "anyone?".chars() {
            assert_eq!(ui.on_key(key(KeyCode::Char(c))), None);
        }
        assert_eq!(
            ui.on_key(key(KeyCode::Enter)),
            Some(Action::LobbySay("anyone?".into()))
        );
        ui.on_lobby("alice", "anyone?");
        ui.on_lobby("moderator", "be kind");
        let text = screen_text(&ui);
        assert!(
            text.contains("alice: anyone?") && text.contains("moderator: be kind"),
            "{text}"
        );
        ui.on_progress(Progress::Paired {
            peer: "bob".into(),
            role: myturn_wire::Role::Caller,
        });
        assert!(screen_text(&ui).contains("paired with bob"));
        ui.on_progress(Progress::Connected {
            sas: "KQ7M2D".into(),
        });
        ui.set_figures(CallFigures {
            level: 0.5,
            loss_percent: 1.5,
            jitter_ms: 12.0,
            elapsed: Duration::from_secs(65),
        });
        let text = screen_text(&ui);
        assert!(text.contains("Talking to bob"), "{text}");
        assert!(text.contains("SAS KQ7M2D"));
        assert!(
            text.contains("01:05") && text.contains("loss 1.5%") && text.contains("jitter 12 ms")
        );
        assert!(text.contains("mic on"));
        assert!(text.contains("50%"), "level gauge: {text}");

        // Chat: typed keys go to the line; Enter sends and shows it.
        for c in "hi bob".chars() {
            ui.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(
            ui.on_key(key(KeyCode::Enter)),
            Some(Action::Say("hi bob".into()))
        );
        ui.on_progress(Progress::Chat {
            from: "bob".into(),
            text: "hello alice".into(),
        });
        let text = screen_text(&ui);
        assert!(
            text.contains("alice: hi bob") && text.contains("bob: hello alice"),
            "{text}"
        );

        // m toggles the mic; q asks first; n draws the next partner.
        assert_eq!(ui.on_key(key(KeyCode::Char('m'))), Some(Action::ToggleMic));
        ui.set_muted(true);
        assert!(screen_text(&ui).contains("mic OFF"));
        assert_eq!(ui.on_key(key(KeyCode::Char('q'))), None);
        assert!(screen_text(&ui).contains("Hang up? y: yes"));
        assert_eq!(
            ui.on_key(key(KeyCode::Char('x'))),
            None,
            "anything but y keeps the call"
        );
        assert_eq!(ui.on_key(key(KeyCode::Char('q'))), None);
        assert_eq!(ui.on_key(key(KeyCode::Char('y'))), Some(Action::HangUp));
        assert_eq!(ui.on_key(key(KeyCode::Char('n'))), Some(Action::Next));

        ui.on_progress(Progress::Ended { by_us: false });
        assert!(screen_text(&ui).contains("Your partner hung up."));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(ui.on_key(ctrl_c), Some(Action::Quit));
    }

    #[test]
    fn sound_devices_are_picked_with_the_keyboard() {
        let mut ui = Ui::default();
        ui.on_progress(Progress::Registered {
            name: "alice".into(),
            extension: "111000".into(),
        });
        assert!(screen_text(&ui).contains("d: sound devices"));
        assert_eq!(ui.on_key(key(KeyCode::Char('d'))), Some(Action::Devices));
        ui.show_devices(
            vec!["mic-a".into(), "mic-b".into()],
            vec!["speaker-a".into()],
        );
        let text = screen_text(&ui);
        assert!(
            text.contains("Microphone") && text.contains("> (default)"),
            "{text}"
        );
        assert!(
            text.contains("mic-b") && text.contains("speaker-a"),
            "{text}"
        );
        // The second microphone, then the only speaker.
        ui.on_key(key(KeyCode::Down));
        ui.on_key(key(KeyCode::Down));
        ui.on_key(key(KeyCode::Down)); // stays on the last
        ui.on_key(key(KeyCode::Tab));
        ui.on_key(key(KeyCode::Down));
        assert!(screen_text(&ui).contains("> mic-b"));
        assert_eq!(
            ui.on_key(key(KeyCode::Enter)),
            Some(Action::UseDevices {
                input: Some("mic-b".into()),
                output: Some("speaker-a".into())
            })
        );
        assert!(screen_text(&ui).contains("Sound devices chosen"));
        // Esc leaves without choosing; "(default)" means None.
        ui.show_devices(vec!["mic-a".into()], vec![]);
        assert_eq!(ui.on_key(key(KeyCode::Esc)), None);
        assert!(matches!(ui.screen, Screen::Main { notice: None, .. }));
        ui.show_devices(vec!["mic-a".into()], vec![]);
        assert_eq!(
            ui.on_key(key(KeyCode::Enter)),
            Some(Action::UseDevices {
                input: None,
                output: None
            })
        );
    }
}
