//! The registration (RFC 3261 §10): its state machine, the digest retry
//! after a 401/407 (again on a stale nonce), a 423's `Min-Expires`, the
//! refresh before expiry (or the retry after a failure), unregistering,
//! and the public address learnt from `received`/`rport` (RFC 3581), at
//! registration or from a keep-alive's answer, registered at once.

use std::net::SocketAddr;
use std::time::Duration;

use web_time::Instant;

use rand_core::RngCore;
use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use super::auth::Auth;
use super::config::ALLOW;
use super::context::{Context, Owner};
use super::event::Event;
use super::timer::Timer;
use crate::build::{self, token};
use crate::msg::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegState {
    Idle,
    Registering,
    Registered,
    Unregistering,
}

/// The binding of our address of record to our Contact.
#[derive(Debug)]
pub(super) struct Registration {
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The lifetime asked for (raised by a 423).
    expires: u32,
    auth_tries: u32,
    /// Once a registration succeeded, a failed refresh is retried.
    ever_registered: bool,
    /// The branch of the REGISTER whose answer counts.
    branch: Option<String>,
    auth: Option<Auth>,
    /// The address the proxy sees us at, when not the local one.
    public: Option<SocketAddr>,
}

impl Registration {
    /// A registration asking for `expires`, its Call-ID, From tag and
    /// first CSeq drawn from `rng`.
    pub(super) fn new(expires: u32, rng: &mut dyn RngCore) -> Self {
        Registration {
            state: RegState::Idle,
            call_id: format!("{}@myturn", token(rng, 20)),
            from_tag: token(rng, 12),
            cseq: rng.next_u32() % 10_000 + 1,
            expires,
            auth_tries: 0,
            ever_registered: false,
            branch: None,
            auth: None,
            public: None,
        }
    }

    /// Whether a registration is in force.
    pub(super) fn is_registered(&self) -> bool {
        self.state == RegState::Registered
    }

    /// Whether `branch` is that of the REGISTER whose answer counts.
    pub(super) fn is_current(&self, branch: &str) -> bool {
        self.branch.as_deref() == Some(branch)
    }

    /// Registers (or refreshes) the binding.
    pub(super) fn register(&mut self, ctx: &mut Context, now: Instant) {
        self.state = RegState::Registering;
        self.auth_tries = 0;
        self.send(ctx, now, self.expires);
    }

    /// Removes the binding (`Expires: 0`).
    pub(super) fn unregister(&mut self, ctx: &mut Context, now: Instant) {
        self.state = RegState::Unregistering;
        ctx.timers.stop(Timer::RegisterRefresh);
        self.auth_tries = 0;
        self.send(ctx, now, 0);
    }

    fn send(&mut self, ctx: &mut Context, now: Instant, expires: u32) {
        // A fresh branch for every REGISTER, the one after a 401 included.
        let branch = ctx.new_branch();
        self.cseq += 1;
        let uri = format!("sip:{}", ctx.cfg.domain);
        let mut headers: Vec<Header> = vec![
            h::Via::new(ctx.via(&branch)).into(),
            h::From::new(ctx.our_from(&self.from_tag)).into(),
            h::To::new(format!("<{}>", ctx.aor())).into(),
            h::CallId::new(self.call_id.clone()).into(),
            h::CSeq::new(format!("{} REGISTER", self.cseq)).into(),
            h::Contact::new(ctx.contact_header()).into(),
            h::Expires::new(expires.to_string()).into(),
            h::Allow::new(ALLOW).into(),
        ];
        ctx.common_headers(&mut headers);
        if let Some(auth) = self.auth.as_mut() {
            let cnonce = ctx.token(16);
            headers.push(auth.header(
                &ctx.cfg.username,
                &ctx.cfg.password,
                "REGISTER",
                &uri,
                &cnonce,
            ));
        }
        let Ok(bytes) = build::request(rsip::Method::Register, &uri, headers, b"") else {
            ctx.event(Event::RegistrationFailed {
                code: 0,
                reason: format!("invalid domain `{}`", ctx.cfg.domain),
            });
            return;
        };
        self.branch = Some(branch.clone());
        let proxy = ctx.cfg.proxy;
        ctx.start_client(now, Owner::Register, branch, "REGISTER", bytes, proxy);
    }

    /// A response to the current REGISTER. `true` when it put a
    /// registration in force (the keep-alive then starts).
    pub(super) fn on_response(&mut self, ctx: &mut Context, now: Instant, resp: &Message) -> bool {
        let code = resp.status().unwrap_or(0);
        if code < 200 {
            return false;
        }
        let unregistering = self.state == RegState::Unregistering;
        let requested = if unregistering { 0 } else { self.expires };
        match code {
            200..=299 => {
                self.auth_tries = 0;
                if unregistering {
                    self.state = RegState::Idle;
                    ctx.event(Event::Unregistered);
                    return false;
                }
                return self.on_success(ctx, now, resp, requested);
            }
            401 | 407 => {
                let auth = Auth::from_challenge(resp);
                self.auth_tries += 1;
                // A second challenge for the same credentials means a wrong
                // password, unless the nonce was merely stale.
                let stale = auth.as_ref().is_some_and(Auth::stale);
                match auth {
                    Some(a) if self.auth_tries <= 1 || (stale && self.auth_tries <= 3) => {
                        self.auth = Some(a);
                        self.send(ctx, now, requested);
                    }
                    _ => self.failed(ctx, now, code, resp.reason()),
                }
            }
            423 => {
                let min = resp
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(m) if m > self.expires && !unregistering => {
                        self.expires = m;
                        self.send(ctx, now, m);
                    }
                    _ => self.failed(ctx, now, code, resp.reason()),
                }
            }
            _ => self.failed(ctx, now, code, resp.reason()),
        }
        false
    }

    /// A 2xx to a REGISTER that was not removing the binding.
    fn on_success(
        &mut self,
        ctx: &mut Context,
        now: Instant,
        resp: &Message,
        requested: u32,
    ) -> bool {
        // Learn our public address (RFC 3581) and re-register with it once
        // if it differs from the Contact we sent.
        let public = ctx.learnt(resp).filter(|a| *a != ctx.cfg.local);
        let ours = format!("@{}", ctx.contact);
        let granted = resp
            .name_addrs("Contact")
            .iter()
            .find(|c| c.uri.contains(&ours))
            .and_then(|c| c.param("expires").and_then(|e| e.parse().ok()))
            .or(resp.expires())
            .unwrap_or(requested);
        if let Some(p) = public {
            if self.public != Some(p) {
                self.public = Some(p);
                ctx.contact = p;
                self.send(ctx, now, self.expires);
                return false;
            }
        }
        self.state = RegState::Registered;
        self.ever_registered = true;
        let granted = granted.max(1);
        // Refresh well before expiry: halfway for short bindings, 30 s
        // early for long ones.
        let early = (granted / 2).min(30);
        let refresh = now + Duration::from_secs(u64::from(granted - early));
        ctx.timers.set(Timer::RegisterRefresh, refresh);
        ctx.event(Event::Registered {
            expires: Duration::from_secs(u64::from(granted)),
            public,
        });
        true
    }

    /// The current REGISTER got no final answer in time.
    pub(super) fn timed_out(&mut self, ctx: &mut Context, now: Instant) {
        self.failed(ctx, now, 408, "Request Timeout");
    }

    fn failed(&mut self, ctx: &mut Context, now: Instant, code: u16, reason: &str) {
        if self.state == RegState::Unregistering {
            self.state = RegState::Idle;
            ctx.event(Event::Unregistered);
            return;
        }
        self.state = RegState::Idle;
        let retry = self.ever_registered.then(|| now + Duration::from_secs(30));
        ctx.timers.set_or_stop(Timer::RegisterRefresh, retry);
        ctx.event(Event::RegistrationFailed {
            code,
            reason: reason.to_owned(),
        });
    }

    /// [`Timer::RegisterRefresh`] is due: register again, unless the
    /// binding is being removed.
    pub(super) fn on_refresh_due(&mut self, ctx: &mut Context, now: Instant) {
        if self.state != RegState::Unregistering {
            ctx.timers.stop(Timer::RegisterRefresh);
            self.register(ctx, now);
        }
    }

    /// The proxy sees us at `seen` (a keep-alive's answer): if that is not
    /// where it saw us before (the NAT gave us a new mapping), register
    /// that address at once, so calls reach us there.
    pub(super) fn seen_at(&mut self, ctx: &mut Context, now: Instant, seen: SocketAddr) {
        let current = self.public.unwrap_or(ctx.cfg.local);
        if seen == current || self.state != RegState::Registered {
            return;
        }
        self.public = (seen != ctx.cfg.local).then_some(seen);
        ctx.contact = seen;
        ctx.event(Event::PublicAddressChanged {
            from: current,
            to: seen,
        });
        self.auth_tries = 0;
        self.send(ctx, now, self.expires);
    }
}
