//! The task that keeps the PBX's generated files in step with the registry.
//!
//! Writers only call [`PbxSync::mark_dirty`], which never blocks. The task
//! wakes, waits out the coalescing window (so a burst of changes is seen
//! as one), renders from one snapshot, writes only the files whose text
//! changed, and reloads. Failures are logged, counted and shown in
//! `/healthz`, and retried with backoff; the API keeps serving meanwhile.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::asterisk::{render, RenderOptions, Rendered};
use super::files::write_atomic;
use super::reload::Reloader;
use super::PbxKind;
use crate::registry::PbxUser;
use myturn_pbx::core::Account;
use myturn_pbx::driver::PbxHandle;

/// The admin view of the built-in PBX.
fn render_builtin(users: &[PbxUser], handle: &PbxHandle) -> String {
    use std::fmt::Write as _;
    let bindings = handle.bindings();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; Built-in PBX on {}: {} account(s), {} registered, {} source(s) blocked",
        handle.local,
        users.len(),
        bindings.len(),
        handle.blocked_ips()
    );
    for u in users {
        let b = bindings.iter().find(|(name, _, _)| *name == u.name);
        let _ = writeln!(out, "\n[{}]", u.name);
        let _ = writeln!(out, "extension={}", u.extension);
        let _ = writeln!(out, "secret={}", super::asterisk::REDACTED);
        match b {
            Some((_, contact, source)) => {
                let _ = writeln!(out, "contact={contact}");
                let _ = writeln!(out, "source={source}");
            }
            None => {
                let _ = writeln!(out, "contact=(not registered)");
            }
        }
    }
    out
}

/// First retry delay after a failure; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long `POST /v1/users` waits for the PBX to take a new account
/// ([`PbxSync::wait_ready`]) before answering anyway.
pub const READY_WAIT: Duration = Duration::from_secs(3);

/// What [`PbxSync::wait_ready`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The PBX holds every change up to the generation (files written and
    /// reloaded, or the built-in directory published): it can
    /// authenticate the new account.
    Loaded,
    /// Nothing to wait for: no PBX (`--pbx none`), or no sync task
    /// running (router-only tests).
    NoSync,
    /// The sync pass that covered the generation failed (write or
    /// reload); the task retries with backoff.
    Failed(String),
    /// The bound passed first (e.g. a reload that hangs).
    TimedOut,
}

/// How far the sync task got: the generation of the last pass that
/// succeeded and of the last one that failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    loaded: u64,
    failed: u64,
}

/// Whether the PBX holds the current state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbxStatus {
    /// The last write + reload succeeded.
    pub in_sync: bool,
    /// The last error, while out of sync.
    pub last_error: Option<String>,
}

/// Counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct PbxCounters {
    /// Generated files written.
    pub config_writes: AtomicU64,
    /// Failed file writes.
    pub write_failures: AtomicU64,
    /// Successful reloads.
    pub reloads: AtomicU64,
    /// Failed reloads.
    pub reload_failures: AtomicU64,
}

/// The link to the built-in PBX: its account directory and its figures.
#[derive(Debug)]
pub struct BuiltinLink {
    /// Every sync pass publishes the whole directory here.
    pub directory: watch::Sender<Vec<Account>>,
    /// Bindings, counters, blocked sources.
    pub handle: PbxHandle,
}

/// The built-in PBX's accounts for `users`.
pub fn accounts(users: &[PbxUser]) -> Vec<Account> {
    users
        .iter()
        .map(|u| Account {
            username: u.name.clone(),
            extension: u.extension.to_string(),
            password: u.secret.clone(),
        })
        .collect()
}

/// Shared handle between the API (which marks dirty) and the sync task.
#[derive(Debug)]
pub struct PbxSync {
    kind: PbxKind,
    dir: PathBuf,
    opts: RenderOptions,
    reloader: Reloader,
    window: Duration,
    dirty: Notify,
    status: Mutex<PbxStatus>,
    /// Counters.
    pub counters: PbxCounters,
    /// With `--pbx builtin`.
    pub builtin: Option<BuiltinLink>,
    /// Bumped by every [`PbxSync::mark_dirty`].
    dirty_generation: AtomicU64,
    /// The generations of the last successful and last failed passes.
    progress: watch::Sender<Progress>,
    /// The sync task is running (not in router-only tests).
    running: std::sync::atomic::AtomicBool,
}

/// Remembers what is on disk, so unchanged files are not rewritten.
#[derive(Debug, Default)]
pub struct SyncState {
    written: HashMap<&'static str, String>,
    reload_pending: bool,
}

impl PbxSync {
    /// A handle for `kind`, writing into `dir`, coalescing changes over
    /// `window`.
    pub fn new(
        kind: PbxKind,
        dir: PathBuf,
        opts: RenderOptions,
        reloader: Reloader,
        window: Duration,
    ) -> Self {
        PbxSync {
            kind,
            dir,
            opts,
            reloader,
            window,
            dirty: Notify::new(),
            status: Mutex::new(PbxStatus {
                // In memory for the built-in PBX: nothing can be out of step.
                in_sync: matches!(kind, PbxKind::None | PbxKind::Builtin),
                last_error: None,
            }),
            counters: PbxCounters::default(),
            builtin: None,
            dirty_generation: AtomicU64::new(0),
            progress: watch::channel(Progress::default()).0,
            running: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Waits, at most `timeout`, until the PBX can authenticate every
    /// account marked dirty up to generation `g` (what
    /// [`PbxSync::mark_dirty`] returned): with the built-in PBX, until the
    /// directory is published; with Asterisk, until the coalesced write
    /// *and* the reload after it succeeded. Returns early when the pass
    /// that covered `g` failed, and at once when no sync task runs.
    ///
    /// A new user's first SIP REGISTER may follow its HTTP registration at
    /// once, so the API answers only after this, whatever the backend.
    pub async fn wait_ready(&self, g: u64, timeout: Duration) -> Readiness {
        if self.kind == PbxKind::None || !self.running.load(Ordering::Acquire) {
            return Readiness::NoSync;
        }
        let mut rx = self.progress.subscribe();
        let settled = async {
            rx.wait_for(|p| p.loaded >= g || p.failed >= g)
                .await
                .map(|p| p.loaded >= g)
        };
        match tokio::time::timeout(timeout, settled).await {
            Ok(Ok(true)) => Readiness::Loaded,
            Ok(Ok(false)) => Readiness::Failed(
                self.status()
                    .last_error
                    .unwrap_or_else(|| "sync failed".to_owned()),
            ),
            // The sender lives as long as `self`: cannot happen.
            Ok(Err(_)) => Readiness::NoSync,
            Err(_) => Readiness::TimedOut,
        }
    }

    /// Marks the sync task as about to run, so [`PbxSync::wait_ready`]
    /// waits for it even before the spawned task was first polled.
    /// [`PbxSync::run`] does the same itself.
    pub fn starting(&self) {
        if self.kind != PbxKind::None {
            self.running.store(true, Ordering::Release);
        }
    }

    /// Attaches the built-in PBX (with `--pbx builtin`).
    pub fn with_builtin(mut self, link: BuiltinLink) -> Self {
        self.builtin = Some(link);
        self
    }

    /// The backend.
    pub fn kind(&self) -> PbxKind {
        self.kind
    }

    /// Says the registry changed in a way the PBX must see. Never blocks;
    /// many calls before the task wakes cost one write.
    pub fn mark_dirty(&self) -> u64 {
        let g = self.dirty_generation.fetch_add(1, Ordering::AcqRel) + 1;
        if self.kind != PbxKind::None {
            self.dirty.notify_one();
        }
        g
    }

    /// Current status.
    pub fn status(&self) -> PbxStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_status(&self, r: &Result<(), String>) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(()) => {
                s.in_sync = true;
                s.last_error = None;
            }
            Err(e) => {
                s.in_sync = false;
                s.last_error = Some(e.clone());
            }
        }
    }

    /// The files as they would be written for `users`, secrets redacted;
    /// for the built-in PBX, its directory and live bindings in the same
    /// shape (what an operator would otherwise read in sip.conf).
    pub fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered> {
        if let Some(b) = &self.builtin {
            return vec![Rendered {
                name: "builtin",
                content: render_builtin(users, &b.handle),
            }];
        }
        render(self.kind, users, &self.opts, true)
    }

    /// One pass: render `users`, write changed files, reload if anything
    /// changed (or a previous reload failed).
    pub async fn sync_once(&self, users: &[PbxUser], st: &mut SyncState) -> Result<(), String> {
        if let Some(b) = &self.builtin {
            // In memory: the PBX applies it at once (users that left lose
            // their binding immediately).
            b.directory.send_replace(accounts(users));
            return Ok(());
        }
        let c = &self.counters;
        for f in render(self.kind, users, &self.opts, false) {
            if st.written.get(f.name) == Some(&f.content) {
                continue;
            }
            if let Err(e) = write_atomic(&self.dir, f.name, f.content.as_bytes()) {
                c.write_failures.fetch_add(1, Ordering::Relaxed);
                return Err(e.to_string());
            }
            c.config_writes.fetch_add(1, Ordering::Relaxed);
            st.written.insert(f.name, f.content);
            st.reload_pending = true;
        }
        if st.reload_pending {
            if let Err(e) = self.reloader.reload(self.kind.reload_commands()).await {
                c.reload_failures.fetch_add(1, Ordering::Relaxed);
                return Err(format!("reload failed: {e}"));
            }
            c.reloads.fetch_add(1, Ordering::Relaxed);
            st.reload_pending = false;
        }
        Ok(())
    }

    async fn pass(&self, users: &[PbxUser], st: &mut SyncState) -> bool {
        let r = self.sync_once(users, st).await;
        match &r {
            Ok(()) => tracing::debug!(users = users.len(), "PBX config in sync"),
            Err(e) => tracing::warn!(error = %e, "PBX out of sync; will retry"),
        }
        let was_ok = self.status().in_sync;
        self.set_status(&r);
        if r.is_ok() && !was_ok {
            tracing::info!(users = users.len(), "PBX config in sync again");
        }
        r.is_ok()
    }

    /// The sync task. Runs until `shutdown` flips to `true`, then writes
    /// the files empty (no user data outlives the process) and returns.
    pub async fn run<F>(&self, snapshot: F, mut shutdown: watch::Receiver<bool>)
    where
        F: Fn() -> Vec<PbxUser> + Send,
    {
        if self.kind == PbxKind::None {
            return;
        }
        let mut st = SyncState::default();
        let mut backoff = MIN_BACKOFF;
        self.running.store(true, Ordering::Release);
        loop {
            // Everything marked before the snapshot is in it.
            let g = self.dirty_generation.load(Ordering::Acquire);
            let ok = self.pass(&snapshot(), &mut st).await;
            self.progress.send_modify(|p| {
                if ok {
                    p.loaded = g;
                } else {
                    p.failed = g;
                }
            });
            if ok {
                backoff = MIN_BACKOFF;
            }
            tokio::select! {
                _ = self.dirty.notified() => {}
                _ = tokio::time::sleep(backoff), if !ok => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                _ = shutdown.wait_for(|&s| s) => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(self.window) => {}
                _ = shutdown.wait_for(|&s| s) => break,
            }
        }
        self.running.store(false, Ordering::Release);
        tracing::info!("shutting down: removing every user from the PBX config");
        self.pass(&[], &mut st).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn user(i: u32) -> PbxUser {
        PbxUser {
            name: format!("user{i}"),
            extension: 111_000 + i,
            secret: format!("secret{i:018}"),
        }
    }

    #[tokio::test]
    async fn unchanged_state_is_not_rewritten_or_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let s = PbxSync::new(
            PbxKind::Asterisk,
            dir.path().into(),
            RenderOptions::default(),
            Reloader::None,
            Duration::ZERO,
        );
        let mut st = SyncState::default();
        let users = vec![user(0), user(1)];
        s.sync_once(&users, &mut st).await.unwrap();
        assert_eq!(s.counters.config_writes.load(Ordering::Relaxed), 2);
        s.sync_once(&users, &mut st).await.unwrap();
        assert_eq!(s.counters.config_writes.load(Ordering::Relaxed), 2);
        assert_eq!(s.counters.reloads.load(Ordering::Relaxed), 1);
        let text = std::fs::read_to_string(dir.path().join("myturn_sip.conf")).unwrap();
        assert!(text.contains("[user1]") && text.contains("secret=secret000000000000000001"));
    }

    #[tokio::test]
    async fn failed_reload_is_retried_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("asterisk-up");
        let script = dir.path().join("rx.sh");
        std::fs::write(&script, format!("#!/bin/sh\ntest -e {} || {{ echo 'Unable to connect to remote asterisk' >&2; exit 1; }}\n", flag.display())).unwrap();
        let s = Arc::new(PbxSync::new(
            PbxKind::Asterisk,
            dir.path().into(),
            RenderOptions::default(),
            Reloader::command(&format!("sh {}", script.display())).unwrap(),
            Duration::from_millis(10),
        ));
        let (tx, rx) = watch::channel(false);
        let s2 = s.clone();
        let task = tokio::spawn(async move { s2.run(|| vec![user(0)], rx).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let st = s.status();
        assert!(!st.in_sync);
        assert!(st.last_error.unwrap().contains("Unable to connect"));
        assert!(s.counters.reload_failures.load(Ordering::Relaxed) >= 1);
        // The files were written even though the reload failed.
        assert!(dir.path().join("myturn_sip.conf").exists());
        std::fs::write(&flag, "").unwrap();
        for _ in 0..100 {
            if s.status().in_sync {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(s.status().in_sync, "{:?}", s.status());
        tx.send(true).unwrap();
        task.await.unwrap();
        // Shut down: the users are gone from the files.
        let text = std::fs::read_to_string(dir.path().join("myturn_sip.conf")).unwrap();
        assert!(!text.contains("[user0]"), "{text}");
    }

    #[tokio::test]
    async fn wait_ready_follows_the_pass_that_covers_the_generation() {
        for (reloader, ok) in [
            (Reloader::None, true),
            (Reloader::command("false").unwrap(), false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let s = Arc::new(PbxSync::new(
                PbxKind::AsteriskPjsip,
                dir.path().into(),
                RenderOptions::default(),
                reloader,
                Duration::from_millis(10),
            ));
            let long = Duration::from_secs(30);
            // No task: nothing to wait for.
            assert_eq!(s.wait_ready(s.mark_dirty(), long).await, Readiness::NoSync);
            let users: Arc<std::sync::Mutex<Vec<PbxUser>>> = Arc::default();
            let (tx, rx) = watch::channel(false);
            s.starting();
            let (s2, u2) = (s.clone(), users.clone());
            let task =
                tokio::spawn(async move { s2.run(move || u2.lock().unwrap().clone(), rx).await });
            users.lock().unwrap().push(user(7));
            let r = s.wait_ready(s.mark_dirty(), long).await;
            if ok {
                assert_eq!(r, Readiness::Loaded);
                let text = std::fs::read_to_string(dir.path().join("myturn_pjsip.conf")).unwrap();
                assert!(text.contains("[user7](myturn.endpoint)"), "{text}");
            } else {
                assert!(
                    matches!(&r, Readiness::Failed(e) if e.contains("reload failed")),
                    "{r:?}"
                );
            }
            tx.send(true).unwrap();
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_burst_of_changes_costs_few_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(PbxSync::new(
            PbxKind::Asterisk,
            dir.path().into(),
            RenderOptions::default(),
            Reloader::None,
            Duration::from_millis(100),
        ));
        let users: Arc<std::sync::Mutex<Vec<PbxUser>>> = Arc::default();
        let (tx, rx) = watch::channel(false);
        let (s2, u2) = (s.clone(), users.clone());
        let task =
            tokio::spawn(async move { s2.run(move || u2.lock().unwrap().clone(), rx).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let base = s.counters.config_writes.load(Ordering::Relaxed);
        for i in 0..1000 {
            users.lock().unwrap().push(user(i));
            s.mark_dirty();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let writes = s.counters.config_writes.load(Ordering::Relaxed) - base;
        assert!(
            (2..=4).contains(&writes),
            "{writes} writes for 1000 changes"
        );
        let text = std::fs::read_to_string(dir.path().join("myturn_extensions.conf")).unwrap();
        assert_eq!(text.matches("Dial(SIP/").count(), 1000);
        tx.send(true).unwrap();
        task.await.unwrap();
    }
}
