//! The interface's state as a view-model: which screen shows what, and
//! how the flow's [`Progress`] and the client's own notices change it.
//! Keys are `keys`'s, drawing is `render`'s.

use std::time::Duration;

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
    /// Stop waiting for a partner: back to `busy`, on the main screen.
    StopWaiting,
    Quit,
    /// Show the sound devices to pick from.
    Devices,
    /// Use these devices from the next call on (`None`: the default one).
    UseDevices {
        input: Option<String>,
        output: Option<String>,
    },
}

/// A question in the status line, put before a key that would end a
/// call or a wait: `y` does it, any other key lets it be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirm {
    HangUp,
    Next,
    Quit,
}

impl Confirm {
    /// What `y` asks for.
    pub(crate) fn action(self) -> Action {
        match self {
            Confirm::HangUp => Action::HangUp,
            Confirm::Next => Action::Next,
            Confirm::Quit => Action::Quit,
        }
    }

    /// The question, in a call or (`in_call` false) while waiting.
    pub(crate) fn question(self, in_call: bool) -> &'static str {
        match (self, in_call) {
            (Confirm::HangUp, _) => "Hang up? y: yes, any other key: no",
            (Confirm::Next, _) => "Hang up and draw someone else? y: yes, any other key: no",
            (Confirm::Quit, true) => "Hang up and quit? y: yes, any other key: no",
            (Confirm::Quit, false) => "Stop waiting and quit? y: yes, any other key: no",
        }
    }
}

/// What is left of a call once it ended, for the user: shown on the
/// main screen and at the top of the next wait's lobby.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallSummary {
    pub(crate) peer: String,
    /// The SAS the call showed.
    pub(crate) sas: String,
    pub(crate) duration: Duration,
    /// Received frames lost on the network, and arrived too late to play.
    pub(crate) lost: u64,
    pub(crate) late: u64,
    pub(crate) loss_percent: f64,
    /// Who ended it and why, as a sentence.
    pub(crate) ended: String,
}

impl CallSummary {
    /// The summary as two lines of text.
    pub(crate) fn lines(&self) -> [String; 2] {
        let secs = self.duration.as_secs();
        [
            format!("Last call, with {}: {}", self.peer, self.ended),
            format!(
                "  {:02}:{:02} long, SAS {}, {} frames lost ({:.1}%), {} late",
                secs / 60,
                secs % 60,
                self.sas,
                self.lost,
                self.loss_percent,
                self.late
            ),
        ]
    }
}

/// Live figures of a call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CallFigures {
    /// Peak level of what we hear, 0..1.
    pub(crate) level: f64,
    pub(crate) loss_percent: f64,
    /// Received frames lost on the network, and arrived too late to play.
    pub(crate) lost: u64,
    pub(crate) late: u64,
    pub(crate) jitter_ms: f64,
    pub(crate) elapsed: Duration,
    /// The codec agreed end to end.
    pub(crate) codec: String,
    /// What this side sends, all headers included, kbit/s.
    pub(crate) kbps: f64,
    /// Lost frames concealed, and rebuilt (FEC, redundancy).
    pub(crate) concealed: u64,
    pub(crate) recovered: u64,
    /// Playout delay, ms.
    pub(crate) delay_ms: f64,
}

/// The screen being shown.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Screen {
    Login {
        input: String,
        error: Option<String>,
        /// Logging in with `input` now (keys wait).
        busy: bool,
    },
    Main {
        name: String,
        extension: String,
        notice: Option<String>,
        /// The interests field, while it is being edited.
        editing: Option<String>,
    },
    Wait {
        spinner: usize,
        lobby: Vec<String>,
        input: String,
        /// What this wait is for (the interests), shown in its heading.
        looking_for: String,
        /// The question in the status line, if one is asked.
        confirm: Option<Confirm>,
    },
    Convo {
        peer: String,
        sas: String,
        chat: Vec<(String, String)>,
        input: String,
        muted: bool,
        figures: CallFigures,
        /// The question in the status line, if one is asked.
        confirm: Option<Confirm>,
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
    /// The interests the next `ready` sends (normalised).
    pub(crate) interests: Vec<String>,
    /// Why the microphone is off for good (no sound card, `--no-audio`);
    /// `None`: it is on (a device or a WAV file).
    pub(crate) mic_off: Option<String>,
    /// The last call's summary, once one ended.
    pub(crate) last_call: Option<CallSummary>,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            screen: Screen::Login {
                input: String::new(),
                error: None,
                busy: false,
            },
            name: String::new(),
            extension: String::new(),
            interests: Vec::new(),
            mic_off: None,
            last_call: None,
        }
    }
}

pub(super) const SPINNER: [&str; 4] = ["|", "/", "-", "\\"];

impl Ui {
    /// A step of the flow.
    pub(crate) fn on_progress(&mut self, p: Progress) {
        match p {
            Progress::Registered { name, extension } => {
                self.name = name;
                self.extension = extension;
                self.notice(String::new());
            }
            Progress::SipRegistered => {}
            Progress::Waiting { interests, only } => {
                let looking_for = match (interests.is_empty(), only) {
                    (true, _) => "Looking for a partner…".to_owned(),
                    (false, false) => format!(
                        "Looking for someone into {} (then anyone)…",
                        interests.join(", ")
                    ),
                    (false, true) => {
                        format!("Looking only for someone into {}…", interests.join(", "))
                    }
                };
                self.screen = Screen::Wait {
                    spinner: 0,
                    lobby: self.last_call.iter().flat_map(CallSummary::lines).collect(),
                    input: String::new(),
                    looking_for,
                    confirm: None,
                }
            }
            Progress::Paired { peer, shared, .. } => {
                if let Screen::Wait { lobby, .. } = &mut self.screen {
                    lobby.push(if shared.is_empty() {
                        format!("paired with {peer}, calling…")
                    } else {
                        format!(
                            "paired with {peer}, calling… (you share {})",
                            shared.join(", ")
                        )
                    });
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
                    confirm: None,
                };
            }
            Progress::Lobby { from, text } => self.on_lobby(&from, &text),
            Progress::Chat { from, text } => {
                if let Screen::Convo { chat, .. } = &mut self.screen {
                    chat.push((from, text));
                }
            }
            Progress::Ended { by_us } => self.call_ended(
                if by_us {
                    "You hung up."
                } else {
                    "Your partner hung up."
                }
                .into(),
            ),
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

    /// Logging in as `name` (given with `--name`, or typed): the login
    /// screen says so until the server answers.
    pub(crate) fn logging_in(&mut self, name: String) {
        self.screen = Screen::Login {
            input: name,
            error: None,
            busy: true,
        };
    }

    /// Login refused: back to the prompt with the server's reason and the
    /// refused name, to fix.
    pub(crate) fn login_failed(&mut self, name: String, reason: String) {
        self.screen = Screen::Login {
            input: name,
            error: Some(reason),
            busy: false,
        };
    }

    /// The call on the screen ended (`ended`: who ended it and why): its
    /// summary goes to the main screen, which is shown. Nothing if no
    /// call is on the screen (it ended already: the second word of an
    /// ending, a BYE after the server's `peer_left`, is not news).
    pub(crate) fn call_ended(&mut self, ended: String) {
        if let Screen::Convo {
            peer, sas, figures, ..
        } = &self.screen
        {
            self.last_call = Some(CallSummary {
                peer: peer.clone(),
                sas: sas.clone(),
                duration: figures.elapsed,
                lost: figures.lost,
                late: figures.late,
                loss_percent: figures.loss_percent,
                ended,
            });
            self.notice(String::new());
        }
    }

    /// The wait is being stopped (the flow cancels it and goes busy).
    pub(crate) fn stopping_wait(&mut self) {
        self.notice("Stopping the wait…".into());
    }

    /// The wait stopped: on the main screen, busy.
    pub(crate) fn stopped_waiting(&mut self) {
        self.notice("Stopped waiting. r: ready again".into());
    }

    /// The question in the status line, where the screen has one.
    pub(crate) fn confirm_mut(&mut self) -> Option<&mut Option<Confirm>> {
        match &mut self.screen {
            Screen::Wait { confirm, .. } | Screen::Convo { confirm, .. } => Some(confirm),
            _ => None,
        }
    }

    /// Something failed outside a call: shown on the main screen.
    pub(crate) fn notice(&mut self, text: String) {
        self.screen = Screen::Main {
            name: self.name.clone(),
            extension: self.extension.clone(),
            notice: (!text.is_empty()).then_some(text),
            editing: None,
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
}
