//! A DevTools protocol session on one page of a headless chromium, for
//! the browser tests (the admin console, the API page): open a page,
//! call methods, keep the events read while waiting for answers, run
//! JavaScript and wait for a condition.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A DevTools session on one page, keeping the events it reads while
/// waiting for answers (the request interception is one).
pub(crate) struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
    session: String,
    target: String,
    events: VecDeque<Value>,
}

impl Page {
    pub(crate) async fn open(browser_ws: &str) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(browser_ws).await.unwrap();
        let mut p = Page {
            ws,
            next: 0,
            session: String::new(),
            target: String::new(),
            events: VecDeque::new(),
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
        p.target = target_id;
        p.call("Page.enable", json!({})).await;
        p.call("Runtime.enable", json!({})).await;
        p
    }

    /// Closes the page's tab (as a user closing it: the page's `pagehide`
    /// runs, then its sockets close).
    #[allow(dead_code)] // not every test target closes tabs
    pub(crate) async fn close(mut self) {
        let target = self.target.clone();
        self.session.clear();
        self.call("Target.closeTarget", json!({ "targetId": target }))
            .await;
    }

    /// The next message, within `end`.
    pub(crate) async fn read(&mut self, end: Instant, what: &str) -> Value {
        loop {
            let m = tokio::time::timeout_at(end.into(), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing within the time for {what}"))
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.read(end, method).await;
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push_back(v);
            }
        }
    }

    /// The next event named `method` (others are dropped): its params.
    pub(crate) async fn event(&mut self, method: &str) -> Value {
        while let Some(e) = self.events.pop_front() {
            if e["method"] == method {
                return e["params"].clone();
            }
        }
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.read(end, method).await;
            if v["method"] == method {
                return v["params"].clone();
            }
        }
    }

    /// Evaluates `expr` in the page; its value.
    pub(crate) async fn eval(&mut self, expr: &str) -> Value {
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
    pub(crate) async fn until(&mut self, what: &str, expr: &str) {
        let end = Instant::now() + Duration::from_secs(15);
        let guarded = format!(
            "(() => {{ try {{ return ({expr}) === true; }} catch (_) {{ return false; }} }})()"
        );
        loop {
            if self.eval(&guarded).await == json!(true) {
                return;
            }
            if Instant::now() > end {
                let body = self.eval("document.body.innerText").await;
                panic!("the page never showed {what}; it shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(crate) fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

pub(crate) fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
