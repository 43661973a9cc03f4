//! The built-in PBX from the server's flags: its sockets bound at
//! start-up (so a taken port is a clear start error), its core's
//! configuration, and the task that runs it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use myturn_pbx::core::{Account, Config as PbxConfig, Pbx};
use myturn_pbx::driver::{PbxHandle, Sips};
use myturn_pbx::media::MediaMode;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;

use super::Builtin;
use crate::config::{Config, DigestAlgorithm, MediaRelay};
use crate::pbx::error::SetupError;
use crate::pbx::sync::PbxSync;
use crate::tls::CertStore;

/// The built-in PBX, ready to run.
#[derive(Debug, Clone)]
pub struct BuiltinPbx {
    socket: Arc<std::net::UdpSocket>,
    /// SIP over TLS, with --tls-cert.
    sips: Option<Arc<std::net::TcpListener>>,
    config: PbxConfig,
    directory: watch::Receiver<Vec<Account>>,
    handle: PbxHandle,
    seed: Option<u64>,
}

/// Binds the built-in PBX (UDP, and TLS with a certificate) and makes the
/// sync handle that feeds it the directory. Says where clients reach it
/// in `sip_domain` (unless `--sip-domain` does).
pub(crate) fn prepare(
    cfg: &Config,
    seed: Option<u64>,
    tls: bool,
    sip_domain: &mut String,
) -> Result<(PbxSync, BuiltinPbx), SetupError> {
    let b = bind(cfg, seed)?;
    if cfg.sip_domain.is_none() {
        let mut at = b.handle.local;
        if at.ip().is_unspecified() {
            tracing::warn!(listen = %at, "--sip-listen is a wildcard address; clients are told 127.0.0.1 unless --sip-domain names a reachable one");
            at.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        *sip_domain = at.to_string();
    }
    let (tx, rx) = watch::channel(Vec::new());
    // In memory: no coalescing, removals take effect at once.
    let sync = PbxSync::with_backend(
        Box::new(Builtin {
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
        let bind_err = |source| SetupError::SipBind { addr: want, source };
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
    Ok((sync, b))
}

/// Binds the UDP socket and works out the core's configuration.
fn bind(cfg: &Config, seed: Option<u64>) -> Result<BuiltinPbx, SetupError> {
    let bind_err = |source| SetupError::SipBind {
        addr: cfg.sip_listen,
        source,
    };
    let socket = std::net::UdpSocket::bind(cfg.sip_listen).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    let local = socket.local_addr().map_err(bind_err)?;
    // On a wildcard address the PBX must still name itself (Via,
    // Record-Route) with an address clients reach: --sip-domain.
    let advertised = if local.ip().is_unspecified() {
        match cfg.sip_domain.as_deref().map(str::parse::<SocketAddr>) {
            Some(Ok(a)) => a,
            _ => {
                tracing::warn!(listen = %local, "--sip-listen is a wildcard and --sip-domain is not an IP:port; the PBX names itself 127.0.0.1");
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port())
            }
        }
    } else {
        local
    };
    let mut c = PbxConfig::new(advertised);
    c.realm = cfg.sip_realm.clone();
    c.algorithms = cfg
        .sip_digest
        .iter()
        .map(|a| match a {
            DigestAlgorithm::Sha256 => myturn_sip::digest::Algorithm::Sha256,
            DigestAlgorithm::Md5 => myturn_sip::digest::Algorithm::Md5,
        })
        .collect();
    c.media = match cfg.media_relay {
        MediaRelay::Off => MediaMode::Direct,
        MediaRelay::Builtin => MediaMode::Relay {
            addr: cfg.media_advertise.unwrap_or(advertised.ip()),
            ports: cfg.media_ports.0.clone(),
        },
        MediaRelay::Rtpengine => match cfg.rtpengine {
            Some(a) => MediaMode::Rtpengine { control: a.0 },
            None => return Err(SetupError::RtpengineMissing),
        },
    };
    c.media_timeout = Duration::from_secs(cfg.media_timeout);
    c.fail_limit = cfg.sip_fail_limit;
    c.fail_window = Duration::from_secs(cfg.sip_fail_window_secs);
    c.block_for = Duration::from_secs(cfg.sip_block_secs);
    c.flood.requests = cfg.sip_rate_limit.0;
    c.flood.answers = cfg.sip_unauth_limit.0;
    c.flood.trusted = cfg.sip_trusted.0.clone();
    let (_, directory) = watch::channel(Vec::new());
    let handle = PbxHandle::with_media(local, &c.media);
    Ok(BuiltinPbx {
        socket: Arc::new(socket),
        sips: None,
        config: c,
        directory,
        handle,
        seed,
    })
}

impl BuiltinPbx {
    /// Its UDP address.
    pub fn sip_addr(&self) -> SocketAddr {
        self.handle.local
    }

    /// Its SIP-over-TLS address, with `--tls-cert`.
    pub fn sips_addr(&self) -> Option<SocketAddr> {
        self.sips.as_ref()?.local_addr().ok()
    }

    /// Starts the PBX's task at `now` (its core's clock starts there),
    /// serving SIP over TLS with `tls`'s certificate (and its reloads),
    /// until `stop` flips.
    pub fn spawn(
        &self,
        now: std::time::Instant,
        tls: Option<&Arc<CertStore>>,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let socket = tokio::net::UdpSocket::from_std(self.socket.try_clone()?)?;
        let rng: Box<dyn rand::RngCore + Send> = match self.seed {
            Some(s) => Box::new(StdRng::seed_from_u64(s ^ 0x0051_b0b5)),
            None => Box::new(StdRng::from_entropy()),
        };
        let core = Pbx::new(self.config.clone(), rng, now);
        self.log_start();
        let sips = match (&self.sips, tls) {
            (Some(l), Some(store)) => {
                let listener = tokio::net::TcpListener::from_std(l.try_clone()?)?;
                tracing::info!(sips = %listener.local_addr()?, "built-in PBX listening (SIP over TLS)");
                Some(Sips {
                    listener,
                    config: store.sip_config(),
                })
            }
            _ => None,
        };
        Ok(myturn_pbx::driver::spawn_with(
            socket,
            core,
            self.handle.clone(),
            self.directory.clone(),
            stop.clone(),
            Some(self.handle.local.ip()),
            sips,
        ))
    }

    fn log_start(&self) {
        let (local, c) = (self.handle.local, &self.config);
        tracing::info!(sip = %local, realm = %c.realm, "built-in PBX listening (UDP)");
        let f = &c.flood;
        tracing::info!(
            rate = f.requests.rate, burst = f.requests.burst,
            unauth_rate = f.answers.rate, unauth_burst = f.answers.burst,
            block_secs = c.block_for.as_secs(),
            trusted = %f.trusted.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "SIP flood guard (rates per source IP; 0: off)"
        );
        match &c.media {
            MediaMode::Relay { addr, ports } => tracing::info!(
                advertised = %addr, bind = %local.ip(),
                ports = %format!("{}-{}", ports.start(), ports.end()),
                timeout_secs = c.media_timeout.as_secs(),
                "media relay on (built-in)"
            ),
            MediaMode::Rtpengine { control } => {
                tracing::info!(%control, "media relay: rtpengine (ng)")
            }
            MediaMode::Direct => {
                tracing::info!("media relay off: clients send media straight to each other")
            }
        }
    }
}
