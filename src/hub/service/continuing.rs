//! A customer continuing an earlier conversation: a `join` naming one of their
//! conversations (`conversation`, with the `visitor` key it was started with, or the
//! verified identity it was started under) opens it again with the same id, its `seq`
//! going on, instead of starting a new one.
//!
//! The conversation's record and archive are read off the hub's task; back here the
//! customer joins as anyone does, but preferring the agent whose list the conversation is
//! in while the sticky preference holds (`core::conversation::Conversation::route_on_return`;
//! the routing core still decides, so limits and FIFO hold), and once paired their chat
//! is that conversation: both sides get its latest lines, the archive appends to it, and
//! its status goes back to open (a reopen when it was resolved).
//!
//! On several nodes the join goes through Redis like any other; it carries the
//! conversation's id and last seq, and the routing script keeps one customer per
//! conversation (`already_live` otherwise) and one seq counter for it, which its chat's
//! lines and the lines its agent writes meanwhile on any node draw from (docs/cluster.md,
//! "Conversations").
//!
//! Ownership is the browser's visitor key, a long random secret the page keeps, or an
//! identity the embedding site vouched for (`core::identity`, checked before this): a key
//! or identity that did not start the conversation (a forged or stale identity hash is no
//! identity at all), an id that does not exist and an erased conversation all get the same
//! `unknown_conversation`, so nothing tells one from the other.
//!
//! A conversation archived before conversations had statuses has no record: it is
//! resolved, and continuing it stores that record first (`conversations::migration`).

use super::HubState;
use crate::clock::now_ms;
use crate::conversations::return_route;
use crate::core::conversation::line_authors::LineAuthors;
use crate::core::conversation::{Route, Rules};
use crate::core::routing::{AgentId, CategoryId, CustomerId};
use crate::hub::delivery::ConnId;
use crate::hub::transcript::Transcript;
use crate::hub::{Command, tell};
use crate::protocol::{ChatMessage, EarlierAgent, From, NamedLine, ServerFrame, TransferNote, WaitingConversation};
use crate::store::{ConversationRecord, CustomerKey, CustomerProfile, SharedStore, Side, StoreError, StoreResult};

/// The latest lines of a continued conversation its two sides are shown (the archive has
/// all of them; the customer page and the console show these above the new ones).
pub(super) const EARLIER_LINES: usize = 50;

/// A `join` as the customer sent it, kept while their conversation is read (its category
/// is the conversation's).
pub(crate) struct JoinAsked {
    pub name: String,
    pub category: String,
    pub video: bool,
    pub message: Option<String>,
    pub profile: CustomerProfile,
    /// The conversation to continue, if any.
    pub conversation: Option<String>,
}

/// A conversation a customer continues, as read from the store.
#[derive(Debug)]
pub(crate) struct Continued {
    pub id: String,
    pub category: CategoryId,
    /// The highest seq archived: the continued chat's messages go on after it.
    pub last_seq: u64,
    /// Its latest lines (at most [`EARLIER_LINES`]), oldest first.
    pub earlier: Vec<ChatMessage>,
    /// The agent whose list it is in, and their name.
    pub holder: Option<(AgentId, String)>,
    /// Who wrote its agent lines, as its archive's hand-ons tell.
    pub authors: LineAuthors,
    /// Where the customer goes: back to the holder while the sticky preference holds.
    pub route: Route,
    /// What the next agent's hand-over note says (empty: the customer came back to it).
    pub note: String,
    /// The customer rated it already (a conversation is rated once).
    pub rated: bool,
    /// It was resolved when they came back: continuing it reopens it (its agent is told).
    pub reopened: bool,
}

/// The store is behind or down: what it has of the conversation may be short of its end.
fn store_behind() -> (&'static str, String) {
    (
        "archive_unavailable",
        "your conversation could not be read just now; try again shortly".to_string(),
    )
}

/// Why a conversation cannot be continued, as the customer is told.
fn unknown() -> (&'static str, String) {
    (
        "unknown_conversation",
        "no such conversation of yours; start a new one".to_string(),
    )
}

impl HubState {
    /// A `join` naming a conversation to continue: read it, then [`HubState::continue_loaded`].
    pub(super) fn continue_conversation(
        &mut self,
        conn: ConnId,
        asked: JoinAsked,
        id: String,
    ) -> Result<(), (&'static str, String)> {
        let owners = asked.profile.owner_keys();
        if owners.is_empty() {
            return Err(unknown());
        }
        let (archive, hub) = (self.archive.clone(), self.timers.clone());
        let rules = super::conversation_status::rules(&self.settings);
        let deadline = self.settings.archive.write_timeout;
        tokio::spawn(async move {
            // Its last lines may be on their way to the store (relayed before they were
            // durable, or acknowledged while it was down): the next seq must come after them.
            let found = if !archive.stored_through_now().await {
                Err(store_behind())
            } else {
                // A store that stopped answering is one that is down: the customer is told
                // to try again rather than left waiting.
                tokio::time::timeout(deadline, read(&archive.store(), &id, &owners, &rules, now_ms()))
                    .await
                    .unwrap_or_else(|_| Err(store_behind()))
            };
            let (asked, found) = (Box::new(asked), found.map(Box::new));
            tell(&hub, Command::ContinueLoaded { conn, asked, found }).await;
        });
        Ok(())
    }

    /// The conversation a customer asked to continue, read: they join, routed to it.
    pub(super) fn continue_loaded(
        &mut self,
        conn: ConnId,
        asked: JoinAsked,
        found: Result<Box<Continued>, (&'static str, String)>,
    ) {
        // Gone, or joined some other way meanwhile (a second `join`): nothing to do.
        if self.conns.get(&conn).is_none_or(|c| c.who.is_some()) {
            return;
        }
        let result = found.and_then(|continued| {
            if self.is_continuing(&continued.id) {
                return Err((
                    "already_live",
                    "this conversation is open in another window".to_string(),
                ));
            }
            let category = continued.category.0.clone();
            self.customer_join(conn, &category, asked, Some(continued))
        });
        if let Err((code, message)) = result {
            self.error_to_conn(conn, code, message, None);
        }
    }

    /// Conversation `id` has a live chat (with an agent, or with a bot), or a customer
    /// waiting to continue it.
    fn is_continuing(&self, id: &str) -> bool {
        self.chat_by_wire.contains_key(id)
            || self.bots.holds(id)
            || self
                .customers
                .values()
                .any(|info| info.continues.as_ref().is_some_and(|c| c.id == id))
    }
}

/// Reads conversation `id` for the customer who is `owners` (their browser's key, their
/// verified identity): one of them must have started it.
async fn read(
    store: &SharedStore,
    id: &str,
    owners: &[CustomerKey],
    rules: &Rules,
    now: i64,
) -> Result<Continued, (&'static str, String)> {
    let failed = |e: StoreError| read_failed(id, e);
    let record = match store.conversation_record(id).await {
        Ok(record) => record,
        // Archived before conversations had statuses: resolved, its record stored now
        // (create-if-absent), for its owner only.
        Err(StoreError::NotFound) => {
            let archived = store.conversation(id).await.map_err(failed)?;
            if !owners.iter().any(|key| key.matches(&archived.opened.customer)) {
                return Err(unknown());
            }
            crate::conversations::migration::ensure(store, &archived)
                .await
                .map_err(failed)?
        }
        Err(e) => return Err(failed(e)),
    };
    let recorded = |key: &&CustomerKey| record.customer_keys.contains(&key.indexed());
    if !owners.iter().any(|key| recorded(&key)) {
        return Err(unknown());
    }
    let archived = store.conversation(id).await.map_err(failed)?;
    // Its opening names the same owner as its record.
    if !owners
        .iter()
        .filter(recorded)
        .any(|key| key.matches(&archived.opened.customer))
    {
        return Err(unknown());
    }
    let holder_name = holder_name(store, &record, &archived).await;
    continued_from(id, &record, &archived, holder_name, rules, now)
}

/// The name of the agent whose list the conversation is in (`record.holder`): their
/// account's, else the one the archive knows them by (an account gone or unreadable).
async fn holder_name(
    store: &SharedStore,
    record: &ConversationRecord,
    archived: &crate::store::Conversation,
) -> Option<String> {
    let holder = record.holder.as_deref()?;
    match store.account(holder).await {
        Ok(account) => Some(account.display_name),
        Err(_) => Some(archived_name(archived, holder)),
    }
}

/// The latest name the archive of a conversation knows `agent` by (their id if none).
fn archived_name(archived: &crate::store::Conversation, agent: &str) -> String {
    if archived.opened.agent_id == agent {
        return archived.opened.agent_name.clone();
    }
    archived
        .transfers
        .iter()
        .rev()
        .find_map(|t| match (&t.to_agent_id, &t.to_agent_name) {
            (Some(to), Some(name)) if to == agent => Some(name.clone()),
            _ => (t.from_agent_id == agent).then(|| t.from_agent_name.clone()),
        })
        .unwrap_or_else(|| agent.to_string())
}

/// Why conversation `id` could not be read, as its customer is told.
fn read_failed(id: &str, e: StoreError) -> (&'static str, String) {
    match e {
        StoreError::NotFound => unknown(),
        other => {
            tracing::warn!(conversation = %id, error = %other, "a conversation to continue could not be read");
            store_behind()
        }
    }
}

/// Conversation `id` for its customer, back on another node than the one they joined on
/// while they wait to continue it (their resume token vouches for them, as for a chat):
/// read once the store holds its lines up to `through` (what they and their join's node
/// saw stamped; a node acknowledges a line once durable, and stores it a moment later), or
/// [`LATE_LINES_WAIT`] passed, when it is read as the store has it.
pub(super) async fn read_waiting(
    store: &SharedStore,
    id: &str,
    through: u64,
    rules: &Rules,
) -> Result<Continued, (&'static str, String)> {
    let holds_through = |read: &StoreResult<crate::store::Conversation>| {
        read.as_ref()
            .map_or(true, |a| a.messages.iter().map(|m| m.seq).max().unwrap_or(0) >= through)
    };
    let archived = read_until(store, id, holds_through)
        .await
        .map_err(|e| read_failed(id, e))?;
    let record = store.conversation_record(id).await.map_err(|e| read_failed(id, e))?;
    let holder_name = holder_name(store, &record, &archived).await;
    let mut continued = continued_from(id, &record, &archived, holder_name, rules, now_ms())?;
    continued.last_seq = continued.last_seq.max(through);
    Ok(continued)
}

/// Conversation `id` read from the store again until `done` says the read will do (it
/// holds the lines another node stamped, or it failed for good), or [`LATE_LINES_WAIT`]
/// passed: the last read.
pub(super) async fn read_until(
    store: &SharedStore,
    id: &str,
    done: impl Fn(&StoreResult<crate::store::Conversation>) -> bool,
) -> StoreResult<crate::store::Conversation> {
    let deadline = tokio::time::Instant::now() + LATE_LINES_WAIT;
    loop {
        let read = store.conversation(id).await;
        if done(&read) || tokio::time::Instant::now() >= deadline {
            return read;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Conversation `id` to continue, from its record and archive (its owner checked already),
/// its holder named `holder_name`.
fn continued_from(
    id: &str,
    record: &ConversationRecord,
    archived: &crate::store::Conversation,
    holder_name: Option<String>,
    rules: &Rules,
    now: i64,
) -> Result<Continued, (&'static str, String)> {
    let last_seq = archived.messages.iter().map(|m| m.seq).max().unwrap_or(0);
    let skip = archived.messages.len().saturating_sub(EARLIER_LINES);
    let earlier = archived.messages[skip..].iter().map(|m| earlier_line(id, m)).collect();
    let holder = record
        .holder
        .clone()
        .map(|agent| (AgentId(agent), holder_name.unwrap_or_default()));
    let authors = archived.line_authors();
    // Its category as last routed; an archive from before records had one names its first.
    let category = match record.category.as_str() {
        "" => archived.opened.category.clone().ok_or_else(unknown)?,
        known => known.to_string(),
    };
    Ok(Continued {
        id: id.to_string(),
        category: CategoryId::from(category),
        last_seq,
        earlier,
        holder,
        authors,
        route: return_route(record, now, rules),
        note: String::new(),
        rated: archived.rating.is_some(),
        reopened: record.status == crate::store::ConversationStatus::Resolved,
    })
}

/// How long lines written on another node as a customer came back may take to be stored
/// (their node acknowledges them once stored, within a group commit; more means that node
/// died with them unacknowledged, and they are not lines anyone was told were sent).
pub(super) const LATE_LINES_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl HubState {
    /// Lines `after + 1 ..= through` of conversation `id`, stamped on other nodes while
    /// `customer` came back to it but not yet stored when this node read it: read from the
    /// store until they are all there (or [`LATE_LINES_WAIT`] passed), then shown to them.
    pub(super) fn catch_up(&self, customer: CustomerId, id: &str, after: u64, through: u64) {
        let (store, hub, id) = (self.archive.store(), self.timers.clone(), id.to_string());
        tokio::spawn(async move {
            let late = |m: &&crate::store::ArchivedMessage| m.seq > after && m.seq <= through;
            // A store that fails is tried again: the lines are only shown late.
            let all_there = |read: &StoreResult<crate::store::Conversation>| {
                read.as_ref()
                    .is_ok_and(|a| a.messages.iter().filter(late).count() as u64 >= through - after)
            };
            let lines = match read_until(&store, &id, all_there).await {
                Ok(archived) => archived
                    .messages
                    .iter()
                    .filter(late)
                    .map(|m| earlier_line(&id, m))
                    .collect(),
                Err(_) => vec![],
            };
            tell(&hub, Command::LateLinesRead { customer, id, lines }).await;
        });
    }

    /// The late lines of conversation `id`, read: a customer still waiting to continue it
    /// gets them with its `chat_started`, one in its chat as `message` frames.
    pub(super) fn late_lines_read(&mut self, customer: CustomerId, id: &str, mut lines: Vec<ChatMessage>) {
        if let Some(continued) = self
            .customers
            .get_mut(&customer)
            .and_then(|info| info.continues.as_mut())
            .filter(|c| c.id == id)
        {
            lines.retain(|l| !continued.earlier.iter().any(|m| m.seq == l.seq));
            continued.earlier.extend(lines);
            continued.earlier.sort_by_key(|m| m.seq);
            return;
        }
        let in_its_chat = self
            .chat_by_wire
            .get(id)
            .and_then(|chat| self.routing.chat_sides(*chat));
        if in_its_chat.is_some_and(|(c, _)| c == customer) {
            for line in lines {
                self.send(
                    crate::hub::delivery::Recipient::Customer(customer),
                    &ServerFrame::Message(line),
                );
            }
        }
    }
}

/// An archived line of conversation `id` as a `message` frame shows it.
pub(super) fn earlier_line(id: &str, m: &crate::store::ArchivedMessage) -> ChatMessage {
    ChatMessage {
        attachments: m.attachments.clone(),
        via: m.via,
        chat_id: id.to_string(),
        id: m.id.to_string(),
        seq: m.seq,
        from: match m.from {
            Side::Customer => From::Customer,
            _ => From::Agent,
        },
        sender: None,
        text: m.text.clone(),
        at: m.at,
        client_id: None,
    }
}

impl Continued {
    /// The conversation as its customer reads it while they wait in line for an agent
    /// (`queued.conversation`, and `resumed.conversation` after a reload).
    pub(super) fn waiting_view(&self) -> WaitingConversation {
        WaitingConversation {
            id: self.id.clone(),
            messages: self.named_lines(),
            agent_name: self.holder.as_ref().map(|(_, name)| name.clone()),
        }
    }

    /// Its latest lines as its customer reads them, each agent line named by its author.
    pub(super) fn named_lines(&self) -> Vec<NamedLine> {
        self.earlier
            .iter()
            .map(|m| NamedLine {
                agent_name: (m.from == From::Agent).then(|| self.authors.of(m.seq).to_string()),
                line: m.clone(),
            })
            .collect()
    }

    /// The chat's transcript to go on from: its latest lines kept (a resume after a reload
    /// shows them), the next message stamped `last_seq + 1`.
    pub(super) fn transcript(&self, limit: usize) -> Transcript {
        let frames = self
            .earlier
            .iter()
            .map(|m| (m.seq, ServerFrame::Message(m.clone()).encode().as_str().to_owned()))
            .collect();
        Transcript::from_parts(self.last_seq, frames, limit)
    }

    /// Who had it before, when that is not `agent`: the continued chat reaches `agent` as
    /// handed on by them (their lines are theirs in the console), and the archive records
    /// the move as a transfer.
    pub(super) fn earlier_holder(&self, agent: &AgentId) -> Option<&(AgentId, String)> {
        self.holder.as_ref().filter(|(holder, _)| holder != agent)
    }

    /// The note the agent's `chat_started` carries when someone else had it before: its
    /// holder, when that is not `agent`, or an agent whose turn its archive ended (a
    /// transfer, an inbox reassignment). See [`hand_over_note`].
    pub(super) fn note_for(&self, agent: &AgentId) -> Option<TransferNote> {
        hand_over_note(
            self.authors.turns(),
            self.holder.as_ref(),
            self.last_seq,
            &self.note,
            agent,
        )
    }
}

/// The note the agent's `chat_started` carries for a conversation another node's customer
/// continues (`continues`, as it rode in their join, the earlier turns with it): as
/// [`Continued::note_for`] says on the customer's node, which read the archive.
pub(super) fn remote_note_for(continues: &crate::cluster::replica::Continues, agent: &AgentId) -> Option<TransferNote> {
    let turns = continues.turns.iter().map(|(through, name)| (*through, name.as_str()));
    hand_over_note(
        turns,
        continues.holder.as_ref(),
        continues.last_seq,
        &continues.note,
        agent,
    )
}

/// The hand-over note of a continued conversation reaching `agent`, when someone else had
/// it before: `holder` (the agent whose list it was in) when that is not `agent`, else the
/// last of its ended `turns` (each earlier agent with the last seq of their turn, in
/// order); None when neither. `earlier_agents` names the earlier agents' lines: each ended
/// turn's, then the holder's through `last_seq` when the holder is not `agent` (the lines
/// past every entry are `agent`'s own). `note`: its last hand-over's (a bot's; else empty).
fn hand_over_note<'a>(
    turns: impl Iterator<Item = (u64, &'a str)>,
    holder: Option<&(AgentId, String)>,
    last_seq: u64,
    note: &str,
    agent: &AgentId,
) -> Option<TransferNote> {
    let mut earlier_agents: Vec<EarlierAgent> = turns
        .map(|(through_seq, name)| EarlierAgent {
            name: name.to_string(),
            through_seq,
        })
        .collect();
    let from_name = match holder.filter(|(holder, _)| holder != agent) {
        Some((_, name)) => {
            earlier_agents.push(EarlierAgent {
                name: name.clone(),
                through_seq: last_seq,
            });
            name.clone()
        }
        None => earlier_agents.last()?.name.clone(),
    };
    Some(TransferNote {
        from_name,
        note: note.to_string(),
        category: None,
        earlier_agents,
    })
}
