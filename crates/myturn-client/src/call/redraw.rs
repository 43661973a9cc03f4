//! The failure and redraw path: [`Client::ready_and_call`] tries a call,
//! and on any failure cancels the half-made SIP call in one place, then
//! draws another partner or goes back to `busy`.

use super::{Call, Client, Progress};
use crate::ClientError;

/// Redraws in a row after set-up failures that were not the server saying
/// the partner left (timeouts, PBX refusals), before giving up: a network
/// that fails every call should say so, not retry forever.
const MAX_REDRAWS: u32 = 3;

impl Client {
    /// Says "I'm ready", waits to be paired, sets up the call (callee
    /// answers, caller dials) and the secure media channel.
    ///
    /// When the partner does not make it (the server says it left or
    /// never answered, it does not call or answer within
    /// [`Client::answer_timeout`]), the half-made call is cancelled and the
    /// flow draws again by itself: the user asked for a partner
    /// ([`Progress::Redraw`] says why). Other failures (and
    /// `MAX_REDRAWS` partner timeouts in a row) leave this user `busy`,
    /// not `paired`: the server must not keep a pair nobody is calling in.
    ///
    /// Dropping the future abandons the wait; call [`Client::abandon`]
    /// then, to cancel a half-made call and go `busy`.
    pub async fn ready_and_call(&mut self) -> Result<Call, ClientError> {
        let mut timeouts = 0;
        loop {
            let e = match self.set_up_call().await {
                Ok(call) => {
                    // Handed over: from now on the caller of this function
                    // owns the SIP call.
                    self.pending_sip = None;
                    return Ok(call);
                }
                Err(e) => e,
            };
            // The one failure path: whatever step failed, a half-made SIP
            // call is cancelled (CANCEL or BYE) here, and only here.
            self.cancel_pending().await;
            let redraw = match &e {
                ClientError::PeerLeft => true,
                ClientError::Timeout(_) | ClientError::Pbx(_) => {
                    timeouts += 1;
                    timeouts < MAX_REDRAWS
                }
                _ => false,
            };
            if !redraw {
                tracing::info!(error = %e, "no call: back to busy");
                let _ = self
                    .api
                    .status(myturn_wire::RequestedStatus::Busy, None)
                    .await;
                return Err(e);
            }
            tracing::info!(error = %e, "the partner did not make it: drawing again");
            self.tell(Progress::Redraw { why: e.to_string() });
        }
    }

    /// Cancels a call being set up (CANCEL or BYE) and goes `busy`: for an
    /// interface that dropped [`Client::ready_and_call`] (the user stopped
    /// waiting, or quit).
    pub async fn abandon(&mut self) {
        self.cancel_pending().await;
        let _ = self
            .api
            .status(myturn_wire::RequestedStatus::Busy, None)
            .await;
    }

    async fn cancel_pending(&mut self) {
        if let Some(call) = self.pending_sip.take() {
            let _ = self.sip.hangup(call).await;
        }
    }
}
