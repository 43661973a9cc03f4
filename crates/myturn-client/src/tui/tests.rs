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
    ui.login_failed("the name `alice` is taken".into());
    let text = screen_text(&ui);
    assert!(text.contains("the name `alice` is taken"), "{text}");
    assert!(text.contains("Nickname: _"));
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
