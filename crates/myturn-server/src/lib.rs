//! # myturn-server
//!
//! The myTurn pairing server: an axum + tokio HTTP API that registers users,
//! issues each one its own SIP account and short-lived JWT access tokens,
//! pairs `ready` users uniformly at random without races, and keeps a PBX's
//! generated config (Asterisk chan_sip or PJSIP) in step with who is
//! registered.
//!
//! ## Shape
//!
//! * [`core`]: the service, sans-IO. [`core::Core`] owns users, pairs,
//!   sessions, bans, reports and rate limits behind private fields; each
//!   use case (register, set status, refresh, log out, report, ban,
//!   admit, lobby say, sweep...) is one method that takes the moment from
//!   one [`clock::Clock`] and returns its reply plus its
//!   [`core::Effects`] (events to deliver, PBX changes).
//! * [`store`]: the same use cases behind the [`store::Store`] trait,
//!   atomic each, shaped for a networked store (Redis) as much as for
//!   [`store::MemoryStore`], the in-memory one every server runs today.
//! * [`state`]: the node around the store: its clock, its sockets
//!   (`events::fanout`), the token signer, the PBX link, metrics and
//!   tunables, shared by handlers as [`AppState`].
//! * HTTP and WebSocket handlers (private `api` and `events` modules) parse
//!   a request, make one store call, and map the result to HTTP; request
//!   guards check tokens once, in [`auth`].
//! * [`pbx`]: the PBX backends behind [`pbx::Backend`] (none, Asterisk
//!   files + reload, the built-in registrar/proxy) and the task that keeps
//!   the chosen one in step, coalescing changes.
//! * [`tls`]: HTTPS/WSS with a certificate reloaded at run time; the same
//!   certificate serves the built-in PBX's SIP over TLS.
//!
//! ## Driving it
//!
//! The binary is `clap` + `tracing` + [`run`]. Tests and embedders build
//! the pieces themselves:
//!
//! ```no_run
//! # async fn demo() -> Result<(), myturn_server::StartError> {
//! let cfg = myturn_server::Config::defaults();
//! let app = myturn_server::App::new(&cfg, None)?;
//! let router = app.router(); // drive with tower::ServiceExt::oneshot, or:
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! app.serve(listener, std::future::pending()).await.unwrap();
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod api;
pub mod auth;
pub mod clock;
pub mod config;
mod console;
pub mod core;
mod error;
mod events;
mod guard;
mod metrics;
mod moderation;
mod openapi;
pub mod pbx;
mod proxy;
#[doc(hidden)]
pub mod registry;
pub mod state;
pub mod store;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{Admission, Config, DigestAlgorithm, ReloadMethod, Switch};
pub use state::AppState;

use auth::AdminToken;
use clock::SystemClock;
use core::{Core, CoreConfig};
use events::fanout::Fanout;
use pbx::asterisk::RenderOptions;
use pbx::reload::Reloader;
use pbx::{PbxKind, PbxSync};
use registry::RegistryConfig;
use state::Settings;
use store::MemoryStore;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A secret file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The admin token is unusable.
    #[error("admin token: {0}")]
    AdminToken(String),
    /// `--asterisk-conf-dir` does not exist.
    #[error("--asterisk-conf-dir {0} is not a directory; create it or point the flag at Asterisk's config directory")]
    ConfDir(PathBuf),
    /// `--reload ami` without a secret.
    #[error("--reload ami needs the manager secret: set MYTURN_AMI_SECRET or --ami-secret-file")]
    AmiSecretMissing,
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// `--media-relay rtpengine` without `--rtpengine`.
    #[error(
        "--media-relay rtpengine needs rtpengine's ng control address: --rtpengine udp:IP:PORT"
    )]
    RtpengineMissing,
    /// `--reload command` with an empty command.
    #[error("--reload-command is empty")]
    EmptyReloadCommand,
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
    /// The built-in PBX's UDP address is unusable.
    #[error("cannot listen for SIP on udp/{addr}: {source} (another PBX running? choose one with --sip-listen)")]
    SipBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn read_secret(path: &PathBuf) -> Result<String, StartError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| StartError::ReadFile {
            path: path.clone(),
            source,
        })
}

/// The admin token, from `--admin-token-file` or the environment.
fn admin_token(cfg: &Config) -> Result<Option<AdminToken>, StartError> {
    let secret = match (&cfg.admin_token, &cfg.admin_token_file) {
        (_, Some(path)) => Some(read_secret(path)?),
        (Some(t), None) => Some(t.clone()),
        (None, None) => None,
    };
    secret
        .map(|t| AdminToken::new(&t).map_err(StartError::AdminToken))
        .transpose()
}

/// How Asterisk is made to load the generated files.
fn reloader(cfg: &Config) -> Result<Reloader, StartError> {
    Ok(match (cfg.pbx, cfg.reload) {
        (PbxKind::None | PbxKind::Builtin, _) | (_, ReloadMethod::None) => Reloader::None,
        (_, ReloadMethod::Command) => {
            Reloader::command(&cfg.reload_command).ok_or(StartError::EmptyReloadCommand)?
        }
        (_, ReloadMethod::Ami) => {
            let secret = match (&cfg.ami_secret_file, &cfg.ami_secret) {
                (Some(p), _) => read_secret(p)?,
                (None, Some(s)) => s.clone(),
                (None, None) => return Err(StartError::AmiSecretMissing),
            };
            Reloader::Ami {
                addr: cfg.ami_addr,
                username: cfg.ami_user.clone(),
                secret,
            }
        }
    })
}

/// The node's tunables.
fn settings(cfg: &Config, sip_domain: String, tls: bool) -> Settings {
    let lease = Duration::from_secs(cfg.lease);
    Settings {
        sip_domain,
        lease,
        max_wait: (lease / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)),
        max_sockets_per_user: cfg.max_sockets_per_user,
        max_sockets: cfg.max_sockets,
        // Pongs are the liveness pairing checks: three per grace.
        ping_every: (lease / 3)
            .min(Duration::from_secs(cfg.stream_grace) / 3)
            .clamp(Duration::from_millis(250), Duration::from_secs(20)),
        stream_grace: Duration::from_secs(cfg.stream_grace),
        answer_timeout: Duration::from_secs(cfg.answer_timeout),
        tls,
        warning: (!tls && cfg.trusted_proxy.is_empty() && !cfg.listen.ip().is_loopback()).then(
            || {
                format!(
                    "the API on {} is plain HTTP on a non-loopback address: SIP passwords and \
                     tokens cross the network in cleartext; use --tls-cert/--tls-key, or a \
                     TLS-terminating proxy named with --trusted-proxy",
                    cfg.listen
                )
            },
        ),
        trusted_proxies: cfg.trusted_proxy.clone(),
    }
}

/// The core's configuration.
fn core_config(cfg: &Config, settings: &Settings) -> CoreConfig {
    CoreConfig {
        registry: RegistryConfig {
            max_users: cfg.max_users,
            moderated: cfg.admission == Admission::Moderated,
            liveness: Duration::from_secs(cfg.stream_grace),
        },
        sip_domain: settings.sip_domain.clone(),
        token_ttl: cfg.token_ttl,
        lease: settings.lease,
        stream_grace: settings.stream_grace,
        answer_timeout: settings.answer_timeout,
        rate_limits: cfg.rate_limits == Switch::On,
    }
}

/// The built-in PBX, ready to run.
#[derive(Debug, Clone)]
struct BuiltinPbx {
    socket: Arc<std::net::UdpSocket>,
    /// SIP over TLS, with --tls-cert.
    sips: Option<Arc<std::net::TcpListener>>,
    config: myturn_pbx::core::Config,
    directory: watch::Receiver<Vec<myturn_pbx::core::Account>>,
    handle: myturn_pbx::driver::PbxHandle,
    seed: Option<u64>,
}

/// The assembled application: state plus the background tasks to run.
#[derive(Debug, Clone)]
pub struct App {
    /// Shared state.
    pub state: AppState,
    builtin: Option<BuiltinPbx>,
    tls: Option<Arc<tls::CertStore>>,
}

impl App {
    /// Builds the application from its configuration. `seed` makes every
    /// random choice reproducible (tests); `None` uses OS randomness.
    pub fn new(cfg: &Config, seed: Option<u64>) -> Result<Self, StartError> {
        let admin = admin_token(cfg)?;
        if cfg.pbx.is_asterisk() && !cfg.asterisk_conf_dir.is_dir() {
            return Err(StartError::ConfDir(cfg.asterisk_conf_dir.clone()));
        }
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(tls::CertStore::open(tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })?),
            _ => None,
        };
        let mut sip_domain = cfg
            .sip_domain
            .clone()
            .unwrap_or_else(|| "127.0.0.1:5060".to_owned());
        let (pbx, builtin) = if cfg.pbx == PbxKind::Builtin {
            let (pbx, b) = Self::builtin(cfg, seed, tls.is_some(), &mut sip_domain)?;
            (pbx, Some(b))
        } else {
            let pbx = PbxSync::new(
                cfg.pbx,
                cfg.asterisk_conf_dir.clone(),
                RenderOptions {
                    wideband: cfg.wideband,
                    dial_timeout_secs: cfg.dial_timeout,
                    ..RenderOptions::default()
                },
                reloader(cfg)?,
                Duration::from_millis(cfg.coalesce_ms),
            );
            (pbx, None)
        };
        let pbx = Arc::new(pbx);
        let settings = settings(cfg, sip_domain, tls.is_some());
        let core = Core::new(core_config(cfg, &settings), seed);
        let jwt = core.signer();
        let fanout = Arc::new(Fanout::default());
        let store = Arc::new(MemoryStore::new(core, fanout.clone(), pbx.clone()));
        Ok(App {
            builtin,
            tls,
            state: AppState::new(state::Inner {
                store,
                fanout,
                clock: Arc::new(SystemClock),
                jwt,
                admin,
                pbx,
                metrics: metrics::Metrics::default(),
                settings,
            }),
        })
    }

    /// The built-in PBX: its socket and core (see [`App::builtin_core`]),
    /// its SIP-over-TLS listener with `--tls-cert`, and the sync handle
    /// that feeds it the directory. Says where clients reach it in
    /// `sip_domain` (unless `--sip-domain` does).
    fn builtin(
        cfg: &Config,
        seed: Option<u64>,
        tls: bool,
        sip_domain: &mut String,
    ) -> Result<(PbxSync, BuiltinPbx), StartError> {
        let b = Self::builtin_core(cfg, seed)?;
        if cfg.sip_domain.is_none() {
            let mut at = b.handle.local;
            if at.ip().is_unspecified() {
                tracing::warn!(listen = %at, "--sip-listen is a wildcard address; clients are told 127.0.0.1 unless --sip-domain names a reachable one");
                at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            *sip_domain = at.to_string();
        }
        let (tx, rx) = watch::channel(Vec::new());
        // In memory: no coalescing, removals take effect at once.
        let pbx = PbxSync::with_backend(
            Box::new(pbx::Builtin {
                directory: tx,
                handle: b.handle.clone(),
            }),
            Duration::ZERO,
        );
        let mut b = BuiltinPbx { directory: rx, ..b };
        if tls {
            let want = cfg.sips_listen.unwrap_or_else(|| {
                let mut a = cfg.sip_listen;
                if a.port() != 0 {
                    a.set_port(5061);
                }
                a
            });
            let bind_err = |source| StartError::SipBind { addr: want, source };
            let l = std::net::TcpListener::bind(want).map_err(bind_err)?;
            l.set_nonblocking(true).map_err(bind_err)?;
            let at = l.local_addr().map_err(bind_err)?;
            // Clients are told: same host, the TLS port, over TLS.
            let host = sip_domain
                .rsplit_once(':')
                .map_or(sip_domain.as_str(), |(h, _)| h)
                .to_owned();
            *sip_domain = format!("{host}:{};transport=tls", at.port());
            b.sips = Some(Arc::new(l));
        }
        Ok((pbx, b))
    }

    /// Binds the built-in PBX's socket (at start-up, so a taken port is a
    /// clear start error) and prepares its core.
    fn builtin_core(cfg: &Config, seed: Option<u64>) -> Result<BuiltinPbx, StartError> {
        let bind_err = |source| StartError::SipBind {
            addr: cfg.sip_listen,
            source,
        };
        let socket = std::net::UdpSocket::bind(cfg.sip_listen).map_err(bind_err)?;
        socket.set_nonblocking(true).map_err(bind_err)?;
        let local = socket.local_addr().map_err(bind_err)?;
        // On a wildcard address the PBX must still name itself (Via,
        // Record-Route) with an address clients reach: --sip-domain.
        let advertised = if local.ip().is_unspecified() {
            match cfg
                .sip_domain
                .as_deref()
                .map(str::parse::<std::net::SocketAddr>)
            {
                Some(Ok(a)) => a,
                _ => {
                    tracing::warn!(listen = %local, "--sip-listen is a wildcard and --sip-domain is not an IP:port; the PBX names itself 127.0.0.1");
                    std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
                }
            }
        } else {
            local
        };
        let mut c = myturn_pbx::core::Config::new(advertised);
        c.realm = cfg.sip_realm.clone();
        c.algorithms = cfg
            .sip_digest
            .iter()
            .map(|a| match a {
                config::DigestAlgorithm::Sha256 => myturn_sip::digest::Algorithm::Sha256,
                config::DigestAlgorithm::Md5 => myturn_sip::digest::Algorithm::Md5,
            })
            .collect();
        c.media = match cfg.media_relay {
            config::MediaRelay::Off => myturn_pbx::media::MediaMode::Direct,
            config::MediaRelay::Builtin => myturn_pbx::media::MediaMode::Relay {
                addr: cfg.media_advertise.unwrap_or(advertised.ip()),
                ports: cfg.media_ports.0.clone(),
            },
            config::MediaRelay::Rtpengine => match cfg.rtpengine {
                Some(a) => myturn_pbx::media::MediaMode::Rtpengine { control: a.0 },
                None => return Err(StartError::RtpengineMissing),
            },
        };
        c.media_timeout = Duration::from_secs(cfg.media_timeout);
        c.fail_limit = cfg.sip_fail_limit;
        c.fail_window = Duration::from_secs(cfg.sip_fail_window_secs);
        c.block_for = Duration::from_secs(cfg.sip_block_secs);
        let (_, directory) = watch::channel(Vec::new());
        let handle = myturn_pbx::driver::PbxHandle::with_media(local, &c.media);
        Ok(BuiltinPbx {
            socket: Arc::new(socket),
            sips: None,
            config: c,
            directory,
            handle,
            seed,
        })
    }

    /// The built-in PBX's SIP-over-TLS address, with `--pbx builtin` and
    /// `--tls-cert`.
    pub fn sips_addr(&self) -> Option<std::net::SocketAddr> {
        self.builtin.as_ref()?.sips.as_ref()?.local_addr().ok()
    }

    /// The built-in PBX's UDP address, with `--pbx builtin`.
    pub fn sip_addr(&self) -> Option<std::net::SocketAddr> {
        self.builtin.as_ref().map(|b| b.handle.local)
    }

    /// The HTTP router over this app's state.
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Starts the built-in PBX's task, with `--pbx builtin`.
    fn spawn_builtin(
        &self,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<Option<tokio::task::JoinHandle<()>>> {
        Ok(match &self.builtin {
            Some(b) => {
                let socket = tokio::net::UdpSocket::from_std(b.socket.try_clone()?)?;
                let rng: Box<dyn rand::RngCore + Send> = match b.seed {
                    Some(s) => Box::new(StdRng::seed_from_u64(s ^ 0x0051_b0b5)),
                    None => Box::new(StdRng::from_entropy()),
                };
                let core = myturn_pbx::core::Pbx::new(b.config.clone(), rng, self.state.now().mono);
                tracing::info!(sip = %b.handle.local, realm = %b.config.realm, "built-in PBX listening (UDP)");
                match &b.config.media {
                    myturn_pbx::media::MediaMode::Relay { addr, ports } => tracing::info!(
                        advertised = %addr, bind = %b.handle.local.ip(),
                        ports = %format!("{}-{}", ports.start(), ports.end()),
                        timeout_secs = b.config.media_timeout.as_secs(),
                        "media relay on (built-in)"
                    ),
                    myturn_pbx::media::MediaMode::Rtpengine { control } => {
                        tracing::info!(%control, "media relay: rtpengine (ng)")
                    }
                    myturn_pbx::media::MediaMode::Direct => {
                        tracing::info!("media relay off: clients send media straight to each other")
                    }
                }
                let sips = match (&b.sips, &self.tls) {
                    (Some(l), Some(store)) => {
                        let listener = tokio::net::TcpListener::from_std(l.try_clone()?)?;
                        tracing::info!(sips = %listener.local_addr()?, "built-in PBX listening (SIP over TLS)");
                        // The API's certificate (and its reloads).
                        Some(myturn_pbx::driver::Sips {
                            listener,
                            config: store.sip_config(),
                        })
                    }
                    _ => None,
                };
                Some(myturn_pbx::driver::spawn_with(
                    socket,
                    core,
                    b.handle.clone(),
                    b.directory.clone(),
                    stop.clone(),
                    Some(b.handle.local.ip()),
                    sips,
                ))
            }
            None => None,
        })
    }

    /// Serves HTTP on `listener` and runs the background tasks (PBX sync,
    /// lease sweeper) until `shutdown` resolves; then drains requests and
    /// clears the PBX files.
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
                async move { state.store.pbx_users().await.unwrap_or_default() }
            };
            tokio::spawn(async move { pbx.run(snapshot, rx).await })
        };
        let sip_task = self.spawn_builtin(&stop_rx)?;
        let history = spawn_history(state.clone(), stop_rx.clone());
        let sweeper = spawn_sweeper(state.clone(), stop_rx.clone());
        let result = match &self.tls {
            Some(store) => {
                tokio::spawn(tls::watch(store.clone(), stop_rx.clone()));
                // HSTS: browsers and HTTP clients that honour it never
                // fall back to plain HTTP for this host.
                let router = self.router().layer(
                    tower_http::set_header::SetResponseHeaderLayer::overriding(
                        axum::http::header::STRICT_TRANSPORT_SECURITY,
                        axum::http::HeaderValue::from_static("max-age=31536000"),
                    ),
                );
                tls::serve(
                    listener,
                    store.server_config(),
                    router,
                    shutdown,
                    self.state.metrics.tls_handshake_failures.clone(),
                )
                .await
            }
            None => {
                use axum::serve::ListenerExt;
                // Events are small writes; Nagle would hold one back behind
                // an unacknowledged ping for the peer's delayed ACK (40 ms).
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(
                    listener,
                    self.router()
                        .into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        };
        let _ = stop_tx.send(true);
        let _ = sweeper.await;
        let _ = history.await;
        let _ = pbx_task.await;
        if let Some(t) = sip_task {
            let _ = t.await;
        }
        result
    }
}

/// Samples the console's history every [`metrics::HISTORY_EVERY`].
fn spawn_history(state: AppState, mut rx: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            state.sample_history().await;
            tokio::select! {
                _ = tokio::time::sleep(metrics::HISTORY_EVERY) => {}
                _ = rx.wait_for(|&s| s) => return,
            }
        }
    })
}

/// Runs the periodic sweep (lease, grace, answer timeout, rematch).
fn spawn_sweeper(state: AppState, mut rx: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    // Often enough that a closed stream is acted on soon after its
    // grace, and an expired lease soon after the lease.
    let every = (state.settings.lease / 4)
        .min(state.settings.stream_grace / 4)
        .min(state.settings.answer_timeout / 4)
        .max(Duration::from_millis(250));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = rx.wait_for(|&s| s) => return,
            }
            let swept = match state.sweep(state.now()).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, "sweep failed; retrying");
                    continue;
                }
            };
            for name in swept.ghosts {
                tracing::info!(%name, "event stream closed past the grace: out of the pool");
            }
            for name in swept.expired {
                tracing::info!(%name, "lease expired: user logged out");
            }
            for name in swept.unanswered {
                tracing::info!(%name, "call not set up within the answer timeout: pair ended, out of the pool");
            }
        }
    })
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
