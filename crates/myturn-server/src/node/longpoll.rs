//! `GET /v1/me/peer?wait=N`: the long-poll. It subscribes to the user's
//! wake-ups before looking, so a pairing in between still wakes it, and
//! counts as an open watch (the lease spares the user) while it waits.

use std::future::Future;
use std::time::Duration;

use myturn_wire::PeerResponse;

use super::AppState;
use crate::core::cases::status::PeerOf;
use crate::core::cases::streams::Watch;
use crate::core::{CoreError, UserId};
use crate::store::StoreError;

impl AppState {
    /// Waits up to `wait` for `uid` to be paired. `Ok(None)`: still
    /// waiting.
    pub(crate) async fn wait_for_peer(
        &self,
        uid: UserId,
        wait: Duration,
    ) -> Result<Option<PeerResponse>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before looking: a pairing in between still wakes us.
        let mut rx = self.fanout.subscribe(uid);
        let found = self.run(PeerOf { uid }).await?;
        if found.is_some() || wait.is_zero() {
            return Ok(found);
        }
        let now = self.now();
        let until = now.unix_ms_of(now.mono + wait);
        self.run_at(
            Watch {
                uid,
                until: Some(until),
            },
            now,
        )
        .await?;
        // Closes the watch when this future ends, also when the client
        // hangs up mid-wait and the future is dropped.
        struct Unwatch(AppState, UserId);
        impl Drop for Unwatch {
            fn drop(&mut self) {
                let (state, uid) = (self.0.clone(), self.1);
                let now = state.now();
                let mut done = Box::pin(async move {
                    let _ = state.run_at(Watch { uid, until: None }, now).await;
                });
                // The in-memory store is done at the first poll; a
                // networked one finishes in a task of its own.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if done.as_mut().poll(&mut cx).is_pending() {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(done);
                    }
                }
            }
        }
        let _guard = Unwatch(self.clone(), uid);
        loop {
            let woke = tokio::time::timeout_at(deadline, rx.changed()).await;
            let found = self.run(PeerOf { uid }).await?;
            match woke {
                _ if found.is_some() => return Ok(found),
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(CoreError::UserGone.into()),
                Err(_) => return Ok(None),
            }
        }
    }
}
