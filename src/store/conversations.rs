//! Conversations as the desk works them: each one's status, the agent whose list it is in,
//! its labels and who its customer is, apart from the archive of what was said (the
//! archive keeps lines; this keeps the state that changes).
//!
//! One record per conversation, named by the archive's conversation id and changed only
//! by a compare-and-set on its `version`: two nodes (or an agent and a snooze running out)
//! changing one conversation at once never overwrite each other; the loser reads again and
//! decides again with `core::conversation`.

use async_trait::async_trait;

use super::{Millis, StoreError, StoreResult};

/// Where a conversation stands (`core::conversation::Status` without the snooze's time).
///
/// `open`: live, waiting for an agent, or left by its customer with the desk's turn to
/// act. `pending`: waiting on the customer. `snoozed`: parked until `snoozed_until`, then
/// `open` again by itself, to its holder's attention. `resolved`: done.
/// Transitions: a pairing opens it; a chat ended on purpose resolves it (a customer gone
/// past the grace period leaves it `open`); its holder or an admin sets any status; a
/// customer's line into its live chat, a continue (`join` with `conversation`) or an
/// answer by mail opens a `pending`, `snoozed` or `resolved` one again (a reopen when it
/// was resolved), the same id and `seq` going on; a snooze running out opens it.
/// Migration: a conversation archived before statuses existed is `resolved`, held by the
/// agent who had it last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    Pending,
    Snoozed,
    Resolved,
}

/// One conversation's lasting state, stored as it is by the serialising backends (MongoDB
/// keeps `version` as a 64-bit signed integer: versions count up from 1, far below its end).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversationRecord {
    /// The archive's conversation id (the live `chat_id`).
    #[serde(rename = "_id")]
    pub id: String,
    pub category: String,
    pub status: ConversationStatus,
    /// Set exactly while `status` is `Snoozed`.
    pub snoozed_until: Option<Millis>,
    /// The agent (account id) whose list it is in; `None`: unassigned.
    pub holder: Option<String>,
    /// The holder's last turn in it: what the sticky return counts from.
    pub holder_turn_at: Millis,
    /// Label ids, each once, in the order they were added.
    pub labels: Vec<String>,
    /// Who the customer is, for finding their conversations: their browser's visitor key as
    /// `CustomerKey::indexed` writes it (`v:<key>`). Never shown; erased with the conversation.
    pub customer_keys: Vec<String>,
    pub opened_at: Millis,
    /// When it took its status: the inbox's "waiting longest" order.
    pub status_since: Millis,
    pub resolved_at: Option<Millis>,
    pub resolutions: u32,
    pub reopens: u32,
    /// 1 when first stored, one more at each change.
    pub version: u64,
    /// It began as an offline message (left while nobody could chat; the message has its
    /// id): the inbox marks it so. Absent (false) on every other record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// When a snooze running out opened it again (not a person, not a customer's line),
    /// while its holder has not opened it since: their inbox marks it "Snooze ended".
    /// Absent otherwise, and on records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snooze_ended_at: Option<Millis>,
}

impl ConversationRecord {
    /// Version 1 of conversation `id`'s record in `category`: nobody's, with no label,
    /// customer key or mark, opened and with `status` since `at`.
    pub fn first(id: &str, category: &str, status: ConversationStatus, at: Millis) -> Self {
        Self {
            id: id.to_string(),
            category: category.to_string(),
            status,
            snoozed_until: None,
            holder: None,
            holder_turn_at: at,
            labels: Vec::new(),
            customer_keys: Vec::new(),
            opened_at: at,
            status_since: at,
            resolved_at: None,
            resolutions: 0,
            reopens: 0,
            version: 1,
            offline: false,
            snooze_ended_at: None,
        }
    }
}

/// Whose conversations an inbox lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Everyone's and nobody's ("all").
    Anyone,
    /// Nobody's ("unassigned").
    Nobody,
    /// One agent's ("mine").
    Agent(String),
}

/// An inbox: which conversations, the longest waiting first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    pub holder: Holder,
    /// Empty: any status.
    pub statuses: Vec<ConversationStatus>,
    pub category: Option<String>,
    pub label: Option<String>,
    pub limit: usize,
}

impl InboxQuery {
    /// Does `record` belong in this inbox?
    pub fn matches(&self, record: &ConversationRecord) -> bool {
        let holder = match &self.holder {
            Holder::Anyone => true,
            Holder::Nobody => record.holder.is_none(),
            Holder::Agent(agent) => record.holder.as_deref() == Some(agent.as_str()),
        };
        holder
            && (self.statuses.is_empty() || self.statuses.contains(&record.status))
            && self.category.as_ref().is_none_or(|c| *c == record.category)
            && self.label.as_ref().is_none_or(|l| record.labels.contains(l))
    }
}

/// The inbox's order: who took their status first (waits longest), then by id.
pub fn longest_waiting_first(a: &ConversationRecord, b: &ConversationRecord) -> std::cmp::Ordering {
    (a.status_since, &a.id).cmp(&(b.status_since, &b.id))
}

/// Conversations' lasting state.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// One conversation's record; `NotFound` when it has none.
    async fn conversation_record(&self, id: &str) -> StoreResult<ConversationRecord>;
    /// Stores `record` as its `version`: version 1 is a new record (`Conflict` when one is
    /// stored); a later version replaces the stored one only when that is the version just
    /// before (`Conflict` when another change came first; `NotFound` when none is stored).
    async fn put_conversation_record(&self, record: &ConversationRecord) -> StoreResult<()>;
    /// Stores `records` in order, each as [`Self::put_conversation_record`] would (so a
    /// conversation's second record in the batch is the version after its first): each
    /// one's answer, in order. Once one of a conversation's records is refused, its later
    /// ones in the batch are refused too (`Conflict`) and not stored: each was decided on
    /// the one before it. Where the backend can, all in one write (the embedded store:
    /// one durable commit, all or none; `Err` then means none was stored).
    async fn put_conversation_records(&self, records: &[ConversationRecord]) -> StoreResult<Vec<StoreResult<()>>> {
        let mut refused: Vec<&str> = Vec::new();
        let mut answers = Vec::with_capacity(records.len());
        for record in records {
            let answer = if refused.contains(&record.id.as_str()) {
                Err(StoreError::Conflict)
            } else {
                self.put_conversation_record(record).await
            };
            if answer.is_err() {
                refused.push(&record.id);
            }
            answers.push(answer);
        }
        Ok(answers)
    }
    /// The records of those of `ids` that have one, in the order of `ids`.
    async fn conversation_records(&self, ids: &[String]) -> StoreResult<Vec<ConversationRecord>>;
    /// The conversations `query` asks for, longest waiting first, at most `query.limit`.
    async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<ConversationRecord>>;
    /// How many conversations `query` asks for, its `limit` aside (an inbox view's count).
    async fn count_inbox(&self, query: &InboxQuery) -> StoreResult<u64>;
    /// The conversations of the customer known by `customer_key`, newest first.
    async fn customer_conversation_records(
        &self,
        customer_key: &str,
        limit: usize,
    ) -> StoreResult<Vec<ConversationRecord>>;
    /// Snoozed conversations whose time has come by `now`, the earliest first.
    async fn snoozes_due(&self, now: Millis, limit: usize) -> StoreResult<Vec<ConversationRecord>>;
    /// Makes good the copies of records that a failed write left behind (MongoDB copies
    /// each record's status and labels onto its archive document in a second write; the
    /// other stores keep none, or write both at once): how many were copied. Run at start
    /// and every [`super::REPAIR_EVERY`] on each node.
    async fn repair_record_copies(&self) -> StoreResult<u64> {
        Ok(0)
    }
}
