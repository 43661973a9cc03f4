//! Waiting on the partner while a call is set up: for a server push, or
//! for a SIP event cut short when the server says the partner left;
//! lobby lines are forwarded meanwhile.

use std::time::Duration;

use myturn_sip::ua::Event as SipEvent;

use super::{Client, Progress};
use crate::ClientError;

impl Client {
    /// Waits up to `d` for a pushed event, forwarding lobby lines; returns
    /// whether `peer_ready_to_talk` came, or `PeerLeft` if the pair ended.
    pub(super) async fn wait_event(&mut self, d: Duration) -> Result<bool, ClientError> {
        let Some(ev) = self.events.as_mut() else {
            tokio::time::sleep(d).await;
            return Ok(false);
        };
        let end = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(end, ev.incoming.recv()).await {
                Ok(Some(myturn_wire::ServerEvent::PeerReadyToTalk)) => return Ok(true),
                Ok(Some(myturn_wire::ServerEvent::PeerLeft { reason })) => {
                    tracing::info!(?reason, "the partner left before the call");
                    return Err(ClientError::PeerLeft);
                }
                Ok(Some(myturn_wire::ServerEvent::LobbyMessage { from, text, .. })) => {
                    if let Some(tx) = &self.progress {
                        let _ = tx.send(Progress::Lobby { from, text });
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.lost_server();
                    return Ok(false);
                }
                Err(_) => return Ok(false),
            }
        }
    }

    /// [`SipHandle::wait_for`], ended early by the server's `peer_left`
    /// push (the partner logged out, was kicked, or its client vanished):
    /// nobody waits 20 s for a call that will never come. Lobby lines are
    /// forwarded meanwhile.
    pub(super) async fn sip_or_left<T>(
        &mut self,
        timeout: Duration,
        skipped: &mut Vec<SipEvent>,
        mut f: impl FnMut(&SipEvent) -> Option<T>,
    ) -> Option<Result<T, ClientError>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                ev = self.sip.events.recv() => {
                    let ev = ev?;
                    if let Some(t) = f(&ev) {
                        return Some(Ok(t));
                    }
                    skipped.push(ev);
                }
                push = crate::events::next_push(&mut self.events) => match push {
                    Some(myturn_wire::ServerEvent::PeerLeft { reason }) => {
                        tracing::info!(?reason, "the partner left while the call was set up");
                        return Some(Err(ClientError::PeerLeft));
                    }
                    Some(myturn_wire::ServerEvent::LobbyMessage { from, text, .. }) => {
                        self.tell(Progress::Lobby { from, text });
                    }
                    Some(_) => {}
                    None => self.lost_server(),
                },
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }
}
