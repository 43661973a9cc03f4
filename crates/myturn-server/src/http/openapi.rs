//! The API's OpenAPI 3.1 document, generated from the handlers' own
//! annotations (`#[utoipa::path]` beside each handler) and the
//! wire types (`utoipa::ToSchema` in `myturn-wire`). Served at
//! `GET /openapi.json`; a test checks it lists every route the router has,
//! and that `docs/api.md` names every operation in it.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, console, edge, events, ops, pairing, users};

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "myTurn pairing server",
        description = "Random pairing for end-to-end encrypted voice and text calls. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`. See docs/api.md.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        users::create_user, users::me, users::logout, pairing::set_status, pairing::peer,
        pairing::report, users::refresh, events::user_events, events::admin_events,
        admin::admin_admit, admin::admin_lobby, admin::admin_reports, admin::admin_bans,
        admin::admin_ban, admin::admin_unban, admin::admin_users, admin::admin_kick,
        admin::admin_pairs, admin::admin_interests, admin::admin_sip_conf, admin::admin_media, admin::admin_history,
        edge::admin_blocked, edge::admin_unblock,
        ops::healthz, ops::readyz, ops::metrics, serve,
        console::page, console::script, console::style,
    ),
    modifiers(&Auth),
    tags(
        (name = "users", description = "Registration, sessions and tokens"),
        (name = "pairing", description = "Ready, busy, and the partner"),
        (name = "events", description = "WebSocket event streams"),
        (name = "moderation", description = "Reports, waiting room, lobby, bans"),
        (name = "admin", description = "Users, pairs, PBX and media views"),
        (name = "operations", description = "Health and metrics"),
        (name = "console", description = "The web admin console"),
    )
)]
pub(crate) struct ApiDoc;

/// The two bearer schemes: a user's access token and the admin token.
struct Auth;

impl Modify for Auth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A user's access token (POST /v1/users, POST /v1/session/refresh)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (MYTURN_ADMIN_TOKEN or --admin-token-file)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON.
pub(crate) fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations", responses((status = 200, description = "this document", content_type = "application/json")))]
pub(crate) async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}
