//! Offline messages: what a customer leaves when nobody can chat with them (a category
//! closed, or no agent holding it online), as stored.
//!
//! A message goes `new` → `taken` (an agent said it is theirs) → `handled` (marked so, or
//! answered by mail). Replies are archived with the message; a reply's mail is written in
//! the same store call as the reply (the mail outbox, see `outbox.rs`), so a stored reply
//! never lacks its mail. The rules of each change are here, so every backend applies the
//! same ones ([`OfflineMessage::take_by`], [`OfflineMessage::mark_handled`],
//! [`OfflineMessage::add_reply`]).

use async_trait::async_trait;

use super::{CustomerProfile, Millis, OutboxMail, Page, StoreError, StoreResult};

/// Where an offline message is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfflineState {
    /// Nobody has taken it yet.
    #[default]
    New,
    /// An agent took it (`taken_by`).
    Taken,
    /// Answered, or marked handled.
    Handled,
}

impl OfflineState {
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineState::New => "new",
            OfflineState::Taken => "taken",
            OfflineState::Handled => "handled",
        }
    }
}

/// A reply sent by mail, archived with its message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OfflineReply {
    /// Unique within its message (a UUIDv7); names the reply's outbox mail too.
    pub id: String,
    /// The account that answered.
    pub agent_id: String,
    pub agent_name: String,
    pub text: String,
    pub at: Millis,
}

/// A message left while nobody was online. Its default is one just left: `new`, nobody's,
/// unanswered, with what the customer gives (id, category, name, email, text, when, who)
/// still to fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OfflineMessage {
    pub id: String,
    /// The category id the customer chose.
    pub category: String,
    pub name: String,
    pub email: String,
    pub text: String,
    pub created_at: Millis,
    pub state: OfflineState,
    /// The account that took it (or first handled or answered it).
    pub taken_by: Option<String>,
    /// Oldest first.
    pub replies: Vec<OfflineReply>,
    /// When it was first marked handled or answered (absent in messages stored before
    /// this was kept, and while it is not handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_at: Option<Millis>,
    /// The account that first marked it handled or answered it (absent likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_by: Option<String>,
    /// Who left it, as a conversation's opening records its customer (email, the browser's
    /// visitor key, a verified identity): set on every message left since offline messages
    /// are also conversations (the conversation has the message's id, see `offline`);
    /// absent on those left before, which stay offline messages only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerProfile>,
}

/// Which offline messages to list; each field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineFilter {
    pub state: Option<OfflineState>,
    pub category: Option<String>,
}

impl OfflineFilter {
    pub fn matches(&self, m: &OfflineMessage) -> bool {
        self.state.is_none_or(|s| s == m.state) && self.category.as_ref().is_none_or(|c| *c == m.category)
    }
}

impl OfflineMessage {
    /// `agent` takes it: a new message becomes theirs. Taking one already theirs changes
    /// nothing (`Ok(false)`); one taken by another agent, or handled, is `Conflict`.
    pub fn take_by(&mut self, agent: &str) -> StoreResult<bool> {
        match self.state {
            OfflineState::New => {
                self.state = OfflineState::Taken;
                self.taken_by = Some(agent.to_string());
                Ok(true)
            }
            OfflineState::Taken if self.taken_by.as_deref() == Some(agent) => Ok(false),
            _ => Err(StoreError::Conflict),
        }
    }

    /// Marked handled by `by` at `at` (who becomes its taker if it had none); again changes
    /// nothing (the first time handled stays).
    pub fn mark_handled(&mut self, by: &str, at: Millis) -> bool {
        let changed = self.state != OfflineState::Handled || self.taken_by.is_none();
        self.state = OfflineState::Handled;
        if self.handled_at.is_none() {
            self.handled_at = Some(at);
            self.handled_by = Some(by.to_string());
        }
        if self.taken_by.is_none() {
            self.taken_by = Some(by.to_string());
        }
        changed
    }

    /// Archives `reply` (once per reply id) and marks the message handled; true when the
    /// reply is new.
    pub fn add_reply(&mut self, reply: OfflineReply) -> bool {
        if self.replies.iter().any(|r| r.id == reply.id) {
            return false;
        }
        self.mark_handled(&reply.agent_id, reply.at);
        self.replies.push(reply);
        true
    }
}

/// Newest first, then by id: the order of every listing.
pub fn newest_first(a: &OfflineMessage, b: &OfflineMessage) -> std::cmp::Ordering {
    b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id))
}

/// A reply to an offline message and the mail that carries it to the customer: stored
/// together or not at all ([`OfflineStore::reply_offline_message`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MailedReply {
    pub reply: OfflineReply,
    pub mail: OutboxMail,
}

/// Messages customers leave while no agent is available, and the replies to them.
/// [`OfflineStore::add_offline_message`] and [`OfflineStore::reply_offline_message`] store the
/// desk's or the customer's mail in the same write: the message owns that transaction.
#[async_trait]
pub trait OfflineStore: Send + Sync {
    /// Stores a new offline message, with the desk's notification `mail` when given, as
    /// one write. `Conflict` when its id is taken (nothing written).
    async fn add_offline_message(&self, message: OfflineMessage, mail: Option<OutboxMail>) -> StoreResult<()>;
    /// One offline message by id; `NotFound` when absent.
    async fn offline_message(&self, id: &str) -> StoreResult<OfflineMessage>;
    /// Offline messages matching `filter`, newest first ([`newest_first`]), and the total
    /// count before paging.
    async fn offline_messages(&self, filter: &OfflineFilter, page: Page) -> StoreResult<(Vec<OfflineMessage>, u64)>;
    /// `agent` takes the message ([`OfflineMessage::take_by`]: new → taken, one decision,
    /// so of two agents taking it at once one wins and the other gets `Conflict`); returns
    /// it as stored. `NotFound` when absent.
    async fn take_offline_message(&self, id: &str, agent: &str) -> StoreResult<OfflineMessage>;
    /// Marks the message handled ([`OfflineMessage::mark_handled`]); returns it as stored.
    async fn mark_offline_message_handled(&self, id: &str, by: &str) -> StoreResult<OfflineMessage>;
    /// Archives the reply with the message and marks it handled
    /// ([`OfflineMessage::add_reply`]), and stores the reply's mail in the same write
    /// (once: a retried reply with the same id is one reply and one mail). Returns the
    /// message as stored; `NotFound` when absent (nothing written).
    async fn reply_offline_message(&self, id: &str, mailed: MailedReply) -> StoreResult<OfflineMessage>;
}
