//! The full-screen interface in a pseudo-terminal (`script`, read through
//! the `vt100` terminal emulator) on a machine whose ALSA has no card:
//! the library's complaints never reach the screen, one line says there
//! is no sound card, and the headers say the mic is off, on the main
//! screen and in a call with a line-mode partner. On the way, the keys:
//! `--name` logs in without the login screen, Esc stops a wait, hanging
//! up and the next partner ask first (any other key cancels), the ended
//! call leaves its summary, and quitting from the main screen does not
//! ask.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// ALSA's stock configuration: on a machine without cards, opening
/// `default` makes the library print its `ALSA lib …` lines on stderr.
const STOCK: &str = "/usr/share/alsa/alsa.conf";

/// The screen as the emulator holds it, row by row.
fn rows(screen: &Arc<Mutex<vt100::Parser>>) -> Vec<String> {
    let p = screen.lock().unwrap();
    p.screen().rows(0, 100).collect()
}

/// Waits until the screen shows `text`; the screen on failure.
fn wait_for(screen: &Arc<Mutex<vt100::Parser>>, text: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let now = rows(screen);
        if now.iter().any(|r| r.contains(text)) {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {text:?} on the screen:\n{}",
            now.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every row is the interface's: inside its boxes, or its key line.
fn only_drawn(rows: &[String]) {
    for r in rows {
        let t = r.trim_end();
        assert!(
            !t.contains("ALSA") && !t.contains("myturn:"),
            "a stray line: {t:?}\n{}",
            rows.join("\n")
        );
        let first = t.chars().next();
        assert!(
            t.is_empty() || matches!(first, Some('│' | '┌' | '└')) || t.contains(':'),
            "a line the interface did not draw: {t:?}\n{}",
            rows.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sound_card_the_screen_stays_clean_and_says_mic_off() {
    if std::fs::read_to_string("/proc/asound/cards").is_ok_and(|c| c.contains('[')) {
        eprintln!("SKIPPED: this machine has a sound card");
        return;
    }
    if !std::path::Path::new(STOCK).exists() || Command::new("script").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("MYTURN_REQUIRE_INTEROP").is_none(),
            "no ALSA config or script(1)"
        );
        eprintln!("SKIPPED: no {STOCK} or no script(1)");
        return;
    }
    let server = common::serve(&common::builtin_pbx()).await;
    let cmd = format!(
        "stty cols 100 rows 30; exec {} --server {server} --name alice",
        env!("CARGO_BIN_EXE_myturn")
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .env("ALSA_CONFIG_PATH", STOCK)
        .env_remove("MYTURN_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let screen = Arc::new(Mutex::new(vt100::Parser::new(30, 100, 0)));
    let mut out = child.stdout.take().unwrap();
    let feed = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                return;
            }
            feed.lock().unwrap().process(&buf[..n]);
        }
    });
    let mut keys = child.stdin.take().unwrap();
    // Keys; the last ones may find the program gone (it quits).
    let mut press = |k: &str| {
        let _ = keys.write_all(k.as_bytes()).and_then(|()| keys.flush());
    };

    // `--name`: straight to the main screen, no key pressed.
    let main = wait_for(&screen, "Hello, alice");
    let main = if main.iter().any(|r| r.contains("no sound card found")) {
        main
    } else {
        wait_for(&screen, "no sound card found")
    };
    only_drawn(&main);
    let line = "mic off: no sound card found: chat only; --list-devices, --no-audio";
    assert!(main.iter().any(|r| r.contains(line)), "{}", main.join("\n"));

    // Esc while waiting: back to the main screen, still logged in.
    press("r");
    wait_for(&screen, "Looking for a partner");
    press("\x1b");
    let stopped = wait_for(&screen, "Stopped waiting.");
    assert!(
        stopped.iter().any(|r| r.contains("Hello, alice")),
        "{}",
        stopped.join("\n")
    );

    // A call with a line-mode partner: the call's header says mic off.
    let dir = tempfile::tempdir().unwrap();
    let (voice, _) = common::voice(dir.path(), "bob", 7, 1.0);
    let mut bob = common::Proc::start(&server, "bob", &voice, &dir.path().join("bob-heard.wav"));
    bob.expect("sip registered").await;
    bob.send("ready").await;
    press("r");
    let call = wait_for(&screen, "Talking to bob");
    only_drawn(&call);
    let head = call.iter().find(|r| r.contains("Talking to bob")).unwrap();
    assert!(head.contains("mic off"), "{}", call.join("\n"));

    // `n` asks; any other key cancels, and the call goes on.
    press("n");
    wait_for(&screen, "Hang up and draw someone else? y: yes");
    press("x");
    let on = wait_for(&screen, "n: next partner");
    assert!(
        on.iter().any(|r| r.contains("Talking to bob")) && !on.iter().any(|r| r.contains("> x")),
        "{}",
        on.join("\n")
    );
    // `q`, `y`: hung up, and the call's summary on the main screen.
    press("q");
    wait_for(&screen, "Hang up? y: yes");
    press("y");
    let after = wait_for(&screen, "Last call, with bob: You hung up.");
    assert!(
        after
            .iter()
            .any(|r| r.contains(" long, SAS ") && r.contains("frames lost")),
        "{}",
        after.join("\n")
    );
    only_drawn(&after);
    // Nothing would end: `q` quits without asking.
    press("q");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!(
                "q on the main screen did not quit:\n{}",
                rows(&screen).join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    bob.send("quit").await;
}
