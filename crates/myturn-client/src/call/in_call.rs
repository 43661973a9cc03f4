//! A call once it is up: the [`Call`], what a SIP event means for it
//! ([`CallSignal`]), and ending it (hang up, the partner hanging up, a
//! dead partner).

use std::time::Duration;

use myturn_media::driver::MediaHandle;
use myturn_sip::ua::{CallHandle, EndedBy, Event as SipEvent};
use myturn_wire::PeerResponse;

use super::{Client, Progress};
use crate::ClientError;

/// A call in progress: SIP call, media session, who and how.
#[derive(Debug)]
pub struct Call {
    /// This agent's handle on the SIP call.
    pub sip_call: CallHandle,
    /// The SIP Call-ID (the same on both sides of the PBX's dialog).
    pub sip_call_id: String,
    /// The partner, as the pairing server paired them.
    pub peer: PeerResponse,
    /// The encrypted media session: send audio and chat, read events.
    pub media: MediaHandle,
    /// The short authentication string, to compare aloud.
    pub sas: String,
    /// The audio sample rate agreed in SDP.
    pub rate: u32,
    /// The codec agreed end to end in the sealed handshake.
    pub codec: myturn_media::codec::Codec,
    /// From `ready` to paired, in milliseconds.
    pub pairing_ms: f64,
    /// From paired to the SIP call answered, in milliseconds.
    pub setup_ms: f64,
    /// The key agreement, in milliseconds.
    pub handshake_ms: f64,
}

/// What a SIP event means for the call in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSignal {
    /// Not about this call, or nothing to do.
    Nothing,
    /// The partner's side moved or renumbered the media; the media session
    /// now sends there.
    MediaMoved,
    /// The partner hung up.
    EndedByPeer,
    /// The SIP session timer ran out (the PBX stopped refreshing): the
    /// agent sent a BYE; the signalling path is gone.
    SignallingLost,
}

impl Call {
    /// Applies a SIP event to this call: a re-INVITE or UPDATE with new SDP
    /// moves the media (Asterisk does this when it re-anchors RTP), a BYE
    /// ends it. The keys never change: they bind nothing SIP carries.
    pub async fn on_sip(&self, ev: &SipEvent) -> CallSignal {
        match ev {
            SipEvent::RemoteMediaChanged { call, sdp } if *call == self.sip_call => {
                tracing::info!(media = %sdp.media, payload_type = sdp.payload_type, "remote media changed");
                if self
                    .media
                    .retarget(sdp.media, sdp.payload_type, sdp.opus)
                    .await
                    .is_ok()
                {
                    CallSignal::MediaMoved
                } else {
                    CallSignal::Nothing
                }
            }
            SipEvent::CallEnded {
                call,
                by: EndedBy::Remote,
            } if *call == self.sip_call => CallSignal::EndedByPeer,
            SipEvent::CallEnded {
                call,
                by: EndedBy::SessionExpired,
            } if *call == self.sip_call => CallSignal::SignallingLost,
            _ => CallSignal::Nothing,
        }
    }
}

impl Client {
    /// Ends a call whose partner is gone (nothing heard for the peer
    /// timeout, or the server said it left): BYE without waiting for an
    /// answer that may never come, and back to `busy`.
    pub async fn end_dead(&mut self, call: &Call) -> Result<(), ClientError> {
        let _ = self.sip.hangup(call.sip_call).await;
        self.api
            .status(myturn_wire::RequestedStatus::Busy, None)
            .await
            .map(|_| ())
    }

    /// Hangs up (BYE) and goes back to `busy`.
    pub async fn hang_up(&mut self, call: &Call) -> Result<(), ClientError> {
        self.sip.hangup(call.sip_call).await?;
        let mut skipped = Vec::new();
        let id = call.sip_call;
        self.sip
            .wait_for(Duration::from_secs(5), &mut skipped, |e| match e {
                SipEvent::CallEnded { call, .. } if *call == id => Some(()),
                _ => None,
            })
            .await;
        self.tell(Progress::Ended { by_us: true });
        match self
            .api
            .status(myturn_wire::RequestedStatus::Busy, None)
            .await
        {
            // The server is gone or forgot us: nothing to tell it; the
            // reconnect registers afresh (and busy) anyway.
            Err(e) if self.lost => {
                tracing::debug!(error = %e, "not telling the lost server we are busy");
                Ok(())
            }
            r => r.map(|_| ()),
        }
    }

    /// Waits for the partner to hang up (up to `timeout`).
    pub async fn wait_hang_up(&mut self, call: &Call, timeout: Duration) -> bool {
        let mut skipped = Vec::new();
        let id = call.sip_call;
        let ended = self
            .sip
            .wait_for(timeout, &mut skipped, |e| match e {
                SipEvent::CallEnded {
                    call,
                    by: EndedBy::Remote,
                } if *call == id => Some(()),
                _ => None,
            })
            .await
            .is_some();
        if ended {
            self.tell(Progress::Ended { by_us: false });
        }
        ended
    }
}
