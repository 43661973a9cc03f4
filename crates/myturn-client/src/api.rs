//! The pairing server's HTTP API, as a client uses it.

use std::time::Duration;

use myturn_wire::{CreateUserResponse, ErrorBody, MeResponse, PeerResponse};
use serde_json::json;

use crate::ClientError;

/// A registered user's session with the pairing server.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    /// What registration returned: token, SIP credentials, extension.
    pub user: CreateUserResponse,
}

async fn error_of(resp: reqwest::Response, what: &str) -> ClientError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(e) => ClientError::Server {
            what: what.to_owned(),
            status,
            code: e.error.code,
            message: e.error.message,
        },
        Err(_) => ClientError::Server {
            what: what.to_owned(),
            status,
            code: "unexpected".into(),
            message: text,
        },
    }
}

impl Api {
    /// `POST /v1/users`: registers `name`. A taken or invalid name comes
    /// back as [`ClientError::Server`] with the server's reason.
    pub async fn register(base: &str, name: &str) -> Result<Api, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let base = base.trim_end_matches('/').to_owned();
        let resp = http
            .post(format!("{base}/v1/users"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(format!("{base}: {e}")))?;
        if resp.status().as_u16() != 201 {
            return Err(error_of(resp, "register").await);
        }
        let user = resp
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Api { http, base, user })
    }

    /// `PUT /v1/me/status`, with the media key fingerprint for `ready`.
    pub async fn status(
        &self,
        status: &str,
        media_key: Option<&str>,
    ) -> Result<MeResponse, ClientError> {
        let mut body = json!({ "status": status });
        if let Some(k) = media_key {
            body["media_key"] = json!(k);
        }
        let resp = self
            .http
            .put(format!("{}/v1/me/status", self.base))
            .bearer_auth(&self.user.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(resp, status).await);
        }
        resp.json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `GET /v1/me/peer?wait=…`: the partner once paired, `None` on timeout.
    pub async fn peer(&self, wait_secs: u64) -> Result<Option<PeerResponse>, ClientError> {
        let resp = self
            .http
            .get(format!("{}/v1/me/peer?wait={wait_secs}", self.base))
            .bearer_auth(&self.user.token)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                resp.json()
                    .await
                    .map_err(|e| ClientError::Protocol(e.to_string()))?,
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
            .bearer_auth(&self.user.token)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        if resp.status().as_u16() != 204 {
            return Err(error_of(resp, "logout").await);
        }
        Ok(())
    }
}
