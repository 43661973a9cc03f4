//! The composition root: builds a node from its [`Config`] (the PBX, the
//! store, the fan-out, the clock, the settings) and serves it. The only
//! module that knows every part; nothing depends on it.

mod settings;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::SystemClock;
use crate::config::{read_secret, Config, ReadError};
use crate::core::blocklist::Blocklist;
use crate::core::tokens::{AdminToken, AdminTokenError};
use crate::core::Core;
use crate::node::fanout::Fanout;
use crate::node::metrics::Metrics;
use crate::node::{history, sweeper, AppState, Inner};
use crate::pbx::builtin::run::BuiltinPbx;
use crate::pbx::setup::{setup, SetupError};
use crate::store::MemoryStore;
use crate::tls;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A secret file could not be read.
    #[error(transparent)]
    ReadFile(#[from] ReadError),
    /// The admin token is unusable.
    #[error("admin token: {0}")]
    AdminToken(#[from] AdminTokenError),
    /// The PBX could not be set up.
    #[error(transparent)]
    Pbx(#[from] SetupError),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// The admin token, from `--admin-token-file` or the environment.
fn admin_token(cfg: &Config) -> Result<Option<AdminToken>, StartError> {
    let secret = match (&cfg.admin_token, &cfg.admin_token_file) {
        (_, Some(path)) => Some(read_secret(path)?),
        (Some(t), None) => Some(t.clone()),
        (None, None) => None,
    };
    Ok(secret.map(|t| AdminToken::new(&t)).transpose()?)
}

/// The assembled application: state plus the background tasks to run.
#[derive(Debug, Clone)]
pub struct App {
    /// Shared state.
    pub state: AppState,
    builtin: Option<BuiltinPbx>,
    tls: Option<Arc<tls::CertStore>>,
    /// `--interest-blocklist` and the terms read from it.
    blocklist: Option<(PathBuf, Arc<Blocklist>)>,
    /// Per-IP connection and request limits on the HTTP API (#26).
    http_limits: Arc<crate::http::limits::HttpLimits>,
}

/// Reads `--interest-blocklist`.
fn read_list(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError {
        path: path.to_owned(),
        source,
    })
}

/// Reads the blocklist again on every SIGHUP until `stop` flips; a file
/// that cannot be read keeps the terms in force, and says why.
fn spawn_blocklist_reload(
    path: PathBuf,
    list: Arc<Blocklist>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(_) => return,
        };
        loop {
            #[cfg(unix)]
            let hangup = hup.recv();
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = hangup => match read_list(&path) {
                    Ok(text) => {
                        let n = list.replace(Blocklist::parse(&text));
                        tracing::info!(path = %path.display(), terms = n, "interest blocklist read again");
                    }
                    Err(error) => tracing::warn!(%error, "interest blocklist not read again; the old terms stay"),
                },
                _ = stop.wait_for(|&s| s) => return,
            }
        }
    })
}

impl App {
    /// Builds the application from its configuration. `seed` makes every
    /// random choice reproducible (tests); `None` uses OS randomness.
    pub fn new(cfg: &Config, seed: Option<u64>) -> Result<Self, StartError> {
        let admin = admin_token(cfg)?;
        let has_tls = cfg.tls_cert.is_some() && cfg.tls_key.is_some();
        let pbx = setup(cfg, seed, has_tls)?;
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(tls::CertStore::open(tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })?),
            _ => None,
        };
        let sync = Arc::new(pbx.sync);
        let settings = settings::settings(cfg, pbx.sip_domain, tls.is_some());
        let blocklist = Arc::new(Blocklist::default());
        if let Some(path) = &cfg.interest_blocklist {
            blocklist.replace(Blocklist::parse(&read_list(path)?));
        }
        let core = Core::new(settings::core_config(cfg, &settings), seed)
            .with_blocklist(blocklist.clone());
        let jwt = core.signer();
        let fanout = Arc::new(Fanout::default());
        let store = Arc::new(MemoryStore::new(core, fanout.clone(), sync.clone()));
        Ok(App {
            http_limits: crate::http::limits::HttpLimits::new(settings::http_limits(cfg)),
            builtin: pbx.builtin,
            tls,
            blocklist: cfg.interest_blocklist.clone().map(|path| (path, blocklist)),
            state: AppState::new(Inner {
                store,
                fanout,
                clock: Arc::new(SystemClock),
                jwt,
                admin,
                pbx: sync,
                metrics: Metrics::default(),
                alarm: Default::default(),
                settings,
            }),
        })
    }

    /// The built-in PBX's SIP-over-TLS address, with `--pbx builtin` and
    /// `--tls-cert`.
    pub fn sips_addr(&self) -> Option<std::net::SocketAddr> {
        self.builtin.as_ref()?.sips_addr()
    }

    /// The built-in PBX's UDP address, with `--pbx builtin`.
    pub fn sip_addr(&self) -> Option<std::net::SocketAddr> {
        self.builtin.as_ref().map(BuiltinPbx::sip_addr)
    }

    /// The HTTP router over this app's state.
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.state.clone(), self.http_limits.clone())
    }

    /// Serves HTTP on `listener` and runs the background tasks (PBX sync,
    /// the built-in PBX, lease sweeper, history) until `shutdown`
    /// resolves; then drains requests and clears the PBX.
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
        let reload = self
            .blocklist
            .clone()
            .map(|(path, list)| spawn_blocklist_reload(path, list, stop_rx.clone()));
        let sweeper = sweeper::spawn(state.clone(), stop_rx.clone());
        let result = self.serve_http(listener, shutdown, &stop_rx).await;
        let _ = stop_tx.send(true);
        let _ = sweeper.await;
        let _ = history.await;
        if let Some(t) = reload {
            let _ = t.await;
        }
        let _ = pbx_task.await;
        if let Some(t) = sip_task {
            let _ = t.await;
        }
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

/// Starts the server as configured and serves until Ctrl-C or SIGTERM.
pub async fn run(cfg: Config) -> Result<(), StartError> {
    let app = App::new(&cfg, None)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    tracing::info!(
        %addr,
        pbx = cfg.pbx.as_str(),
        sip = ?app.sip_addr(),
        sip_domain = %app.state.settings.sip_domain,
        conf_dir = %cfg.asterisk_conf_dir.display(),
        admin_api = app.state.admin.is_some(),
        tls = app.state.settings.tls,
        trusted_proxies = ?cfg.trusted_proxy.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "myturn-server listening"
    );
    if let Some(w) = &app.state.settings.warning {
        tracing::warn!("{w}");
    }
    app.serve(listener, shutdown_signal())
        .await
        .map_err(StartError::Serve)
}
