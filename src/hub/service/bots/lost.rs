//! A dead node's bot conversations whose customers do not come back. A customer talking
//! to a bot on a node that dies may resume on another node (their ticket, `bot_relay`);
//! one who does not must not leave the conversation open for good. As for a live chat
//! whose customer's node died, the node whose `node_lost` took the dead node over records
//! that it owes the sweep of that node's stages, and of those the dead node owed itself
//! (`core::bots::lost_stages_to_sweep`, `hub::bot_sweeps`), waits the grace period
//! (`RESUME_GRACE_SECS`) from replaying that loss, then takes the tickets left (`bot_relay::take_lost_tickets`, each
//! as a resume would, so a late resume and this never both have one) and ends each
//! conversation as one on a live node whose customer dropped: closed as a disconnect,
//! resolved, the bot told `customer_gone`; and clears the debt.

use std::time::Duration;

use super::super::HubState;
use crate::clock::now_ms;
use crate::core::bots as rules;
use crate::hub::Command;
use crate::hub::bot_relay::{self, Ticket};
use crate::hub::bot_sweeps;
use crate::protocol::ServerFrame;
use crate::store::{ArchiveEvent, ConversationClosed, EndReason, Side};

/// How long a sweep waits before trying Redis again after it did not answer.
const RETRY: Duration = Duration::from_secs(5);

impl HubState {
    /// Node `lost` was taken over by `heir` (its loss replayed here): if that is this node,
    /// its bot conversations whose customers do not resume within the grace period are
    /// ended then, off the hub's task.
    pub(in crate::hub::service) fn sweep_lost_stages_later(&self, lost: &str, heir: &str) {
        let Some(cluster) = self.bus.clone() else { return };
        if heir != cluster.node_id() {
            return;
        }
        let (hub, grace, lost, heir) = (
            self.timers.clone(),
            self.settings.resume_grace,
            lost.to_string(),
            heir.to_string(),
        );
        tokio::spawn(async move {
            // The debt first, so that if this node dies before it swept, its heir does.
            let sweeps = loop {
                match bot_sweeps::owe_lost_sweeps(&cluster, &lost, &heir).await {
                    Ok(sweeps) => break sweeps,
                    Err(e) => {
                        tracing::warn!(node = %lost, error = %e, "a dead node's owed bot sweeps could not be taken over yet");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            };
            if sweeps.is_empty() {
                return;
            }
            tokio::time::sleep(grace).await;
            for lost in sweeps {
                loop {
                    let (taken, failed) = bot_relay::take_lost_tickets(&cluster, &lost).await;
                    let Some(tx) = hub.upgrade() else { return };
                    if !taken.is_empty() && tx.send(Command::LostBotStages(taken)).await.is_err() {
                        return;
                    }
                    drop(tx);
                    let failed = match failed {
                        None => bot_sweeps::swept(&cluster, &lost).await.err(),
                        failed => failed,
                    };
                    let Some(e) = failed else { break };
                    tracing::warn!(node = %lost, error = %e, "a dead node's bot conversations could not be taken over yet");
                    tokio::time::sleep(RETRY).await;
                }
            }
        });
    }

    /// Dead nodes' bot conversations whose customers did not come back within the grace
    /// period: each ends as when its customer drops on a live node.
    pub(in crate::hub::service) fn lost_stages_ended(&mut self, tickets: Vec<Ticket>) {
        for Ticket { chat, bot, node, .. } in tickets {
            tracing::warn!(bot = %bot, conversation = %chat, node = %node, "a dead node's bot conversation ends: its customer did not come back");
            self.archive
                .push_inherited_closing(ArchiveEvent::Closed(ConversationClosed {
                    id: chat.clone(),
                    ended_at: now_ms(),
                    ended_by: Side::Customer,
                    reason: EndReason::Disconnect,
                    inferred: None,
                }));
            // A dead node's bot conversation: stored by its opening there, of which this
            // node knows nothing more.
            let opening = crate::conversations::OpeningKnown {
                paired_at: now_ms(),
                ..Default::default()
            };
            self.conversation_resolved(&chat, opening);
            let ended = ServerFrame::ConversationEnded {
                chat_id: chat.clone(),
                reason: rules::LOST_STAGE_END,
                why: None,
            };
            self.tell_bot(&bot, &chat, "conversation_ended", &ended);
        }
    }
}
