//! Per-IP limits in front of the API, so one address cannot starve
//! everyone else: at most [`HttpLimitConfig::conns_per_ip`] TCP
//! connections open at once from one peer (WebSockets included; counted
//! by the listener, [`Limited`]), and a token bucket of requests a second
//! per client IP ([`HttpLimitConfig::requests`]), checked before the
//! request is routed or its body read. A refused connection is answered
//! with a canned 429 and closed; a refused request gets the API's 429
//! `rate_limited` with `Retry-After`. Trusted proxies' connections are not
//! counted (they carry many clients); the clients they name are
//! rate-limited instead.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use myturn_pbx::core::Limit;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::error::ApiError;
use crate::config::Cidr;
use crate::core::error::Limit as Refused;
use crate::core::CoreError;
use crate::prom::counter;

/// Buckets kept before full ones are forgotten.
const PRUNE_OVER: usize = 10_000;

/// The numbers.
#[derive(Debug, Clone)]
pub(crate) struct HttpLimitConfig {
    /// Connections open at once per peer IP; 0: no limit.
    pub(crate) conns_per_ip: u32,
    /// Requests a second per client IP, with a burst; rate 0: no limit.
    pub(crate) requests: Limit,
    /// Peers whose `Forwarded` / `X-Forwarded-For` are believed (and
    /// whose connections are not counted).
    pub(crate) trusted_proxies: Vec<Cidr>,
}

impl HttpLimitConfig {
    /// No limits at all (`--rate-limits off`).
    pub(crate) fn off() -> Self {
        HttpLimitConfig {
            conns_per_ip: 0,
            requests: Limit::OFF,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A client's request bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The tables and their counters.
#[derive(Debug)]
pub(crate) struct HttpLimits {
    cfg: HttpLimitConfig,
    conns: Mutex<HashMap<IpAddr, u32>>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    refused_conns: AtomicU64,
    limited_requests: AtomicU64,
}

impl HttpLimits {
    pub(crate) fn new(cfg: HttpLimitConfig) -> Arc<Self> {
        Arc::new(HttpLimits {
            cfg,
            conns: Mutex::default(),
            buckets: Mutex::default(),
            refused_conns: AtomicU64::new(0),
            limited_requests: AtomicU64::new(0),
        })
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.cfg.trusted_proxies.iter().any(|c| c.contains(ip))
    }

    /// A connection from `ip` opens: its guard (closing it gives the
    /// place back), or `None` past the limit.
    pub(crate) fn open(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let ip = crate::config::canonical(ip);
        let counted = self.cfg.conns_per_ip > 0 && !self.trusted(ip);
        if counted {
            let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            let n = conns.entry(ip).or_insert(0);
            if *n >= self.cfg.conns_per_ip {
                drop(conns);
                self.refused_conns.fetch_add(1, Relaxed);
                return None;
            }
            *n += 1;
        }
        Some(ConnGuard {
            limits: self.clone(),
            ip,
            counted,
        })
    }

    /// Takes a request token for `ip` at `now`, or says how long until one
    /// comes.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let l = self.cfg.requests;
        if l.rate == 0 || ip.is_unspecified() {
            return Ok(());
        }
        let (rate, burst) = (f64::from(l.rate), f64::from(l.burst.max(1)));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_OVER && !buckets.contains_key(&ip) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Connections open now from peers that are counted.
    fn open_conns(&self) -> (usize, u64) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        (conns.len(), conns.values().map(|n| u64::from(*n)).sum())
    }

    /// The `/metrics` lines.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let (peers, conns) = self.open_conns();
        let _ = writeln!(out, "# HELP myturn_http_connections_open HTTP connections open now from counted peers (trusted proxies excluded).\n# TYPE myturn_http_connections_open gauge\nmyturn_http_connections_open {conns}");
        let _ = writeln!(out, "# HELP myturn_http_connection_peers Peer IPs with HTTP connections open now.\n# TYPE myturn_http_connection_peers gauge\nmyturn_http_connection_peers {peers}");
        counter(
            out,
            "myturn_http_connections_refused_total",
            "HTTP connections refused: the peer IP had --http-conn-limit open.",
            self.refused_conns.load(Relaxed),
        );
        counter(
            out,
            "myturn_http_requests_limited_total",
            "HTTP requests refused with 429 by the per-IP --http-rate-limit.",
            self.limited_requests.load(Relaxed),
        );
    }
}

/// A counted connection's place; given back on drop.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    limits: Arc<HttpLimits>,
    ip: IpAddr,
    counted: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let mut conns = self.limits.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = conns.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                conns.remove(&self.ip);
            }
        }
    }
}

/// The middleware: one request token per request from the client IP (the
/// TCP peer, or whom a trusted proxy names).
pub(crate) async fn per_ip(
    State(limits): State<Arc<HttpLimits>>,
    req: Request,
    next: Next,
) -> Response {
    if limits.cfg.requests.rate > 0 {
        if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            let ip = super::proxy::client_ip(peer.ip(), req.headers(), &limits.cfg.trusted_proxies);
            if let Err(retry_after) = limits.take(ip, Instant::now()) {
                limits.limited_requests.fetch_add(1, Relaxed);
                return ApiError::Refused(CoreError::RateLimited {
                    limit: Refused::Requests,
                    retry_after,
                })
                .into_response();
            }
        }
    }
    next.run(req).await
}

/// What an over-limit connection is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 95\r\nretry-after: 1\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many connections from this address\"}}";

/// The plain listener with the per-IP connection limit (and `TCP_NODELAY`
/// on every connection it lets in).
#[derive(Debug)]
pub(crate) struct Limited {
    inner: TcpListener,
    limits: Arc<HttpLimits>,
}

impl Limited {
    pub(crate) fn new(inner: TcpListener, limits: Arc<HttpLimits>) -> Self {
        Limited { inner, limits }
    }
}

impl axum::serve::Listener for Limited {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let (tcp, peer) = axum::serve::Listener::accept(&mut self.inner).await;
            match self.limits.open(peer.ip()) {
                Some(guard) => {
                    // Events are small writes; Nagle would hold one back.
                    let _ = tcp.set_nodelay(true);
                    return (Counted { tcp, _guard: guard }, peer);
                }
                None => {
                    // Told once, without waiting, then closed.
                    let _ = tcp.try_write(REFUSED);
                    tracing::debug!(%peer, "HTTP connection refused: too many from this address");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection holding its place in the count.
#[derive(Debug)]
pub(crate) struct Counted {
    tcp: TcpStream,
    _guard: ConnGuard,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(conns: u32, requests: Limit) -> Arc<HttpLimits> {
        HttpLimits::new(HttpLimitConfig {
            conns_per_ip: conns,
            requests,
            trusted_proxies: vec!["10.0.0.1".parse().unwrap()],
        })
    }

    #[test]
    fn connections_are_counted_per_ip_and_given_back() {
        let l = limits(2, Limit::OFF);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let g1 = l.open(a).unwrap();
        let _g2 = l.open(a).unwrap();
        assert!(l.open(a).is_none(), "the third from one IP");
        assert!(l.open("192.0.2.2".parse().unwrap()).is_some(), "another IP");
        drop(g1);
        assert!(l.open(a).is_some(), "a place was given back");
        // A trusted proxy carries many clients: not counted.
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| l.open(proxy).unwrap()).collect();
        assert_eq!(held.len(), 10);
        assert_eq!(l.refused_conns.load(Relaxed), 1);
        let mut out = String::new();
        l.render(&mut out);
        assert!(
            out.contains("myturn_http_connections_refused_total 1"),
            "{out}"
        );
    }

    #[test]
    fn requests_follow_a_bucket_per_ip() {
        let l = limits(0, Limit::new(10, 20));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!((0..100).filter(|_| l.take(a, t0).is_ok()).count(), 20);
        let wait = l.take(a, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(l.take("192.0.2.2".parse().unwrap(), t0).is_ok());
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| l.take(a, t1).is_ok()).count(), 10);
        // Not served over TCP (oneshot tests): not limited.
        assert!((0..100).all(|_| l.take(IpAddr::from([0, 0, 0, 0]), t1).is_ok()));
    }
}
