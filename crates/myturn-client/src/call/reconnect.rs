//! The server connection's life: losing the event stream, getting it
//! back (reopened, or registered again when the server forgot this user),
//! and a moderator's removal, which is never undone.

use std::time::Duration;

use super::{Client, Progress};
use crate::ClientError;

impl Client {
    /// The event stream is back on the same session.
    fn reopened(&mut self, events: crate::events::Events) {
        self.events = Some(events);
        self.lost = false;
        tracing::info!("event stream reopened");
        self.tell(Progress::Reconnected);
    }

    /// A moderator removed this user (kicked or banned): the closing
    /// stream is not reconnected, and the user is not registered again.
    pub fn removed(&mut self) {
        self.removed = true;
        self.lost = false;
    }

    /// Whether a moderator removed this user (see [`Client::removed`]).
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Whether the event stream was lost and [`Client::reconnect`] should
    /// be tried.
    pub fn needs_reconnect(&self) -> bool {
        self.lost
    }

    /// Notes that the event stream closed (the server restarted, or the
    /// network dropped): [`Client::reconnect`] brings it back.
    pub fn lost_server(&mut self) {
        if self.events.take().is_some() && !self.removed {
            tracing::warn!("the server's event stream closed; reconnecting");
            self.lost = true;
            self.tell(Progress::ServerLost);
        }
    }

    /// Brings the event stream back after [`Client::lost_server`]. If the
    /// server still knows this session, only the stream reopens. If it
    /// does not (it restarted: users live in memory), and `may_re_register`
    /// (not in a call, whose SIP dialog lives on the current agent), the
    /// user registers again under the same name, with new SIP credentials
    /// and a new SIP agent. `Ok(false)`: not yet (unreachable, or in a
    /// call); try again later.
    pub async fn reconnect(&mut self, may_re_register: bool) -> Result<bool, ClientError> {
        if !self.lost {
            return Ok(true);
        }
        match crate::events::Events::connect(&self.api).await {
            Ok(e) => {
                self.reopened(e);
                return Ok(true);
            }
            Err(why @ ClientError::Unreachable { .. }) => {
                tracing::debug!(%why, "server still unreachable");
                return Ok(false);
            }
            Err(e) => {
                // Maybe only the access token lapsed: refresh and retry.
                if self.api.refresh().await.is_ok() {
                    if let Ok(e) = crate::events::Events::connect(&self.api).await {
                        self.reopened(e);
                        return Ok(true);
                    }
                }
                tracing::info!(error = %e, "the server no longer knows this session");
            }
        }
        if !may_re_register {
            return Ok(false);
        }
        let name = self.api.user.name.clone();
        let (api, sip, keep_alive, events, bind_ip) =
            match Self::attach(&self.config, &name, self.bind_ip, self.progress.as_ref()).await {
                Ok(parts) => parts,
                Err(why @ ClientError::Unreachable { .. }) => {
                    tracing::debug!(%why, "server still unreachable");
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
        let old = std::mem::replace(&mut self.sip, sip);
        // The old agent's registration died with the server's accounts.
        tokio::spawn(old.shutdown(Duration::from_millis(500)));
        self.api = api;
        self.bind_ip = bind_ip;
        self._keep_alive = keep_alive;
        self.events = events;
        self.lost = false;
        tracing::info!(name = %self.api.user.name, extension = %self.api.user.sip.extension, "registered again after the server came back");
        self.tell(Progress::Reconnected);
        Ok(true)
    }
}
