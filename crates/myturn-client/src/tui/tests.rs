//! The interface's unit tests: keys and progress drive the view-model,
//! which renders into ratatui's `TestBackend`.

use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use super::state::{Action, CallFigures, Screen, Ui};
use crate::call::Progress;

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

/// The interface once `alice` registered: the main screen.
fn registered_alice() -> Ui {
    let mut ui = Ui::default();
    ui.on_progress(Progress::Registered {
        name: "alice".into(),
        extension: "111000".into(),
    });
    ui
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
    ui.logging_in("alice".into());
    let text = screen_text(&ui);
    assert!(text.contains("Logging in as alice…"), "{text}");
    // Keys wait while the server answers (Ctrl-C still quits).
    let before = ui.clone();
    assert_eq!(ui.on_key(key(KeyCode::Char('x'))), None);
    assert_eq!(ui.on_key(key(KeyCode::Enter)), None);
    assert_eq!(ui, before);
    ui.login_failed("alice".into(), "the name `alice` is taken".into());
    let text = screen_text(&ui);
    assert!(text.contains("the name `alice` is taken"), "{text}");
    // The refused name is there to fix.
    assert!(text.contains("Nickname: alice_"), "{text}");
    ui.on_key(key(KeyCode::Char('2')));
    assert_eq!(
        ui.on_key(key(KeyCode::Enter)),
        Some(Action::Login("alice2".into()))
    );
}

#[test]
fn main_wait_and_convo_screens() {
    let mut ui = registered_alice();
    let text = screen_text(&ui);
    assert!(
        text.contains("Hello, alice") && text.contains("111000"),
        "{text}"
    );
    assert_eq!(ui.on_key(key(KeyCode::Char('r'))), Some(Action::Ready));
    ui.on_progress(Progress::Waiting {
        interests: Vec::new(),
        only: false,
    });
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
        shared: Vec::new(),
    });
    assert!(screen_text(&ui).contains("paired with bob"));
    ui.on_progress(Progress::Connected {
        sas: "KQ7M2D".into(),
    });
    ui.set_figures(CallFigures {
        level: 0.5,
        loss_percent: 1.5,
        lost: 3,
        late: 1,
        jitter_ms: 12.0,
        elapsed: Duration::from_secs(65),
        codec: "opus".into(),
        kbps: 58.4,
        concealed: 3,
        recovered: 7,
        delay_ms: 40.0,
    });
    let text = screen_text(&ui);
    assert!(text.contains("Talking to bob"), "{text}");
    assert!(text.contains("SAS KQ7M2D"));
    assert!(text.contains("01:05") && text.contains("loss 1.5%") && text.contains("jitter 12 ms"));
    assert!(text.contains("mic on"));
    assert!(
        text.contains("opus 58 kbit/s")
            && text.contains("concealed 3")
            && text.contains("recovered 7")
            && text.contains("delay 40 ms"),
        "{text}"
    );
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

    // m toggles the mic (the asking keys are in `tests` below).
    assert_eq!(ui.on_key(key(KeyCode::Char('m'))), Some(Action::ToggleMic));
    ui.set_muted(true);
    assert!(screen_text(&ui).contains("mic OFF"));

    ui.on_progress(Progress::Ended { by_us: false });
    assert!(screen_text(&ui).contains("Your partner hung up."));
    // Nothing would end: quitting does not ask.
    assert_eq!(ui.on_key(ctrl_c()), Some(Action::Quit));
}

fn ctrl_c() -> KeyEvent {
    KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
}

/// `alice` waiting for a partner.
fn waiting_alice() -> Ui {
    let mut ui = registered_alice();
    ui.on_progress(Progress::Waiting {
        interests: Vec::new(),
        only: false,
    });
    ui
}

/// `alice` in a call with `bob` (SAS KQ7M2D), a minute and five seconds
/// in, 3 frames lost and 1 late.
fn alice_talking_to_bob() -> Ui {
    let mut ui = waiting_alice();
    ui.on_progress(Progress::Paired {
        peer: "bob".into(),
        role: myturn_wire::Role::Caller,
        shared: Vec::new(),
    });
    ui.on_progress(Progress::Connected {
        sas: "KQ7M2D".into(),
    });
    ui.set_figures(CallFigures {
        loss_percent: 1.5,
        lost: 3,
        late: 1,
        elapsed: Duration::from_secs(65),
        ..CallFigures::default()
    });
    ui
}

/// The key asks `question`; any other key (each of `cancels`, asked
/// afresh) leaves the state as it was; then `y` gives `then`.
fn asks_then(mut ui: Ui, ask: KeyEvent, question: &str, then: Action) {
    let before = ui.clone();
    for cancel in [
        key(KeyCode::Char('n')),
        key(KeyCode::Char('x')),
        key(KeyCode::Enter),
        key(KeyCode::Esc),
        key(KeyCode::Char('q')),
    ] {
        assert_eq!(ui.on_key(ask), None, "{question}: asks, does nothing yet");
        let text = screen_text(&ui);
        assert!(text.contains(question), "{question}\n{text}");
        assert_eq!(ui.on_key(cancel), None, "{question}: {cancel:?} cancels");
        assert_eq!(ui, before, "{question}: {cancel:?} changed something");
        assert!(!screen_text(&ui).contains(question));
    }
    assert_eq!(ui.on_key(ask), None);
    assert_eq!(ui.on_key(key(KeyCode::Char('y'))), Some(then.clone()));
    assert_eq!(ui.on_key(ask), None);
    assert_eq!(ui.on_key(key(KeyCode::Char('Y'))), Some(then));
}

#[test]
fn hanging_up_asks_first() {
    asks_then(
        alice_talking_to_bob(),
        key(KeyCode::Char('q')),
        "Hang up? y: yes, any other key: no",
        Action::HangUp,
    );
}

#[test]
fn the_next_partner_asks_first() {
    asks_then(
        alice_talking_to_bob(),
        key(KeyCode::Char('n')),
        "Hang up and draw someone else? y: yes, any other key: no",
        Action::Next,
    );
}

#[test]
fn quitting_in_a_call_or_while_waiting_asks_first() {
    asks_then(
        alice_talking_to_bob(),
        ctrl_c(),
        "Hang up and quit? y: yes, any other key: no",
        Action::Quit,
    );
    asks_then(
        waiting_alice(),
        ctrl_c(),
        "Stop waiting and quit? y: yes, any other key: no",
        Action::Quit,
    );
    // A second Ctrl-C quits at once, whatever was asked.
    for (mut ui, ask) in [
        (alice_talking_to_bob(), ctrl_c()),
        (alice_talking_to_bob(), key(KeyCode::Char('q'))),
        (waiting_alice(), ctrl_c()),
    ] {
        assert_eq!(ui.on_key(ask), None);
        assert_eq!(ui.on_key(ctrl_c()), Some(Action::Quit));
    }
}

#[test]
fn a_cancelled_question_keeps_a_half_typed_line() {
    let mut ui = waiting_alice();
    for c in "hel".chars() {
        ui.on_key(key(KeyCode::Char(c)));
    }
    let before = ui.clone();
    assert_eq!(ui.on_key(ctrl_c()), None);
    assert_eq!(ui.on_key(key(KeyCode::Char('l'))), None);
    assert_eq!(ui, before, "the cancelling key is not typed");
    assert!(screen_text(&ui).contains("> hel_"));
}

#[test]
fn quitting_where_nothing_would_end_does_not_ask() {
    let mut ui = Ui::default();
    assert_eq!(ui.on_key(key(KeyCode::Esc)), Some(Action::Quit));
    assert_eq!(ui.on_key(ctrl_c()), Some(Action::Quit));
    for k in [key(KeyCode::Char('q')), key(KeyCode::Esc), ctrl_c()] {
        let mut ui = registered_alice();
        assert!(screen_text(&ui).contains("q: quit"));
        assert_eq!(ui.on_key(k), Some(Action::Quit), "{k:?}");
    }
    let mut ui = registered_alice();
    ui.show_devices(vec![], vec![]);
    assert_eq!(ui.on_key(ctrl_c()), Some(Action::Quit));
}

#[test]
fn a_question_goes_with_the_call_it_was_about() {
    // Asked to hang up, but the partner hung up first: `y` on the main
    // screen then means nothing.
    let mut ui = alice_talking_to_bob();
    assert_eq!(ui.on_key(key(KeyCode::Char('q'))), None);
    ui.on_progress(Progress::Ended { by_us: false });
    assert!(matches!(ui.screen, Screen::Main { .. }));
    assert!(!screen_text(&ui).contains("Hang up?"));
    assert_eq!(ui.on_key(key(KeyCode::Char('y'))), None);
    // Asked to quit while waiting, then the call came: the question is
    // gone and `y` is a chat key.
    let mut ui = waiting_alice();
    assert_eq!(ui.on_key(ctrl_c()), None);
    ui.on_progress(Progress::Connected { sas: "ABC".into() });
    assert_eq!(ui.on_key(key(KeyCode::Char('y'))), None);
    assert!(screen_text(&ui).contains("> y_"));
}

#[test]
fn esc_while_waiting_stops_waiting_without_quitting() {
    let mut ui = waiting_alice();
    let text = screen_text(&ui);
    assert!(
        text.contains("Esc: stop waiting") && text.contains("Ctrl-C: quit"),
        "{text}"
    );
    // With a line typed, Esc first clears it.
    ui.on_key(key(KeyCode::Char('h')));
    assert_eq!(ui.on_key(key(KeyCode::Esc)), None);
    assert!(matches!(&ui.screen, Screen::Wait { input, .. } if input.is_empty()));
    assert_eq!(ui.on_key(key(KeyCode::Esc)), Some(Action::StopWaiting));
    assert!(screen_text(&ui).contains("Stopping the wait…"));
    // The flow stopped: busy on the main screen, ready again with r.
    ui.stopped_waiting();
    let text = screen_text(&ui);
    assert!(
        text.contains("Stopped waiting.") && text.contains("Hello, alice"),
        "{text}"
    );
    assert_eq!(ui.on_key(key(KeyCode::Char('r'))), Some(Action::Ready));
}

#[test]
fn a_call_that_ends_leaves_its_summary() {
    let mut ui = alice_talking_to_bob();
    assert_eq!(ui.last_call, None);
    ui.on_progress(Progress::Ended { by_us: false });
    let text = screen_text(&ui);
    assert!(
        text.contains("Last call, with bob: Your partner hung up."),
        "{text}"
    );
    assert!(
        text.contains("01:05 long, SAS KQ7M2D, 3 frames lost (1.5%), 1 late"),
        "{text}"
    );
    // A second word of the same ending (the BYE after `peer_left`)
    // changes nothing.
    let before = ui.clone();
    ui.call_ended("You hung up.".into());
    ui.on_progress(Progress::Ended { by_us: true });
    assert_eq!(ui, before);
    // The next wait's lobby starts with it.
    ui.on_progress(Progress::Waiting {
        interests: Vec::new(),
        only: false,
    });
    let text = screen_text(&ui);
    assert!(
        text.contains("Last call, with bob: Your partner hung up.") && text.contains("SAS KQ7M2D"),
        "{text}"
    );
}

#[test]
fn the_summary_says_who_ended_the_call_and_why() {
    for (ended, shown) in [
        ("You hung up.", "Last call, with bob: You hung up."),
        (
            "Your partner is gone (kicked).",
            "Last call, with bob: Your partner is gone (kicked).",
        ),
    ] {
        let mut ui = alice_talking_to_bob();
        ui.set_figures(CallFigures {
            elapsed: Duration::from_secs(3),
            ..CallFigures::default()
        });
        ui.call_ended(ended.into());
        let text = screen_text(&ui);
        assert!(text.contains(shown), "{text}");
        assert!(
            text.contains("00:03 long, SAS KQ7M2D, 0 frames lost (0.0%), 0 late"),
            "{text}"
        );
    }
    // The newest call's summary replaces the last one.
    let mut ui = alice_talking_to_bob();
    ui.call_ended("You hung up.".into());
    ui.on_progress(Progress::Waiting {
        interests: Vec::new(),
        only: false,
    });
    ui.on_progress(Progress::Paired {
        peer: "carol".into(),
        role: myturn_wire::Role::Callee,
        shared: Vec::new(),
    });
    ui.on_progress(Progress::Connected { sas: "ZZ9".into() });
    ui.call_ended("Your partner hung up.".into());
    let text = screen_text(&ui);
    assert!(
        text.contains("Last call, with carol: Your partner hung up.") && !text.contains("bob"),
        "{text}"
    );
}

#[test]
fn sound_devices_are_picked_with_the_keyboard() {
    let mut ui = registered_alice();
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

#[test]
fn interests_are_edited_on_the_ready_screen_and_shown_while_waiting() {
    let mut ui = registered_alice();
    assert!(screen_text(&ui).contains("Interests: none"));
    assert_eq!(ui.on_key(key(KeyCode::Char('i'))), None);
    for c in "Music, <b>".chars() {
        assert_eq!(ui.on_key(key(KeyCode::Char(c))), None);
    }
    // A bad tag is named, and the field stays open to fix it.
    assert_eq!(ui.on_key(key(KeyCode::Enter)), None);
    assert!(screen_text(&ui).contains("\"<b>\""), "{}", screen_text(&ui));
    for _ in 0..4 {
        ui.on_key(key(KeyCode::Backspace));
    }
    for c in " rust".chars() {
        ui.on_key(key(KeyCode::Char(c)));
    }
    assert_eq!(ui.on_key(key(KeyCode::Enter)), None);
    assert_eq!(ui.interests, ["music", "rust"]);
    assert!(screen_text(&ui).contains("Interests: music, rust"));
    // `r` is ready again once the field is closed.
    assert_eq!(ui.on_key(key(KeyCode::Char('r'))), Some(Action::Ready));
    ui.on_progress(Progress::Waiting {
        interests: vec!["music".into(), "rust".into()],
        only: true,
    });
    assert!(screen_text(&ui).contains("Looking only for someone into music, rust"));
    ui.on_progress(Progress::Paired {
        peer: "bob".into(),
        role: myturn_wire::Role::Callee,
        shared: vec!["rust".into()],
    });
    assert!(screen_text(&ui).contains("you share rust"));
}
