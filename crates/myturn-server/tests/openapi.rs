//! `GET /openapi.json` is an OpenAPI 3.1 document that lists exactly the
//! routes the router serves (read from `http/mod.rs`'s `.route(…)` table),
//! `docs/api.md` names every operation in it, and each operation's
//! statuses are exactly those the server answers ([`coverage`]). `GET
//! /docs` renders it from assets built into the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "openapi/coverage.rs"]
mod coverage;

use std::collections::BTreeSet;

use serde_json::Value;

/// (METHOD, path) for every route in `http/mod.rs`.
fn routed() -> BTreeSet<(String, String)> {
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).unwrap();
    // As rustfmt lays it out, a long route spans lines.
    let src: String = src.split_whitespace().collect();
    let mut out = BTreeSet::new();
    for part in src.split(".route(\"").skip(1) {
        let (path, rest) = part.split_once('"').unwrap();
        let call = rest.split_once("))").map_or(rest, |(c, _)| c);
        for m in ["get", "post", "put", "delete", "patch"] {
            if call.contains(&format!("{m}(")) {
                out.insert((m.to_uppercase(), path.to_owned()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_lists_every_route_and_the_docs_name_every_operation() {
    let app = common::app();
    let r = common::get(&app, "/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let doc: Value = r.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut documented = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            // Unique, as OpenAPI requires (and /docs links by them).
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
        }
    }
    let routes = routed();
    assert!(routes.len() >= 20, "{routes:?}");
    assert_eq!(routes, documented, "router and OpenAPI document differ");
    // Every error body is the one shape.
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["ErrorBody"]["properties"]["error"].is_object(),
        "{schemas}"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // The admin stream's events are in the document, each variant named.
    let admin_events = schemas["AdminEvent"].to_string();
    for kind in [
        "user_registered",
        "user_left",
        "pair_made",
        "pair_ended",
        "relay",
    ] {
        assert!(
            admin_events.contains(kind),
            "AdminEvent lacks {kind}: {admin_events}"
        );
    }
    assert!(schemas["AdminStreamEvent"].is_object(), "{schemas}");
    let api_md =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
    let missing: Vec<String> = documented
        .iter()
        .map(|(m, p)| format!("{m} {p}"))
        .filter(|op| !api_md.contains(op.as_str()))
        .collect();
    assert!(missing.is_empty(), "docs/api.md does not name: {missing:?}");
}

#[tokio::test]
async fn every_metric_the_grafana_dashboard_plots_exists() {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/grafana/myturn-server.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let app = common::app();
    let r = common::get(&app, "/metrics", None).await;
    assert_eq!(r.status, 200);
    let exposed: BTreeSet<&str> = r
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut plotted = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("myturn_") {
                    plotted.insert(word.to_owned());
                }
            }
        }
    }
    assert!(plotted.len() >= 15, "{plotted:?}");
    let missing: Vec<&String> = plotted
        .iter()
        .filter(|m| !exposed.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard plots metrics /metrics does not have: {missing:?}"
    );
    // One node or several: every query follows the dashboard's node
    // variable, and the SIP edge has panels of its own.
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(vars.contains(&"instance"), "{vars:?}");
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains("instance=~\"$instance\""), "{expr}");
        }
    }
    for m in [
        "myturn_sip_registrations_total",
        "myturn_sip_calls_routed_total",
        "myturn_sip_blocked_packets_total",
        "myturn_sip_flood_blocks_total",
    ] {
        assert!(plotted.contains(m), "no SIP panel plots {m}");
    }
}

#[tokio::test]
async fn the_admin_history_holds_the_key_figures_of_the_last_hour() {
    let app = common::app();
    for name in ["alice", "bob"] {
        common::register(&app, name).await;
    }
    app.state.sample_history().await;
    let r = common::get(&app, "/v1/admin/history", Some(common::ADMIN)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["every_secs"], 30);
    let last = r.body["samples"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["users"], 2, "{last}");
    assert!(last["at"].as_u64().unwrap() > 1_700_000_000);
    // An hour at most: the oldest samples go.
    for _ in 0..130 {
        app.state.sample_history().await;
    }
    let r = common::get(&app, "/v1/admin/history", Some(common::ADMIN)).await;
    assert_eq!(r.body["samples"].as_array().unwrap().len(), 120);
    let r = common::get(&app, "/v1/admin/history", None).await;
    assert_eq!(r.status, 401);
}

/// Every `http://` or `https://` URL in `text`.
fn urls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for scheme in ["http://", "https://"] {
        let mut rest = text;
        while let Some(i) = rest.find(scheme) {
            let url: String = rest[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ')' | '<' | '>'))
                .collect();
            rest = &rest[i + scheme.len()..];
            out.push(url);
        }
    }
    out
}

#[tokio::test]
async fn the_api_page_comes_from_the_binary_and_names_no_other_host() {
    let live = common::live(&common::config()).await;
    let own = [
        live.base.clone(),
        format!("http://localhost:{}", live.addr.port()),
    ];
    let mut page = String::new();
    for (path, ctype) in [
        ("/docs", "text/html"),
        ("/docs/app.js", "text/javascript"),
        ("/docs/app.css", "text/css"),
    ] {
        let r = live.get(path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(ctype),
            "{path}: {:?}",
            headers["content-type"]
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let text = r.text().await.unwrap();
        let foreign: Vec<String> = urls(&text)
            .into_iter()
            .filter(|u| !own.iter().any(|o| u.starts_with(o.as_str())))
            .collect();
        assert!(foreign.is_empty(), "{path} names other hosts: {foreign:?}");
        assert!(
            !text.contains("//cdn") && !text.contains("@import"),
            "{path}"
        );
        if path == "/docs" {
            page = text;
        }
    }
    // Every script, style sheet and link of the page is this server's own.
    assert!(
        page.contains("<script src=\"/docs/app.js\"></script>"),
        "{page}"
    );
    assert!(page.contains("href=\"/docs/app.css\""), "{page}");
    for attr in ["src=\"", "href=\""] {
        for part in page.split(attr).skip(1) {
            let target = part.split('"').next().unwrap();
            assert!(
                (target.starts_with('/') && !target.starts_with("//")) || target.starts_with('#'),
                "{attr}{target}: not this server's"
            );
        }
    }
    // What the page renders is this server's document.
    assert!(page.contains("/openapi.json"), "{page}");
    assert_eq!(
        urls("see https://cdn.example/x.js, http://a/b"),
        ["http://a/b", "https://cdn.example/x.js,"]
    );
}
