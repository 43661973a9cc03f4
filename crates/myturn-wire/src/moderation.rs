//! Moderation: a user's report on a partner, and the admin's actions on
//! users (admitting from the waiting room, speaking in the lobby, bans)
//! with what they list.

use serde::{Deserialize, Serialize};

/// `POST /v1/me/report`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// What happened, at most [`REPORT_MAX_LEN`](crate::REPORT_MAX_LEN) bytes, one line.
    pub reason: String,
}

/// One report (`GET /v1/admin/reports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// Who reported.
    pub reporter: String,
    /// Who was reported (the current or last partner).
    pub reported: String,
    /// Why.
    pub reason: String,
    /// When, Unix seconds.
    pub at: u64,
}

/// `GET /v1/admin/reports`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reports {
    /// Newest last.
    pub reports: Vec<Report>,
}

/// `POST /v1/admin/admit`: one user by name, or everyone waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmitRequest {
    /// Admit this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Admit everyone in the waiting room.
    #[serde(default)]
    pub all: bool,
}

/// Answer to `POST /v1/admin/admit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdmitResponse {
    /// Who was admitted.
    pub admitted: Vec<String>,
}

/// `POST /v1/admin/lobby`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LobbySay {
    /// The line to say.
    pub text: String,
}

/// `POST /v1/admin/bans`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// The name to ban (case-insensitive).
    pub name: String,
    /// For how long, in seconds (1 to 31,536,000).
    pub seconds: u64,
}

/// One ban (`GET /v1/admin/bans`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ban {
    /// The banned name, lower-cased.
    pub name: String,
    /// End of the ban, Unix seconds.
    pub until: u64,
}

/// `GET /v1/admin/bans`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bans {
    /// Active bans.
    pub bans: Vec<Ban>,
}
