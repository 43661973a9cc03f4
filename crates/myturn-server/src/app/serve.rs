//! Serving: the HTTP(S) listener and the background tasks, until a
//! shutdown signal; then the PBX cleared (alone) and the shared state
//! left (with others).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::notify::{self, Notifier};
use super::reload::spawn_blocklist_reload;
use super::{App, StartError};
use crate::config::Config;
use crate::core::cases::views::UserCount;
use crate::http::ops::readiness;
use crate::node::{history, pbx_watch, sweeper, AppState};
use crate::tls;

impl App {
    /// Serves HTTP on `listener` and runs the background tasks (PBX sync,
    /// the built-in PBX, lease sweeper, history, PBX watch) until `shutdown`
    /// resolves; then drains requests, clears the PBX (a node alone on
    /// its state) and leaves the nodes it shares its state with.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = self.state.clone();
        // Before the first request: registrations wait for the sync task.
        state.pbx.starting();
        let pbx_task = {
            let (pbx, state) = (state.pbx.clone(), state.clone());
            let rx = stop_rx.clone();
            let snapshot = move || {
                let state = state.clone();
                async move {
                    state
                        .run(crate::core::cases::views::PbxUsers)
                        .await
                        .unwrap_or_default()
                }
            };
            tokio::spawn(async move { pbx.run(snapshot, rx).await })
        };
        let sip_task = match &self.builtin {
            Some(b) => Some(b.spawn(state.now().mono, self.tls.as_ref(), &stop_rx)?),
            None => None,
        };
        let history = history::spawn(state.clone(), stop_rx.clone());
        let watch = pbx_watch::spawn(state.clone(), stop_rx.clone());
        let reload = self
            .blocklist
            .clone()
            .map(|(path, list)| spawn_blocklist_reload(path, list, stop_rx.clone()));
        let sweeper = sweeper::spawn(state.clone(), stop_rx.clone());
        let result = self.serve_http(listener, shutdown, &stop_rx).await;
        let _ = stop_tx.send(true);
        let _ = sweeper.await;
        let _ = history.await;
        let _ = watch.await;
        if let Some(t) = reload {
            let _ = t.await;
        }
        let _ = pbx_task.await;
        if let Some(t) = sip_task {
            let _ = t.await;
        }
        state.store.leave().await;
        result
    }

    /// The HTTP(S) listener until `shutdown`.
    async fn serve_http(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        match &self.tls {
            Some(store) => {
                tokio::spawn(tls::watch(store.clone(), stop.clone()));
                // HSTS: browsers and HTTP clients that honour it never
                // fall back to plain HTTP for this host.
                let router = self.router().layer(
                    tower_http::set_header::SetResponseHeaderLayer::overriding(
                        axum::http::header::STRICT_TRANSPORT_SECURITY,
                        axum::http::HeaderValue::from_static("max-age=31536000"),
                    ),
                );
                tls::serve(
                    crate::http::limits::Limited::new(listener, self.http_limits.clone()),
                    store.server_config(),
                    router,
                    shutdown,
                    self.state.metrics.tls_handshake_failures.clone(),
                )
                .await
            }
            None => {
                // Per-IP connection limit, and TCP_NODELAY: events are
                // small writes; Nagle would hold one back behind an
                // unacknowledged ping for the peer's delayed ACK (40 ms).
                use axum::serve::ListenerExt;
                let listener =
                    crate::http::limits::Limited::new(listener, self.http_limits.clone())
                        // axum's ConnectInfo<SocketAddr> is for a tapped listener.
                        .tap_io(|_| ());
                axum::serve(
                    listener,
                    self.router()
                        .into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}

/// Starts the server as configured and serves until Ctrl-C or SIGTERM,
/// telling systemd (when it started the process, `$NOTIFY_SOCKET`) how
/// it goes: `READY=1` once `/readyz` would say ready, `STATUS=` lines,
/// `WATCHDOG=1` pings, `STOPPING=1`.
pub async fn run(cfg: Config) -> Result<(), StartError> {
    let notify = Notifier::from_env().map(Arc::new);
    // From the start: connecting to the state store may take a while.
    let watchdog = notify
        .clone()
        .zip(notify::watchdog_interval())
        .map(|(n, every)| tokio::spawn(async move { n.watchdog(every).await }));
    if let Some(n) = &notify {
        let state = match cfg.state {
            crate::config::StateUrl::Memory => "memory",
            // Not the URL: it may hold a password.
            crate::config::StateUrl::Redis(_) => "redis",
        };
        n.status(&format!("starting: opening the {state} state"));
    }
    let app = App::start(&cfg, None).await?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    // Plain values only: a field that does not apply is left out, lists
    // are comma-separated (JSON logs read them as strings, not `[..]`).
    let sip = app.sip_addr().map(|a| a.to_string());
    let conf_dir = cfg
        .pbx
        .is_asterisk()
        .then(|| cfg.asterisk_conf_dir.display().to_string());
    let proxies = (!cfg.trusted_proxy.is_empty()).then(|| {
        cfg.trusted_proxy
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    tracing::info!(
        %addr,
        pbx = cfg.pbx.as_str(),
        state = app.state.store.kind(),
        node = %app.state.settings.node_id,
        sip = sip.as_deref(),
        sip_domain = %app.state.settings.sip_domain,
        conf_dir = conf_dir.as_deref(),
        admin_api = app.state.admin.is_some(),
        tls = app.state.settings.tls,
        trusted_proxies = proxies.as_deref(),
        "myturn-server listening"
    );
    if let Some(w) = &app.state.settings.warning {
        tracing::warn!("{w}");
    }
    let state = app.state.clone();
    let reports = notify
        .clone()
        .map(|n| tokio::spawn(report(n, state.clone(), addr)));
    let shutdown = {
        let notify = notify.clone();
        async move {
            shutdown_signal().await;
            if let Some(n) = notify {
                n.stopping();
            }
        }
    };
    let served = app.serve(listener, shutdown).await;
    for task in [reports, watchdog].into_iter().flatten() {
        task.abort();
    }
    state.refusals.flush_all();
    served.map_err(StartError::Serve)
}

/// Tells systemd `READY=1` once `/readyz` would say ready (with why not
/// in `STATUS=` until then), then a status line every few seconds.
async fn report(n: Arc<Notifier>, state: AppState, addr: SocketAddr) {
    let mut said = String::new();
    while let Err(why) = readiness(&state).await {
        let now = format!("starting on {addr}: not ready: {why}");
        if now != said {
            n.status(&now);
            said = now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n.ready(&serving(&state, addr).await);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = match readiness(&state).await {
            Ok(()) => serving(&state, addr).await,
            Err(why) => format!("serving on {addr}: not ready: {why}"),
        };
        n.status(&now);
    }
}

/// `serving on ADDR: N users, PBX builtin in sync, state memory`.
async fn serving(state: &AppState, addr: SocketAddr) -> String {
    let users = state.run(UserCount).await.unwrap_or(0);
    format!(
        "serving on {addr}: {users} user{s}, PBX {pbx} in sync, state {kind}",
        s = if users == 1 { "" } else { "s" },
        pbx = state.pbx.name(),
        kind = state.store.kind(),
    )
}
