//! TLS towards the pairing server: `https://` for the API and `wss://`
//! for the event stream, through rustls (ring) with the web's root
//! certificates (Mozilla's, from `webpki-roots`) plus any private CA the
//! user trusts with `--ca-cert`.
//!
//! Whom a client trusts is a value, [`Trust`], carried by its
//! configuration ([`crate::call::ClientConfig`], [`crate::plain::PlainOptions`])
//! down to every HTTP client and WebSocket connector it makes: nothing is
//! process-wide. A refused certificate, deep in an error chain, becomes a
//! sentence a user can act on ([`crate::ClientError::Tls`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::ClientError;

/// The certificates a client trusts for TLS: the web's roots, plus the
/// private CAs given with `--ca-cert` ([`Trust::from_ca_cert`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Trust {
    config: Arc<rustls::ClientConfig>,
}

impl Default for Trust {
    /// The web's roots only.
    fn default() -> Self {
        Trust::with_roots(&[])
    }
}

impl Trust {
    /// What `--ca-cert` asks for: the web's roots, plus the CA
    /// certificates (PEM) in `ca_cert` when given.
    pub fn from_ca_cert(ca_cert: Option<&Path>) -> Result<Trust, ClientError> {
        let Some(path) = ca_cert else {
            return Ok(Trust::default());
        };
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::io(format!("--ca-cert {}", path.display()), e))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(ClientError::NoCaCertificate(path.to_owned()));
        }
        Ok(Trust::with_roots(&certs))
    }

    fn with_roots(extra: &[CertificateDer<'static>]) -> Trust {
        Trust {
            config: client_config(extra),
        }
    }

    /// The rustls client configuration: web roots plus the private CAs.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// An HTTP client for the API, using [`Trust::client_config`].
    pub fn http_client(&self, timeout: Duration) -> Result<reqwest::Client, ClientError> {
        reqwest::Client::builder()
            .timeout(timeout)
            .use_preconfigured_tls((*self.config).clone())
            .build()
            .map_err(ClientError::unreachable)
    }

    /// The WebSocket connector for `wss://`, using [`Trust::client_config`].
    pub fn ws_connector(&self) -> tokio_tungstenite::Connector {
        tokio_tungstenite::Connector::Rustls(self.client_config())
    }
}

/// The rustls client configuration: web roots plus `extra`.
fn client_config(extra: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in extra {
        // A certificate rustls cannot use as a root is skipped; the
        // handshake then says the issuer is unknown.
        let _ = roots.add(c.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
        // ring supports the default versions; keep a working config anyway.
        Err(_) => rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// If `err` (or anything in its source chain) is a refused server
/// certificate, what to tell the user.
pub(crate) fn explain(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(rustls::Error::InvalidCertificate(why)) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(why));
        }
        // An io::Error's `source()` skips the error it wraps: look inside.
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn describe(why: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    let what = match why {
        C::UnknownIssuer => "it is signed by an authority this client does not trust".to_owned(),
        C::Expired | C::ExpiredContext { .. } => "it has expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "it is not valid yet (check the clock)".to_owned()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "it was issued for another name than the one in --server".to_owned()
        }
        C::Revoked => "it has been revoked".to_owned(),
        other => format!("{other:?}"),
    };
    format!(
        "the server's TLS certificate was refused: {what}. If the server uses a private CA, \
         pass its certificate with --ca-cert FILE"
    )
}

/// True for `http://` URLs whose host is not a loopback address or
/// `localhost`: credentials would cross the network in cleartext.
pub fn is_cleartext_remote(base: &str) -> bool {
    let Some(rest) = base.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    !host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_to_a_remote_host_is_spotted() {
        assert!(is_cleartext_remote("http://192.0.2.10:8080"));
        assert!(is_cleartext_remote("http://myturn.example/"));
        assert!(is_cleartext_remote("http://[2001:db8::1]:8080"));
        assert!(!is_cleartext_remote("http://127.0.0.1:8080"));
        assert!(!is_cleartext_remote("http://localhost:8080"));
        assert!(!is_cleartext_remote("http://[::1]:8080"));
        assert!(!is_cleartext_remote("https://myturn.example"));
    }
}
