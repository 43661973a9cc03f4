//! The API's OpenAPI 3.1 document, generated from the handlers' own
//! annotations (`#[utoipa::path]` beside each handler) and the
//! wire types (`utoipa::ToSchema` in `myturn-wire`). Served at
//! `GET /openapi.json` (and read in a browser at `GET /docs`); a test
//! checks it lists every route the router has, that `docs/api.md` names
//! every operation in it, and that each operation's statuses are exactly
//! those the server answers (`tests/openapi/coverage.rs`).
//!
//! A handler's annotation lists the answers of the handler itself (its
//! use case's refusals, its credentials). The answers of the layers in
//! front of it are added here ([`Layers`]), to every operation they apply
//! to: the per-IP request limit's 429 to all, and the JSON body
//! extractor's 400, 413 and 415 to each operation with a request body.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Ref, RefOr, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi};

use super::{
    admin, apidocs, console, edge, events, media, ops, pairing, sip, users, webpage, webrtc,
};

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
        pairing::report, users::refresh, events::user_events, events::admin_events, sip::sip_websocket, media::media_websocket, webrtc::media_webrtc,
        admin::admin_admit, admin::admin_lobby, admin::admin_reports, admin::admin_bans,
        admin::admin_ban, admin::admin_unban, admin::admin_users, admin::admin_kick,
        admin::admin_pairs, admin::admin_interests, admin::admin_sip_conf, admin::admin_media, admin::admin_history,
        edge::admin_blocked, edge::admin_unblock,
        ops::healthz, ops::readyz, ops::metrics, serve,
        console::page, console::script, console::style,
        apidocs::page, apidocs::script, apidocs::style,
        webpage::page, webpage::script, webpage::style, webpage::worklet, webpage::glue, webpage::module,
    ),
    components(schemas(myturn_wire::ErrorBody)),
    modifiers(&Auth, &Layers),
    tags(
        (name = "users", description = "Registration, sessions and tokens"),
        (name = "pairing", description = "Ready, busy, and the partner"),
        (name = "events", description = "WebSocket event streams"),
        (name = "sip", description = "SIP over WebSocket (RFC 7118) to the built-in PBX"),
        (name = "moderation", description = "Reports, waiting room, lobby, bans"),
        (name = "admin", description = "Users, pairs, PBX and media views"),
        (name = "operations", description = "Health and metrics"),
        (name = "console", description = "The web admin console"),
        (name = "web", description = "The browser client at `/` and its assets"),
        (name = "docs", description = "This document, to read in a browser"),
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

/// The answers of the layers in front of every handler, added to each
/// operation they apply to (beside what its own annotation says, if it
/// gives the same status for reasons of its own).
struct Layers;

/// A response whose body is the error body.
fn refusal(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// Adds `status` to `op`, or, when its handler gives that status too,
/// adds this reason to the handler's.
fn add(op: &mut Operation, status: &str, response: utoipa::openapi::Response) {
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(own)) => {
            own.description = format!("{}; or {}", own.description, response.description);
            for (name, h) in response.headers {
                own.headers.entry(name).or_insert(h);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            op.responses
                .responses
                .insert(status.to_owned(), RefOr::T(response));
        }
    }
}

impl Modify for Layers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let seconds = || {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some(
                    "with `rate_limited`: seconds until a retry can succeed",
                ))
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let mut limited = refusal(
                    "this client IP is past `--http-rate-limit` (`rate_limited`, refused \
                     before routing), or holds `--http-conn-limit` connections \
                     (`too_many_connections`, refused before the request is read)",
                );
                limited.headers.insert("Retry-After".into(), seconds());
                add(op, "429", limited);
                if let Some(RefOr::T(r)) = op.responses.responses.get_mut("401") {
                    let challenge = HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some("`Bearer`"))
                        .build();
                    r.headers.insert("WWW-Authenticate".into(), challenge);
                }
                if op.request_body.is_some() {
                    add(
                        op,
                        "400",
                        refusal(
                            "a body that is not this operation's JSON (`invalid_json`; \
                             `invalid_body`: a wrong type, an unknown or a missing field)",
                        ),
                    );
                    add(
                        op,
                        "413",
                        refusal(&format!(
                            "a body over {} bytes (`payload_too_large`)",
                            super::error::BODY_LIMIT
                        )),
                    );
                    add(
                        op,
                        "415",
                        refusal(
                            "a body without `Content-Type: application/json` \
                             (`unsupported_media_type`)",
                        ),
                    );
                }
            }
        }
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
