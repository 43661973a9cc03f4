//! Every use case, once: the [`UseCase`] trait and the [`Command`] /
//! [`Reply`] enums listing them (mini-redis's shape: parse, then one
//! `apply`).
//!
//! A use case is a plain struct of its inputs with one `apply` function
//! over a [`Ctx`]. The `use_cases!` list below turns each into a
//! [`Command`] variant (what a store executes, and could send over a
//! wire) and a [`Reply`] variant (what it answers). Adding a use case is
//! one struct with its `apply`, and one line in the list.

use super::cases::{account, lobby, moderation, pbx, status, streams, views};
use super::context::Ctx;
use super::error::CoreError;
pub use super::usecase::UseCase;

/// A use case listed in [`Command`]: it converts to a command, and its
/// answer back out of a [`Reply`].
pub trait Listed: UseCase + Into<Command> {
    /// This use case's answer, if `reply` is one.
    fn output(reply: Reply) -> Option<Self::Output>;
}

macro_rules! use_cases {
    ($($(#[$doc:meta])* $name:ident => $path:ty,)*) => {
        /// A use case to run, by name. See the module docs.
        #[derive(Debug, Clone)]
        pub enum Command {
            $($(#[$doc])* $name($path),)*
        }

        /// What a [`Command`] answered.
        #[derive(Debug, Clone)]
        pub enum Reply {
            $($(#[$doc])* $name(<$path as UseCase>::Output),)*
        }

        impl Command {
            /// Runs the use case.
            pub fn apply(self, cx: &mut Ctx<'_>) -> Result<Reply, CoreError> {
                match self {
                    $(Command::$name(c) => c.apply(cx).map(Reply::$name),)*
                }
            }

            /// The use case's name (for logs and metrics).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Command::$name(_) => stringify!($name),)*
                }
            }
        }

        $(
            impl From<$path> for Command {
                fn from(c: $path) -> Self {
                    Command::$name(c)
                }
            }

            impl Listed for $path {
                fn output(reply: Reply) -> Option<Self::Output> {
                    match reply {
                        Reply::$name(o) => Some(o),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )*
    };
}

use_cases! {
    /// `POST /v1/users`.
    Register => account::Register,
    /// Every authenticated request and stream.
    Authenticate => account::Authenticate,
    /// `reauth` on an open stream.
    Reauth => account::Reauth,
    /// `POST /v1/session/refresh`.
    Refresh => account::Refresh,
    /// `GET /v1/me`.
    Me => account::Me,
    /// `DELETE /v1/me`.
    Logout => account::Logout,
    /// `PUT /v1/me/status`.
    SetStatus => status::SetStatus,
    /// `GET /v1/me/peer`.
    PeerOf => status::PeerOf,
    /// A message or pong on a stream.
    Heard => streams::Heard,
    /// A long-poll opened or closed.
    Watch => streams::Watch,
    /// An event stream opened.
    StreamOpened => streams::StreamOpened,
    /// An event stream closed.
    StreamClosed => streams::StreamClosed,
    /// The periodic sweep.
    Sweep => streams::Sweep,
    /// A node's streams died with it.
    NodeGone => streams::NodeGone,
    /// A lobby line.
    LobbySay => lobby::LobbySay,
    /// A typing indicator.
    Typing => lobby::Typing,
    /// `POST /v1/me/report`.
    Report => moderation::Report,
    /// `POST /v1/admin/admit`.
    Admit => moderation::Admit,
    /// `DELETE /v1/admin/users/{name}`.
    Kick => moderation::Kick,
    /// `POST /v1/admin/bans`.
    Ban => moderation::Ban,
    /// `DELETE /v1/admin/bans/{name}`.
    Unban => moderation::Unban,
    /// A SIP binding made or gone on a node's built-in PBX.
    SipBinding => pbx::SipBinding,
    /// A node's PBX and media figures changed.
    RelayChanged => pbx::RelayChanged,
    /// `GET /v1/admin/users`.
    Users => views::Users,
    /// `GET /v1/admin/pairs`.
    Pairs => views::Pairs,
    /// `GET /v1/admin/reports`.
    Reports => views::Reports,
    /// `GET /v1/admin/bans`.
    Bans => views::Bans,
    /// `GET /v1/admin/interests`.
    Interests => views::Interests,
    /// What the PBX must hold.
    PbxUsers => views::PbxUsers,
    /// Users registered.
    UserCount => views::UserCount,
    /// Figures for `/metrics`.
    Counts => views::Counts,
}
