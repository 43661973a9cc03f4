//! Drawing the interface with ratatui: [`Ui::render`] picks the screen,
//! and each screen is drawn by a function of its own.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, List, ListItem, Paragraph, Wrap};
use ratatui::Frame;

use super::state::{CallFigures, Confirm, Screen, Ui, SPINNER};

impl Ui {
    /// Draws the current screen.
    pub(crate) fn render(&self, f: &mut Frame<'_>) {
        let area = f.area();
        match &self.screen {
            Screen::Login { input, error, busy } => {
                login(f, area, input, error.as_deref(), *busy);
            }
            Screen::Main {
                name,
                extension,
                notice,
                editing,
            } => main_screen(
                f,
                area,
                [name, extension],
                &self.interests,
                [notice.as_deref(), self.mic_off.as_deref()],
                self.last_call.as_ref().map(|c| c.lines()),
                editing.as_deref(),
            ),
            Screen::Devices {
                inputs,
                outputs,
                column,
                chosen,
            } => devices(f, area, [inputs, outputs], *column, chosen),
            Screen::Wait {
                spinner,
                lobby,
                input,
                looking_for,
                confirm,
            } => wait(f, area, *spinner, looking_for, lobby, input, *confirm),
            Screen::Convo {
                peer,
                sas,
                chat,
                input,
                muted,
                figures,
                confirm,
            } => {
                let [head, level, body, line, keys] = Layout::vertical([
                    Constraint::Length(3),
                    Constraint::Length(3),
                    Constraint::Min(3),
                    Constraint::Length(3),
                    Constraint::Length(1),
                ])
                .areas(area);
                let mic = match (&self.mic_off, *muted) {
                    (Some(_), _) => "off",
                    (None, true) => "OFF",
                    (None, false) => "on",
                };
                call_panel(f, [head, level], peer, sas, mic, figures);
                chat_panel(f, [body, line, keys], chat, input, *confirm);
            }
        }
    }
}

/// How headings look.
fn title() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// A box with a border all round, titled `title`.
fn boxed(title: &str) -> Block<'_> {
    Block::default().borders(Borders::ALL).title(title)
}

/// The line being typed, in a box.
fn input_line(f: &mut Frame<'_>, at: Rect, input: &str) {
    f.render_widget(
        Paragraph::new(format!("> {input}_")).block(Block::default().borders(Borders::ALL)),
        at,
    );
}

/// The status line: the keys, or the question asked (highlighted).
fn status_line(f: &mut Frame<'_>, at: Rect, keys: &str, asked: Option<&str>) {
    let line = match asked {
        Some(q) => Paragraph::new(Span::styled(
            q.to_owned(),
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )),
        None => Paragraph::new(keys.to_owned()),
    };
    f.render_widget(line, at);
}

/// Login: the nickname prompt, with the last refusal; or the name being
/// logged in with.
fn login(f: &mut Frame<'_>, area: Rect, input: &str, error: Option<&str>, busy: bool) {
    let mut lines = vec![
        Line::from(Span::styled("myTurn", title())),
        Line::from("Talk to a random stranger, end-to-end encrypted."),
        Line::from(""),
        Line::from(if busy {
            format!("Logging in as {input}…")
        } else {
            format!("Nickname: {input}_")
        }),
    ];
    if let Some(e) = error {
        lines.push(Line::from(Span::styled(
            format!("⚠ {e}"),
            Style::default().fg(Color::Red),
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(if busy {
        "Ctrl-C: quit"
    } else {
        "Enter: log in   Esc: quit"
    }));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(boxed(" Login ")),
        area,
    );
}

/// Main: who this is, the last notice, what to do next.
fn main_screen(
    f: &mut Frame<'_>,
    area: Rect,
    [name, extension]: [&str; 2],
    interests: &[String],
    [notice, mic_off]: [Option<&str>; 2],
    last_call: Option<[String; 2]>,
    editing: Option<&str>,
) {
    let mut lines = vec![
        Line::from(Span::styled(format!("Hello, {name}"), title())),
        Line::from(format!("Your extension: {extension}")),
        Line::from(if interests.is_empty() {
            "Interests: none (paired with anyone)".to_owned()
        } else {
            format!("Interests: {}", interests.join(", "))
        }),
        Line::from(match mic_off {
            Some(why) => format!("mic off: {why}"),
            None => "mic on".to_owned(),
        }),
        Line::from(""),
    ];
    if let Some(n) = notice {
        lines.push(Line::from(n.to_owned()));
        lines.push(Line::from(""));
    }
    if let Some(call) = last_call {
        lines.extend(call.map(Line::from));
        lines.push(Line::from(""));
    }
    match editing {
        Some(field) => {
            lines.push(Line::from(format!("Interests (comma-separated): {field}_")));
            lines.push(Line::from("Enter: keep them   Esc: cancel"));
        }
        None => lines.push(Line::from(
            "r: I'm ready to talk   i: interests   d: sound devices   q: quit",
        )),
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(boxed(" Main ")),
        area,
    );
}

/// Devices: a column of microphones and one of speakers, each headed by
/// "(default)", the chosen row marked and the active column highlighted.
fn devices(
    f: &mut Frame<'_>,
    area: Rect,
    lists: [&[String]; 2],
    column: usize,
    chosen: &[usize; 2],
) {
    let [cols, keys] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(cols);
    for (i, (list, title_text, at)) in [
        (lists[0], " Microphone ", left),
        (lists[1], " Speaker ", right),
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
                let style = if here && column == i {
                    Style::default().add_modifier(Modifier::REVERSED)
                } else if here {
                    Style::default().add_modifier(Modifier::BOLD)
                } else {
                    Style::default()
                };
                Line::from(Span::styled(format!("{mark}{name}"), style))
            })
            .collect();
        f.render_widget(Paragraph::new(lines).block(boxed(title_text)), at);
    }
    f.render_widget(
        Paragraph::new("↑↓: choose   Tab: microphone/speaker   Enter: use   Esc: back"),
        keys,
    );
}

/// Wait: the spinner, the lobby chat and its input line, and the keys
/// (or the question asked).
fn wait(
    f: &mut Frame<'_>,
    area: Rect,
    spinner: usize,
    looking_for: &str,
    lobby: &[String],
    input: &str,
    confirm: Option<Confirm>,
) {
    let [top, rest, line, keys] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(1),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(format!("{} {looking_for}", SPINNER[spinner])).block(boxed(" Waiting ")),
        top,
    );
    let items: Vec<ListItem> = lobby.iter().map(|l| ListItem::new(l.as_str())).collect();
    f.render_widget(List::new(items).block(boxed(" Lobby ")), rest);
    input_line(f, line, input);
    status_line(
        f,
        keys,
        "Enter: say it in the lobby   Esc: stop waiting   Ctrl-C: quit",
        confirm.map(|c| c.question(false)),
    );
}

/// Convo, its top: who, the SAS, the clock and the call's figures, then
/// the level of what is heard.
fn call_panel(
    f: &mut Frame<'_>,
    [head, level]: [Rect; 2],
    peer: &str,
    sas: &str,
    mic: &str,
    figures: &CallFigures,
) {
    let secs = figures.elapsed.as_secs();
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(format!("Talking to {peer}"), title()),
            Span::raw(format!(
                "   SAS {sas} (compare aloud)   {:02}:{:02}   mic {}   loss {:.1}%   jitter {:.0} ms",
                secs / 60,
                secs % 60,
                mic,
                figures.loss_percent,
                figures.jitter_ms
            )),
        ]))
        .block(boxed(" Call ")),
        head,
    );
    let sound = format!(
        " Level · {} {:.0} kbit/s · concealed {} · recovered {} · delay {:.0} ms ",
        figures.codec, figures.kbps, figures.concealed, figures.recovered, figures.delay_ms
    );
    f.render_widget(
        Gauge::default()
            .block(boxed(&sound))
            .ratio(figures.level.clamp(0.0, 1.0)),
        level,
    );
}

/// Convo, its bottom: the chat, its input line and the keys (or the
/// question asked).
fn chat_panel(
    f: &mut Frame<'_>,
    [body, line, keys]: [Rect; 3],
    chat: &[(String, String)],
    input: &str,
    confirm: Option<Confirm>,
) {
    let items: Vec<ListItem> = chat
        .iter()
        .map(|(who, t)| ListItem::new(format!("{who}: {t}")))
        .collect();
    f.render_widget(List::new(items).block(boxed(" Chat ")), body);
    input_line(f, line, input);
    status_line(
        f,
        keys,
        "Enter: send   m: mic on/off   q: hang up   n: next partner   Ctrl-C: quit",
        confirm.map(|c| c.question(true)),
    );
}
