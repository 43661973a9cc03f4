//! Key handling: what each key means on each screen, as an [`Action`]
//! for the event loop (or a change to the screen itself).
//!
//! One rule for the keys that end something: hanging up (`q`), the next
//! partner (`n`) and quitting (Ctrl-C) in a call, and quitting while
//! waiting, first ask in the status line ([`Confirm`]); `y` does it, any
//! other key cancels and changes nothing else (a second Ctrl-C quits at
//! once). Where nothing would end (login, the main screen, the device
//! list), quitting does not ask. Esc while waiting stops the wait (back
//! to the main screen, busy): that loses nothing, so it does not ask.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::{Action, Confirm, Screen, Ui};

impl Ui {
    /// A key press; returns what the user asked for, if anything.
    pub(crate) fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        // A question takes the next key, whatever it is.
        if let Some(asked) = self.confirm_mut().and_then(Option::take) {
            return match key.code {
                _ if ctrl_c => Some(Action::Quit),
                KeyCode::Char('y' | 'Y') => Some(asked.action()),
                _ => None,
            };
        }
        if ctrl_c {
            return match self.confirm_mut() {
                Some(confirm) => {
                    *confirm = Some(Confirm::Quit);
                    None
                }
                None => Some(Action::Quit),
            };
        }
        match &mut self.screen {
            Screen::Login { busy: true, .. } => None,
            Screen::Login { input, error, .. } => match key.code {
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
            Screen::Main {
                editing: Some(field),
                notice,
                ..
            } => match key.code {
                KeyCode::Enter => match crate::api::Interests::parse(field) {
                    Ok(tags) => {
                        *notice = Some(if tags.is_empty() {
                            "No interests: paired with anyone.".into()
                        } else {
                            format!("Interests: {}", tags.join(", "))
                        });
                        self.interests = tags;
                        self.end_editing();
                        None
                    }
                    Err(e) => {
                        *notice = Some(e.to_string());
                        None
                    }
                },
                KeyCode::Esc => {
                    self.end_editing();
                    None
                }
                KeyCode::Backspace => {
                    field.pop();
                    None
                }
                KeyCode::Char(c) if field.chars().count() < 250 => {
                    field.push(c);
                    None
                }
                _ => None,
            },
            Screen::Main { editing, .. } => match key.code {
                KeyCode::Char('r') | KeyCode::Enter => Some(Action::Ready),
                KeyCode::Char('i') => {
                    *editing = Some(self.interests.join(", "));
                    None
                }
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
                KeyCode::Esc if input.is_empty() => {
                    self.stopping_wait();
                    Some(Action::StopWaiting)
                }
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
                confirm,
                chat,
                ..
            } => {
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
                    KeyCode::Char('n') if input.is_empty() => {
                        *confirm = Some(Confirm::Next);
                        None
                    }
                    KeyCode::Char('q') if input.is_empty() => {
                        *confirm = Some(Confirm::HangUp);
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
}

impl Ui {
    /// Leaves the interests field.
    fn end_editing(&mut self) {
        if let Screen::Main { editing, .. } = &mut self.screen {
            *editing = None;
        }
    }
}
