//! The inbox: conversations as the desk works them, by status, longest waiting first.
//! Everyone lists their own ("mine": every conversation in their list until it is
//! resolved), the unassigned ones ("unassigned", for the team to pick up) and everyone's
//! ("all"): an agent those of the categories they serve, an admin every category. Each
//! entry carries what a list row shows: the customer's name and the last line said, from
//! the archive. Each answer also counts the three views (the console's buttons), by the
//! store, for the statuses and category asked and as the caller may see them: a label
//! narrows the list but not the counts, which say what they count.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiQuery, JsonResult, StoreAnswer};
use super::history::LineView;
use super::paging::page_limit;
use super::responses::{BadQuery, SignedIn, Unavailable};
use super::session::Staff;
use super::{ApiError, AppState};
use crate::store::{Account, ConversationRecord, ConversationStatus, Holder, InboxQuery, Role, longest_waiting_first};

/// The most conversations one listing returns.
const MAX_LIMIT: u64 = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(inbox))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// `mine` (default), `unassigned` or `all`; for an agent the last two hold only the
    /// categories they serve.
    pub view: Option<String>,
    /// Comma-separated statuses (`open,pending,snoozed,resolved`); empty or absent: the
    /// unresolved ones (`open,pending,snoozed`).
    pub status: Option<String>,
    /// Only this category id: for an agent, one they serve.
    pub category: Option<String>,
    /// Only conversations carrying this label id.
    pub label: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<u64>,
}

/// A conversation as an inbox row shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxEntry {
    /// The conversation id (the live chat's `chat_id`).
    pub id: String,
    pub category: String,
    pub status: ConversationStatus,
    /// With `snoozed`: when it opens again (ms since the Unix epoch).
    pub snoozed_until: Option<i64>,
    /// The account id of the agent whose list it is in; null: unassigned.
    pub holder: Option<String>,
    /// That agent's display name (null: unassigned, or an account since deleted).
    pub holder_name: Option<String>,
    /// When it took its status (opened, reopened, parked, snoozed, resolved): the list's
    /// order, oldest first, so who waits longest comes first. A line in the same status
    /// does not move it (the customer's newest unanswered line is not what it counts).
    pub status_since: i64,
    pub opened_at: i64,
    /// How often a message of the customer's opened it again after it was resolved.
    pub reopens: u32,
    /// The ids of the labels it carries that the desk defines (`GET /api/labels`), in the
    /// order they were added.
    pub labels: Vec<String>,
    /// As the archive has it; "" when the archive has not got the conversation yet.
    pub customer_name: String,
    /// The last line said, if any; an agent's line names its author (`agent_name`: who
    /// wrote it, not necessarily `holder_name`), so a row can show "Ann: …".
    pub last_message: Option<LineView>,
    /// It began as an offline message (`/api/offline-messages`, same id), left while
    /// nobody could chat; its answers go by mail.
    pub offline: bool,
    /// When its snooze ran out and opened it again (by the snooze timer: not a person, not
    /// a customer's line), while its holder has not opened it since
    /// (`POST /api/conversations/{id}/opened`; a reply does not clear it, and a
    /// conversation handed on keeps it): a console marks it "Snooze ended". Null
    /// otherwise; any other status change clears it.
    pub snooze_ended_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxPage {
    pub items: Vec<InboxEntry>,
    pub counts: InboxCounts,
}

/// How many conversations each view holds for the statuses and category of this request
/// (its label and limit aside), each as the caller may see it: for an agent, `unassigned`
/// and `all` of the categories they serve only.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxCounts {
    pub mine: u64,
    pub unassigned: u64,
    pub all: u64,
    /// The statuses counted (the request's, or the unresolved ones).
    pub statuses: Vec<ConversationStatus>,
    /// The category counted; null: every category the caller may see.
    pub category: Option<String>,
}

/// The caller's inbox, longest waiting first.
#[utoipa::path(get, path = "/api/inbox", tag = "conversations", params(InboxParams),
    description = "`view=mine` (default) lists the caller's own conversations. `unassigned` (nobody's) and \
        `all` (everyone's and nobody's) list, for an agent, only the categories their account serves (so \
        the team can pick work up; those held by others are read-only: status and labels stay their \
        holder's or an admin's), for an admin every category. An unassigned conversation that began as \
        an offline message (`offline: true`) is taken with `POST /api/offline-messages/{id}/take`; \
        others have no take (a customer waiting in the line reaches an agent by routing). Order: `status_since`, \
        oldest first (who waits longest in their status first), then `id`. `counts` counts the three views \
        for the same `status` and `category` (not `label`, nor `limit`), as the caller may see each, from \
        the store as the list is read: a console shows them on its view buttons and refreshes them with \
        the list.",
    responses((status = 200, body = InboxPage), BadQuery,
        (status = 403, description = "`forbidden`: an agent asked for a `category` they do not serve, \
            or the account is disabled; `not_whitelisted`: the caller's address is outside `AGENT_WHITELIST`",
            body = super::ErrorBody),
        SignedIn, Unavailable))]
async fn inbox(Staff(me, state): Staff, ApiQuery(params): ApiQuery<InboxParams>) -> JsonResult<InboxPage> {
    let limit = page_limit(params.limit, 50, MAX_LIMIT)?;
    let holder = match params.view.as_deref().unwrap_or("mine") {
        "mine" => Holder::Agent(me.id.clone()),
        "unassigned" => Holder::Nobody,
        "all" => Holder::Anyone,
        other => {
            return Err(ApiError::invalid(
                "bad_query",
                format!("view: {other:?} is not mine, unassigned or all"),
            ));
        }
    };
    let category = params.category.filter(|c| !c.is_empty());
    if let (Role::Agent, Some(c)) = (me.role, &category)
        && !me.categories.contains(c)
    {
        return Err(ApiError::Forbidden(format!("you do not serve the category {c:?}")));
    }
    let query = InboxQuery {
        holder,
        statuses: statuses(params.status.as_deref())?,
        category,
        label: params.label.filter(|l| !l.is_empty()),
        limit: limit as usize,
    };
    let records = match shared(&me, &query) {
        Some(categories) => of_categories(&state, query.clone(), categories).await?,
        None => state.store.inbox(&query).await?,
    };
    let mut counted = [0; 3];
    for (n, holder) in counted
        .iter_mut()
        .zip([Holder::Agent(me.id.clone()), Holder::Nobody, Holder::Anyone])
    {
        let view = InboxQuery {
            holder,
            label: None,
            ..query.clone()
        };
        *n = count(&state, &view, shared(&me, &view)).await?;
    }
    let defined: Vec<String> = state.store.labels().await?.into_iter().map(|l| l.id).collect();
    // Holders' names, read once for the page (none when nobody in it is held).
    let names: std::collections::HashMap<String, String> = if records.iter().any(|r| r.holder.is_some()) {
        state
            .store
            .accounts()
            .await?
            .into_iter()
            .map(|a| (a.id, a.display_name))
            .collect()
    } else {
        Default::default()
    };
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        let holder_name = record.holder.as_ref().and_then(|h| names.get(h)).cloned();
        items.push(entry(&state, record, holder_name, &defined).await?);
    }
    let [mine, unassigned, all] = counted;
    Ok(Json(InboxPage {
        items,
        counts: InboxCounts {
            mine,
            unassigned,
            all,
            statuses: query.statuses,
            category: query.category,
        },
    }))
}

/// The categories `me` reads `query` over one by one, when it is an agent's view of others'
/// work in no one category (their categories' lists, merged or summed); `None`: as it is.
fn shared<'a>(me: &'a Account, query: &InboxQuery) -> Option<&'a [String]> {
    match (me.role, &query.holder, &query.category) {
        (Role::Agent, Holder::Nobody | Holder::Anyone, None) => Some(me.categories.as_slice()),
        _ => None,
    }
}

/// How many conversations `view` asks for, over each of `categories` when given.
async fn count(state: &AppState, view: &InboxQuery, categories: Option<&[String]>) -> Result<u64, ApiError> {
    let Some(categories) = categories else {
        return Ok(state.store.count_inbox(view).await?);
    };
    let mut n = 0;
    for category in categories {
        let one = InboxQuery {
            category: Some(category.clone()),
            ..view.clone()
        };
        n += state.store.count_inbox(&one).await?;
    }
    Ok(n)
}

/// `query` over each of `categories` (an agent serves a handful), the longest waiting first
/// of them all, at most `query.limit`: each category's list is already in that order and
/// as long, so nothing past the merged list's end is missed.
async fn of_categories(
    state: &AppState,
    query: InboxQuery,
    categories: &[String],
) -> Result<Vec<ConversationRecord>, ApiError> {
    let mut records = Vec::new();
    for category in categories {
        let one = InboxQuery {
            category: Some(category.clone()),
            ..query.clone()
        };
        records.extend(state.store.inbox(&one).await?);
    }
    records.sort_by(longest_waiting_first);
    records.truncate(query.limit);
    Ok(records)
}

/// The statuses asked for; the unresolved ones when none.
fn statuses(asked: Option<&str>) -> Result<Vec<ConversationStatus>, ApiError> {
    let named = super::history::named_statuses(asked)?;
    if named.is_empty() {
        return Ok(vec![
            ConversationStatus::Open,
            ConversationStatus::Pending,
            ConversationStatus::Snoozed,
        ]);
    }
    Ok(named)
}

async fn entry(
    state: &AppState,
    record: ConversationRecord,
    holder_name: Option<String>,
    defined: &[String],
) -> Result<InboxEntry, ApiError> {
    // The record is written as the chat opens; its archive follows a moment later.
    let archived = state.store.conversation(&record.id).await.if_found()?;
    let customer_name = archived
        .as_ref()
        .map(|c| c.opened.customer_name.clone())
        .unwrap_or_default();
    let last_message = archived
        .as_ref()
        .and_then(|c| Some(super::history::line(c, c.messages.last()?)));
    Ok(InboxEntry {
        id: record.id,
        category: record.category,
        status: record.status,
        snoozed_until: record.snoozed_until,
        holder: record.holder,
        holder_name,
        status_since: record.status_since,
        opened_at: record.opened_at,
        reopens: record.reopens,
        labels: record.labels.into_iter().filter(|l| defined.contains(l)).collect(),
        customer_name,
        last_message,
        offline: record.offline,
        snooze_ended_at: record.snooze_ended_at,
    })
}
