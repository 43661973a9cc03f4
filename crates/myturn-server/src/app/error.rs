//! Why a node could not start.

use crate::config::ReadError;
use crate::core::tokens::{AdminTokenError, KeyError};
use crate::pbx::setup::SetupError;
use crate::store::redis::ConnectError;
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
    /// The token keys are unusable.
    #[error("--jwt-key-file {path}: {source}")]
    Keys {
        /// The key file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A shared state without shared token keys.
    #[error(
        "--state redis needs --jwt-key-file: every node must sign and check tokens with the \
         same keys (a file of 64 random hex characters: `openssl rand -hex 32 > jwt.key`)"
    )]
    KeysNotShared,
    /// The state store cannot be reached.
    #[error(transparent)]
    Store(#[from] ConnectError),
    /// The state store answered, but not what starting needs.
    #[error("the state store: {0}")]
    StoreUnavailable(String),
    /// The built-in PBX on a state that other nodes share.
    #[error(
        "--pbx builtin keeps SIP registrations in this process, so it serves one node only, \
         and {others} already share{s} --state: run every node with --pbx kamailio (see \
         docs/scaling.md), or this one on a state of its own",
        s = if others.contains(',') { "" } else { "s" }
    )]
    BuiltinShared {
        /// The other nodes.
        others: String,
    },
    /// `App::new` asked for a state that needs `App::start`.
    #[error("--state redis connects to the network: start the node with App::start")]
    NeedsStart,
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
