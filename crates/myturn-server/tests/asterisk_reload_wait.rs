//! `POST /v1/users` with an Asterisk backend answers only once Asterisk
//! can authenticate the new user: after the coalesced write *and* a
//! successful reload. A failing or hanging reload still gets a 201 within
//! the bound (the client retries its REGISTER).
//!
//! The reload command is a script standing in for `asterisk -rx`: it logs
//! each CLI command when it starts and when it finishes, with the user
//! sections the generated file held at that moment, so the tests assert
//! the order of events, not timings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use myturn_server::pbx::reload::RELOAD_TIMEOUT;
use myturn_server::pbx::PbxKind;
use myturn_server::ReloadMethod;
use serde_json::Value;

/// How the fake `asterisk -rx` behaves once the user `alice` is in the
/// generated file (before that, every reload succeeds at once).
#[derive(Clone, Copy)]
enum Mode {
    /// Every CLI command takes 500 ms, then succeeds.
    Slow,
    /// Fails, as with Asterisk down.
    Fail,
    /// Never finishes.
    Hang,
}

struct Env {
    live: common::Live,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn script(dir: &Path, log: &Path, mode: Mode) -> PathBuf {
    let behaviour = match mode {
        Mode::Slow => "*) sleep 0.5 ;;",
        Mode::Fail => {
            "*alice*) echo \"failed $2 $users\" >> \"$LOG\"; \
             echo 'Unable to connect to remote asterisk' >&2; exit 1 ;;"
        }
        Mode::Hang => "*alice*) exec sleep 60 ;;",
    };
    let path = dir.join("fake-asterisk");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             # $1 is -rx, $2 the CLI command.\n\
             LOG='{log}'\n\
             users=$(cat '{dir}/myturn_sip.conf' '{dir}/myturn_pjsip.conf' 2>/dev/null \
               | grep -o '^\\[[A-Za-z0-9_-]*\\]' | sort -u | tr -d '\\n')\n\
             echo \"start $2 $users\" >> \"$LOG\"\n\
             case \"$users\" in\n\
             {behaviour}\n\
             esac\n\
             echo \"done $2 $users\" >> \"$LOG\"\n",
            log = log.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    path
}

async fn env(kind: PbxKind, mode: Mode) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("reloads.log");
    let script = script(dir.path(), &log, mode);
    let mut cfg = common::config();
    cfg.pbx = kind;
    cfg.asterisk_conf_dir = dir.path().into();
    cfg.reload = ReloadMethod::Command;
    cfg.reload_command = format!("sh {} -rx", script.display());
    cfg.coalesce_ms = 20;
    Env {
        live: common::live(&cfg).await,
        log,
        _dir: dir,
    }
}

impl Env {
    /// Registers `name`; the status, the body, and the reload log as it
    /// was the moment the answer arrived.
    async fn register(&self, name: &str) -> (u16, Value, String) {
        let r = self.live.post_user(name).await;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap(), log)
    }
}

fn commands(kind: PbxKind) -> &'static [&'static str] {
    myturn_server::pbx::asterisk::reload_commands(kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_answers_only_after_a_slow_reload_loaded_the_user() {
    for kind in [PbxKind::Asterisk, PbxKind::AsteriskPjsip] {
        let env = env(kind, Mode::Slow).await;
        let (status, body, log) = env.register("alice").await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["sip"]["username"], "alice");
        // Every reload command ran to its end, on files holding alice,
        // before the answer left the server.
        for cmd in commands(kind) {
            let done = format!("done {cmd} [alice]");
            assert!(
                log.lines().any(|l| l == done),
                "{}: answered before `{done}`:\n{log}",
                kind.as_str()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reload_still_answers_201_right_after_the_failure() {
    for kind in [PbxKind::Asterisk, PbxKind::AsteriskPjsip] {
        let env = env(kind, Mode::Fail).await;
        let t = Instant::now();
        let (status, body, log) = env.register("alice").await;
        assert_eq!(status, 201, "{body}");
        assert!(body["sip"]["password"]
            .as_str()
            .is_some_and(|p| !p.is_empty()));
        // The answer followed the failed attempt to load alice.
        let failed = format!("failed {} [alice]", commands(kind)[0]);
        assert!(log.lines().any(|l| l == failed), "{log}");
        assert!(!log.contains("done dialplan reload [alice]"), "{log}");
        // Well within the bound; generous for a loaded machine.
        assert!(t.elapsed() < RELOAD_TIMEOUT, "took {:?}", t.elapsed());
        // The server keeps serving.
        let (status, _, _) = env.register("bob").await;
        assert_eq!(status, 201);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_reload_still_answers_201_within_the_bound() {
    for kind in [PbxKind::Asterisk, PbxKind::AsteriskPjsip] {
        let env = env(kind, Mode::Hang).await;
        let t = Instant::now();
        let (status, body, log) = env.register("alice").await;
        assert_eq!(status, 201, "{body}");
        let elapsed = t.elapsed();
        // The reload that would load alice had started and not finished.
        let cmd = commands(kind)[0];
        assert!(
            log.lines().any(|l| l == format!("start {cmd} [alice]")),
            "{log}"
        );
        assert!(
            !log.lines()
                .any(|l| l.starts_with("done") && l.ends_with("[alice]")),
            "{log}"
        );
        // It waited for the bound (about 3 s), not for the reload's own
        // timeout (10 s); no tighter assertion than that.
        assert!(elapsed < RELOAD_TIMEOUT, "took {elapsed:?}");
        assert!(
            elapsed >= Duration::from_secs(1),
            "did not wait: {elapsed:?}"
        );
    }
}
