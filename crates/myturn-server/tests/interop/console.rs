//! The web admin console in a real browser (issues #16, #27): Debian's
//! `chromium`, headless, started by the test and driven over the DevTools
//! protocol, against a real server.
//!
//! * Moderated admission: it logs in, sees two users become a pair,
//!   admits a user from the waiting room, kicks a user and sees them gone,
//!   and shows a lobby line full of HTML special characters as text
//!   (nicknames cannot hold them: the name rule allows letters, digits,
//!   `_` and `-`).
//! * Open admission, live: a user registered through the API, a new pair
//!   and a logout each show within 1 s of the API call, with no reload and
//!   no refresh (the admin event stream); the charts' captions read the
//!   tables' figures; a lobby line said before the page opened shows, with
//!   its time; without the stream the page says it is not live; with the
//!   server unreachable the data is greyed and the grid keeps its shape;
//!   on a phone the row actions are in view. Screenshots at 1280x800 and
//!   390x844 are saved in a temporary directory (the paths are printed).
//!
//! Without chromium: SKIPPED, and a failure under CI.

use std::time::{Duration, Instant};

use myturn_testkit::{chromium, skip, Scratch};
use serde_json::{json, Value};

use crate::common::{self, Live};
use crate::devtools::{base64_decode, Page};

/// The console's own steps.
impl Page {
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

    // Dave registered but never said ready: not admitted, yet not in the
    // waiting room either (only ready users wait there).
    let _dave = user(&live, "dave").await;
    page.until(
        "dave, busy and not admitted, outside the waiting room",
        "(() => { const r = document.querySelector('#users tr[data-name=\"dave\"]'); return !!r && r.textContent.includes('busy (not admitted yet)') && !document.querySelector('#waiting li[data-name=\"dave\"]'); })()",
    )
    .await;

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
}

/// How long after `start` the page first shows `expr` true (checked every
/// 20 ms, for at most 5 s).
async fn shown_after(page: &mut Page, what: &str, expr: &str, start: Instant) -> Duration {
    let guarded = format!(
        "(() => {{ try {{ return ({expr}) === true; }} catch (_) {{ return false; }} }})()"
    );
    loop {
        if page.eval(&guarded).await == json!(true) {
            return start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(5) {
            let body = page.eval("document.body.innerText").await;
            panic!("the console never showed {what}; it shows:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts the page showed `what` within a second of `start` (the API
/// call), with no reload and no full refresh since `refreshed`.
async fn live_within_a_second(
    page: &mut Page,
    what: &str,
    expr: &str,
    start: Instant,
    refreshed: &Value,
) {
    let took = shown_after(page, what, expr, start).await;
    println!("{what}: shown {} ms after the API call", took.as_millis());
    assert!(
        took < Duration::from_secs(1),
        "{what} took {took:?} to show (more than 1 s)"
    );
    assert_eq!(
        &page.eval("document.body.dataset.refreshed").await,
        refreshed,
        "{what} came from a refresh, not the event stream"
    );
}

/// A screenshot of the page at `width` x `height`, saved in `dir`.
async fn screenshot(
    page: &mut Page,
    dir: &std::path::Path,
    name: &str,
    width: u32,
    height: u32,
    mobile: bool,
) {
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
    )
    .await;
    // The layout settles at the new width (the charts are redrawn from
    // the model: nothing to fetch).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shot = page
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = dir.join(name);
    std::fs::write(&path, &png).unwrap();
    println!("screenshot {width}x{height}: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_live_within_a_second_and_tells_the_truth() {
    if !skip::installed("chromium") {
        return;
    }
    let dir = Scratch::new();
    let (_browser, devtools) = chromium::headless(dir.path());
    let live = Live::start(myturn_server::App::new(&common::config(), None).unwrap()).await;
    let base = &live.base;

    // Said before the page opened: the console still shows it, timed.
    let early = "said before the console was opened";
    let r = live
        .admin_post("/v1/admin/lobby", json!({"text": early}))
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let ann = user(&live, "ann").await;
    ready(&live, &ann).await;

    let mut page = Page::open(&devtools).await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    page.call("Page.navigate", json!({"url": format!("{base}/admin")}))
        .await;
    page.until(
        "the login form, ready",
        "document.body.dataset.ready === '1' && !document.querySelector('#login-form button').disabled",
    )
    .await;
    page.log_in(common::ADMIN).await;
    page.until(
        "the console, live",
        "!!document.body.dataset.refreshed && document.querySelector('#conn').dataset.state === 'live' && !!document.querySelector('#users tr[data-name=\"ann\"]')",
    )
    .await;
    // The refresh the stream's opening asked for has landed: from here on
    // the page only changes by events (the next refresh is a minute away).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refreshed = page.eval("document.body.dataset.refreshed").await;

    page.until(
        "the early lobby line, with its time",
        &format!(
            "[...document.querySelectorAll('#lobby li')].some(li => li.textContent.includes({}) && /\\d/.test(li.querySelector('time.at').textContent))",
            serde_json::to_string(early).unwrap()
        ),
    )
    .await;
    // Open admission: nobody is in a waiting room, and the page says why
    // while ann waits for a partner.
    page.until(
        "the open-admission note",
        "document.querySelector('#waiting-empty').textContent.includes('Admission is open') && document.querySelector('#waiting-empty').textContent.includes('1 waiting') && document.querySelectorAll('#waiting li').length === 0",
    )
    .await;
    assert_eq!(
        page.eval("[...document.querySelectorAll('#users thead th')].map(t => t.textContent).includes('SIP')").await,
        json!(true),
        "no SIP column"
    );

    // A user registered through the API appears within a second.
    let start = Instant::now();
    let bea = user(&live, "bea").await;
    live_within_a_second(
        &mut page,
        "a new user",
        "!!document.querySelector('#users tr[data-name=\"bea\"]')",
        start,
        &refreshed,
    )
    .await;

    // A new pair appears within a second of the `ready` that made it.
    let start = Instant::now();
    ready(&live, &bea).await;
    live_within_a_second(
        &mut page,
        "a new pair",
        "[...document.querySelectorAll('#pairs tbody tr')].some(r => r.textContent.includes('ann') && r.textContent.includes('bea'))",
        start,
        &refreshed,
    )
    .await;
    // The pair shows how long it has lasted.
    page.until(
        "the pair's duration",
        "/\\d+ s/.test(document.querySelector('#pairs tbody td[data-label=\"Paired for\"]').textContent)",
    )
    .await;

    // A logout disappears within a second.
    let cat = user(&live, "cat").await;
    page.until(
        "cat",
        "!!document.querySelector('#users tr[data-name=\"cat\"]')",
    )
    .await;
    let start = Instant::now();
    let r = live.delete("/v1/me", &cat).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    live_within_a_second(
        &mut page,
        "a logout",
        "!document.querySelector('#users tr[data-name=\"cat\"]')",
        start,
        &refreshed,
    )
    .await;

    // The charts' captions read the tables' figures: the users online
    // and those waiting for a partner (one more ready user, alone).
    let dan = user(&live, "dan").await;
    ready(&live, &dan).await;
    page.until(
        "dan waiting",
        "document.querySelector('#users tr[data-name=\"dan\"]')?.dataset.status === 'ready'",
    )
    .await;
    let figures = page
        .eval(
            "(() => { const cap = (k) => Number(document.querySelector(`#charts figure[data-chart=\"${k}\"] figcaption`).dataset.value);
               const rows = [...document.querySelectorAll('#users tbody tr')];
               return { users_caption: cap('users'), users_rows: rows.length,
                        users_count: Number(document.querySelector('#user-counts').dataset.value),
                        waiting_caption: cap('waiting'),
                        waiting_rows: rows.filter(r => r.dataset.status === 'ready').length,
                        axes: document.querySelectorAll('#charts svg text.tick').length,
                        units: [...document.querySelectorAll('#charts svg text.unit')].map(t => t.textContent) }; })()",
        )
        .await;
    println!("figures: {figures}");
    let users = live.admin_get("/v1/admin/users").await;
    let online = users["users"].as_array().unwrap().len();
    assert_eq!(figures["users_rows"], json!(online), "{figures}");
    assert_eq!(figures["users_caption"], figures["users_rows"], "{figures}");
    assert_eq!(figures["users_count"], figures["users_rows"], "{figures}");
    assert_eq!(figures["waiting_caption"], json!(1), "{figures}");
    assert_eq!(
        figures["waiting_caption"], figures["waiting_rows"],
        "{figures}"
    );
    // Axes: three values and three times on each of the seven charts,
    // each with its unit.
    assert_eq!(figures["axes"], json!(7 * 6), "{figures}");
    assert_eq!(figures["units"].as_array().unwrap().len(), 7, "{figures}");

    let shots = std::env::temp_dir().join(format!("myturn-console-{}", std::process::id()));
    std::fs::create_dir_all(&shots).unwrap();
    screenshot(
        &mut page,
        &shots,
        "admin-console-desktop.png",
        1280,
        800,
        false,
    )
    .await;
    page.eval("document.querySelector('#charts').scrollIntoView(); true")
        .await;
    screenshot(
        &mut page,
        &shots,
        "admin-console-charts.png",
        1280,
        800,
        false,
    )
    .await;
    page.eval("window.scrollTo(0, 0); true").await;
    // No error to show, and the users' row actions fit their box.
    assert_eq!(
        page.eval("[document.querySelector('#notice').textContent, document.body.classList.contains('stale'), (() => { const b = document.querySelector('#users').closest('.scroll'); return b.scrollWidth <= b.clientWidth; })()]").await,
        json!(["", false, true]),
        "the desktop page"
    );

    // Without the stream: a clear "not live" badge at once, and polling.
    page.eval("socket.close(); true").await;
    page.until(
        "the not-live badge",
        "document.querySelector('#conn').textContent.includes('not live')",
    )
    .await;
    page.until(
        "live again (it reconnects)",
        "document.querySelector('#conn').dataset.state === 'live'",
    )
    .await;

    // The server unreachable: the data is greyed, a note says since when,
    // and the grid keeps its shape.
    let width = "document.querySelector('#console > section').getBoundingClientRect().width";
    let before = page.eval(width).await;
    page.eval("window.realFetch = window.fetch; window.fetch = () => Promise.reject(new TypeError('Failed to fetch')); refresh(); true").await;
    page.until(
        "stale data, greyed",
        "document.body.classList.contains('stale') && !document.querySelector('#stale-note').hidden && document.querySelector('#notice').textContent.includes('Could not refresh')",
    )
    .await;
    assert_eq!(page.eval(width).await, before, "the notice moved the grid");
    page.eval("window.fetch = window.realFetch; refresh(); true")
        .await;
    page.until("fresh again", "!document.body.classList.contains('stale')")
        .await;

    // On a phone: nothing spills sideways, and each user's Kick and Ban
    // are in view, without scrolling any box sideways.
    screenshot(&mut page, &shots, "admin-console-phone.png", 390, 844, true).await;
    let fits = page
        .eval(
            "(() => { const w = window.innerWidth;
               const inView = (b) => { const r = b.getBoundingClientRect(); return r.left >= 0 && r.right <= w; };
               return { page: document.documentElement.scrollWidth <= w,
                        boxes: [...document.querySelectorAll('.scroll')].every(s => s.scrollWidth <= s.clientWidth),
                        buttons: [...document.querySelectorAll('#users button, #users select')].every(inView),
                        count: document.querySelectorAll('#users button.danger').length }; })()",
        )
        .await;
    assert_eq!(
        fits,
        json!({"page": true, "boxes": true, "buttons": true, "count": 2 * online}),
        "on a phone"
    );
}
