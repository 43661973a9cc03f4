//! Liveness as the node reports it (messages, pongs, long-polls and
//! event streams opening and closing), and the periodic sweep that acts
//! on it.

use myturn_wire::LeaveReason;

use crate::core::context::Ctx;
use crate::core::error::CoreError;
use crate::core::rules::{limits, liveness, pairs, users};
use crate::core::state::{Millis, NodeId, StateExt, UserId};
use crate::core::usecase::UseCase;

/// Activity from `uid` (a message or pong on its stream).
#[derive(Debug, Clone)]
pub struct Heard {
    /// Who.
    pub uid: UserId,
}

impl UseCase for Heard {
    type Output = ();
    fn apply(self, cx: &mut Ctx<'_>) -> Result<(), CoreError> {
        liveness::touch(cx.st, self.uid, cx.now.unix_ms)
    }
}

/// A long-poll of `uid` opened, to last until `until` at most, or
/// (`None`) closed.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Who.
    pub uid: UserId,
    /// Opened until then (Unix milliseconds), or closed.
    pub until: Option<Millis>,
}

impl UseCase for Watch {
    type Output = ();
    fn apply(self, cx: &mut Ctx<'_>) -> Result<(), CoreError> {
        liveness::watch(cx.st, self.uid, self.until, cx.now.unix_ms);
        Ok(())
    }
}

/// An event stream of `uid` opened on `node`: a reconnect ends the grace.
#[derive(Debug, Clone)]
pub struct StreamOpened {
    /// Who.
    pub uid: UserId,
    /// The node holding it.
    pub node: NodeId,
}

impl UseCase for StreamOpened {
    type Output = ();
    fn apply(self, cx: &mut Ctx<'_>) -> Result<(), CoreError> {
        liveness::stream_opened(cx.st, self.uid, &self.node, cx.now.unix_ms);
        Ok(())
    }
}

/// An event stream of `uid` closed; it was last heard at `last_heard` (a
/// stream that died silently was lost then: the grace counts from it).
#[derive(Debug, Clone)]
pub struct StreamClosed {
    /// Who.
    pub uid: UserId,
    /// When the stream was last heard (Unix milliseconds).
    pub last_heard: Millis,
}

impl UseCase for StreamClosed {
    type Output = ();
    fn apply(self, cx: &mut Ctx<'_>) -> Result<(), CoreError> {
        liveness::stream_closed(cx.st, self.uid, self.last_heard, cx.now.unix_ms);
        Ok(())
    }
}

/// A node died (its heartbeat stopped): the streams it held closed when
/// it was last heard of, at `at`. Answers whose they were.
#[derive(Debug, Clone)]
pub struct NodeGone {
    /// Which node.
    pub node: NodeId,
    /// When it was last alive (Unix milliseconds).
    pub at: Millis,
}

impl UseCase for NodeGone {
    type Output = Vec<String>;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Vec<String>, CoreError> {
        let mut ids = cx.st.users_on_node(&self.node);
        ids.sort_unstable();
        for &id in &ids {
            liveness::node_gone(cx.st, id, self.at);
        }
        Ok(ids.iter().filter_map(|&id| cx.st.name_of(id)).collect())
    }
}

/// What a periodic sweep did (names, for the log).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Out of the pool: their event stream stayed closed past the grace.
    pub ghosts: Vec<String>,
    /// Logged out: silent past the lease.
    pub expired: Vec<String>,
    /// Held up a call past the answer timeout.
    pub unanswered: Vec<String>,
}

/// The periodic sweep: users whose stream stayed closed past the grace
/// leave the pool or their pair; users silent past the lease are logged
/// out; pairs whose call did not start in time end; users passed over
/// while a candidate's liveness was in doubt are paired.
#[derive(Debug, Clone)]
pub struct Sweep;

impl UseCase for Sweep {
    type Output = Swept;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Swept, CoreError> {
        let mut swept = Swept::default();
        let now = cx.now.unix_ms;
        let (grace, lease, answer) = {
            let c = cx.cfg();
            (c.stream_grace, c.lease, c.answer_timeout)
        };
        for id in liveness::ghosts(cx.st, now, grace) {
            pairs::drop_ghost(cx, id);
            swept.ghosts.extend(cx.st.name_of(id));
        }
        limits::prune(cx.st, now);
        for id in liveness::silent_since(cx.st, now, lease) {
            if let Ok(name) = users::remove(cx, id, LeaveReason::Expired, None) {
                swept.expired.push(name);
            }
        }
        for id in pairs::unanswered(cx.st, now, answer) {
            pairs::drop_unanswered(cx, id);
            swept.unanswered.extend(cx.st.name_of(id));
        }
        if let Some(next) = pairs::fall_back(cx) {
            cx.fx.wake(next);
        }
        pairs::rematch(cx);
        Ok(swept)
    }
}
