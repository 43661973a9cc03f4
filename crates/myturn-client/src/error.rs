//! [`ClientError`]: why a step failed, in words a user can act on, with the
//! failure underneath kept as a typed [`source`](std::error::Error::source).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use myturn_sip::driver::DriverError;

/// Why a step failed, in words a user can act on.
///
/// Its `Display` is the sentence for the user; the failure underneath (an
/// HTTP, WebSocket, socket, SIP, media or audio error) is its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The pairing server cannot be reached.
    #[error("cannot reach the myTurn server: {}{source}", At(.at))]
    Unreachable {
        /// Where, when the failure itself does not say (the server's URL).
        at: Option<String>,
        /// The transport that failed.
        #[source]
        source: Transport,
    },
    /// The server refused a request: its status and [`myturn_wire::ErrorBody`].
    #[error("{what}: {message} ({status} {code})")]
    Server {
        /// The request: `register`, `refresh`, `ready`, `peer`, …
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// The error body's stable code (`name_taken`, …).
        code: String,
        /// The error body's message, for people.
        message: String,
    },
    /// The server's TLS certificate was refused (why, and what to do).
    #[error("{why}")]
    Tls {
        /// What to tell the user (which check failed, and what to do).
        why: String,
        /// The connection that refused it.
        #[source]
        source: Transport,
    },
    /// The server answered something unexpected.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The server's answer could not be decoded.
    #[error("unexpected answer from the server: {0}")]
    Undecodable(#[source] Transport),
    /// The PBX refused or did not answer.
    #[error(transparent)]
    Pbx(#[from] PbxError),
    /// A local socket or file could not be used.
    #[error("{}{source}", At(.context))]
    Io {
        /// What was being done, when the failure itself does not say.
        context: Option<String>,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file given with `--ca-cert` holds no PEM certificate.
    #[error("--ca-cert {}: no PEM certificate in it", .0.display())]
    NoCaCertificate(PathBuf),
    /// A sound device could not be opened.
    #[cfg(feature = "audio")]
    #[error("{what}: {source}")]
    Audio {
        /// `cannot record` or `cannot play`.
        what: &'static str,
        /// The device's failure.
        #[source]
        source: myturn_media::audio::AudioError,
    },
    /// A sound device misbehaved (what it did, and what to check).
    #[error("{0}")]
    Device(&'static str),
    /// The media key agreement failed.
    #[error("secure channel failed: {0}")]
    Media(#[source] myturn_media::session::Failure),
    /// Waited too long for something.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The partner left before the call was set up.
    #[error("the partner left")]
    PeerLeft,
}

/// The transport under [`ClientError::Unreachable`], [`ClientError::Tls`]
/// and [`ClientError::Undecodable`].
#[derive(Debug, thiserror::Error)]
pub enum Transport {
    /// An HTTP request (or building the HTTP client) failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The WebSocket event stream failed.
    #[error(transparent)]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// A socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The event stream is closed.
    #[error("the event stream closed")]
    Closed,
}

impl Transport {
    /// The failure itself (not its source: an `io::Error`'s `source()`
    /// skips the error it wraps).
    fn inner(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Transport::Http(e) => Some(e),
            Transport::WebSocket(e) => Some(&**e),
            Transport::Io(e) => Some(e),
            Transport::Closed => None,
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Transport {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Transport::WebSocket(Box::new(e))
    }
}

/// Why the PBX refused or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum PbxError {
    /// The SIP agent refused a command, or stopped.
    #[error(transparent)]
    Agent(#[from] DriverError),
    /// The PBX kept refusing this account's REGISTER.
    #[error(
        "SIP registration refused: {code} {reason} (still refused after {secs} s; \
         the PBX does not accept this account's credentials)"
    )]
    RegistrationRefused {
        /// The SIP status code.
        code: u16,
        /// Its reason phrase.
        reason: String,
        /// How long it was retried, in seconds.
        secs: u64,
    },
    /// No answer to REGISTER.
    #[error("no answer from the PBX at {0}")]
    NoAnswer(SocketAddr),
    /// The call was refused.
    #[error("call failed: {code} {reason}")]
    CallFailed {
        /// The SIP status code.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// No TLS connection to the PBX.
    #[error("cannot reach the PBX over TLS at {pbx}: {source}")]
    TlsUnreachable {
        /// The PBX's address.
        pbx: SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl From<DriverError> for ClientError {
    fn from(e: DriverError) -> Self {
        ClientError::Pbx(e.into())
    }
}

impl From<std::io::Error> for ClientError {
    fn from(source: std::io::Error) -> Self {
        ClientError::Io {
            context: None,
            source,
        }
    }
}

impl ClientError {
    /// The server could not be reached, as the transport says.
    pub(crate) fn unreachable(source: impl Into<Transport>) -> Self {
        ClientError::Unreachable {
            at: None,
            source: source.into(),
        }
    }

    /// An I/O failure while doing `context`.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            context: Some(context.into()),
            source,
        }
    }

    /// A refused certificate if `explain` finds one in `source`, else the
    /// server is unreachable (at `at`).
    pub(crate) fn connecting(at: String, source: impl Into<Transport>) -> Self {
        let source = source.into();
        match source.inner().and_then(crate::tls::explain) {
            Some(why) => ClientError::Tls { why, source },
            None => ClientError::Unreachable {
                at: Some(at),
                source,
            },
        }
    }
}

/// `"{at}: "`, or nothing.
struct At<'a>(&'a Option<String>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, "{at}: "),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_read_as_before_and_keep_their_cause() {
        let e = ClientError::Unreachable {
            at: Some("http://192.0.2.1:8080".into()),
            source: Transport::Closed,
        };
        assert_eq!(
            e.to_string(),
            "cannot reach the myTurn server: http://192.0.2.1:8080: the event stream closed"
        );
        assert!(e.source().is_some());
        let e = ClientError::unreachable(Transport::Closed);
        assert_eq!(
            e.to_string(),
            "cannot reach the myTurn server: the event stream closed"
        );
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "in use");
        let e = ClientError::io("media socket", io);
        assert_eq!(e.to_string(), "media socket: in use");
        assert!(e.source().is_some());
        let e = ClientError::from(PbxError::CallFailed {
            code: 486,
            reason: "Busy Here".into(),
        });
        assert_eq!(e.to_string(), "call failed: 486 Busy Here");
        assert!(matches!(e, ClientError::Pbx(_)));
        let e = ClientError::Server {
            what: "register",
            status: 409,
            code: "name_taken".into(),
            message: "that name is taken".into(),
        };
        assert_eq!(
            e.to_string(),
            "register: that name is taken (409 name_taken)"
        );
    }
}
