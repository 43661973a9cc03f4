//! Helpers shared by the server's integration tests (every target, the
//! `interop` one included): the configuration a test server runs with,
//! and its three ways in, each in a module of its own and re-exported
//! here:
//!
//! * [`router`]: the router driven in the test process with
//!   `tower::ServiceExt::oneshot`, no socket (`call`, `register`, …);
//! * [`live`]: the server serving real HTTP on a loopback port, and a
//!   reqwest client of it ([`Live`], [`Api`]), for a server in this
//!   process or the binary in a process of its own;
//! * [`ws`]: its WebSocket event streams, with tokio-tungstenite.
//!
//! Real peers (a browser, curl, Kamailio), TLS certificates and free
//! ports come from myturn-testkit.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod live;
pub mod race;
pub mod router;
pub mod sip;
pub mod ws;

use std::path::Path;

use myturn_server::{App, Config};
use myturn_testkit::tls::TestCa;
use serde_json::Value;

pub use live::{admin_get, live, serve, Api, Live};
pub use router::{
    call, delete, error_code, get, post, put, refresh, register, send, set_status, Resp,
};

pub const ADMIN: &str = "admin-token-for-tests-0123456789";

pub fn config() -> Config {
    let mut cfg = Config::defaults();
    cfg.admin_token = Some(ADMIN.into());
    // The built-in PBX (the default) on a free port: tests run in parallel.
    cfg.sip_listen = "127.0.0.1:0".parse().unwrap();
    cfg.media_ports = own_media_ports();
    cfg
}

pub fn app_with(cfg: &Config) -> App {
    App::new(cfg, Some(42)).expect("app")
}

pub fn app() -> App {
    app_with(&config())
}

pub fn token(v: &Value) -> String {
    v["token"].as_str().unwrap().to_owned()
}

/// A relay port range no other server in this test process uses (tests
/// run side by side; the product default, 10000-19999, is left to servers
/// the tests start as separate processes).
pub fn own_media_ports() -> myturn_server::config::PortRange {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let k = NEXT.fetch_add(1, Ordering::Relaxed) % 500;
    let lo = 20_000 + k * 20;
    myturn_server::config::PortRange(lo..=lo + 19)
}

/// A CA of the test's own in `dir` (`ca.pem`) and a server certificate
/// for `localhost` and 127.0.0.1 it signed (`cert.pem`, `key.pem`), whose
/// CN says `myturn first`.
pub fn pki(dir: &Path) -> TestCa {
    TestCa::new(dir, "myTurn test CA", "myturn first")
}

/// [`config`] serving HTTPS (and SIP over TLS) with `pki`'s certificate.
pub fn tls_config(pki: &TestCa) -> Config {
    let mut cfg = config();
    cfg.tls_cert = Some(pki.cert.clone());
    cfg.tls_key = Some(pki.key.clone());
    cfg
}
