//! The closings of the chats a lost node ended lately (`docs/cluster.md` §13, "A chat
//! ended just before its node died").
//!
//! A chat's end applies in Redis first; each node that archives the chat writes its
//! closing when its replica replays the end, after a last read of the chat's log, and its
//! archive stores it a write later. A node killed in between — before it replayed the
//! end, or with the closing still in its archive's buffer — leaves the chat open in the
//! archive for good: the reaper inherits running chats only, and when both sides were on
//! that node no other node logs the chat. So every replica keeps the chats it saw end
//! lately, each with the node whose call ended it (the customer's node for their `leave`
//! or their grace expiry, the agent's for the agent's end, where a customer elsewhere has
//! their own node archive it too), and the node that makes the `node_lost` of that node
//! (its reaper, or the node itself restarted under its id, which replays the stream from
//! its start) writes the closing of each that ended within [`unsure`] of the loss: the
//! chat's log read again from its start into the archive, then the closing, dated as
//! every node dates it; and the conversation resolved as of the end when it was ended on
//! purpose (a status set since stands). The stores keep each event once, so a closing the
//! lost node did store changes nothing.

use std::time::Duration;

use super::super::HubState;
use super::super::decisions::ending;
use crate::clock::now_ms;
use crate::config::Settings;
use crate::conversations::OpeningKnown;
use crate::core::routing::{ChatId, Decision};
use crate::store::{ConversationClosed, EndReason, Side};

/// Ended chats a replica keeps at most (the oldest go first): far more than end within
/// [`unsure`] on a busy desk (a few hundred bytes each).
const ENDED_KEPT: usize = 50_000;

/// A chat whose end this replica applied.
pub(in crate::hub::service) struct EndedChat {
    /// When the end applied in Redis (the events stream's clock).
    at: i64,
    chat: ChatId,
    /// The node whose call ended it.
    by_node: String,
    wire_id: String,
    ended_by: Side,
    reason: EndReason,
    /// For the conversation record its end stores when none is stored (`None`: its pairing
    /// was not replayed here, as after a snapshot's load).
    opening: Option<OpeningKnown>,
}

/// How long after a chat's end its closing may still not be stored by the node that
/// made the end, as seen when that node's loss is replayed: the archive stores (or spools)
/// an event within its write timeout, and a dead node is reaped within a lease or two of
/// its death (or reaps itself on a restart sooner). A minute covers the write timeout.
fn unsure(settings: &Settings) -> Duration {
    settings.cluster.lease * 2 + Duration::from_secs(60)
}

impl HubState {
    /// Notes the chats whose end `out` (an event made by `by_node` at `at`) decided, and
    /// forgets those that ended longer than [`unsure`] before it.
    pub(in crate::hub::service) fn note_ended_chats(&mut self, out: &[Decision], at: i64, by_node: &str) {
        for decision in out {
            let Decision::ChatEnded {
                chat,
                customer,
                agent,
                ended_by,
                reason,
            } = decision
            else {
                continue;
            };
            let (_, _, reason, ended_by) = ending(*ended_by, *reason);
            let customer_keys = self.customer_profile(*customer).record_keys();
            let cluster = self.cluster.as_ref().expect("called in a cluster only");
            // Named as the nodes that log it name it: a continued conversation's id.
            let wire_id = match self.chats.get(chat) {
                Some(log) => log.wire_id().to_string(),
                None => cluster
                    .remote_conversation(*customer)
                    .map_or_else(|| cluster.wire_id(*chat), |continues| continues.id.clone()),
            };
            let opening = cluster.paired_at.get(chat).map(|(paired_at, category)| OpeningKnown {
                category: category.0.to_string(),
                customer_keys,
                agent: Some(agent.clone()),
                paired_at: *paired_at,
            });
            self.cluster_mut().ended_chats.push_back(EndedChat {
                at,
                chat: *chat,
                by_node: by_node.to_string(),
                wire_id,
                ended_by,
                reason,
                opening,
            });
        }
        let kept = unsure(&self.settings).as_millis() as i64;
        let ended = &mut self.cluster_mut().ended_chats;
        while ended
            .front()
            .is_some_and(|e| at - e.at > kept || ended.len() > ENDED_KEPT)
        {
            ended.pop_front();
        }
    }

    /// This node made the `node_lost` of `lost` (at `at`): writes the closing of every chat
    /// `lost` ended within [`unsure`] before, after its log's lines again.
    pub(in crate::hub::service) fn close_ended_by(&mut self, lost: &str, at: i64) {
        let window = unsure(&self.settings).as_millis() as i64;
        // A loss long past, replayed from the stream's start by a node restarted under the
        // id that made it: its closings were written then.
        if now_ms() - at > window {
            return;
        }
        let cluster = self.cluster_mut();
        let ended: Vec<(ChatId, ConversationClosed, Option<OpeningKnown>)> = cluster
            .ended_chats
            .iter()
            .filter(|e| e.by_node == lost && at - e.at <= window && !cluster.closing.contains_key(&e.chat))
            .map(|e| {
                let closed = ConversationClosed {
                    id: e.wire_id.clone(),
                    ended_at: e.at,
                    ended_by: e.ended_by,
                    reason: e.reason,
                    inferred: None,
                };
                (e.chat, closed, e.opening.clone())
            })
            .collect();
        if ended.is_empty() {
            return;
        }
        tracing::warn!(
            lost,
            chats = ended.len(),
            "writing again the closings of the chats a lost node ended lately"
        );
        for (chat, closed, opening) in ended {
            if closed.reason == EndReason::Ended
                && let Some(opening) = opening
            {
                self.conversation_resolved_at(&closed.id, opening, closed.ended_at);
            }
            // Its log's lines from the first (the store keeps each once), then the closing.
            self.closing_archive(chat, 0, closed, true);
        }
    }
}
