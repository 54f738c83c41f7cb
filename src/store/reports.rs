//! What the reports read from the archive ([`ReportStore::report_facts`](super::ReportStore::report_facts)):
//! each service conversation's times, its agent now and its rating; each customer who left
//! the line unserved; each offline message. The numbers themselves are computed from these
//! by `core::reports`, the same for every backend.
//!
//! A customer who left the line unserved is archived as [`QueueAbandoned`]
//! (`ArchiveEvent::Abandoned`), once by its id: there is no conversation to count them by.
//! It holds nothing personal (no name, no address), so an erasure has nothing to find in it.

use async_trait::async_trait;

use super::{Millis, RatingScale, StoreResult};
use crate::core::bots::{HandOn, Outcome};

/// A customer who left a category's line (or did not come back within the grace period)
/// before any agent served them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueAbandoned {
    /// Names the record for retries (a UUIDv7 made when they left).
    pub id: String,
    pub category: String,
    pub queued_at: Millis,
    pub left_at: Millis,
}

/// One service conversation as the reports need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationFacts {
    pub id: String,
    /// `None` only for service conversations archived without one (none are).
    pub category: Option<String>,
    /// The agent who has it now (after transfers, the last one it was handed to).
    pub agent_id: String,
    pub agent_name: String,
    pub queued_at: Millis,
    pub paired_at: Millis,
    /// When a person (any agent of it; not its bot) first wrote.
    pub first_agent_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub rating: Option<(RatingScale, u8)>,
    /// Whether a bot opened it, and if so whether the bot kept it or handed it over, and
    /// when the person took it (read from who it opened with and who handed it on to whom:
    /// see [`bot_outcome`]).
    pub bot: Option<Outcome>,
}

/// One offline message as the reports need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineFacts {
    pub category: String,
    pub created_at: Millis,
    /// Once handled: the account that handled it, and when (unknown for messages handled
    /// before the time was kept).
    pub handled: Option<(String, Option<Millis>)>,
}

/// Everything in one report's time range: conversations paired, customers who left
/// unserved, and offline messages left in `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFacts {
    pub conversations: Vec<ConversationFacts>,
    pub abandoned: Vec<QueueAbandoned>,
    pub offline: Vec<OfflineFacts>,
}

impl ReportFacts {
    /// Sorted the same whatever the backend (contract tests compare them).
    pub fn sorted(mut self) -> Self {
        self.conversations.sort_by(|a, b| a.id.cmp(&b.id));
        self.abandoned.sort_by(|a, b| a.id.cmp(&b.id));
        self.offline.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.category.cmp(&b.category))
        });
        self
    }
}

/// A conversation's bot outcome ([`crate::core::bots::outcome`]) from its agent now, its
/// pairing and its transfers as `(at, from agent id, to agent id)`.
pub(crate) fn bot_outcome<'a>(
    agent_now: &str,
    paired_at: Millis,
    transfers: impl IntoIterator<Item = (Millis, &'a str, Option<&'a str>)>,
) -> Option<Outcome> {
    let hand_ons: Vec<HandOn<'a>> = transfers
        .into_iter()
        .map(|(at, from, to)| HandOn { at, from, to })
        .collect();
    crate::core::bots::outcome(agent_now, paired_at, &hand_ons)
}

/// The first line a person wrote among `messages` (see [`is_a_persons_line`]).
pub(crate) fn first_agent_at<'a>(messages: impl IntoIterator<Item = super::ArchivedMessageRef<'a>>) -> Option<Millis> {
    messages
        .into_iter()
        .filter(|m| is_a_persons_line(m.from, m.via))
        .map(|m| m.at)
        .min()
}

/// Did a person write a line from `from` that came `via`: an agent's, not a bot's (a bot's
/// line answers nobody for the person who takes its conversation over)? Every first agent
/// line a store notes, as it archives or as it backfills, is one of these.
pub(crate) fn is_a_persons_line(from: super::Side, via: Option<super::Via>) -> bool {
    from == super::Side::Agent && via != Some(super::Via::Bot)
}

/// Facts of an offline message: handled when its state says so, by who first handled it
/// (else who took it), at the time kept (else its first reply's).
pub(crate) fn offline_facts(m: &super::OfflineMessage) -> OfflineFacts {
    let handled_at = m.handled_at.or_else(|| m.replies.iter().map(|r| r.at).min());
    let by = m.handled_by.clone().or_else(|| m.taken_by.clone()).unwrap_or_default();
    OfflineFacts {
        category: m.category.clone(),
        created_at: m.created_at,
        handled: (m.state == super::OfflineState::Handled).then_some((by, handled_at)),
    }
}

/// The facts the reports read.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Service conversations paired, customers who left the line unserved (by `left_at`),
    /// and offline messages left (by `created_at`), in `[from, to)`; in any order.
    async fn report_facts(&self, from: Millis, to: Millis) -> StoreResult<ReportFacts>;
    /// Readies what the reports of the last [`REPORTS_KEPT_READY_DAYS`] will read, so the
    /// next one answers quickly, run every [`REPORTS_READY_EVERY`] on each node
    /// ([`keep_reports_ready`]). MongoDB builds and refreshes its per-day cache; the other
    /// stores read their own indexes and have nothing to ready.
    async fn ready_reports(&self, _now: Millis) -> StoreResult<()> {
        Ok(())
    }
}
