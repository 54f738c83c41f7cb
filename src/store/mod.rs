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
mod mongo;
mod record;
// ---- what customers tell about themselves ----
mod customer;
// ---- a customer's data erased on request ----
mod erasure;
// ---- rooms and 1-to-1 video ----
mod rooms;
// ---- appointment mail outbox ----
mod outbox;
// ---- canned replies and ratings ----
mod canned;
mod ratings;
// ---- offline messages ----
mod offline;
// ---- transcripts by mail ----
mod transcripts;
// ---- the facts the reports read ----
mod reports;
// ---- archive search ----
pub mod search;

pub use customer::{CustomerKey, CustomerProfile};
pub use embedded::EmbeddedStore;
pub use erasure::{Erased, ErasureRecord};
pub use memory::MemoryStore;
pub use mongo::MongoStore;
// ---- rooms and 1-to-1 video ----
pub use rooms::{AccessCode, Audience, CallLog, CallPeer, Guest, Room, RoomState, SeatHold, WrongAttempts};
// ---- appointment mail outbox ----
pub use outbox::{MailAttachment, MailOutcome, MailPurpose, MailStatus, OutboxMail, apply_outcome};
// ---- canned replies and ratings ----
pub use crate::rating_scale::RatingScale;
pub use canned::CannedReply;
pub use ratings::Rating;
// ---- offline messages ----
pub use offline::{OfflineFilter, OfflineMessage, OfflineReply, OfflineState, newest_first};
// ---- transcripts by mail ----
pub use transcripts::CustomerTranscript;
// ---- the facts the reports read ----
pub use reports::{ConversationFacts, OfflineFacts, QueueAbandoned, ReportFacts};
// ---- archive search ----
pub use search::SearchQuery;

use std::sync::Arc;

use async_trait::async_trait;

/// A shared handle to whichever backend was configured.
pub type SharedStore = Arc<dyn Store>;

/// Milliseconds since the Unix epoch; the one time format of the archive.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Admin,
}

/// An agent or admin account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// PHC string from argon2; never leaves the server.
    pub password_hash: String,
    /// Category ids this agent serves.
    pub categories: Vec<String>,
    /// Concurrent chats this agent may hold, 1 to 4.
    pub max_chats: u8,
    pub enabled: bool,
    pub created_at: Millis,
}

/// A service category customers queue for. The id is stable; the name can be renamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: String,
    pub name: String,
}

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
    pub id: String,
    /// 1-based position in its conversation; one seq is one message.
    pub seq: u64,
    pub from: Side,
    pub text: String,
    pub at: Millis,
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
pub struct ConversationClosed {
    pub id: String,
    pub ended_at: Millis,
    pub ended_by: Side,
    pub reason: EndReason,
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

/// An agent's internal note on a service conversation: never shown to the customer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversationNote {
    pub conversation_id: String,
    /// Globally unique, time-ordered (UUIDv7): names the note for retries.
    pub id: String,
    pub at: Millis,
    pub agent_id: String,
    pub agent_name: String,
    pub text: String,
}

/// One unit of archive work. Applying the same event twice has the effect of applying it once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ArchiveEvent {
    Opened(ConversationOpened),
    Message {
        conversation_id: String,
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
    /// ([`Store::conversation`]; [`Store::conversation_notes`] at once).
    Note(ConversationNote),
    Closed(ConversationClosed),
    /// A customer who left the line unserved; kept once by its id. Needs no conversation.
    Abandoned(QueueAbandoned),
}

/// A whole archived conversation, as the history API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Its agent is the one who has it now (the last transfer to an agent, else the first).
    pub opened: ConversationOpened,
    pub closed: Option<ConversationClosed>,
    pub messages: Vec<ArchivedMessage>,
    /// The customer's rating, once given ([`Store::rate_conversation`]).
    pub rating: Option<Rating>,
    /// Its transfers in `at` order, then arrival order; each kept once.
    pub transfers: Vec<ConversationTransferred>,
    /// Its agents' internal notes in `at` order, then by id; each kept once. Filled by
    /// [`Store::conversation`]; listings ([`Store::conversations`]) leave it empty.
    pub notes: Vec<ConversationNote>,
}

impl Conversation {
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
}

/// A page of a listing, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
}

/// A signed-in session as stored: shared by every node, so a restart or a
/// reconnect to another node keeps staff signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The SHA-256 of the session's token (`auth::session_id`); the token itself is never stored.
    pub id: String,
    pub account_id: String,
    pub expires_at: Millis,
}

// ---- appointments ----

/// Whether an appointment still holds its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    Cancelled,
}

/// A booked (or cancelled) appointment. While `Booked`, it holds the key
/// (`representative_id`, `start`): the store refuses a second booked appointment with the
/// same key, which is what makes one of two simultaneous bookings of a slot win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    pub id: String,
    pub start: Millis,
    pub end: Millis,
    /// The agent account that serves it.
    pub representative_id: String,
    pub category: Option<String>,
    pub name: String,
    pub email: String,
    pub comment: String,
    pub status: AppointmentStatus,
    /// The SHA-256 (hex) of the cancel link's token; the token itself is never stored.
    pub cancel_token_hash: String,
    pub created_at: Millis,
    pub cancelled_at: Option<Millis>,
    /// The ICS `SEQUENCE`: 0 when booked, raised by each change (rescheduling, cancelling).
    pub sequence: u32,
    /// The customer's IANA time zone, as their browser gave it when booking (validated):
    /// what their mails and pages show times in. `None` for bookings made without one.
    pub customer_zone: Option<String>,
    /// The customer's clock shows 12 hours (10:00 AM), as their browser's locale said when
    /// booking: their mails give times as the booking page showed them. `false` (24 hours)
    /// for bookings made without one.
    pub customer_hour12: bool,
    /// Why the customer cancelled, if they said.
    pub cancel_reason: Option<String>,
}

/// What [`Store::cancel_appointment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// This call cancelled it; the appointment as it is now.
    Cancelled(Appointment),
    /// It was cancelled before; the appointment unchanged.
    AlreadyCancelled(Appointment),
}

/// What [`Store::reschedule_appointment_with_mail`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rescheduling {
    /// This call moved it; the appointment as it is now.
    Moved(Appointment),
    /// It was cancelled or changed since it was read (another sequence); the appointment
    /// as it is, unchanged. Nothing was written.
    Changed(Appointment),
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

/// The one storage interface. Implementations must be cheap to share across tasks.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and the health endpoint ("memory", "embedded", "mongodb").
    fn backend(&self) -> &'static str;

    /// Events the archive writer hands [`Store::archive`] in one call at most. A batch takes
    /// what queued since the last write, so it reaches this size only while the store lags.
    /// A backend that pays mostly per call catches up with larger batches; one that commits
    /// quickly anyway acknowledges sooner with smaller ones.
    fn max_batch(&self) -> usize {
        2_000
    }

    /// Succeeds when the backend answers; used by readiness checks and start-up retries.
    async fn ping(&self) -> StoreResult<()>;

    async fn create_account(&self, account: Account) -> StoreResult<()>;
    async fn update_account(&self, account: Account) -> StoreResult<()>;
    async fn account(&self, id: &str) -> StoreResult<Account>;
    async fn account_by_username(&self, username: &str) -> StoreResult<Account>;
    async fn accounts(&self) -> StoreResult<Vec<Account>>;

    /// Categories in creation order.
    async fn categories(&self) -> StoreResult<Vec<Category>>;
    async fn create_category(&self, category: Category) -> StoreResult<()>;
    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()>;
    async fn delete_category(&self, id: &str) -> StoreResult<()>;

    /// Applies a batch of archive events in order. Idempotent per event.
    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()>;
    /// Conversations matching `filter`, newest paired first, and the total count before paging.
    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)>;
    /// One conversation, whole: its messages, transfers, rating and notes.
    async fn conversation(&self, id: &str) -> StoreResult<Conversation>;
    /// The agents' notes on conversation `conversation_id`, in `at` order, then by id:
    /// kept even when the conversation's opening is not stored (yet). An unknown
    /// conversation has none (an empty list, not `NotFound`).
    async fn conversation_notes(&self, conversation_id: &str) -> StoreResult<Vec<ConversationNote>>;

    // ---- sessions in the shared store ----
    /// Stores a new session; `Conflict` if its id is taken.
    async fn create_session(&self, session: StoredSession) -> StoreResult<()>;
    /// A session by id, as stored (expired or not: the caller compares `expires_at`, as an
    /// expired one may linger until swept); `NotFound` when absent.
    async fn session(&self, id: &str) -> StoreResult<StoredSession>;
    /// Deletes one session; true when it was there.
    async fn delete_session(&self, id: &str) -> StoreResult<bool>;
    /// Deletes every session of an account and returns their ids.
    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>>;
    /// Deletes the sessions expired at `now` (`expires_at <= now`); returns how many.
    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64>;
    // ---- rooms and 1-to-1 video ----
    /// Stores a new open room (its `revision` as given). `Conflict` when its agent already
    /// has an open room: a unique key of the backend decides, so two creations racing
    /// cannot both win.
    async fn create_room(&self, room: Room) -> StoreResult<()>;
    async fn room(&self, id: &str) -> StoreResult<Room>;
    /// The agent's open room, if any.
    async fn open_room_of(&self, agent_id: &str) -> StoreResult<Option<Room>>;
    /// Replaces a room read at `room.revision` and returns it as stored, at the next
    /// revision. `Conflict` when another update came first (read again and retry) or when
    /// it would reopen an ended room; `NotFound` when there is no such room. Ending a room
    /// frees its agent's open-room key.
    async fn update_room(&self, room: Room) -> StoreResult<Room>;
    /// The guest with `guest.email` (else with `guest.phone`) if there is one, with the
    /// name given now; else `guest` itself, stored. At least one of the two must be set.
    async fn guest_for(&self, guest: Guest) -> StoreResult<Guest>;
    /// Stores a call log, replacing one with the same id (a call is logged again as it goes).
    async fn save_call_log(&self, log: CallLog) -> StoreResult<()>;
    /// Call logs newest first (of one agent when given) and the total count before paging.
    async fn call_logs(&self, agent_id: Option<&str>, page: Page) -> StoreResult<(Vec<CallLog>, u64)>;

    // ---- appointments ----
    /// Stores a new booked appointment. `Conflict` when its representative already has a
    /// booked appointment starting at the same instant (or its id or token hash is
    /// taken): decided by a unique key inside the store, so of any number of concurrent
    /// bookings of one (representative, start) exactly one succeeds.
    async fn book_appointment(&self, appointment: Appointment) -> StoreResult<()>;
    /// One appointment by id; `NotFound` when absent.
    async fn appointment(&self, id: &str) -> StoreResult<Appointment>;
    /// The appointment whose cancel token hashes to `token_hash`; `NotFound` when none.
    async fn appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment>;
    /// Cancels a booked appointment at `at` (its slot is free again, its sequence raised);
    /// a cancelled one is left as it is. `NotFound` when absent.
    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation>;
    /// Appointments (booked and cancelled) starting in `[from, to)`, of one representative
    /// when given, by start then id.
    async fn appointments(
        &self,
        from: Millis,
        to: Millis,
        representative: Option<&str>,
    ) -> StoreResult<Vec<Appointment>>;

    // ---- appointment mail outbox ----
    /// [`Store::book_appointment`] and the confirmation `mail` as one write: when the
    /// booking is refused (`Conflict`) no mail stays; when it succeeds the mail is stored.
    async fn book_appointment_with_mail(&self, appointment: Appointment, mail: OutboxMail) -> StoreResult<()>;
    /// [`Store::cancel_appointment`] and the cancellation `mail` as one write: the mail is
    /// stored only when this call cancelled (`Cancellation::Cancelled`), and so is the
    /// customer's `reason`.
    async fn cancel_appointment_with_mail(
        &self,
        id: &str,
        at: Millis,
        reason: Option<String>,
        mail: OutboxMail,
    ) -> StoreResult<Cancellation>;
    /// Moves a booked appointment to another slot, with its mail, as one decision:
    /// `moved` is the appointment as read (same id, token, customer) with its new `start`,
    /// `end` and `representative_id` and its `sequence` raised by one. It is moved only when
    /// the stored one is still booked at `moved.sequence - 1` (else `Changed`, nothing
    /// written), and only when the new (representative, start) is free (else `Conflict`,
    /// nothing written): the old slot is freed and the new one held in the same atomic
    /// write, so there is no moment where both or neither is held, and of concurrent moves
    /// to one slot exactly one succeeds. `mail` is stored only when it moved.
    async fn reschedule_appointment_with_mail(&self, moved: Appointment, mail: OutboxMail)
    -> StoreResult<Rescheduling>;
    /// Claims up to `limit` mails claimable at `now` ([`OutboxMail::claimable`]) for
    /// `node` until `claim_until`, oldest due first, and returns them as claimed. Each
    /// mail's claim is one atomic step: of concurrent claimers exactly one gets it.
    async fn claim_mails(
        &self,
        node: &str,
        now: Millis,
        claim_until: Millis,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>>;
    /// Records how `node`'s attempt at mail `id` ended (a retry raises `attempts`).
    /// Changes only a pending mail whose claim `node` holds, and ends the claim; false
    /// (nothing changed) otherwise, e.g. when its lease ran out and another node took it.
    async fn finish_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool>;
    /// One mail by id; `NotFound` when absent.
    async fn mail(&self, id: &str) -> StoreResult<OutboxMail>;
    /// Mails (of one status when given), newest created first, and the total count
    /// before paging.
    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)>;

    // ---- desk settings set through the admin API (appointment hours) ----
    /// The value an admin stored under `key` (an opaque text, JSON by convention); `None`
    /// when none is stored (the settings' default applies).
    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>>;
    /// Stores `value` under `key`, replacing what was there; `None` removes it.
    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()>;

    // ---- canned replies ----
    /// The canned replies of one owner (`None`: the desk's; `Some(account id)`: that
    /// agent's own), by shortcut.
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>>;
    /// One canned reply by id; `NotFound` when absent.
    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply>;
    /// Stores a new canned reply. `Conflict` when its id is taken or its owner already
    /// has a reply with its shortcut (a unique key of the backend decides).
    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()>;
    /// Replaces the reply with `reply.id` (its owner and `created_at` are kept as stored).
    /// `NotFound` when absent; `Conflict` when another reply of the owner has the shortcut.
    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()>;
    /// Deletes one canned reply; true when it was there.
    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool>;

    // ---- ratings ----
    /// Stores the customer's rating of conversation `id`, once: `Conflict` when it was
    /// rated already (nothing changed; of concurrent ratings exactly one is kept). The
    /// conversation need not be archived yet; reading it later returns the rating.
    async fn rate_conversation(&self, id: &str, rating: Rating) -> StoreResult<()>;
    // ---- offline messages ----
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
    /// Archives `reply` with the message and marks it handled
    /// ([`OfflineMessage::add_reply`]), and stores the reply's `mail` in the same write
    /// (once: a retried reply with the same id is one reply and one mail). Returns the
    /// message as stored; `NotFound` when absent (nothing written).
    async fn reply_offline_message(
        &self,
        id: &str,
        reply: OfflineReply,
        mail: OutboxMail,
    ) -> StoreResult<OfflineMessage>;

    // ---- customers: their details, earlier conversations ----
    /// The conversations of the customer `key` names ([`CustomerKey::matches`]), newest
    /// paired first, at most `limit`, as [`Store::conversations`] lists them. Indexed.
    async fn customer_conversations(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>>;
    /// Sets the email of conversation `id`'s customer (given during or after their chat),
    /// so it is found by it from now on. `NotFound` when the conversation is not stored.
    async fn set_customer_email(&self, id: &str, email: &str) -> StoreResult<()>;

    // ---- a customer's data erased on request ----
    /// Erases the conversations `ids` whole (messages, notes, rating, transfers, the
    /// customer's details) and keeps their ids as tombstones: from now on any archive
    /// event of them (an opening, a message, a note) is dropped and a rating refused
    /// (`NotFound`). Ids not stored are tombstoned too. Idempotent.
    async fn erase_conversations(&self, ids: &[String]) -> StoreResult<Erased>;
    /// Erases the offline messages left with `email` (any case), their replies included.
    async fn erase_offline_messages_of(&self, email: &str) -> StoreResult<u64>;
    async fn add_erasure_record(&self, record: ErasureRecord) -> StoreResult<()>;
    /// The erasure log, newest first.
    async fn erasure_records(&self, page: Page) -> StoreResult<(Vec<ErasureRecord>, u64)>;

    // ---- transcripts by mail ----
    /// Conversation `id` as its customer may be mailed it: its opening, closing, messages
    /// and rating, never its notes ([`CustomerTranscript`]: the notes' table is not read).
    /// `NotFound` when its opening is not stored (yet), or it was erased.
    async fn customer_transcript(&self, id: &str) -> StoreResult<CustomerTranscript>;
    /// Stores `mail` unless a mail with its id is stored: then `Conflict`, nothing written
    /// (a unique key decides, so of two racing writers of one id exactly one succeeds).
    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()>;
    /// The mails whose id starts with `prefix`, by id.
    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>>;

    // ---- the facts the reports read ----
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

/// The days back [`Store::ready_reports`] readies: a month's report and a little more.
pub const REPORTS_KEPT_READY_DAYS: i64 = 35;
/// How often [`Store::ready_reports`] runs: often enough that a report's patch of the
/// conversations written since (MongoDB) stays a few minutes' worth.
pub const REPORTS_READY_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Readies the reports at start and every [`REPORTS_READY_EVERY`] until `shutdown`.
pub async fn keep_reports_ready(store: SharedStore, shutdown: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(REPORTS_READY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                if let Err(e) = store.ready_reports(crate::clock::now_ms()).await {
                    tracing::warn!(error = %e, "could not ready the reports' cache; reports build what they miss themselves");
                }
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
    match (&settings.store, &settings.mongodb_uri) {
        (StoreMode::Memory, _) => Target::Memory,
        (StoreMode::Embedded, _) | (StoreMode::Auto, None) => Target::Embedded(settings.data_dir.clone()),
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
            check_data_dir(&settings.data_dir)
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
            let cache = settings.embedded_cache_bytes;
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
        match MongoStore::connect_or_refuse(&uri, &settings.mongodb_db).await {
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
