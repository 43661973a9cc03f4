//! The web admin console in a real browser (issue #16): Debian's
//! `chromium`, headless, started by the test and driven over the DevTools
//! protocol, against a real server (moderated admission). It logs in, sees
//! two users become a pair, admits a user from the waiting room, kicks a
//! user and sees them gone, and shows a lobby line full of HTML special
//! characters as text (nicknames cannot hold them: the name rule allows
//! letters, digits, `_` and `-`). A screenshot is saved under
//! `target/test-artifacts/`.
//!
//! Without chromium: SKIPPED, and a failure under CI.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use myturn_testkit::{chromium, skip, Scratch};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, Live};

/// A DevTools session on one page.
struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
    session: String,
}

impl Page {
    async fn open(browser_ws: &str) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(browser_ws).await.unwrap();
        let mut p = Page {
            ws,
            next: 0,
            session: String::new(),
        };
        let target = p
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = p
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        p.session = attached["sessionId"].as_str().unwrap().to_owned();
        p.call("Page.enable", json!({})).await;
        p.call("Runtime.enable", json!({})).await;
        p
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let m = tokio::time::timeout_at(end.into(), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .unwrap()
                .unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expr` in the page; its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    async fn until(&mut self, what: &str, expr: &str) {
        let end = Instant::now() + Duration::from_secs(15);
        // While the page loads, parts of it may not exist yet: not yet true.
        let guarded = format!(
            "(() => {{ try {{ return ({expr}) === true; }} catch (_) {{ return false; }} }})()"
        );
        loop {
            if self.eval(&guarded).await == json!(true) {
                return;
            }
            if Instant::now() > end {
                let body = self.eval("document.body.innerText").await;
                panic!("the console never showed {what}; it shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Submits the login form with `token`.
    async fn log_in(&mut self, token: &str) {
        let token = serde_json::to_string(token).unwrap();
        self.eval(&format!(
            "document.querySelector('#token').value = {token}; document.querySelector('#login-form').requestSubmit(); true"
        ))
        .await;
    }

    async fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let ok = self
            .eval(&format!(
                "(() => {{ const b = document.querySelector({sel}); if (!b) return false; b.click(); return true; }})()"
            ))
            .await;
        assert_eq!(ok, json!(true), "nothing to click at {selector}");
    }
}

/// Registers `name` and returns its access token.
async fn user(live: &Live, name: &str) -> String {
    common::token(&live.register(name).await)
}

async fn ready(live: &Live, token: &str) {
    let r = live.status(token, "ready").await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_pairs_admits_kicks_and_escapes() {
    if !skip::installed("chromium") {
        return;
    }
    let dir = Scratch::new();
    let (_browser, devtools) = chromium::headless(dir.path());
    let mut cfg = common::config();
    cfg.admission = myturn_server::Admission::Moderated;
    let live = Live::start(myturn_server::App::new(&cfg, None).unwrap()).await;
    let base = &live.base;

    let mut page = Page::open(&devtools).await;
    page.call("Page.navigate", json!({"url": format!("{base}/admin")}))
        .await;
    // The script is loaded and has enabled the form.
    page.until(
        "the login form, ready",
        "document.body.dataset.ready === '1' && !document.querySelector('#login-form button').disabled",
    )
    .await;
    // A wrong token is refused, with a message.
    page.log_in("not-the-token-at-all").await;
    page.until(
        "a refused login",
        "document.querySelector('#login-error').textContent.includes('refused')",
    )
    .await;
    page.log_in(common::ADMIN).await;
    page.until(
        "the console",
        "!document.querySelector('#console').hidden && !!document.body.dataset.refreshed",
    )
    .await;

    // Two users say ready: both wait in the waiting room; admitting them
    // pairs them.
    let alice = user(&live, "alice").await;
    let bob = user(&live, "bob").await;
    ready(&live, &alice).await;
    ready(&live, &bob).await;
    page.until(
        "alice and bob in the waiting room",
        "['alice','bob'].every(n => !!document.querySelector(`#waiting li[data-name=\"${n}\"]`))",
    )
    .await;
    page.click("#waiting li[data-name=\"alice\"] button").await;
    page.until(
        "alice admitted (gone from the waiting room)",
        "!document.querySelector('#waiting li[data-name=\"alice\"]')",
    )
    .await;
    page.click("#admit-all").await;
    page.until(
        "the pair",
        "[...document.querySelectorAll('#pairs tbody tr')].some(r => r.textContent.includes('alice') && r.textContent.includes('bob'))",
    )
    .await;

    // A lobby line full of HTML special characters shows as text.
    let carol = user(&live, "carol").await;
    ready(&live, &carol).await;
    let nasty =
        "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> & \"quotes\"";
    let r = live
        .admin_post("/v1/admin/lobby", json!({"text": nasty}))
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let shown = format!(
        "[...document.querySelectorAll('#lobby li')].some(li => li.textContent.includes({}))",
        serde_json::to_string(nasty).unwrap()
    );
    page.until("the lobby line, as text", &shown).await;
    assert_eq!(page.eval("window.pwned === undefined").await, json!(true));
    assert_eq!(
        page.eval("document.querySelectorAll('#lobby script, #lobby img').length")
            .await,
        json!(0)
    );

    // Kick carol: two clicks (the first asks to confirm); she is gone.
    page.until(
        "carol in the users table",
        "!!document.querySelector('#users tr[data-name=\"carol\"]')",
    )
    .await;
    page.click("#users tr[data-name=\"carol\"] button.danger")
        .await;
    page.click("#users tr[data-name=\"carol\"] button.danger")
        .await;
    page.until(
        "carol gone",
        "!document.querySelector('#users tr[data-name=\"carol\"]')",
    )
    .await;
    let users = live.admin_get("/v1/admin/users").await;
    assert!(!users.to_string().contains("carol"), "{users}");

    // The charts draw the server's hour of history (sampled at start).
    page.until(
        "the charts",
        "document.querySelectorAll('#charts figure').length === 7 && document.querySelector('#charts figcaption').textContent.startsWith('Users online')",
    )
    .await;

    // On a phone's screen nothing spills sideways (tables scroll inside
    // their own boxes).
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await;
    page.until(
        "a layout that fits 390 px",
        "document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    let phone = page
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    page.call("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;

    // The screenshots, as test artifacts.
    let shot = page
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin-console.png"), &png).unwrap();
    std::fs::write(
        dir.join("admin-console-phone.png"),
        base64_decode(phone["data"].as_str().unwrap()),
    )
    .unwrap();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
