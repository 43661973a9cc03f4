//! The composition root: builds a node from its [`Config`] (the PBX, the
//! store, the fan-out, the clock, the settings) and serves it. The only
//! module that knows every part; nothing depends on it.
//!
//! [`App::new`] builds a node alone on its state in memory (no network
//! to wait for); [`App::start`] builds any node, joining the nodes that
//! share `--state redis://…`. [`App::serve`] runs it; [`run`] does both
//! from the flags.

mod error;
mod notify;
mod reload;
mod serve;
mod settings;
pub mod shared;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::StartError;
pub use serve::{run, shutdown_signal};

use crate::clock::SystemClock;
use crate::config::{read_secret, Config, StateUrl};
use crate::core::blocklist::Blocklist;
use crate::core::tokens::{AdminToken, Jwt};
use crate::core::Core;
use crate::node::fanout::Fanout;
use crate::node::metrics::Metrics;
use crate::node::{AppState, Inner, Settings};
use crate::pbx::builtin::run::BuiltinPbx;
use crate::pbx::setup::setup;
use crate::pbx::PbxSync;
use crate::store::{MemoryStore, Store};
use crate::tls;

/// The admin token, from `--admin-token-file` or the environment.
fn admin_token(cfg: &Config) -> Result<Option<AdminToken>, StartError> {
    let secret = match (&cfg.admin_token, &cfg.admin_token_file) {
        (_, Some(path)) => Some(read_secret(path)?),
        (Some(t), None) => Some(t.clone()),
        (None, None) => None,
    };
    Ok(secret.map(|t| AdminToken::new(&t)).transpose()?)
}

/// The token signer from `--jwt-key-file`, if given.
fn shared_keys(cfg: &Config) -> Result<Option<Arc<Jwt>>, StartError> {
    let Some(path) = &cfg.jwt_key_file else {
        return Ok(None);
    };
    let text = read_secret(path)?;
    Jwt::from_keys(&Jwt::parse_keys(&text), cfg.token_ttl)
        .map(|j| Some(Arc::new(j)))
        .map_err(|source| StartError::Keys {
            path: path.clone(),
            source,
        })
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

/// Everything but the store.
struct Parts {
    admin: Option<AdminToken>,
    builtin: Option<BuiltinPbx>,
    tls: Option<Arc<tls::CertStore>>,
    blocklist: Option<(PathBuf, Arc<Blocklist>)>,
    http_limits: Arc<crate::http::limits::HttpLimits>,
    sync: Arc<PbxSync>,
    settings: Settings,
    fanout: Arc<Fanout>,
}

impl Parts {
    /// The parts, and the core that the store will own.
    fn build(cfg: &Config, seed: Option<u64>) -> Result<(Parts, Core), StartError> {
        let admin = admin_token(cfg)?;
        let keys = shared_keys(cfg)?;
        let has_tls = cfg.tls_cert.is_some() && cfg.tls_key.is_some();
        let pbx = setup(cfg, seed, has_tls)?;
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(tls::CertStore::open(tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })?),
            _ => None,
        };
        let settings = settings::settings(cfg, pbx.sip_domain, tls.is_some());
        let blocklist = Arc::new(Blocklist::default());
        if let Some(path) = &cfg.interest_blocklist {
            blocklist.replace(Blocklist::parse(&reload::read_list(path)?));
        }
        let mut core = Core::new(settings::core_config(cfg, &settings), seed)
            .with_blocklist(blocklist.clone());
        if let Some(jwt) = keys {
            core = core.with_signer(jwt);
        }
        let parts = Parts {
            admin,
            builtin: pbx.builtin,
            tls,
            blocklist: cfg.interest_blocklist.clone().map(|path| (path, blocklist)),
            http_limits: crate::http::limits::HttpLimits::new(settings::http_limits(cfg)),
            sync: Arc::new(pbx.sync),
            settings,
            fanout: Arc::new(Fanout::default()),
        };
        Ok((parts, core))
    }

    fn assemble(self, store: Arc<dyn Store>, jwt: Arc<Jwt>) -> App {
        App {
            builtin: self.builtin,
            tls: self.tls,
            blocklist: self.blocklist,
            http_limits: self.http_limits,
            state: AppState::new(Inner {
                store,
                fanout: self.fanout,
                clock: Arc::new(SystemClock),
                jwt,
                admin: self.admin,
                pbx: self.sync,
                metrics: Metrics::default(),
                refusals: Default::default(),
                alarm: Default::default(),
                settings: self.settings,
            }),
        }
    }
}

impl App {
    /// Builds a node alone on its state in memory (`--state memory`, the
    /// default). `seed` makes every random choice reproducible (tests);
    /// `None` uses OS randomness. A shared state needs [`App::start`].
    pub fn new(cfg: &Config, seed: Option<u64>) -> Result<Self, StartError> {
        if cfg.state != StateUrl::Memory {
            return Err(StartError::NeedsStart);
        }
        let (parts, core) = Parts::build(cfg, seed)?;
        let jwt = core.signer();
        let store = MemoryStore::new(core, parts.fanout.clone(), parts.sync.clone());
        Ok(parts.assemble(Arc::new(store), jwt))
    }

    /// Builds any node: alone in memory, or joining the nodes that share
    /// `--state redis://…` (which needs `--jwt-key-file`, and refuses a
    /// second node with `--pbx builtin`).
    pub async fn start(cfg: &Config, seed: Option<u64>) -> Result<Self, StartError> {
        let StateUrl::Redis(url) = &cfg.state else {
            return Self::new(cfg, seed);
        };
        if cfg.jwt_key_file.is_none() {
            return Err(StartError::KeysNotShared);
        }
        let (parts, core) = Parts::build(cfg, seed)?;
        let jwt = core.signer();
        let store = shared::join(
            url,
            &parts.settings.node_id,
            cfg,
            core.rules().clone(),
            parts.fanout.clone(),
            parts.sync.clone(),
            seed,
        )
        .await?;
        Ok(parts.assemble(Arc::new(store), jwt))
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
}
