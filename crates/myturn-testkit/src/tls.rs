//! A certificate authority of the test's own, and TLS clients that trust
//! it (feature `tls`): server certificates for `localhost` and 127.0.0.1
//! as PEM files, renewable in place, for a peer (Kamailio) or the server
//! under test, and the rustls client a test dials them with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A CA (rcgen) and the server certificate it signed last, as PEM files
/// in one directory: `ca.pem`, `cert.pem` and `key.pem`.
#[derive(Debug)]
pub struct TestCa {
    /// The CA's certificate: what a client is told to trust.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
    signer: Signer,
}

/// The CA's own certificate and key, which sign.
struct Signer {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

impl TestCa {
    /// A CA called `name`, written to `dir/ca.pem`, and a first server
    /// certificate with the common name `cn` ([`TestCa::issue`]).
    pub fn new(dir: &Path, name: &str, cn: &str) -> TestCa {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca = TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            signer: Signer {
                cert: ca_cert,
                key: ca_key,
            },
        };
        std::fs::write(&ca.ca, ca.signer.cert.pem()).unwrap();
        ca.issue(cn);
        ca
    }

    /// Writes a new server certificate for `localhost` and 127.0.0.1 with
    /// the common name `cn` over the old one: the key first, then the
    /// certificate (a server watching the files may look between).
    pub fn issue(&self, cn: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params
            .signed_by(&key, &self.signer.cert, &self.signer.key)
            .unwrap();
        std::fs::write(&self.key, key.serialize_pem()).unwrap();
        std::fs::write(&self.cert, cert.pem()).unwrap();
    }

    /// A trust store holding this CA alone.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.signer.cert.der().clone()).unwrap();
        roots
    }

    /// A TLS client that trusts this CA alone ([`connector`]).
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        connector(self.roots())
    }
}

/// A rustls client (ring, its safe default protocol versions, no client
/// certificate) that trusts `roots`.
pub fn connector(roots: rustls::RootCertStore) -> tokio_rustls::TlsConnector {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
