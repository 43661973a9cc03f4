//! The API's OpenAPI 3.1 document, generated from the handlers' own
//! annotations (`#[utoipa::path]` in `api.rs` and `events.rs`) and the
//! wire types (`utoipa::ToSchema` in `myturn-wire`). Served at
//! `GET /openapi.json`; a test checks it lists every route the router has,
//! and that `docs/api.md` names every operation in it.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{api, events};

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
        api::create_user, api::me, api::logout, api::set_status, api::peer, api::report,
        api::refresh, events::user_events, events::admin_events, api::admin_admit,
        api::admin_lobby, api::admin_reports, api::admin_bans, api::admin_ban, api::admin_unban,
        api::admin_users, api::admin_kick, api::admin_pairs, api::admin_sip_conf,
        api::admin_media, api::admin_history, api::healthz, api::metrics, api::openapi,
        crate::console::page, crate::console::script, crate::console::style,
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
