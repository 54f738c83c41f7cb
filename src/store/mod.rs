//! Durable storage behind one narrow interface.
//!
//! Everything Switchboard keeps between restarts — accounts, categories and the
//! conversation archive — goes through [`Store`]. The hub never knows which
//! backend it talks to: the in-memory store (tests, `STORE=memory`), the
//! embedded on-disk store (the zero-config default) and MongoDB implement the
//! same trait and pass the same contract tests.
//!
//! Invariants every implementation keeps:
//! - writes are idempotent on natural keys (a retried archive batch never
//!   duplicates a message or a conversation): a conversation is named by its
//!   id, a message by its id or, equally, by its seq within its conversation, a
//!   transfer by its conversation, time, from agent, to agent and to category, an
//!   agent's note by its conversation and its id;
//! - no method holds a lock across an `.await` of the caller.

mod embedded;
mod journal;
mod memory;
mod message_id;
mod mongo;
mod record;
// One module per concern: its records and its trait (`RoomStore` …), which each backend
// implements in its own file of that concern (`embedded/rooms.rs`, `mongo/rooms.rs`,
// `memory/rooms.rs`).
// ---- staff accounts and sessions ----
mod accounts;
// ---- categories and desk settings ----
mod desk;
// ---- the conversation archive ----
mod archive;
// ---- conversations as the desk works them: status, holder, labels ----
mod conversations;
pub mod labels;
// ---- what customers tell about themselves, their transcripts ----
mod customer;
mod transcripts;
// ---- a customer's data erased on request ----
mod erasure;
// ---- rooms and 1-to-1 video ----
mod rooms;
// ---- appointments ----
mod appointments;
// ---- mail outbox ----
mod outbox;
// ---- canned replies and ratings ----
mod canned;
mod ratings;
// ---- offline messages ----
mod offline;
// ---- the facts the reports read ----
mod reports;
// ---- mail customers send back, each handled once ----
mod inbound_mail;
// ---- archive search ----
pub mod search;
// ---- calls someone waits on, bounded in time; writes tried again in the background ----
mod bounded;
pub mod deadline;
pub mod retrying;
// ---- reply addresses of follow-up mails ----
mod reply_tokens;
// ---- webhooks: endpoints and their deliveries ----
mod webhooks;
// ---- API tokens ----
mod api_tokens;

pub use bounded::bounded_reads;
pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
pub use message_id::MessageId;
pub use mongo::MongoStore;
// ---- staff accounts and sessions ----
pub use accounts::{Account, AccountStore, Role, StoredSession};
pub use record::Transfer;
// ---- categories and desk settings ----
pub use desk::{Category, DeskStore};
// ---- the conversation archive ----
pub use archive::ArchiveStore;
// ---- conversations as the desk works them: status, holder, labels ----
pub use conversations::{
    ConversationRecord, ConversationStatus, ConversationStore, Holder, InboxQuery, longest_waiting_first,
};
pub use labels::{Label, LabelStore};
// ---- what customers tell about themselves, their transcripts ----
pub use customer::{CustomerKey, CustomerProfile, CustomerStore};
pub use transcripts::CustomerTranscript;
// ---- a customer's data erased on request ----
pub use erasure::{Erased, ErasureRecord, ErasureStore};
// ---- rooms and 1-to-1 video ----
pub use rooms::{AccessCode, Audience, CallLog, CallPeer, Guest, Room, RoomState, RoomStore, SeatHold, WrongAttempts};
// ---- appointments ----
pub use appointments::{
    Appointment, AppointmentCancel, AppointmentStatus, AppointmentStore, Cancellation, OwesMail, Rescheduling,
    with_mail_if_owed,
};
// ---- mail outbox ----
pub use outbox::{
    MailAttachment, MailOutcome, MailPurpose, MailStatus, OutboxMail, OutboxStore, add_mail_once, apply_bounce,
    apply_outcome,
};
// ---- canned replies and ratings ----
pub use crate::rating_scale::RatingScale;
pub use canned::{CannedReply, CannedStore};
pub use ratings::{Rating, RatingStore};
// ---- offline messages ----
pub use offline::{MailedReply, OfflineFilter, OfflineMessage, OfflineReply, OfflineState, OfflineStore, newest_first};
// ---- the facts the reports read ----
pub use reports::{ConversationFacts, OfflineFacts, QueueAbandoned, ReportFacts, ReportStore};
// ---- archive search ----
pub use search::SearchQuery;
// ---- reply addresses of follow-up mails ----
pub use reply_tokens::ReplyTokenStore;
// ---- mail customers send back, each handled once ----
pub use inbound_mail::InboundMailStore;
// ---- webhooks: endpoints and their deliveries ----
pub use webhooks::{
    DeliveryAttempt, DeliveryClaim, DeliveryStatus, PrivateAddressesChoice, WebhookDelivery, WebhookEndpoint,
    WebhookStore,
};
// ---- API tokens ----
pub use api_tokens::{ApiToken, ApiTokenStore};

use std::sync::Arc;

use async_trait::async_trait;

/// A shared handle to whichever backend was configured.
pub type SharedStore = Arc<dyn Store>;

/// Milliseconds since the Unix epoch; the one time format of the archive.
pub type Millis = i64;

/// Which side of a conversation something came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Customer,
    Agent,
    /// The hub itself (expiry, shutdown, an admin's change).
    System,
}

/// What kind of conversation this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// A customer served by an agent from a category queue.
    Service,
    /// A 1-to-1 chat between two people of the buddy list.
    Buddy,
}

/// Why a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// One side pressed "end chat".
    Ended,
    /// A side disconnected and did not come back within the grace period.
    Disconnect,
    /// The agent was disabled or the category removed by an admin.
    Expiry,
    /// The hub shut down.
    Shutdown,
}

/// One archived chat message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchivedMessage {
    /// Globally unique, time-ordered (UUIDv7). With `seq`, either names the message for retries.
    /// Held inline ([`MessageId`]): stamping a message allocates nothing for it.
    pub id: MessageId,
    /// 1-based position in its conversation; one seq is one message.
    pub seq: u64,
    pub from: Side,
    pub text: String,
    pub at: Millis,
    /// The files it carries: their metadata (the files are in `attachments`' store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::attachments::AttachmentMeta>,
    /// How it came other than over the chat (absent for chat lines): a customer's answer
    /// by mail is `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

impl ArchivedMessage {
    /// A chat line of text alone: no files, not by mail.
    pub fn plain(id: impl Into<MessageId>, seq: u64, from: Side, text: impl Into<String>, at: Millis) -> Self {
        Self {
            id: id.into(),
            seq,
            from,
            text: text.into(),
            at,
            attachments: Vec::new(),
            via: None,
        }
    }

    /// Is it a chat line of text alone (no files, no `via`), which the stores keep in
    /// their compact records? Any other is kept as JSON.
    pub fn is_plain(&self) -> bool {
        self.attachments.is_empty() && self.via.is_none()
    }

    /// Its fields borrowed. Every field is named here, so a field added to the message
    /// and not to [`ArchivedMessageRef`] fails to compile rather than go unstored.
    pub fn borrowed(&self) -> ArchivedMessageRef<'_> {
        let Self {
            id,
            seq,
            from,
            text,
            at,
            attachments,
            via,
        } = self;
        ArchivedMessageRef {
            id,
            seq: *seq,
            from: *from,
            text,
            at: *at,
            attachments,
            via: *via,
        }
    }
}

/// An [`ArchivedMessage`] with its fields borrowed, serialised as it is. The embedded
/// store's fold writes messages read in place from the journal's record: copying each
/// one's strings out first was three allocations a message and a fifth of the fold's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ArchivedMessageRef<'a> {
    pub id: &'a str,
    pub seq: u64,
    pub from: Side,
    pub text: &'a str,
    pub at: Millis,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub attachments: &'a [crate::attachments::AttachmentMeta],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

impl ArchivedMessageRef<'_> {
    /// As [`ArchivedMessage::is_plain`].
    pub fn is_plain(&self) -> bool {
        self.attachments.is_empty() && self.via.is_none()
    }
}

/// The way a line came into its conversation other than over the chat, where that shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A mail the customer sent to the desk's mailbox.
    Email,
    /// The category's bot wrote it (an agent line, `from: "agent"`, said by the bot the
    /// conversation opened with).
    Bot,
}

/// The opening facts of a conversation, known when the two sides are paired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversationOpened {
    pub id: String,
    pub kind: ConversationKind,
    pub category: Option<String>,
    pub customer_name: String,
    /// Agent account id (service chats) or the second person's name (buddy chats).
    pub agent_id: String,
    pub agent_name: String,
    pub queued_at: Millis,
    pub paired_at: Millis,
    /// What the customer told about themselves (service chats; empty for buddy chats).
    #[serde(default, skip_serializing_if = "CustomerProfile::is_empty")]
    pub customer: CustomerProfile,
}

/// The closing facts of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "ClosedWithLegacyMark")]
pub struct ConversationClosed {
    pub id: String,
    pub ended_at: Millis,
    pub ended_by: Side,
    pub reason: EndReason,
    /// Set on a closing a node infers from a snapshot (a chat that ended in events it
    /// skipped, how being lost with them), and stored with it: the real closing, written
    /// by the node that applied the end, replaces it whenever it comes, and it never
    /// replaces the real one ([`ConversationClosed::replaces`]). `None`: a real closing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred: Option<InferredClosing>,
}

/// What an inferred closing knows of the visit it closes (see [`ConversationClosed::inferred`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InferredClosing {
    /// When the visit's chat was paired, on the events stream's clock (as every node dates
    /// a closing): a closing stored that ended before it closed an earlier visit of a
    /// continued conversation.
    pub visit_paired_at: Millis,
}

impl ConversationClosed {
    /// Does this closing replace `kept`, the one stored for its conversation (the
    /// reference rule every store follows)? The later visit's closing wins; within one
    /// visit the real closing wins over an inferred one, whichever is stored first (the
    /// node that applied the end may write it after the node that inferred it, its spool
    /// flushing later); of two of one kind the later wins (a retry changes nothing).
    pub fn replaces(&self, kept: Option<&ConversationClosed>) -> bool {
        let Some(kept) = kept else { return true };
        match (kept.inferred, self.inferred) {
            // The stored one ended before this visit was paired: an earlier visit's.
            (_, Some(new)) if kept.ended_at < new.visit_paired_at => true,
            (None, Some(_)) => false,
            // Unless it ended before the inferred one's visit: an earlier visit's, late.
            (Some(kept_inferred), None) => self.ended_at >= kept_inferred.visit_paired_at,
            _ => kept.ended_at < self.ended_at,
        }
    }
}

/// [`ConversationClosed`] as read, also from a journal an older build left: it marked an
/// inferred closing `unless_closed` (never stored), without its visit, which is read as
/// a visit paired at the start of time (it replaces no closing stored, as it did then).
#[derive(serde::Deserialize)]
struct ClosedWithLegacyMark {
    id: String,
    ended_at: Millis,
    ended_by: Side,
    reason: EndReason,
    #[serde(default)]
    inferred: Option<InferredClosing>,
    #[serde(default)]
    unless_closed: bool,
}

impl From<ClosedWithLegacyMark> for ConversationClosed {
    fn from(c: ClosedWithLegacyMark) -> Self {
        let legacy = c.unless_closed.then_some(InferredClosing {
            visit_paired_at: Millis::MIN,
        });
        Self {
            id: c.id,
            ended_at: c.ended_at,
            ended_by: c.ended_by,
            reason: c.reason,
            inferred: c.inferred.or(legacy),
        }
    }
}

/// A running service conversation handed on by its agent: to another agent, to a
/// category's line, or taken from that line by an agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversationTransferred {
    /// The conversation id.
    pub id: String,
    pub at: Millis,
    /// The highest seq said before the transfer.
    pub after_seq: u64,
    pub from_agent_id: String,
    pub from_agent_name: String,
    /// The agent who has it now; None while it waits in `to_category`'s line.
    pub to_agent_id: Option<String>,
    pub to_agent_name: Option<String>,
    /// The category's line it was put in (with to_agent: the line it was taken from).
    pub to_category: Option<String>,
    /// The transferring agent's note for whoever takes it next ("" for none).
    pub note: String,
}

impl ConversationTransferred {
    /// Is `other` the same transfer (a retry, or the same record from another node)? A
    /// transfer is named by its conversation, `at`, `from_agent_id`, `to_agent_id` and
    /// `to_category`.
    pub fn same_as(&self, other: &ConversationTransferred) -> bool {
        self.id == other.id
            && self.at == other.at
            && self.from_agent_id == other.from_agent_id
            && self.to_agent_id == other.to_agent_id
            && self.to_category == other.to_category
    }
}

/// An agent's internal note on a service conversation, as stored: never shown to the
/// customer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = AddedNote)]
pub struct ConversationNote {
    pub conversation_id: String,
    /// Names the note: a UUIDv7, or with a `client_id` a UUIDv5 derived from it.
    pub id: String,
    /// When it was written (ms since the Unix epoch).
    #[schema(value_type = i64)]
    pub at: Millis,
    pub agent_id: String,
    pub agent_name: String,
    pub text: String,
}

/// One unit of archive work. Applying the same event twice has the effect of applying it once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ArchiveEvent {
    Opened(ConversationOpened),
    /// `conversation_id` is shared with the running chat that stamped the message (its
    /// `LiveChat`), not copied per message; it serialises as the string it is.
    Message {
        conversation_id: Arc<str>,
        message: ArchivedMessage,
    },
    /// Kept once per transfer ([`ConversationTransferred::same_as`]); one with a
    /// `to_agent_id` makes that agent the conversation's agent (`opened.agent_id`/`agent_name`)
    /// unless a later one (by `at`) already did. Like a message or a closing, it is
    /// dropped when its conversation's opening is not stored (yet).
    Transferred(ConversationTransferred),
    /// Kept once per (conversation, note id): a retry or a second writer adds nothing.
    /// Unlike the other events it does not need its conversation's opening: a note is
    /// kept even when the opening is not stored (yet), and read once it is
    /// ([`ArchiveStore::conversation`]; [`ArchiveStore::conversation_notes`] at once).
    Note(ConversationNote),
    Closed(ConversationClosed),
    /// A customer who left the line unserved; kept once by its id. Needs no conversation.
    Abandoned(QueueAbandoned),
}

#[cfg(test)]
impl ArchiveEvent {
    /// Conversation `id` closed by its agent: an event the archive, its spool and the
    /// journal take for any id (the tests' one closing).
    pub(crate) fn closed_for_tests(id: &str) -> Self {
        Self::Closed(ConversationClosed {
            id: id.into(),
            ended_at: 1,
            ended_by: Side::Agent,
            reason: EndReason::Ended,
            inferred: None,
        })
    }
}

/// A whole archived conversation, as the history API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Its agent is the one who has it now (the last transfer to an agent, else the first).
    pub opened: ConversationOpened,
    pub closed: Option<ConversationClosed>,
    pub messages: Vec<ArchivedMessage>,
    /// The customer's rating, once given ([`RatingStore::rate_conversation`]).
    pub rating: Option<Rating>,
    /// Its transfers in `at` order, then arrival order; each kept once.
    pub transfers: Vec<ConversationTransferred>,
    /// Its agents' internal notes in `at` order, then by id; each kept once. Filled by
    /// [`ArchiveStore::conversation`]; listings ([`ArchiveStore::conversations`]) leave it empty.
    pub notes: Vec<ConversationNote>,
}

impl Conversation {
    /// Who wrote each of its agent lines, as its hand-ons tell.
    pub fn line_authors(&self) -> crate::core::conversation::line_authors::LineAuthors {
        use crate::core::conversation::line_authors::{HandOn, LineAuthors};
        let hand_ons = self.transfers.iter().map(|t| HandOn {
            after_seq: t.after_seq,
            from_name: t.from_agent_name.clone(),
        });
        LineAuthors::new(hand_ons, self.opened.agent_name.clone())
    }

    /// Did `agent_id` serve this conversation at any point: its agent now, or an agent
    /// who handed it on or took it? They may read it, and it is listed for them.
    pub fn served_by(&self, agent_id: &str) -> bool {
        served_by(&self.opened, &self.transfers, agent_id)
    }
}

/// [`Conversation::served_by`] over a conversation's parts.
pub(crate) fn served_by(opened: &ConversationOpened, transfers: &[ConversationTransferred], agent_id: &str) -> bool {
    opened.agent_id == agent_id
        || transfers
            .iter()
            .any(|t| t.from_agent_id == agent_id || t.to_agent_id.as_deref() == Some(agent_id))
}

/// Applies a transfer to a conversation's parts (the reference rule every store follows):
/// keeps it once, in `at` order after those of the same `at`, and makes its `to_agent`
/// the conversation's agent unless a transfer later by `at` went to an agent (so the
/// outcome does not depend on the order transfers arrive in). True when it was new.
pub(crate) fn add_transfer(
    opened: &mut ConversationOpened,
    transfers: &mut Vec<ConversationTransferred>,
    transfer: &ConversationTransferred,
) -> bool {
    if transfers.iter().any(|t| t.same_as(transfer)) {
        return false;
    }
    let place = transfers.partition_point(|t| t.at <= transfer.at);
    transfers.insert(place, transfer.clone());
    if let Some(to) = &transfer.to_agent_id
        && !transfers[place + 1..].iter().any(|t| t.to_agent_id.is_some())
    {
        opened.agent_id = to.clone();
        opened.agent_name = transfer.to_agent_name.clone().unwrap_or_default();
    }
    true
}

/// Adds `note` to a conversation's notes, kept in the order every store reads them in
/// ([`note_order`]), unless one with its id is there (the reference rule every store
/// follows: the first wins). True when it was new.
pub(crate) fn add_note(notes: &mut Vec<ConversationNote>, note: &ConversationNote) -> bool {
    if notes.iter().any(|n| n.id == note.id) {
        return false;
    }
    let place = notes.partition_point(|n| note_order(n, note).is_le());
    notes.insert(place, note.clone());
    true
}

/// The order of a conversation's notes: by `at`, then by id.
pub(crate) fn note_order(a: &ConversationNote, b: &ConversationNote) -> std::cmp::Ordering {
    a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id))
}

/// A record listed oldest first: by when it was created, then by its id (the order every
/// backend lists accounts, API tokens and webhook endpoints in).
pub(crate) trait Created {
    fn created(&self) -> (Millis, &str);
}

/// `items` oldest first ([`Created`]).
pub(crate) fn oldest_first<T: Created>(mut items: Vec<T>) -> Vec<T> {
    items.sort_by(|a, b| a.created().cmp(&b.created()));
    items
}

impl Created for Account {
    fn created(&self) -> (Millis, &str) {
        (self.created_at, &self.id)
    }
}

impl Created for ApiToken {
    fn created(&self) -> (Millis, &str) {
        (self.created_at, &self.id)
    }
}

impl Created for WebhookEndpoint {
    fn created(&self) -> (Millis, &str) {
        (self.created_at, &self.id)
    }
}

/// Which conversations to list; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub category: Option<String>,
    pub agent_id: Option<String>,
    /// Only conversations paired at or after this time.
    pub from: Option<Millis>,
    /// Only conversations paired before this time.
    pub to: Option<Millis>,
    /// Only conversations whose names, or one of whose messages, hold every word of this
    /// query ([`search`]).
    pub text: Option<search::SearchQuery>,
    /// Only conversations whose record has one of these statuses; empty: any status.
    pub statuses: Vec<ConversationStatus>,
    /// Only conversations whose record carries this label id.
    pub label: Option<String>,
}

impl ConversationFilter {
    /// Does it ask about the desk's state (status or label), which the conversation's
    /// record keeps rather than its archive?
    pub fn on_desk_state(&self) -> bool {
        !self.statuses.is_empty() || self.label.is_some()
    }

    /// Do the status and label filters let through a conversation whose record is `record`?
    /// One without a record (a buddy chat; one archived before statuses, until the
    /// migration reaches it) passes neither: the filters read the desk's records.
    pub fn admits(&self, record: Option<&ConversationRecord>) -> bool {
        match record {
            Some(r) => self.admits_state(r.status, &r.labels),
            None => !self.on_desk_state(),
        }
    }

    /// Do the status and label filters let through a conversation of `status` carrying `labels`?
    pub fn admits_state(&self, status: ConversationStatus, labels: &[String]) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&status))
            && self.label.as_ref().is_none_or(|label| labels.contains(label))
    }
}

/// A conversation's status: its record's; without one (archived before statuses, or its
/// record not written yet), `resolved` once it ended and `open` before (what the archive
/// view shows for it).
pub fn desk_status(record: Option<&ConversationRecord>, ended: bool) -> ConversationStatus {
    match record {
        Some(r) => r.status,
        None if ended => ConversationStatus::Resolved,
        None => ConversationStatus::Open,
    }
}

/// A page of a listing, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    /// The backend could not be reached or failed; the caller may retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The one storage interface: every concern's trait, and what the backend as a whole
/// answers. Implementations must be cheap to share across tasks. A caller brings the
/// concern traits it calls into scope (`use crate::store::RoomStore`).
#[async_trait]
pub trait Store:
    AccountStore
    + DeskStore
    + ArchiveStore
    + ConversationStore
    + LabelStore
    + CustomerStore
    + RatingStore
    + RoomStore
    + AppointmentStore
    + OutboxStore
    + OfflineStore
    + CannedStore
    + ErasureStore
    + ReportStore
    + ReplyTokenStore
    + InboundMailStore
    + WebhookStore
    + ApiTokenStore
    + Send
    + Sync
    + 'static
{
    /// A short name for logs and the health endpoint ("memory", "embedded", "mongodb").
    fn backend(&self) -> &'static str;
    /// Events the archive writer hands [`ArchiveStore::archive`] in one call at most. A batch takes
    /// what queued since the last write, so it reaches this size only while the store lags.
    /// A backend that pays mostly per call catches up with larger batches; one that commits
    /// quickly anyway acknowledges sooner with smaller ones.
    fn max_batch(&self) -> usize {
        DEFAULT_MAX_BATCH
    }
    /// Succeeds when the backend answers; used by readiness checks and start-up retries.
    async fn ping(&self) -> StoreResult<()>;
    /// Where attachments go when every node must serve every file (MongoDB), with the
    /// key that signs their links, shared by the nodes; `None`: the hub keeps them itself
    /// (`DATA_DIR`, or memory).
    async fn shared_attachments(
        &self,
    ) -> Option<std::io::Result<(crate::attachments::SharedAttachmentStore, Vec<u8>)>> {
        None
    }
}

/// [`Store::max_batch`] where a backend does not say otherwise.
pub const DEFAULT_MAX_BATCH: usize = 2_000;

/// The days back [`ReportStore::ready_reports`] readies: a month's report and a little more.
pub const REPORTS_KEPT_READY_DAYS: i64 = 35;
/// How often [`ReportStore::ready_reports`] runs: often enough that a report's patch of the
/// conversations written since (MongoDB) stays a few minutes' worth.
pub const REPORTS_READY_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Readies the reports at start and every [`REPORTS_READY_EVERY`] until `shutdown`.
pub async fn keep_reports_ready(store: SharedStore, shutdown: tokio_util::sync::CancellationToken) {
    let mut ticks = crate::ticks::Ticks::new(REPORTS_READY_EVERY, &shutdown);
    while ticks.next().await {
        if let Err(e) = store.ready_reports(crate::clock::now_ms()).await {
            tracing::warn!(error = %e, "could not ready the reports' cache; reports build what they miss themselves");
        }
    }
}

/// How often each node has the store make good the copies a failed write left behind
/// ([`ConversationStore::repair_record_copies`]): a status filter may miss a conversation
/// for at most this long after such a failure.
pub const REPAIR_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Repairs the records' copies at start and every [`REPAIR_EVERY`] until `shutdown`.
pub async fn keep_record_copies(store: SharedStore, shutdown: tokio_util::sync::CancellationToken) {
    let mut ticks = crate::ticks::Ticks::new(REPAIR_EVERY, &shutdown);
    while ticks.next().await {
        match store.repair_record_copies().await {
            Ok(0) => {}
            Ok(copied) => tracing::info!(copied, "copied conversations' statuses a failed write had left behind"),
            Err(e) => {
                tracing::warn!(error = %e, "could not repair the conversations' status copies; trying again later")
            }
        }
    }
}

/// First and longest pause between attempts to reach the store at start-up.
const OPEN_RETRY_START: std::time::Duration = std::time::Duration::from_millis(500);
const OPEN_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// The configured store cannot be used and waiting will not change that: a malformed
/// `MONGODB_URI`, a `DATA_DIR` that is a file or unwritable, a damaged or foreign store
/// file. The message names the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

/// Which backend the settings choose, and where.
enum Target {
    Memory,
    Embedded(std::path::PathBuf),
    MongoDb(String),
}

fn target(settings: &crate::config::Settings) -> Target {
    use crate::config::StoreMode;
    match (&settings.store.mode, &settings.store.mongodb_uri) {
        (StoreMode::Memory, _) => Target::Memory,
        (StoreMode::Embedded, _) | (StoreMode::Auto, None) => Target::Embedded(settings.store.data_dir.clone()),
        (StoreMode::MongoDb | StoreMode::Auto, Some(uri)) => Target::MongoDb(uri.clone()),
        (StoreMode::MongoDb, None) => unreachable!("settings refuse STORE=mongodb without MONGODB_URI"),
    }
}

/// The name [`Store::backend`] will give for the configured backend, known before it opens.
pub fn backend_name(settings: &crate::config::Settings) -> &'static str {
    match target(settings) {
        Target::Memory => "memory",
        Target::Embedded(_) => "embedded",
        Target::MongoDb(_) => "mongodb",
    }
}

/// What can be checked of the storage settings without opening or connecting to
/// anything (`check-config` runs it, and so does [`open`] first): the MongoDB URI
/// parses, `DATA_DIR` is a directory or can be one, and an existing store file is a
/// non-empty redb file. On MongoDB, `DATA_DIR` holds the archive's spool; its file is
/// checked by `archive::spool::preflight`.
pub fn preflight(settings: &crate::config::Settings) -> Result<(), Unusable> {
    match target(settings) {
        Target::Memory => Ok(()),
        Target::MongoDb(uri) => {
            mongodb::options::ConnectionString::parse(&uri)
                .map_err(|e| Unusable(format!("MONGODB_URI is not a usable MongoDB connection string: {e}")))?;
            check_data_dir(&settings.store.data_dir)
        }
        Target::Embedded(dir) => {
            check_data_dir(&dir)?;
            check_redb_file(&dir, embedded::FILE_NAME, "a Switchboard store", "start a new store")
        }
    }
}

/// `DATA_DIR` is a directory or can be created as one: the nearest existing ancestor
/// must be a directory, or creating it fails.
pub fn check_data_dir(dir: &std::path::Path) -> Result<(), Unusable> {
    match dir.ancestors().find(|p| p.exists()) {
        Some(blocker) if !blocker.is_dir() => Err(Unusable(format!(
            "DATA_DIR={}: {} is not a directory",
            dir.display(),
            blocker.display()
        ))),
        _ => Ok(()),
    }
}

/// An existing redb file `name` in `DATA_DIR` is a non-empty redb file: redb takes an
/// empty file for a new database, which would hide a lost one, and refuses foreign
/// bytes with an error less clear than this. `what` names what the file should be,
/// `instead` what moving it away does.
pub fn check_redb_file(dir: &std::path::Path, name: &str, what: &str, instead: &str) -> Result<(), Unusable> {
    let named = |why: String| Unusable(format!("DATA_DIR={}: {why}", dir.display()));
    let file = dir.join(name);
    match std::fs::metadata(&file) {
        Ok(m) if !m.is_file() => Err(named(format!("{} is not a file", file.display()))),
        Ok(m) if m.len() == 0 => Err(named(format!(
            "{} is empty (0 bytes), not {what}; move it away to {instead}",
            file.display()
        ))),
        Ok(_) => {
            embedded::check_header(&file).map_err(|e| named(format!("{e}, so not {what}; move it away to {instead}")))
        }
        Err(_) => Ok(()),
    }
}

/// Opens the configured backend. Settings that cannot work stop here with [`Unusable`];
/// only a MongoDB server that does not answer (yet) is waited for, retrying with a
/// clear log line (a database that starts after the hub is normal in deployments).
pub async fn open(settings: &crate::config::Settings) -> Result<SharedStore, Unusable> {
    preflight(settings)?;
    let uri = match target(settings) {
        Target::Memory => return Ok(Arc::new(MemoryStore::new())),
        Target::Embedded(dir) => {
            let cache = settings.store.embedded_cache_bytes;
            return match EmbeddedStore::open_with_cache(&dir, cache).await {
                Ok(store) => Ok(Arc::new(store)),
                Err(e) => Err(Unusable(format!(
                    "DATA_DIR={}: cannot open the embedded store: {e}",
                    dir.display()
                ))),
            };
        }
        Target::MongoDb(uri) => uri,
    };
    let mut pause = OPEN_RETRY_START;
    loop {
        match MongoStore::connect_or_refuse(&uri, &settings.store.mongodb_db).await {
            Ok(store) => return Ok(Arc::new(store)),
            Err(mongo::ConnectFailure::Refused(why)) => return Err(Unusable(format!("MONGODB_URI: {why}"))),
            Err(mongo::ConnectFailure::Unreachable(e)) => {
                tracing::warn!(error = %e, "MongoDB at MONGODB_URI does not answer yet; retrying in {pause:?}");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(OPEN_RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message stored through its borrowed view is the message stored whole: the same
    /// JSON, files and `via` included.
    #[test]
    fn a_borrowed_message_serialises_as_the_message() {
        let mut message = ArchivedMessage::plain("m1", 7, Side::Agent, "see \"the\" file\n", 1_700_000_000_000);
        message.attachments.push(crate::attachments::AttachmentMeta {
            id: "f1".into(),
            name: "invoice.pdf".into(),
            mime: "application/pdf".into(),
            size: 1234,
            thumbnail: false,
        });
        message.via = Some(Via::Email);
        for m in [
            message.clone(),
            ArchivedMessage::plain("m2", 8, Side::Customer, "hi", 1),
        ] {
            assert_eq!(
                serde_json::to_value(m.borrowed()).unwrap(),
                serde_json::to_value(&m).unwrap()
            );
        }
    }

    fn closing(ended_at: Millis, visit_paired_at: Option<Millis>) -> ConversationClosed {
        ConversationClosed {
            id: "c1".into(),
            ended_at,
            ended_by: Side::System,
            reason: EndReason::Disconnect,
            inferred: visit_paired_at.map(|visit_paired_at| InferredClosing { visit_paired_at }),
        }
    }

    /// The rule every store follows, case by case (the contract tests run it on each).
    #[test]
    fn a_closing_replaces_by_visit_then_kind_then_date() {
        let real = |at| closing(at, None);
        let inferred = |at, visit| closing(at, Some(visit));
        assert!(real(11).replaces(None) && inferred(12, 10).replaces(None));
        // One visit (paired at 10): the real one wins, whichever came first.
        assert!(!inferred(12, 10).replaces(Some(&real(11))));
        assert!(real(11).replaces(Some(&inferred(12, 10))));
        // A later visit (paired at 20): its closing replaces the first visit's (ended 11).
        assert!(inferred(25, 20).replaces(Some(&real(11))));
        assert!(real(22).replaces(Some(&inferred(25, 20))));
        // The first visit's closing, late, replaces none of the later visit's.
        assert!(!real(11).replaces(Some(&inferred(25, 20))));
        // Of one kind, the later; a retry changes nothing.
        assert!(real(12).replaces(Some(&real(11))) && !real(11).replaces(Some(&real(11))));
        assert!(!inferred(12, 10).replaces(Some(&inferred(12, 10))));
    }

    /// A journal an older build left marks an inferred closing `unless_closed`: read as
    /// inferred, of no known visit, it replaces no closing stored, as it did then.
    #[test]
    fn a_closing_marked_unless_closed_by_an_older_build_reads_as_inferred() {
        let old = r#"{"id":"c1","ended_at":12,"ended_by":"system","reason":"disconnect","unless_closed":true}"#;
        let read: ConversationClosed = serde_json::from_str(old).unwrap();
        assert_eq!(read, closing(12, Some(Millis::MIN)));
        assert!(!read.replaces(Some(&closing(11, None))));
        let now: ConversationClosed =
            serde_json::from_value(serde_json::to_value(closing(12, Some(10))).unwrap()).unwrap();
        assert_eq!(now, closing(12, Some(10)));
    }
}
