//! # myturn-server
//!
//! The myTurn pairing server: an axum + tokio HTTP API that registers users,
//! issues each one its own SIP account and short-lived JWT access tokens,
//! pairs `ready` users uniformly at random without races, and keeps a PBX
//! (the built-in registrar/proxy, or Asterisk's generated files) in step
//! with who is registered.
//!
//! ## Layers
//!
//! Each layer is a folder, and each depends only on those below it (a
//! test in `myturn-testkit` proves the arrows point one way):
//!
//! * [`app`]: the composition root: [`App::new`] builds a node from its
//!   [`Config`], [`App::serve`] runs it, [`run`] is the binary's body.
//! * `http`: routes, extractors, the one mapping of refusals to HTTP
//!   statuses, the WebSocket event streams, OpenAPI and the admin console.
//! * [`node`]: the runtime of one process: [`AppState`] (the store, the
//!   fan-out of events to this node's sockets, the clock, the signer, the
//!   PBX link, metrics, tunables), the long-poll, the sweeper, history.
//! * [`pbx`]: the PBX backends (none, Asterisk files + reload, the
//!   built-in registrar/proxy) behind one trait, and the task that keeps
//!   the chosen one in step; [`pbx::setup`] picks it from the flags.
//! * [`store`]: [`store::Store`], which runs any use case as one atomic
//!   step; [`store::MemoryStore`] is the in-memory one.
//! * [`core`]: the rules, sans-IO: every use case once
//!   ([`core::Command`]), the matching policy, typed refusals, the
//!   records behind [`core::State`].
//! * [`clock`], [`config`]: leaves.
//!
//! [`tls`] serves HTTPS/WSS with a certificate reloaded at run time; the
//! same certificate serves the built-in PBX's SIP over TLS.
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

pub mod app;
pub mod clock;
pub mod config;
pub mod core;
mod http;
pub mod node;
pub mod pbx;
mod prom;
pub mod store;
pub mod tls;

pub use app::{run, shutdown_signal, App, StartError};
pub use config::{Admission, Config, DigestAlgorithm, Nets, RateLimit, ReloadMethod, Switch};
pub use http::bearer;
pub use node::AppState;

/// Entry points for the fuzz targets and their smoke tests.
#[doc(hidden)]
pub mod fuzzing {
    /// Verifying arbitrary bytes as a token must never panic, and must
    /// never accept anything not signed with the key.
    pub fn jwt(data: &[u8]) {
        crate::http::fuzz_verify(data);
    }

    /// The browser's media: a page's datagrams and control messages (the
    /// bridge) and its WebRTC offer (str0m's SDP parser and answer), on
    /// arbitrary bytes, must never panic.
    pub fn web_media(data: &[u8]) {
        crate::http::fuzz_page_message(data);
        crate::http::fuzz_offer(data);
    }
}
