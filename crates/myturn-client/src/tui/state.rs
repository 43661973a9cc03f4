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
    /// The interests the next `ready` sends (normalised).
    pub(crate) interests: Vec<String>,
    /// Why the microphone is off for good (no sound card, `--no-audio`);
    /// `None`: it is on (a device or a WAV file).
    pub(crate) mic_off: Option<String>,
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
            interests: Vec::new(),
            mic_off: None,
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
                    lobby: Vec::new(),
                    input: String::new(),
                    looking_for,
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
                    confirm_hangup: false,
                };
            }
            Progress::Lobby { from, text } => self.on_lobby(&from, &text),
            Progress::Chat { from, text } => {
                if let Screen::Convo { chat, .. } = &mut self.screen {
                    chat.push((from, text));
                }
            }
            Progress::Ended { by_us } => self.notice(
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
