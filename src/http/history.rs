//! The conversation archive over HTTP: agents read the past conversations they
//! served (at any point: transfers included), admins all of them; filtered, searched
//! (`q`: words in the names or in one message, [`crate::store::search`]), paged, newest
//! first. A conversation read whole names the author of each agent line (`agent_name`, told
//! by [`Conversation::line_authors`]), so no page tells it from the transfers itself. Exports
//! of the same listing are in `archive_export.rs`.

use axum::Json;
use axum::extract::Path;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiQuery, JsonResult, StoreAnswer};
use super::paging::PageQuery;
use super::responses::{NotServed, SignedIn, Unavailable};
use super::session::Staff;
use super::{ApiError, AppState, ErrorBody};
use crate::core::conversation::line_authors::LineAuthors;
use crate::store::search::{SearchQuery, first_hit};
use crate::store::{
    Account, ArchivedMessage, Conversation, ConversationFilter, ConversationKind, ConversationStatus, EndReason,
    Rating, Role, Side, StoreError, Transfer, desk_status,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(one))
}

/// What narrows a listing of the archive: the filters and search of
/// `GET /api/conversations`, and of its export (`GET /api/conversations/export`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListingQuery {
    /// Only this category id.
    pub category: Option<String>,
    /// Only conversations this agent served at any point: their agent now, or one who
    /// handed them on or took them (admins; agents always see only their own).
    pub agent_id: Option<String>,
    /// Paired at or after this time (ms since the Unix epoch).
    pub from: Option<i64>,
    /// Paired before this time (ms since the Unix epoch).
    pub to: Option<i64>,
    /// Search: only conversations whose names (the customer's, their agents') or one of
    /// whose messages hold every word of `q`; whole words, any case, accents ignored.
    /// At most 200 characters and 8 different words; empty means no search.
    pub q: Option<String>,
    /// Only conversations carrying this label id (`GET /api/labels`).
    pub label: Option<String>,
    /// Only conversations with one of these statuses, comma-separated (`open`, `pending`,
    /// `snoozed`, `resolved`); empty or absent: any status.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub kind: ConversationKind,
    pub category: Option<String>,
    pub customer_name: String,
    /// The agent who has it now (after transfers, the last one it was handed to).
    pub agent_id: String,
    pub agent_name: String,
    pub queued_at: i64,
    pub paired_at: i64,
    pub ended_at: Option<i64>,
    pub ended_by: Option<Side>,
    pub reason: Option<EndReason>,
    pub message_count: usize,
    /// Where the desk stands with it (`open`, `pending`, `snoozed`, `resolved`); a
    /// conversation archived before statuses existed is `resolved` once it ended.
    pub status: ConversationStatus,
    /// The ids of the labels it carries that the desk defines (`GET /api/labels`), in the
    /// order they were put on.
    pub labels: Vec<String>,
    /// The customer's rating, once given (`POST /api/ratings`).
    pub rating: Option<Rating>,
    /// With `q`: the first message holding every word of it (null when the names matched,
    /// or without `q`); an agent's line names its author (`agent_name`), as in the
    /// conversation read whole.
    pub hit: Option<LineView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub seq: u64,
    pub from: Side,
    pub text: String,
    pub at: i64,
    /// The files it carried (absent when none); links to them from `GET /api/attachments/{id}/link`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::attachments::AttachmentMeta>,
    /// How it came other than over the chat (absent for chat lines): `email`, a
    /// customer's answer by mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<crate::store::Via>,
}

/// A message of a conversation read whole: the message and, for an agent's line, who wrote it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineView {
    #[serde(flatten)]
    pub message: MessageView,
    /// For an agent's line (`from: "agent"`): the display name of the agent who wrote it (a
    /// bot's line: the bot's), not necessarily the conversation's `agent_name`: in one handed
    /// on (transfers, reassignments) each line is named by the agent who had it when it was
    /// said, as its `transfers` tell. Absent for the customer's lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

/// An agent's internal note on a service chat: never shown to the customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteView {
    /// Names the note (a UUIDv7).
    pub id: String,
    /// When it was written (ms since the Unix epoch).
    pub at: i64,
    /// The agent who wrote it.
    pub agent_id: String,
    pub agent_name: String,
    pub text: String,
}

/// What the customer told about themselves when joining (each null when not given).
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    /// Their email address, as given (when joining, or later).
    pub email: Option<String>,
    /// The page they came from (an http(s) URL).
    pub page: Option<String>,
    /// Their IANA time zone.
    pub zone: Option<String>,
}

/// One conversation as the archive reads it, without agents' notes: an item of an export,
/// and a conversation's detail but for its notes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedConversation {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    /// What the customer told about themselves (service conversations).
    pub customer: CustomerView,
    pub messages: Vec<LineView>,
    /// Its transfers, oldest first; empty when it was never transferred.
    pub transfers: Vec<Transfer>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ExportedConversation,
    /// Its agents' internal notes, oldest first (by `at`, then `id`); empty when none.
    pub notes: Vec<NoteView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    /// Conversations matching the filter, before paging.
    pub total: u64,
    pub items: Vec<ConversationSummary>,
}

pub(super) fn summary(c: &Conversation) -> ConversationSummary {
    let o = &c.opened;
    ConversationSummary {
        id: o.id.clone(),
        kind: o.kind,
        category: o.category.clone(),
        customer_name: o.customer_name.clone(),
        agent_id: o.agent_id.clone(),
        agent_name: o.agent_name.clone(),
        queued_at: o.queued_at,
        paired_at: o.paired_at,
        ended_at: c.closed.as_ref().map(|e| e.ended_at),
        ended_by: c.closed.as_ref().map(|e| e.ended_by),
        reason: c.closed.as_ref().map(|e| e.reason),
        message_count: c.messages.len(),
        // Until its record is read (`with_desk_state`): what an archive from before statuses says.
        status: desk_status(None, c.closed.is_some()),
        labels: Vec::new(),
        rating: c.rating.clone(),
        hit: None,
    }
}

/// Each summary's status and labels as its record has them, where it has one (one read for
/// all); a label the desk no longer defines is left out.
pub(super) async fn with_desk_state<'a>(
    state: &AppState,
    summaries: impl IntoIterator<Item = &'a mut ConversationSummary>,
) -> Result<(), ApiError> {
    let mut summaries: Vec<&mut ConversationSummary> = summaries.into_iter().collect();
    let ids: Vec<String> = summaries.iter().map(|s| s.id.clone()).collect();
    let records = state.store.conversation_records(&ids).await?;
    let defined = if records.iter().any(|r| !r.labels.is_empty()) {
        state.store.labels().await?
    } else {
        Vec::new()
    };
    for summary in &mut summaries {
        if let Some(record) = records.iter().find(|r| r.id == summary.id) {
            summary.status = record.status;
            summary.labels = record
                .labels
                .iter()
                .filter(|id| defined.iter().any(|l| l.id == **id))
                .cloned()
                .collect();
        }
    }
    Ok(())
}

/// A listing's summary with its search hit.
pub(super) fn found(c: &Conversation, query: Option<&SearchQuery>) -> ConversationSummary {
    let hit = query.and_then(|q| first_hit(q, &c.messages)).map(|m| line(c, m));
    ConversationSummary { hit, ..summary(c) }
}

pub(super) fn message_view(m: &ArchivedMessage) -> MessageView {
    MessageView {
        id: m.id.to_string(),
        seq: m.seq,
        from: m.from,
        text: m.text.clone(),
        at: m.at,
        attachments: m.attachments.clone(),
        via: m.via,
    }
}

/// A conversation's messages, each agent line named by its author.
fn lines(c: &Conversation) -> Vec<LineView> {
    let authors = c.line_authors();
    c.messages.iter().map(|m| named(m, &authors)).collect()
}

/// One message of conversation `c` (a search hit, an inbox row's last line), an agent line
/// named by its author as in [`lines`].
pub(super) fn line(c: &Conversation, m: &ArchivedMessage) -> LineView {
    named(m, &c.line_authors())
}

/// Message `m` with, for an agent's line, its author as `authors` (its conversation's) tell.
fn named(m: &ArchivedMessage, authors: &LineAuthors) -> LineView {
    LineView {
        message: message_view(m),
        agent_name: (m.from == Side::Agent).then(|| authors.of(m.seq).to_string()),
    }
}

impl ListingQuery {
    /// The store's filter for `me`: agents only ever get the conversations they served;
    /// `q` is read by [`SearchQuery::parse`] (empty: no search), its refusals `bad_query`.
    /// The label and statuses are checked by the store with the other filters, so the
    /// answer and its total are exact for any mix; an unknown status is refused.
    pub(super) fn filter_for(self, me: &Account) -> Result<ConversationFilter, ApiError> {
        let text = match self.q.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(typed) => {
                Some(SearchQuery::parse(typed).map_err(|e| ApiError::invalid("bad_query", format!("q: {e}")))?)
            }
        };
        let agent_id = match me.role {
            Role::Admin => self.agent_id.filter(|a| !a.is_empty()),
            Role::Agent => Some(me.id.clone()),
        };
        Ok(ConversationFilter {
            category: self.category.filter(|c| !c.is_empty()),
            agent_id,
            from: self.from,
            to: self.to,
            text,
            statuses: named_statuses(self.status.as_deref())?,
            label: self.label.filter(|l| !l.is_empty()),
        })
    }
}

/// The statuses a comma-separated `status` parameter names (none when empty or absent);
/// a word that is no status is refused by name.
pub(super) fn named_statuses(asked: Option<&str>) -> Result<Vec<ConversationStatus>, ApiError> {
    asked
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|word| {
            serde_json::from_value(serde_json::Value::String(word.to_string())).map_err(|_| {
                ApiError::invalid(
                    "bad_query",
                    format!("status: {word:?} is not open, pending, snoozed or resolved"),
                )
            })
        })
        .collect()
}

/// Past conversations, newest first. Agents see only those they served (transfers included).
#[utoipa::path(get, path = "/api/conversations", tag = "history", params(ListingQuery, PageQuery),
    responses((status = 200, body = ConversationPage),
        (status = 400, description = "`bad_query`: a parameter is malformed or out of range, `status` \
            names a word that is no status, or `q` is longer than 200 characters, has more than 8 different \
            words, or no word at all", body = ErrorBody),
        SignedIn, Unavailable))]
async fn list(
    Staff(me, state): Staff,
    ApiQuery(listing): ApiQuery<ListingQuery>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> JsonResult<ConversationPage> {
    let page = page.page()?;
    let filter = listing.filter_for(&me)?;
    let (items, total) = state.store.conversations(&filter, page).await?;
    let mut items: Vec<ConversationSummary> = items.iter().map(|c| found(c, filter.text.as_ref())).collect();
    with_desk_state(&state, &mut items).await?;
    Ok(Json(ConversationPage { total, items }))
}

/// One conversation with every message, transfer and agent's note. Agents may only open
/// those they served at any point (its agent now, or one who handed it on or took it).
#[utoipa::path(get, path = "/api/conversations/{id}", tag = "history",
    params(("id" = String, Path, description = "the conversation id: the live chat's `chat_id`")),
    responses((status = 200, body = ConversationDetail), NotServed, SignedIn, Unavailable))]
async fn one(Staff(me, state): Staff, Path(id): Path<String>) -> JsonResult<ConversationDetail> {
    let mut whole = detail(&readable(&state, &me, &id).await?);
    with_desk_state(&state, [&mut whole.conversation.summary]).await?;
    Ok(Json(whole))
}

/// Conversation `id` if `me` may read it: admins any, agents those they served at any
/// point. Someone else's conversation looks exactly like a missing one to an agent.
pub(super) async fn readable(state: &AppState, me: &Account, id: &str) -> Result<Conversation, ApiError> {
    // Someone else's conversation waits as a missing one does, so the time of the 404
    // tells an agent nothing either.
    let hidden = |found: &Result<Conversation, StoreError>| match found {
        Err(StoreError::NotFound) => true,
        Ok(c) => me.role == Role::Agent && !c.served_by(&me.id),
        Err(_) => false,
    };
    let found = super::fresh::until_found(state, hidden, || state.store.conversation(id)).await;
    let c = found.missing_as(ApiError::NotFound("conversation"))?;
    if me.role == Role::Agent && !c.served_by(&me.id) {
        return Err(ApiError::NotFound("conversation"));
    }
    Ok(c)
}

/// A conversation whole, as staff read it (the visitor key left out).
pub(super) fn detail(c: &Conversation) -> ConversationDetail {
    let notes = c
        .notes
        .iter()
        .map(|n| NoteView {
            id: n.id.clone(),
            at: n.at,
            agent_id: n.agent_id.clone(),
            agent_name: n.agent_name.clone(),
            text: n.text.clone(),
        })
        .collect();
    ConversationDetail {
        conversation: exported(c, summary(c)),
        notes,
    }
}

/// A conversation whole but for its notes, with `summary` as the caller made it (a search
/// hit in it, for instance).
pub(super) fn exported(c: &Conversation, summary: ConversationSummary) -> ExportedConversation {
    let customer = &c.opened.customer;
    ExportedConversation {
        summary,
        customer: CustomerView {
            email: customer.email.clone(),
            page: customer.page.clone(),
            zone: customer.zone.clone(),
        },
        messages: lines(c),
        transfers: c.transfers.iter().map(Transfer::from).collect(),
    }
}
