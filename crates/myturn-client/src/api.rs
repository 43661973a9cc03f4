//! The pairing server's HTTP API, as a client uses it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myturn_wire::{CreateUserResponse, ErrorBody, MeResponse, PeerResponse, TokenPair};

use crate::tls::Trust;
use crate::ClientError;

/// The current access and refresh tokens, and when the access token was
/// issued.
struct Tokens {
    access: String,
    refresh: String,
    issued: Instant,
}

/// The interests a client is paired on, as `ready` sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interests {
    /// The tags (normalised: see [`Interests::parse`]).
    pub tags: Vec<String>,
    /// Seconds to wait for a shared interest (`None`: the server's).
    pub wait_secs: Option<u64>,
    /// Never fall back to the plain draw.
    pub only: bool,
}

impl Interests {
    /// What a user typed (`music, rust`), normalised and checked as the
    /// server will.
    pub fn parse(typed: &str) -> Result<Vec<String>, myturn_wire::InterestError> {
        myturn_wire::normalize_interests(&myturn_wire::split_interests(typed))
    }
}

/// A registered user's session with the pairing server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    /// What registration returned: name, SIP credentials, extension. (Its
    /// tokens are the first ones; [`Api`] rotates them.)
    pub user: CreateUserResponse,
    tokens: Arc<Mutex<Tokens>>,
    /// Whom this session trusts for TLS (its event stream and SIP too).
    trust: Trust,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("user", &self.user.name)
            .finish_non_exhaustive()
    }
}

async fn error_of(resp: reqwest::Response, what: &'static str) -> ClientError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(e) => ClientError::Server {
            what,
            status,
            code: e.error.code,
            message: e.error.message,
        },
        Err(_) => ClientError::Server {
            what,
            status,
            code: "unexpected".into(),
            message: text,
        },
    }
}

impl Api {
    /// `POST /v1/users`: registers `name`. A taken or invalid name comes
    /// back as [`ClientError::Server`] with the server's reason. TLS
    /// trusts the web's roots; see [`Api::register_trusting`].
    pub async fn register(base: &str, name: &str) -> Result<Api, ClientError> {
        Api::register_trusting(&Trust::default(), base, name).await
    }

    /// [`Api::register`], trusting `trust` for TLS.
    pub async fn register_trusting(
        trust: &Trust,
        base: &str,
        name: &str,
    ) -> Result<Api, ClientError> {
        let http = trust.http_client(Duration::from_secs(30))?;
        let base = base.trim_end_matches('/').to_owned();
        let resp = http
            .post(format!("{base}/v1/users"))
            .json(&myturn_wire::CreateUserRequest {
                name: name.to_owned(),
            })
            .send()
            .await
            .map_err(|e| ClientError::connecting(base.clone(), e))?;
        if resp.status().as_u16() != 201 {
            return Err(error_of(resp, "register").await);
        }
        let user: CreateUserResponse = resp
            .json()
            .await
            .map_err(|e| ClientError::Undecodable(e.into()))?;
        let tokens = Arc::new(Mutex::new(Tokens {
            access: user.token.clone(),
            refresh: user.refresh_token.clone(),
            issued: Instant::now(),
        }));
        Ok(Api {
            http,
            base,
            user,
            tokens,
            trust: trust.clone(),
        })
    }

    /// The server's host name (or address), from its URL.
    pub(crate) fn host(&self) -> String {
        let rest = self
            .base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or_default();
        match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
            None => authority
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .to_owned(),
        }
    }

    /// Whom this session trusts for TLS.
    pub(crate) fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The current access token.
    pub(crate) fn access_token(&self) -> String {
        self.token()
    }

    /// `ws://` (or `wss://`) URL of `path` on the server.
    pub(crate) fn ws_url(&self, path: &str) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}{path}")
    }

    fn token(&self) -> String {
        self.tokens
            .lock()
            .map(|t| t.access.clone())
            .unwrap_or_default()
    }

    /// Spends the refresh token for a new pair (`POST /v1/session/refresh`).
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let refresh = self
            .tokens
            .lock()
            .map(|t| t.refresh.clone())
            .unwrap_or_default();
        let resp = self
            .http
            .post(format!("{}/v1/session/refresh", self.base))
            .json(&myturn_wire::RefreshRequest {
                refresh_token: refresh.to_owned(),
            })
            .send()
            .await
            .map_err(ClientError::unreachable)?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(resp, "refresh").await);
        }
        let pair: TokenPair = resp
            .json()
            .await
            .map_err(|e| ClientError::Undecodable(e.into()))?;
        if let Ok(mut t) = self.tokens.lock() {
            t.access = pair.token;
            t.refresh = pair.refresh_token;
            t.issued = Instant::now();
        }
        Ok(())
    }

    /// Keeps the session alive: the server logs out users silent for its
    /// lease (30 s by default), and a call is silent towards it. Every
    /// `every`, refreshes the access token when three quarters of its
    /// lifetime are gone, then says `GET /v1/me`.
    pub(crate) async fn keep_alive(self, every: Duration) {
        let ttl = Duration::from_secs(self.user.expires_in.max(10));
        loop {
            tokio::time::sleep(every).await;
            let age = self
                .tokens
                .lock()
                .map(|t| t.issued.elapsed())
                .unwrap_or_default();
            if age > ttl * 3 / 4 {
                if let Err(e) = self.refresh().await {
                    tracing::warn!(error = %e, "token refresh failed");
                }
            }
            let r = self
                .http
                .get(format!("{}/v1/me", self.base))
                .bearer_auth(self.token())
                .send()
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "keep-alive failed");
            }
        }
    }

    /// `PUT /v1/me/status`, with the media key fingerprint for `ready`.
    pub async fn status(
        &self,
        status: myturn_wire::RequestedStatus,
        media_key: Option<&str>,
    ) -> Result<MeResponse, ClientError> {
        self.set_status(myturn_wire::SetStatusRequest {
            media_key: media_key.map(str::to_owned),
            ..myturn_wire::SetStatusRequest::new(status)
        })
        .await
    }

    /// `PUT /v1/me/status` `ready`, with the media key fingerprint and the
    /// interests to be paired on (`None`: the session's, as they are).
    pub async fn ready(
        &self,
        media_key: &str,
        interests: Option<&Interests>,
    ) -> Result<MeResponse, ClientError> {
        self.set_status(myturn_wire::SetStatusRequest {
            status: myturn_wire::RequestedStatus::Ready,
            media_key: Some(media_key.to_owned()),
            interests: interests.map(|i| i.tags.clone()),
            interest_wait: interests.and_then(|i| i.wait_secs),
            only_interests: interests.is_some_and(|i| i.only),
        })
        .await
    }

    async fn set_status(
        &self,
        body: myturn_wire::SetStatusRequest,
    ) -> Result<MeResponse, ClientError> {
        let status = body.status;
        let resp = self
            .http
            .put(format!("{}/v1/me/status", self.base))
            .bearer_auth(self.token())
            .json(&body)
            .send()
            .await
            .map_err(ClientError::unreachable)?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(resp, myturn_wire::Status::from(status).as_str()).await);
        }
        resp.json()
            .await
            .map_err(|e| ClientError::Undecodable(e.into()))
    }

    /// `GET /v1/me/peer?wait=…`: the partner once paired, `None` on timeout.
    pub async fn peer(&self, wait_secs: u64) -> Result<Option<PeerResponse>, ClientError> {
        let resp = self
            .http
            .get(format!("{}/v1/me/peer?wait={wait_secs}", self.base))
            .bearer_auth(self.token())
            .send()
            .await
            .map_err(ClientError::unreachable)?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                resp.json()
                    .await
                    .map_err(|e| ClientError::Undecodable(e.into()))?,
            )),
            204 => Ok(None),
            _ => Err(error_of(resp, "peer").await),
        }
    }

    /// `DELETE /v1/me`.
    pub async fn logout(&self) -> Result<(), ClientError> {
        let resp = self
            .http
            .delete(format!("{}/v1/me", self.base))
            .bearer_auth(self.token())
            .send()
            .await
            .map_err(ClientError::unreachable)?;
        if resp.status().as_u16() != 204 {
            return Err(error_of(resp, "logout").await);
        }
        Ok(())
    }
}
