//! Which PBX runs, from the server's flags: the sync handle every backend
//! has, the built-in PBX's sockets when it is the one, and the SIP domain
//! clients are told. Nothing outside `pbx/` branches on the kind.

use std::time::Duration;

use super::asterisk::RenderOptions;
use super::builtin::run::{self, BuiltinPbx};
pub use super::error::SetupError;
use super::kamailio::{writer::shown, Kamailio};
use super::reload::Reloader;
use super::sync::PbxSync;
use crate::config::{read_secret, Config, PbxKind, ReloadMethod, StateUrl};

/// The PBX as set up.
#[derive(Debug)]
pub struct Setup {
    /// Keeps the PBX in step with the users.
    pub sync: PbxSync,
    /// The built-in PBX to start, with `--pbx builtin`.
    pub builtin: Option<BuiltinPbx>,
    /// What clients are told as their SIP domain.
    pub sip_domain: String,
}

/// Sets up the PBX `cfg` names; `tls` says whether the server has a
/// certificate (the built-in PBX then also takes SIP over TLS).
pub fn setup(cfg: &Config, seed: Option<u64>, tls: bool) -> Result<Setup, SetupError> {
    if cfg.pbx.is_asterisk() && !cfg.asterisk_conf_dir.is_dir() {
        return Err(SetupError::ConfDir(cfg.asterisk_conf_dir.clone()));
    }
    let mut sip_domain = cfg
        .sip_domain
        .clone()
        .unwrap_or_else(|| "127.0.0.1:5060".to_owned());
    if cfg.pbx == PbxKind::Builtin {
        let (sync, builtin) = run::prepare(cfg, seed, tls, &mut sip_domain)?;
        return Ok(Setup {
            sync,
            builtin: Some(builtin),
            sip_domain,
        });
    }
    if cfg.pbx == PbxKind::Kamailio {
        // The accounts go where the nodes' state is unless told
        // otherwise: one Redis to run (the key prefixes do not meet).
        let url = match (&cfg.kamailio_redis, &cfg.state) {
            (Some(url), _) => url.as_str(),
            (None, StateUrl::Redis(url)) => url.as_str(),
            (None, StateUrl::Memory) => return Err(SetupError::KamailioRedisMissing),
        };
        let backend = Kamailio::new(url, &sip_domain).map_err(|e| SetupError::KamailioRedis {
            url: shown(url),
            reason: e.to_string(),
        })?;
        return Ok(Setup {
            sync: PbxSync::with_backend(Box::new(backend), Duration::from_millis(cfg.coalesce_ms)),
            builtin: None,
            sip_domain,
        });
    }
    let sync = PbxSync::new(
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
    Ok(Setup {
        sync,
        builtin: None,
        sip_domain,
    })
}

/// How Asterisk is made to load the generated files.
fn reloader(cfg: &Config) -> Result<Reloader, SetupError> {
    Ok(match (cfg.pbx, cfg.reload) {
        (PbxKind::None | PbxKind::Builtin | PbxKind::Kamailio, _) | (_, ReloadMethod::None) => {
            Reloader::None
        }
        (_, ReloadMethod::Command) => {
            Reloader::command(&cfg.reload_command).ok_or(SetupError::EmptyReloadCommand)?
        }
        (_, ReloadMethod::Ami) => {
            let secret = match (&cfg.ami_secret_file, &cfg.ami_secret) {
                (Some(p), _) => read_secret(p)?,
                (None, Some(s)) => s.clone(),
                (None, None) => return Err(SetupError::AmiSecretMissing),
            };
            Reloader::Ami {
                addr: cfg.ami_addr,
                username: cfg.ami_user.clone(),
                secret,
            }
        }
    })
}
