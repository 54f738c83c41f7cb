//! The websocket wire protocol: every frame a client may send and every frame
//! the hub sends, as JSON text frames tagged by `type`.
//!
//! This is the only module that knows the JSON shape of websocket frames;
//! `docs/protocol.md` documents the same shapes for client authors. Outbound
//! frames are encoded once into shared bytes so a frame for both sides of a
//! chat costs one serialisation.

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};

pub use crate::attachments::AttachmentMeta;

/// A frame from a client. Which types a role may send is checked by the hub.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Customer: join a category's queue under a display name (boxed: the largest frame,
    /// sent once per connection, would make every frame in flight as large).
    Join(Box<JoinFrame>),
    /// Customer: come back within the grace period; `last_seq` is the last message seen.
    Resume {
        token: String,
        #[serde(default)]
        last_seq: u64,
    },
    /// Send a chat message; agents name the chat.
    Message {
        #[serde(default)]
        chat_id: Option<String>,
        text: String,
        /// Echoed back on the hub's copy so the sender can match its acknowledgement.
        #[serde(default)]
        client_id: Option<String>,
        /// Ids of files the sender uploaded for this chat (`POST /api/attachments`).
        #[serde(default)]
        attachments: Vec<String>,
    },
    Typing {
        #[serde(default)]
        chat_id: Option<String>,
        active: bool,
    },
    /// Customer: the unsent text of the message box, for the agent's preview.
    Draft {
        text: String,
    },
    /// Customer: leave the queue, or end the chat.
    Leave {},
    /// Agent: take chats or not.
    SetAvailable {
        available: bool,
    },
    /// Agent: `available`, `away` (with an optional `reason`) or `busy` (no new chat until
    /// their chats end, then available again).
    SetStatus {
        status: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Agent: end one of their chats.
    EndChat {
        chat_id: String,
    },
    /// Agent: take the customer of an `offer` made to them (the chat starts).
    AcceptOffer {
        offer_id: String,
    },
    /// Agent: pass on an `offer` made to them (the customer goes to the next agent).
    DeclineOffer {
        offer_id: String,
    },
    /// Agent: hand one of their chats to another agent (`to_agent`, an agent id; with
    /// `category`, one of theirs the chat moves into, else it keeps its own) or to a
    /// category's line (`to_category`), with a note for whoever takes it next.
    Transfer {
        chat_id: String,
        #[serde(default)]
        to_agent: Option<String>,
        #[serde(default)]
        to_category: Option<String>,
        #[serde(default)]
        category: Option<String>,
        #[serde(default)]
        note: Option<String>,
    },
    /// Agent: who and where one of their chats could be handed to now.
    TransferTargets {
        chat_id: String,
    },
    /// Agent: an internal note on one of their chats (never shown to the customer).
    Note {
        chat_id: String,
        text: String,
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Agent: sets the status of a conversation in their list (an admin: any); `until`
    /// (ms since the epoch) with `snoozed`. `resolved` on a live chat ends it.
    SetConversationStatus {
        conversation_id: String,
        status: String,
        #[serde(default)]
        until: Option<i64>,
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Buddy: join the buddy list under a display name; `key` (from an earlier
    /// `buddy_welcome`) makes another tab or device the same person.
    BuddyJoin {
        name: String,
        #[serde(default)]
        key: Option<String>,
    },
    Invite {
        to: u64,
    },
    CancelInvite {
        invitation_id: u64,
    },
    Decline {
        invitation_id: u64,
    },
    Accept {
        invitation_id: u64,
    },
    /// Application-level liveness check for clients that cannot see websocket pings.
    Ping {},
    // ---- transcripts by mail ----
    /// Customer, in a chat: mail me this chat's transcript once it has ended, to `email`
    /// (else the address given when joining).
    Transcript {
        #[serde(default)]
        email: Option<String>,
    },
    // ---- agent bots ----
    /// Bot: hand conversation `chat_id` to its category's line (people take it from
    /// there, with its lines), with a note for whoever takes it.
    Handover {
        chat_id: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// Bot: conversation `chat_id` is done (the customer's chat ends, resolved by the bot).
    Resolve {
        chat_id: String,
    },
    /// Bot: ask the customer of `chat_id` for their email address (they get `email_asked`).
    AskEmail {
        chat_id: String,
    },
    /// Customer, talking to a bot: their email address, as it asked (`email_asked`).
    Email {
        email: String,
    },
}

/// A customer's `join` ([`ClientFrame::Join`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinFrame {
    pub name: String,
    pub category: String,
    /// A call request: this customer would rather talk by video; the agent
    /// they are paired with sees `video_request` and opens a room for them.
    #[serde(default)]
    pub video: bool,
    /// What they came about (at most [`FIRST_MESSAGE_MAX_CHARS`] characters): shown to
    /// an agent offered this customer. It is not a chat message: the customer page sends
    /// it as their first message once the chat starts.
    #[serde(default)]
    pub message: Option<String>,
    /// What the customer tells about themselves (each optional): an email address,
    /// the browser's returning-visitor key, the page they came from, their IANA time
    /// zone. Kept with their conversations (`store::CustomerProfile`).
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub visitor: Option<String>,
    #[serde(default)]
    pub page: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    /// An earlier conversation of this customer's (its id, from
    /// `GET /api/visitor/conversations`) to write into instead of starting a new one:
    /// it opens again with the same id, its `seq` going on. Needs `visitor`, the key it
    /// was started with, or the verified identity it was started under.
    #[serde(default)]
    pub conversation: Option<String>,
    /// The customer's identity on the embedding site and its hash (`core::identity`):
    /// with a valid hash their conversations are theirs on any browser; otherwise both
    /// are ignored, silently (the join goes on as an anonymous visitor's).
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub identifier_hash: Option<String>,
}

/// A `message` frame's fields, taken out of the frame ([`ClientFrame::said`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    pub chat_id: Option<String>,
    pub text: String,
    pub client_id: Option<String>,
    pub attachments: Vec<String>,
}

impl ClientFrame {
    /// A `message` frame's fields, or the frame back when it is another.
    pub fn said(self) -> Result<Said, Self> {
        match self {
            Self::Message {
                chat_id,
                text,
                client_id,
                attachments,
            } => Ok(Said {
                chat_id,
                text,
                client_id,
                attachments,
            }),
            other => Err(other),
        }
    }

    /// The frame's type as it appears on the wire, for logs and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Join(_) => "join",
            Self::Resume { .. } => "resume",
            Self::Message { .. } => "message",
            Self::Typing { .. } => "typing",
            Self::Draft { .. } => "draft",
            Self::Leave {} => "leave",
            Self::SetAvailable { .. } => "set_available",
            Self::SetStatus { .. } => "set_status",
            Self::EndChat { .. } => "end_chat",
            Self::AcceptOffer { .. } => "accept_offer",
            Self::DeclineOffer { .. } => "decline_offer",
            Self::Transfer { .. } => "transfer",
            Self::TransferTargets { .. } => "transfer_targets",
            Self::Note { .. } => "note",
            Self::SetConversationStatus { .. } => "set_conversation_status",
            Self::BuddyJoin { .. } => "buddy_join",
            Self::Invite { .. } => "invite",
            Self::CancelInvite { .. } => "cancel_invite",
            Self::Decline { .. } => "decline",
            Self::Accept { .. } => "accept",
            Self::Ping {} => "ping",
            Self::Transcript { .. } => "transcript",
            Self::Handover { .. } => "handover",
            Self::Resolve { .. } => "resolve",
            Self::AskEmail { .. } => "ask_email",
            Self::Email { .. } => "email",
        }
    }
}

/// Why an inbound frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, or not a JSON object.
    NotJson(String),
    /// A `type` the protocol does not have.
    UnknownType(String),
    /// A known type with missing or wrong fields.
    BadFields(String),
}

impl DecodeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "bad_json",
            Self::UnknownType(_) => "unknown_type",
            Self::BadFields(_) => "bad_frame",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::NotJson(e) => format!("frame is not a JSON object: {e}"),
            Self::UnknownType(t) => format!("unknown frame type {t:?}"),
            Self::BadFields(e) => format!("bad frame: {e}"),
        }
    }
}

/// A client's `message` frame read in place: `ClientFrame::Message` as a struct of its
/// own, its strings borrowed from the frame's text. A running chat relays it from there
/// (`hub::live_chat`) and copies only its text, into the archive's event; reading every
/// string into its own `String` first was three allocations a message. Its ids are
/// borrowed or not read this way: one spelt with a JSON escape is read by [`read`]'s
/// next pass, as a frame of another type is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFrame<'a> {
    #[serde(rename = "type")]
    _kind: MessageTag,
    #[serde(default)]
    pub chat_id: Option<&'a str>,
    /// Borrowed unless it holds a JSON escape.
    #[serde(borrow)]
    pub text: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub client_id: Option<&'a str>,
    #[serde(default)]
    pub attachments: Vec<String>,
}

impl<'a> MessageFrame<'a> {
    /// A message frame without files.
    pub fn new(chat_id: Option<&'a str>, text: &'a str, client_id: Option<&'a str>) -> Self {
        Self {
            _kind: MessageTag::Message,
            chat_id,
            text: text.into(),
            client_id,
            attachments: Vec::new(),
        }
    }

    /// The frame, owning its fields, for the hub.
    pub fn into_owned(self) -> ClientFrame {
        ClientFrame::Message {
            chat_id: self.chat_id.map(str::to_owned),
            text: self.text.into_owned(),
            client_id: self.client_id.map(str::to_owned),
            attachments: self.attachments,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MessageTag {
    Message,
}

/// A client frame as [`read`] gives it.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A chat message, read in place.
    Message(MessageFrame<'a>),
    Frame(ClientFrame),
}

impl Incoming<'_> {
    pub fn into_owned(self) -> ClientFrame {
        match self {
            Incoming::Message(message) => message.into_owned(),
            Incoming::Frame(frame) => frame,
        }
    }
}

/// Reads one client frame, telling apart bad JSON, an unknown type and bad fields.
pub fn decode(text: &str) -> Result<ClientFrame, DecodeError> {
    read(text).map(Incoming::into_owned)
}

/// [`decode`], a chat message read in place.
pub fn read(text: &str) -> Result<Incoming<'_>, DecodeError> {
    // Chat messages, most frames, are read as a plain struct: serde reads an internally
    // tagged enum by first copying the whole object into a buffer of its own.
    if let Ok(m) = serde_json::from_str::<MessageFrame>(text) {
        return Ok(Incoming::Message(m));
    }
    // Other well-formed frames are read in one more pass; only a bad one pays for
    // the last pass that tells its kind of badness.
    if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
        return Ok(Incoming::Frame(frame));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Some(kind) = value.as_object().and_then(|o| o.get("type")) else {
        return Err(DecodeError::NotJson("expected an object with a \"type\" field".into()));
    };
    let kind = kind.as_str().unwrap_or_default().to_string();
    serde_json::from_value(value).map(Incoming::Frame).map_err(|e| {
        if e.to_string().starts_with("unknown variant") {
            DecodeError::UnknownType(kind)
        } else {
            DecodeError::BadFields(e.to_string())
        }
    })
}

/// The longest `join.message` (characters).
pub const FIRST_MESSAGE_MAX_CHARS: usize = 1000;

/// Which side of a conversation a message or event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum From {
    Customer,
    Agent,
    Buddy,
    System,
}

/// One chat message as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub chat_id: String,
    /// Globally unique message id.
    pub id: String,
    /// 1-based order within the chat.
    pub seq: u64,
    pub from: From,
    /// The sender's buddy id, in buddy chats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<u64>,
    pub text: String,
    /// The files it carries (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentMeta>,
    /// Server time, milliseconds since the Unix epoch.
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// How it came other than over the chat (absent for chat lines): `email`, a
    /// customer's answer by mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<crate::store::Via>,
}

/// A chat as shown on welcome and resume: who, what, and the messages so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatSnapshot {
    pub chat_id: String,
    pub category: String,
    pub category_name: String,
    pub peer_name: String,
    /// Is the other side connected right now?
    pub peer_connected: bool,
    pub started_at: i64,
    /// For an agent, each line of an agent who had the chat before them names them
    /// (`agent_name`); the agent's own lines, and every line a customer reads here, name
    /// nobody.
    pub messages: Vec<NamedLine>,
    /// An agent's chat that was handed to them (by a colleague, or a bot's hand-over): who
    /// handed it on, their note, and who had it before, as `chat_started` said. So a page
    /// opened afresh (another browser) shows the note and names the earlier lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferNote>,
    /// Agent: the customer continues an earlier conversation, as `chat_started` said
    /// (`continued`, `reopened`, `queued_at`), so a page opened afresh shows this turn's
    /// wait and the reopen again. Absent when not (and always for a customer).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub continued: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reopened: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<i64>,
}

/// A chat of an agent's that ended while they had no connection (`agent_welcome.ended`):
/// its `chat_ended` as it would have said (`ended_by`, `reason`) and when (`at`, ms, by the
/// clock of `started_at`: an ending before a chat's start is an earlier turn's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndedChat {
    pub chat_id: String,
    pub ended_by: From,
    pub reason: &'static str,
    pub at: i64,
}

/// An internal note as agents see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoteView {
    pub id: String,
    pub at: i64,
    pub agent_name: String,
    pub text: String,
}

impl NoteView {
    /// The view of a note as stored.
    pub fn of(note: &crate::store::ConversationNote) -> Self {
        NoteView {
            id: note.id.clone(),
            at: note.at,
            agent_name: note.agent_name.clone(),
            text: note.text.clone(),
        }
    }
}

/// Who handed a chat on, and what they wrote for whoever takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferNote {
    pub from_name: String,
    /// "" when they wrote none.
    pub note: String,
    /// The category whose line the chat waited in, when it went to a category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The agents who had the chat before, oldest first, each with the last seq said
    /// while they had it: an agent line at or below an entry's `through_seq` (and above
    /// the one before) is that agent's. Only the transfers this hub saw.
    pub earlier_agents: Vec<EarlierAgent>,
}

/// An agent who had a chat before it was handed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EarlierAgent {
    pub name: String,
    pub through_seq: u64,
}

/// An agent a chat could be handed to: any connected colleague.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferAgent {
    pub id: String,
    pub name: String,
    /// The categories they hold (ids): the chat may move into one of them.
    pub categories: Vec<String>,
    /// Could take it now (available and below their limit): a transfer to them succeeds.
    pub can_take: bool,
    /// Their status (`available`, `away`, `busy`).
    pub status: &'static str,
    pub chats: usize,
    pub max_chats: u8,
}

/// A category whose line a chat could be handed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferCategory {
    pub id: String,
    pub name: String,
    /// Inside its hours: a closed category refuses the transfer.
    pub open: bool,
    /// How many wait in it now.
    pub waiting: usize,
    /// Whether an agent who holds it is online.
    pub agents_online: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryRef {
    pub id: String,
    pub name: String,
}

/// One person on the buddy list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Buddy {
    pub id: u64,
    pub name: String,
    pub status: &'static str,
    /// Agents and admins of the service desk carry their role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

/// One invitation as the buddy page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitationRef {
    pub invitation_id: u64,
    pub from: u64,
    pub to: u64,
}

/// What a customer needs to rate a chat that ended: a signed token naming the
/// conversation (any node accepts it, for 7 days) and the desk's scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RatingOffer {
    pub token: String,
    pub scale: crate::store::RatingScale,
}

/// A frame from the hub.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Customer, after `join`: keep the token to resume within `grace_secs`.
    Welcome {
        customer_name: String,
        resume_token: String,
        grace_secs: f64,
        max_message_len: usize,
        /// Whether the agent sees the customer's message as it is typed (`DRAFT_PREVIEW`):
        /// the page tells the customer so.
        draft_preview: bool,
    },
    /// Agent, on connect: who they are, their settings and chats (with history after a reconnect).
    AgentWelcome {
        agent_id: String,
        name: String,
        categories: Vec<CategoryRef>,
        max_chats: u8,
        available: bool,
        /// `available`, `away` or `busy` (see `set_status`).
        status: &'static str,
        away_reason: Option<String>,
        max_message_len: usize,
        draft_preview: bool,
        chats: Vec<ChatSnapshot>,
        /// Their chats that ended while they had no connection, as this node kept them
        /// (the latest few, oldest first): how each ended, as its `chat_ended` would have said.
        ended: Vec<EndedChat>,
    },
    /// Agent: their categories, limit or status changed.
    Profile {
        categories: Vec<CategoryRef>,
        max_chats: u8,
        available: bool,
        status: &'static str,
        away_reason: Option<String>,
    },
    /// Customer, while waiting: their category opened or closed, or somebody who could
    /// answer came or went (`agents_online`: a connected agent holding it who is not away).
    DeskStatus {
        category: String,
        open: bool,
        agents_online: bool,
    },
    /// Agent: a waiting customer is offered to them (a category in offer mode). Accept or
    /// decline within `expires_in_secs`; unanswered, it lapses as a decline, and a second
    /// lapse in a row sets the agent away. The customer keeps their place meanwhile.
    Offer {
        offer_id: String,
        category: String,
        category_name: String,
        customer_name: String,
        /// Seconds the customer has waited so far (null when this node does not know: it
        /// started after they joined).
        waited_secs: Option<f64>,
        /// What the customer said they came about, when they did (`join.message`).
        first_message: Option<String>,
        /// The customer asked for a video call.
        video_request: bool,
        expires_in_secs: f64,
    },
    /// Agent: an offer ended without a chat: `declined` (by them), `lapsed` (not answered in
    /// time) or `withdrawn` (the customer left or dropped, the category closed, the agent
    /// went away...). An accepted offer ends with `chat_started` instead.
    OfferEnded {
        offer_id: String,
        reason: &'static str,
    },
    /// Agent: customers waiting in each of their categories.
    QueueStats {
        waiting: std::collections::BTreeMap<String, usize>,
        /// Category id → seconds its longest-waiting customer has waited (where someone waits).
        longest_wait_secs: std::collections::BTreeMap<String, f64>,
    },
    /// Customer: in line at `place` (1 is next). `requeued` after their agent vanished.
    Queued {
        category: String,
        place: usize,
        requeued: bool,
        /// Whether the category is open and someone is online to answer (as `desk_status`).
        open: bool,
        agents_online: bool,
        /// The likely wait, or null when unknown (`core::wait_estimate`).
        estimate: Option<Estimate>,
        /// A customer continuing a conversation, first told they wait: its id and latest
        /// lines, which they may write into while they wait.
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation: Option<WaitingConversation>,
    },
    /// Customer: their place in line changed.
    Place {
        place: usize,
        estimate: Option<Estimate>,
    },
    /// Both sides: a chat began.
    ChatStarted {
        chat_id: String,
        category: String,
        category_name: String,
        peer_name: String,
        started_at: i64,
        /// Agent: the customer asked for a video call; absent when not.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        video_request: bool,
        /// Agent: the offer this chat answers (they accepted it); absent when assigned.
        #[serde(skip_serializing_if = "Option::is_none")]
        offer_id: Option<String>,
        /// Agent: the chat was handed to them; who handed it on, and their note.
        #[serde(skip_serializing_if = "Option::is_none")]
        transfer: Option<TransferNote>,
        /// Agent, a chat handed to them: the chat so far as this hub has it (more of it
        /// may follow as `message` frames: place each at its seq, show it once), each line
        /// of an agent who had it before named by them (`agent_name`). A
        /// continued conversation's customer: its latest lines, each agent line named by
        /// its author.
        #[serde(skip_serializing_if = "Option::is_none")]
        messages: Option<Vec<NamedLine>>,
        /// Both sides: the customer continues an earlier conversation (`chat_id` is its
        /// id); `messages` carries its latest lines. Absent when not.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        continued: bool,
        /// Agent, a continued conversation: it was resolved when its customer came back
        /// (a reopen; their console marks it so). Absent when not.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        reopened: bool,
        /// Agent, a continued conversation: when its customer joined the line this time
        /// (ms since the Unix epoch; `started_at` less it is how long they waited now).
        /// Absent for any other chat (the customer panel's `queued_at` tells it).
        #[serde(skip_serializing_if = "Option::is_none")]
        queued_at: Option<i64>,
    },
    /// Customer: their chat was handed on, to another agent (`peer_name`) or to a
    /// category's line (`category`, `category_name`; a `queued` follows).
    Transferred {
        chat_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        category: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        category_name: Option<String>,
    },
    /// Agent: an internal note on one of their chats, once the archive has it (to every
    /// connection of theirs; `client_id` as the sender gave it).
    Note {
        chat_id: String,
        #[serde(flatten)]
        note: NoteView,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Agent: a conversation of theirs changed status (set by them on any connection, by
    /// an admin, by its end, or a snooze that ran out) or labels; `client_id` as the asker
    /// gave it.
    ConversationStatus {
        conversation_id: String,
        status: crate::store::ConversationStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        snoozed_until: Option<i64>,
        /// When it took this status.
        since: i64,
        /// Its labels' ids, in the order they were added.
        labels: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Agent: a snoozed conversation's snooze ran out and it is `open` again, to every agent
    /// who may list it (admins; agents serving its category) but its holder, who hears
    /// `conversation_status`; on any node. Their "all" and "unassigned" views hold it anew.
    SnoozeEnded {
        conversation_id: String,
        /// The agent whose list it is in (`null`: unassigned).
        holder: Option<String>,
        category: String,
        /// When it opened again (ms since the epoch).
        since: i64,
    },
    /// Agent: a conversation whose customer is not live was put in another agent's list
    /// (reassigned by its holder or an admin, or taken while unassigned): to the agent
    /// whose list it left and to the one whose list it entered, on any node.
    ConversationAssigned {
        conversation_id: String,
        /// The agent whose list it is in now.
        holder: String,
        holder_name: String,
        /// The agent whose list it left (`None`: it was unassigned).
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// Who moved it.
        by_name: String,
        customer_name: String,
    },
    /// Agent: the internal notes of a chat they were given (handed to them, or theirs
    /// again after a reconnect), as the archive has them.
    Notes {
        chat_id: String,
        notes: Vec<NoteView>,
    },
    /// Agent: who and where a chat could be handed to now (the answer to `transfer_targets`).
    TransferTargets {
        chat_id: String,
        agents: Vec<TransferAgent>,
        categories: Vec<TransferCategory>,
    },
    Message(ChatMessage),
    Typing {
        chat_id: String,
        from: From,
        active: bool,
    },
    /// Agent: the customer's unsent text.
    Draft {
        chat_id: String,
        text: String,
    },
    /// The other side lost their connection; they have `grace_secs` to come back.
    PeerAway {
        chat_id: String,
        grace_secs: f64,
    },
    PeerBack {
        chat_id: String,
    },
    /// Both sides: the chat is over. `ended_by` is customer, agent or system; `reason` says why.
    /// The customer's copy of a chat that ended (`reason` `ended`) carries `rating`: how to
    /// rate it (`POST /api/ratings` with its token).
    ChatEnded {
        chat_id: String,
        ended_by: From,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        rating: Option<RatingOffer>,
    },
    /// Agent: the customer rated a chat of theirs (`score` 1 to 5 on `stars`, 0 or 1 on `thumbs`).
    ChatRated {
        chat_id: String,
        score: u8,
        scale: crate::store::RatingScale,
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    // ---- transcripts by mail ----
    /// Customer: their `transcript` ask is kept: the transcript of `chat_id` goes to `email`
    /// once the chat has ended (`already`: this address was asked for before; one mail).
    TranscriptRequested {
        chat_id: String,
        email: String,
        already: bool,
    },
    /// Customer: taken out of the queue by the hub (their category was removed); the connection closes.
    Removed {
        reason: &'static str,
        message: String,
    },
    /// Customer: back after a reconnect, waiting at `place` or in `chat`.
    Resumed {
        customer_name: String,
        category: String,
        place: Option<usize>,
        chat: Option<ChatSnapshot>,
        /// A customer waiting in line to continue a conversation: it as it is now (as
        /// their first `queued` gave it, with what they wrote meanwhile), so a page that
        /// kept nothing shows it again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<WaitingConversation>,
    },
    /// Buddy: you joined; the full list and your invitations and chat.
    BuddyWelcome {
        you: u64,
        name: String,
        /// Send it in later `buddy_join`s to be the same person from another tab or device.
        key: String,
        buddies: Vec<Buddy>,
        invitations: Vec<InvitationRef>,
        chat: Option<BuddyChatSnapshot>,
        max_message_len: usize,
    },
    BuddyJoined {
        buddy: Buddy,
    },
    BuddyLeft {
        id: u64,
    },
    BuddyStatus {
        id: u64,
        status: &'static str,
    },
    Invited {
        invitation: InvitationRef,
    },
    InvitationClosed {
        invitation_id: u64,
        reason: &'static str,
    },
    BuddyChatStarted {
        chat_id: String,
        peer: u64,
        peer_name: String,
    },
    BuddyTyping {
        chat_id: String,
        from: u64,
        active: bool,
    },
    BuddyChatEnded {
        chat_id: String,
        ended_by: Option<u64>,
        reason: &'static str,
    },
    Error {
        code: &'static str,
        message: String,
        /// The `client_id` of the frame that failed, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    Pong {},
    /// The hub is shutting down; the connection closes next.
    Shutdown {
        message: String,
    },
    // ---- rooms and 1-to-1 video ----
    /// Customer: their agent invites them from the chat into a video room. `link` opens it
    /// and carries a room token (valid `ROOM_TOKEN_TTL_SECS`): no code is needed.
    VideoInvite {
        chat_id: String,
        room_id: String,
        link: String,
    },
    // ---- compact acknowledgement ----
    // ---- agent bots ----
    /// Bot, on connecting: its name and the conversations it holds now (after a reconnect
    /// within the reply timeout, the ones still waiting for it).
    BotWelcome {
        bot: String,
        conversations: Vec<BotConversation>,
    },
    /// Bot: a customer came to it (`conversation` holds who, and the lines so far).
    Conversation(BotConversation),
    /// Bot: a conversation is no longer its own: `handed_over` (with `why`: `asked`,
    /// `timeout`, `bot_gone`), `resolved`, or `customer_left`.
    ConversationEnded {
        chat_id: String,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<&'static str>,
    },
    /// Customer: the bot asks for their email address (answer with an `email` frame).
    EmailAsked {
        chat_id: String,
    },
    /// Bot: the customer gave their email address.
    CustomerEmail {
        chat_id: String,
        email: String,
    },
    /// The sender's acknowledgement of its own message, once it is durable: what the hub
    /// stamped on it (`id`, `seq`, `at`) and the sender's `client_id`, without the text the
    /// sender already has (half the bytes of echoing the message back).
    Ack {
        chat_id: String,
        id: String,
        seq: u64,
        at: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
}

/// A conversation a bot holds, as the bot sees it (and as a node tells the node of a
/// bot's newer socket, `hub::bot_relay`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotConversation {
    pub chat_id: String,
    pub category: String,
    pub customer_name: String,
    /// The address the customer gave, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    /// Its lines so far, oldest first.
    pub messages: Vec<ChatMessage>,
}

/// A buddy chat on welcome after a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuddyChatSnapshot {
    pub chat_id: String,
    pub peer: u64,
    pub peer_name: String,
    pub messages: Vec<ChatMessage>,
}

impl ServerFrame {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            client_id: None,
        }
    }

    /// Encodes once; the bytes are shared by every connection the frame goes to.
    pub fn encode(&self) -> Utf8Bytes {
        // A long queue sends one of these per waiting customer after every route: written
        // directly, the same bytes serde would produce (a test below holds them equal).
        if let Self::Place { place, estimate } = self {
            return Utf8Bytes::from(match estimate {
                None => format!(r#"{{"type":"place","place":{place},"estimate":null}}"#),
                Some(Estimate { low_mins, high_mins }) => format!(
                    r#"{{"type":"place","place":{place},"estimate":{{"low_mins":{low_mins},"high_mins":{high_mins}}}}}"#
                ),
            });
        }
        // Chat messages are most frames of a busy hub: written straight into a buffer of
        // the right size, the same bytes serde produces (a test below holds them equal).
        if let Self::Message(message) = self {
            return encode_message(&message.as_message_ref());
        }
        // Serialising these plain structs cannot fail: no maps with non-string keys, no custom impls.
        Utf8Bytes::from(serde_json::to_string(self).expect("server frames always serialise"))
    }
}

/// A likely wait in whole minutes, `low_mins` to `high_mins`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Estimate {
    pub low_mins: u64,
    pub high_mins: u64,
}

/// A chat message borrowed from wherever its parts live, to encode it without copying them.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    pub chat_id: &'a str,
    pub id: &'a str,
    pub seq: u64,
    pub from: From,
    pub sender: Option<u64>,
    pub text: &'a str,
    pub attachments: &'a [AttachmentMeta],
    pub at: i64,
    pub client_id: Option<&'a str>,
    pub via: Option<crate::store::Via>,
}

impl ChatMessage {
    /// The message as borrowed parts, for [`encode_message`].
    pub fn as_message_ref(&self) -> MessageRef<'_> {
        MessageRef {
            chat_id: &self.chat_id,
            id: &self.id,
            seq: self.seq,
            from: self.from,
            sender: self.sender,
            text: &self.text,
            attachments: &self.attachments,
            at: self.at,
            client_id: self.client_id.as_deref(),
            via: self.via,
        }
    }
}

/// The conversation a customer waits in line to continue (`queued.conversation`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaitingConversation {
    /// The conversation's id: the `chat_id` of their lines' `ack`s, and of the chat their
    /// pairing opens.
    pub id: String,
    /// Its latest lines (at most 50), oldest first, each agent line with its author's name.
    pub messages: Vec<NamedLine>,
    /// The agent whose list it is in now, by name (none: nobody's); whoever takes the
    /// customer from the line may answer instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

/// A line as a `message` frame carries it and, for an agent's line a frame names, the name
/// of the agent who wrote it (a conversation handed on has lines by several). A customer
/// continuing a conversation reads each agent line named (waiting, or in `chat_started`); an
/// agent a chat was handed to reads the lines of the agents who had it before named (in
/// `chat_started` and `agent_welcome`), their own lines named by nobody. Elsewhere a line
/// names nobody.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamedLine {
    #[serde(flatten)]
    pub line: ChatMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

impl std::convert::From<ChatMessage> for NamedLine {
    fn from(line: ChatMessage) -> Self {
        Self { line, agent_name: None }
    }
}

/// Lines that name no author, as a frame's `messages`.
pub fn unnamed(lines: Vec<ChatMessage>) -> Vec<NamedLine> {
    lines.into_iter().map(NamedLine::from).collect()
}

/// The `message` frame of a chat message: the same bytes as `ServerFrame::Message(..).encode()`.
pub fn encode_message(m: &MessageRef<'_>) -> Utf8Bytes {
    let client_id = m.client_id;
    let variable = m.chat_id.len() + m.id.len() + m.text.len() + client_id.map_or(0, str::len);
    // Fixed keys and numbers take under 128 bytes; escapes may grow it, which is rare.
    let mut out = Vec::with_capacity(128 + variable);
    out.extend_from_slice(br#"{"type":"message","chat_id":"#);
    write_json(&mut out, m.chat_id);
    out.extend_from_slice(br#","id":"#);
    write_json(&mut out, m.id);
    out.extend_from_slice(br#","seq":"#);
    write_json(&mut out, &m.seq);
    out.extend_from_slice(br#","from":"#);
    out.extend_from_slice(match m.from {
        From::Customer => br#""customer""#.as_slice(),
        From::Agent => br#""agent""#,
        From::Buddy => br#""buddy""#,
        From::System => br#""system""#,
    });
    if let Some(sender) = m.sender {
        out.extend_from_slice(br#","sender":"#);
        write_json(&mut out, &sender);
    }
    out.extend_from_slice(br#","text":"#);
    write_json(&mut out, m.text);
    if !m.attachments.is_empty() {
        out.extend_from_slice(br#","attachments":"#);
        write_json(&mut out, m.attachments);
    }
    out.extend_from_slice(br#","at":"#);
    write_json(&mut out, &m.at);
    if let Some(client_id) = client_id {
        out.extend_from_slice(br#","client_id":"#);
        write_json(&mut out, client_id);
    }
    if let Some(via) = m.via {
        // A fixed word: no escaping, and within the room reserved for fixed keys.
        out.extend_from_slice(match via {
            crate::store::Via::Email => br#","via":"email""#,
            crate::store::Via::Bot => br#","via":"bot""#,
        });
    }
    out.push(b'}');
    Utf8Bytes::from(String::from_utf8(out).expect("JSON written from strs is UTF-8"))
}

/// The `ack` frame of a chat message (its sender's acknowledgement): the same bytes as
/// `ServerFrame::Ack{..}.encode()`, written directly as [`encode_message`] is (one per message).
pub fn encode_ack(m: &MessageRef<'_>) -> Utf8Bytes {
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        out.extend_from_slice(br#"{"type":"ack","chat_id":"#);
        write_json(out, m.chat_id);
        out.extend_from_slice(br#","id":"#);
        write_json(out, m.id);
        out.extend_from_slice(br#","seq":"#);
        write_json(out, &m.seq);
        out.extend_from_slice(br#","at":"#);
        write_json(out, &m.at);
        if let Some(client_id) = m.client_id {
            out.extend_from_slice(br#","client_id":"#);
            write_json(out, client_id);
        }
        out.push(b'}');
        exact_frame(out)
    })
}

thread_local! {
    /// Where an `ack` is written before it is copied out at its length (a few hundred bytes
    /// at most; a longer one grows it once and it stays so for the thread).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
}

/// A frame of exactly the bytes of `json`, in one allocation of that length. A `Vec` with
/// room to spare would become a shared buffer, an allocation of its own with an atomic
/// count on every clone and drop; a frame sent once (an `ack`, moved to its connection)
/// needs neither.
fn exact_frame(json: &[u8]) -> Utf8Bytes {
    let text = std::str::from_utf8(json).expect("JSON is UTF-8");
    Utf8Bytes::from(String::from(Box::<str>::from(text)))
}

/// Reads back a `message` frame this module encoded. Transcripts keep the frames the
/// hub sent rather than the messages; a snapshot for a welcome or resume reads them.
pub fn decode_message_frame(frame: &str) -> Result<ChatMessage, serde_json::Error> {
    // The `type` key is the only one a message does not have; serde skips it.
    serde_json::from_str(frame)
}

/// Appends a string (quoted and escaped) or a number, as serde_json writes it.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("strings and numbers always serialise");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_tells_bad_json_from_unknown_types_and_bad_fields() {
        assert_eq!(decode("nope").unwrap_err().code(), "bad_json");
        assert_eq!(decode("[1]").unwrap_err().code(), "bad_json");
        assert_eq!(decode(r#"{"type":"fly"}"#).unwrap_err().code(), "unknown_type");
        assert_eq!(decode(r#"{"type":"join","name":"x"}"#).unwrap_err().code(), "bad_frame");
        assert_eq!(
            decode(r#"{"type":"join","name":"Ann","category":"sales"}"#).unwrap(),
            ClientFrame::Join(Box::new(JoinFrame {
                name: "Ann".into(),
                category: "sales".into(),
                video: false,
                message: None,
                email: None,
                visitor: None,
                page: None,
                zone: None,
                conversation: None,
                identifier: None,
                identifier_hash: None,
            }))
        );
        assert_eq!(
            decode(r#"{"type":"message","text":"hi"}"#).unwrap(),
            ClientFrame::Message {
                attachments: Vec::new(),
                chat_id: None,
                text: "hi".into(),
                client_id: None
            }
        );
    }

    #[test]
    fn the_message_fast_path_reads_what_the_enum_reads() {
        let frames = [
            r#"{"type":"message","text":"hi"}"#,
            r#"{"text":"hi","client_id":"c-1","type":"message","chat_id":"x"}"#,
            r#"{"type":"message","text":"hi","extra":1}"#,
            r#"{"type":"message","text":"","attachments":["a1","a2"],"chat_id":"x"}"#,
            r#"{"type":"message","text":"","attachments":"a1"}"#,
            r#"{"type":"message"}"#,
            r#"{"type":"message","text":5}"#,
            r#"{"type":"typing","active":true}"#,
            r#"{"type":"message","text":"say \"hi\"\n","chat_id":"x"}"#,
            r#"{"type":"message","text":"hi","chat_id":"x\u0079","client_id":"c\n"}"#,
        ];
        for text in frames {
            let slow = serde_json::from_str::<ClientFrame>(text).map_err(|_| ());
            assert_eq!(decode(text).map_err(|_| ()), slow, "{text}");
        }
    }

    /// A message is read in place, its text copied only when it holds an escape; one
    /// whose id holds an escape is read by the enum's pass, whole.
    #[test]
    fn a_message_is_read_in_place() {
        let plain = r#"{"type":"message","text":"hi","chat_id":"x","client_id":"c-1"}"#;
        let Ok(Incoming::Message(message)) = read(plain) else {
            panic!("a message read in place");
        };
        assert!(matches!(message.text, std::borrow::Cow::Borrowed("hi")));
        assert_eq!((message.chat_id, message.client_id), (Some("x"), Some("c-1")));
        let escaped = r#"{"type":"message","text":"a\"b"}"#;
        let Ok(Incoming::Message(message)) = read(escaped) else {
            panic!("a message read in place");
        };
        assert_eq!(message.text, "a\"b");
        let escaped_id = r#"{"type":"message","text":"hi","chat_id":"x\u0079"}"#;
        let Ok(Incoming::Frame(ClientFrame::Message { chat_id, .. })) = read(escaped_id) else {
            panic!("read whole");
        };
        assert_eq!(chat_id.as_deref(), Some("xy"));
    }

    #[test]
    fn chat_messages_are_written_as_serde_would() {
        let texts = ["hi", "quote \" and \\ and \n and \u{1} and é 🎉", ""];
        for (i, text) in texts.into_iter().enumerate() {
            for from in [From::Customer, From::Agent, From::Buddy, From::System] {
                let message = ChatMessage {
                    // The last text is empty: a message that is its files alone.
                    attachments: if i == 2 {
                        vec![AttachmentMeta {
                            id: "a1".into(),
                            name: "shot \"1\" é.png".into(),
                            mime: "image/png".into(),
                            size: 1234,
                            thumbnail: true,
                        }]
                    } else {
                        Vec::new()
                    },
                    chat_id: format!("chat-{i}"),
                    id: "0193-id".into(),
                    seq: 7 + i as u64,
                    from,
                    sender: (i == 1).then_some(42),
                    text: text.into(),
                    at: 1_795_279_798_433,
                    client_id: (i != 2).then(|| format!("c\"{i}")),
                    // A customer's answer by mail says so.
                    via: (i == 0).then_some(crate::store::Via::Email),
                };
                let frame = ServerFrame::Message(message.clone());
                let encoded = frame.encode();
                assert_eq!(encoded.as_str(), serde_json::to_string(&frame).unwrap());
                assert_eq!(decode_message_frame(&encoded).ok(), Some(message), "read back");
            }
        }
    }

    #[test]
    fn acks_are_written_as_serde_would() {
        for (i, client_id) in [Some("c\"1 é"), None].into_iter().enumerate() {
            let message = MessageRef {
                attachments: &[],
                chat_id: "chat-\\1",
                id: "0193-id",
                seq: 7 + i as u64,
                from: From::Customer,
                sender: None,
                text: "never in an ack",
                at: 1_795_279_798_433,
                client_id,
                via: None,
            };
            let frame = ServerFrame::Ack {
                chat_id: message.chat_id.into(),
                id: message.id.into(),
                seq: message.seq,
                at: message.at,
                client_id: client_id.map(String::from),
            };
            let encoded = encode_ack(&message);
            assert_eq!(encoded.as_str(), serde_json::to_string(&frame).unwrap());
            assert_eq!(frame.encode(), encoded);
        }
    }

    #[test]
    fn frames_are_tagged_by_type() {
        let text = ServerFrame::Place {
            place: 2,
            estimate: None,
        }
        .encode();
        assert_eq!(text.as_str(), r#"{"type":"place","place":2,"estimate":null}"#);
        for estimate in [
            None,
            Some(Estimate {
                low_mins: 3,
                high_mins: 12,
            }),
        ] {
            let place = ServerFrame::Place {
                place: 10_000,
                estimate,
            };
            assert_eq!(place.encode().as_str(), serde_json::to_string(&place).unwrap());
        }
    }
}
