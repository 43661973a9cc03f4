//! HTTPS and WSS on `--listen`: rustls (ring, no OpenSSL) with a
//! certificate that can be replaced while the server runs.
//!
//! [`CertStore`] is rustls's certificate resolver: every handshake takes
//! the current certificate, and [`CertStore::reload`] swaps in the one on
//! disk (on SIGHUP, and when the files change: see [`watch`]). A reload
//! that fails (a half-written file, a key that does not match) keeps the
//! old certificate and says why in the log, so a renewal never takes the
//! server down. [`serve`] is the accept loop: each connection's handshake
//! runs in its own task with a time limit, so a client that connects and
//! says nothing (or speaks plain HTTP, or stops mid-handshake) costs one
//! task for a few seconds and never blocks others.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::connect_info::ConnectInfo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How long a client gets to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are checked for a change.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    /// The key file holds no key.
    #[error("{0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    /// The key is of a kind rustls cannot use.
    #[error("{path}: unusable key: {reason}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Key and certificate do not belong together.
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

impl TlsFiles {
    /// Reads and checks the pair: the chain, the key, and that they match.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(self.cert.clone()));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|_| TlsError::NoKey(self.key.clone()))?;
        let signing =
            rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::BadKey {
                path: self.key.clone(),
                reason: e.to_string(),
            })?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|_| TlsError::Mismatch {
            cert: self.cert.clone(),
            key: self.key.clone(),
        })?;
        Ok(certified)
    }

    /// The later of the two files' modification times.
    fn modified(&self) -> Option<SystemTime> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        m(&self.cert).max(m(&self.key))
    }
}

/// The certificate every handshake gets, replaceable at run time.
#[derive(Debug)]
struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|c| c.clone())
    }
}

/// The certificate files, the current certificate, and the server
/// configurations that hand it out (built once, at start).
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    slot: Arc<CertSlot>,
    /// HTTPS and WSS (ALPN `http/1.1`: the event stream upgrades).
    https: Arc<rustls::ServerConfig>,
    /// SIP over TLS (no ALPN).
    sip: Arc<rustls::ServerConfig>,
}

impl CertStore {
    /// Loads the files (a start error when they are unusable).
    pub fn open(files: TlsFiles) -> Result<Arc<CertStore>, TlsError> {
        let slot = Arc::new(CertSlot(RwLock::new(Arc::new(files.load()?))));
        let config = |alpn: Vec<Vec<u8>>| -> Result<Arc<rustls::ServerConfig>, TlsError> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config(e.to_string()))?
                .with_no_client_auth()
                .with_cert_resolver(slot.clone());
            cfg.alpn_protocols = alpn;
            Ok(Arc::new(cfg))
        };
        Ok(Arc::new(CertStore {
            https: config(vec![b"http/1.1".to_vec()])?,
            sip: config(Vec::new())?,
            files,
            slot,
        }))
    }

    /// Loads the files again; on failure the current certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = self.files.load()?;
        if let Ok(mut c) = self.slot.0.write() {
            *c = Arc::new(key);
        }
        Ok(())
    }

    /// The configuration for HTTPS and WSS.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.https.clone()
    }

    /// The configuration for SIP over TLS.
    pub fn sip_config(&self) -> Arc<rustls::ServerConfig> {
        self.sip.clone()
    }
}

/// Reloads `store` on SIGHUP and whenever its files change, until
/// `stop` flips to true. Failures are logged and the old certificate kept.
pub async fn watch(store: Arc<CertStore>, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = store.files.modified();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let why = tokio::select! {
            _ = hangup => "SIGHUP",
            _ = tokio::time::sleep(WATCH_EVERY) => {
                let now = store.files.modified();
                if now == seen {
                    continue;
                }
                seen = now;
                "the files changed"
            }
            _ = stop.wait_for(|&s| s) => return,
        };
        match store.reload() {
            Ok(()) => {
                tracing::info!(why, cert = %store.files.cert.display(), "TLS certificate reloaded")
            }
            Err(e) => {
                tracing::warn!(why, error = %e, "TLS certificate not reloaded; the previous one is still served")
            }
        }
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then
/// lets open requests finish (up to 10 s).
pub async fn serve(
    mut listener: impl axum::serve::Listener<Addr = std::net::SocketAddr>,
    config: Arc<rustls::ServerConfig>,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    failures: Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // The listener retries failed accepts (out of file descriptors and
        // the like), sets TCP_NODELAY and holds the per-IP connection
        // limit (`http::limits::Limited`).
        let (tcp, peer) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let (acceptor, router, failures) = (acceptor.clone(), router.clone(), failures.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let svc = router.layer(axum::Extension(ConnectInfo(peer)));
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let builder = Builder::new(TokioExecutor::new());
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}
