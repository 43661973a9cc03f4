//! Why the PBX could not be set up at start.

use std::path::PathBuf;

use crate::config::ReadError;

/// Why the PBX could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A secret file could not be read.
    #[error(transparent)]
    ReadFile(#[from] ReadError),
    /// `--asterisk-conf-dir` does not exist.
    #[error("--asterisk-conf-dir {0} is not a directory; create it or point the flag at Asterisk's config directory")]
    ConfDir(PathBuf),
    /// `--reload ami` without a secret.
    #[error("--reload ami needs the manager secret: set MYTURN_AMI_SECRET or --ami-secret-file")]
    AmiSecretMissing,
    /// `--media-relay rtpengine` without `--rtpengine`.
    #[error(
        "--media-relay rtpengine needs rtpengine's ng control address: --rtpengine udp:IP:PORT"
    )]
    RtpengineMissing,
    /// `--pbx kamailio` without `--kamailio-redis` or `--state redis://…`.
    #[error("--pbx kamailio needs the Redis its Kamailio nodes read: --kamailio-redis redis://HOST:PORT/DB (or --state redis://… to use the state's Redis)")]
    KamailioRedisMissing,
    /// `--kamailio-redis` is not a Redis URL.
    #[error("--kamailio-redis {url}: {reason} (expected redis://[:PASSWORD@]HOST:PORT/DB)")]
    KamailioRedis {
        /// The URL, password hidden.
        url: String,
        /// Why.
        reason: String,
    },
    /// `--reload command` with an empty command.
    #[error("--reload-command is empty")]
    EmptyReloadCommand,
    /// The built-in PBX's address is unusable.
    #[error("cannot listen for SIP on udp/{addr}: {source} (another PBX running? choose one with --sip-listen)")]
    SipBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
