//! The task that keeps the PBX's generated files in step with the registry.
//!
//! Writers only call [`PbxSync::mark_dirty`], which never blocks. The task
//! wakes, waits out the coalescing window (so a burst of changes is seen
//! as one), renders from one snapshot, writes only the files whose text
//! changed, and reloads. Failures are logged, counted and shown in
//! `/healthz`, and retried with backoff; the API keeps serving meanwhile.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::asterisk::{RenderOptions, Rendered};
pub use super::backend::SyncState;
use super::backend::{AsteriskFiles, Backend, LiveSummary, NoPbx, Pass, SyncError};
use super::counters::PbxCounters;
use super::reload::Reloader;
use crate::config::PbxKind;
use crate::core::PbxUser;
use crate::prom::counter;

/// First retry delay after a failure; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// How often a node that shares the state asks whether it writes.
const LEASE_CHECK: Duration = Duration::from_secs(1);
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

/// Shared handle between the API (which marks dirty) and the sync task.
#[derive(Debug)]
pub struct PbxSync {
    backend: Box<dyn Backend>,
    window: Duration,
    dirty: Notify,
    status: Mutex<PbxStatus>,
    /// Counters.
    pub counters: PbxCounters,
    /// Bumped by every [`PbxSync::mark_dirty`].
    dirty_generation: AtomicU64,
    /// The generations of the last successful and last failed passes.
    progress: watch::Sender<Progress>,
    /// The sync task is running (not in router-only tests).
    running: std::sync::atomic::AtomicBool,
    /// Set when other nodes share the state: see [`PbxSync::share`].
    shared: std::sync::OnceLock<Writer>,
}

/// Whether this node is the one that writes, while it shares the state.
pub struct Writer(pub Box<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl crate::store::PbxNotify for PbxSync {
    fn changed(&self) -> u64 {
        self.mark_dirty()
    }
}

impl PbxSync {
    /// A handle for Asterisk (or no PBX) as `kind` says, writing into
    /// `dir`, coalescing changes over `window`.
    pub fn new(
        kind: PbxKind,
        dir: PathBuf,
        opts: RenderOptions,
        reloader: Reloader,
        window: Duration,
    ) -> Self {
        let backend: Box<dyn Backend> = match kind {
            // Kamailio: `setup` builds its backend (`with_backend`).
            PbxKind::None | PbxKind::Builtin | PbxKind::Kamailio => Box::new(NoPbx),
            PbxKind::Asterisk | PbxKind::AsteriskPjsip => Box::new(AsteriskFiles {
                kind,
                dir,
                opts,
                reloader,
            }),
        };
        Self::with_backend(backend, window)
    }

    /// A handle for `backend`, coalescing changes over `window` (none for
    /// a backend that applies changes in memory).
    pub fn with_backend(backend: Box<dyn Backend>, window: Duration) -> Self {
        PbxSync {
            window: if backend.in_memory() {
                Duration::ZERO
            } else {
                window
            },
            dirty: Notify::new(),
            status: Mutex::new(PbxStatus {
                // In memory: nothing can be out of step.
                in_sync: backend.in_memory(),
                last_error: None,
            }),
            counters: PbxCounters::default(),
            backend,
            dirty_generation: AtomicU64::new(0),
            progress: watch::channel(Progress::default()).0,
            running: std::sync::atomic::AtomicBool::new(false),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// Other nodes share the state, and so the PBX: passes run only while
    /// `writer` says this node is the one (the Asterisk files have one
    /// writer, chosen by a lease), and the PBX is not emptied at shutdown
    /// (the users live on). While another node writes, registrations here
    /// do not wait for its reload.
    pub fn share(&self, writer: Writer) {
        let _ = self.shared.set(writer);
    }

    fn writes(&self) -> bool {
        self.shared.get().is_none_or(|w| (w.0)())
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
        if !self.backend.active() || !self.running.load(Ordering::Acquire) {
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
        if self.backend.active() {
            self.running.store(true, Ordering::Release);
        }
    }

    /// The backend's name, as `--pbx` spells it.
    pub fn name(&self) -> &'static str {
        self.backend.name()
    }

    /// Tests only: the accounts an in-process PBX holds now.
    #[doc(hidden)]
    pub fn directory(&self) -> Option<Vec<myturn_pbx::core::Account>> {
        self.backend.directory()
    }

    /// Writes this PBX's `/metrics` lines: the sync task's counters, then
    /// whatever the backend reports of itself.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let c = &self.counters;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, v) in [
            (
                "myturn_pbx_config_writes_total",
                "Generated PBX files written.",
                &c.config_writes,
            ),
            (
                "myturn_pbx_write_failures_total",
                "Failed PBX file writes.",
                &c.write_failures,
            ),
            ("myturn_pbx_reloads_total", "PBX reloads done.", &c.reloads),
            (
                "myturn_pbx_reload_failures_total",
                "Failed PBX reloads.",
                &c.reload_failures,
            ),
        ] {
            counter(out, name, help, ld(v));
        }
        let _ = writeln!(out, "# HELP myturn_pbx_in_sync 1 when the PBX holds the current state.\n# TYPE myturn_pbx_in_sync gauge\nmyturn_pbx_in_sync {}", u8::from(self.status().in_sync));
        self.backend.render_metrics(out);
    }

    /// What the console's history samples of the PBX.
    pub fn summary(&self) -> LiveSummary {
        self.backend.summary()
    }

    /// `GET /v1/admin/media`.
    pub fn media(&self) -> myturn_wire::AdminMedia {
        self.backend.media()
    }

    /// The built-in PBX's SIP edge (blocked sources), when it runs here.
    pub fn sip_edge(&self) -> Option<myturn_pbx::driver::PbxHandle> {
        self.backend.sip_edge()
    }

    /// Says the registry changed in a way the PBX must see. Never blocks;
    /// many calls before the task wakes cost one write.
    pub fn mark_dirty(&self) -> u64 {
        let g = self.dirty_generation.fetch_add(1, Ordering::AcqRel) + 1;
        if self.backend.active() {
            self.dirty.notify_one();
        }
        g
    }

    /// The generation of the last change marked: what [`PbxSync::wait_ready`]
    /// waits for after a use case that changed the accounts (the store
    /// marked it already).
    pub fn generation(&self) -> u64 {
        self.dirty_generation.load(Ordering::Acquire)
    }

    /// Current status.
    pub fn status(&self) -> PbxStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_status(&self, r: &Result<(), SyncError>) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(()) => {
                s.in_sync = true;
                s.last_error = None;
            }
            Err(e) => {
                s.in_sync = false;
                s.last_error = Some(e.to_string());
            }
        }
    }

    /// What the PBX holds for `users`, secrets redacted (see
    /// [`Backend::render_redacted`]).
    pub fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered> {
        self.backend.render_redacted(users)
    }

    /// One pass: make the PBX hold `users` (for Asterisk: write changed
    /// files, reload if anything changed or a previous reload failed).
    pub async fn sync_once(&self, users: &[PbxUser], st: &mut SyncState) -> Result<(), SyncError> {
        self.backend
            .apply(Pass {
                users,
                st,
                counters: &self.counters,
            })
            .await
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
    pub async fn run<F, S>(&self, snapshot: F, mut shutdown: watch::Receiver<bool>)
    where
        F: Fn() -> S + Send,
        S: std::future::Future<Output = Vec<PbxUser>> + Send,
    {
        if !self.backend.active() {
            return;
        }
        let mut st = SyncState::default();
        let mut backoff = MIN_BACKOFF;
        self.running.store(true, Ordering::Release);
        // A pass is due: at start, after a change, after a failure, and
        // when this node becomes the writer.
        let mut due = true;
        let mut ok = true;
        let mut retry_at = tokio::time::Instant::now();
        loop {
            if !self.writes() {
                if self.running.swap(false, Ordering::AcqRel) {
                    tracing::info!(pbx = self.name(), "another node writes the PBX config");
                }
                // Its next pass starts from nothing: the other writer may
                // have left the PBX in any state.
                st = SyncState::default();
                due = true;
                tokio::select! {
                    _ = tokio::time::sleep(LEASE_CHECK) => continue,
                    _ = shutdown.wait_for(|&s| s) => break,
                }
            }
            if !self.running.swap(true, Ordering::AcqRel) {
                tracing::info!(pbx = self.name(), "this node writes the PBX config");
            }
            if due {
                // Everything marked before the snapshot is in it.
                let g = self.dirty_generation.load(Ordering::Acquire);
                ok = self.pass(&snapshot().await, &mut st).await;
                self.progress.send_modify(|p| {
                    if ok {
                        p.loaded = g;
                    } else {
                        p.failed = g;
                    }
                });
                if ok {
                    backoff = MIN_BACKOFF;
                } else {
                    retry_at = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            due = tokio::select! {
                _ = self.dirty.notified() => true,
                // Only to see whether this node still writes.
                _ = tokio::time::sleep(LEASE_CHECK), if self.shared.get().is_some() => false,
                _ = tokio::time::sleep_until(retry_at), if !ok => true,
                _ = shutdown.wait_for(|&s| s) => break,
            };
            if due {
                tokio::select! {
                    _ = tokio::time::sleep(self.window) => {}
                    _ = shutdown.wait_for(|&s| s) => break,
                }
            }
        }
        let wrote = self.running.swap(false, Ordering::AcqRel);
        if self.shared.get().is_some() {
            tracing::info!("shutting down: the PBX config stays for the other nodes");
        } else if wrote {
            tracing::info!("shutting down: removing every user from the PBX config");
            self.pass(&[], &mut st).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The sync task's view of a shared list of users.
    fn snapshot_of(
        users: Arc<std::sync::Mutex<Vec<PbxUser>>>,
    ) -> impl Fn() -> std::future::Ready<Vec<PbxUser>> + Send {
        move || std::future::ready(users.lock().unwrap().clone())
    }

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
        let task = tokio::spawn(async move { s2.run(|| async { vec![user(0)] }, rx).await });
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
            let task = tokio::spawn(async move { s2.run(snapshot_of(u2), rx).await });
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
        let task = tokio::spawn(async move { s2.run(snapshot_of(u2), rx).await });
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
