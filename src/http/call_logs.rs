//! Call logs: `GET /api/calls` (a page, newest first) and `GET /api/calls/export` (CSV),
//! an agent's own or (admins) everyone's. Each row names its agent by display name as
//! well as by account id. The pages refresh the list by polling (the console's and the
//! admin page's `call-logs.js`, every 15 s while shown).

use std::collections::HashMap;

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiQuery, JsonResult};
use super::responses::{SignedIn, Unavailable};
use super::session::Staff;
use super::{ApiError, AppState, ErrorBody};
use crate::store::{Account, CallLog, CallPeer, Page, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(calls)).routes(routes!(export))
}

/// The most call logs one page returns.
const MAX_PAGE: u64 = 200;
/// The most call logs one export holds (the newest).
const MAX_EXPORT: u64 = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    /// Only this agent's calls (admins; agents always see only their own).
    pub agent_id: Option<String>,
    #[serde(default)]
    pub offset: u64,
    /// 1 to 200, default 50.
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this agent's calls (admins; agents always export only their own).
    pub agent_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallLogView {
    pub id: String,
    pub room_id: String,
    pub agent_id: String,
    /// The agent's display name (their account id when the account is gone).
    pub agent_name: String,
    pub peer: CallPeer,
    pub peer_name: String,
    pub guest_id: Option<String>,
    pub conversation_id: Option<String>,
    pub started_at: i64,
    pub length_secs: u64,
    /// Seconds both sides' peer connections were connected; never more than the length.
    pub connected_secs: u64,
    /// Seconds the customer's (guest's) camera was on; never more than the length.
    pub camera_secs: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallLogPage {
    pub total: u64,
    pub items: Vec<CallLogView>,
}

/// Account id → display name.
async fn agent_names(state: &AppState) -> Result<HashMap<String, String>, ApiError> {
    Ok(state
        .store
        .accounts()
        .await?
        .into_iter()
        .map(|a: Account| (a.id, a.display_name))
        .collect())
}

fn view(l: CallLog, names: &HashMap<String, String>) -> CallLogView {
    CallLogView {
        agent_name: names.get(&l.agent_id).cloned().unwrap_or_else(|| l.agent_id.clone()),
        id: l.id,
        room_id: l.room_id,
        agent_id: l.agent_id,
        peer: l.peer,
        peer_name: l.peer_name,
        guest_id: l.guest_id,
        conversation_id: l.conversation_id,
        started_at: l.started_at,
        length_secs: l.length_secs,
        connected_secs: l.connected_secs,
        camera_secs: l.camera_secs,
    }
}

/// Whose calls `account` may see: admins anyone's (all, or the one asked for); agents their own.
fn whose(account: &Account, asked: Option<String>) -> Option<String> {
    match account.role {
        Role::Admin => asked.filter(|a| !a.is_empty()),
        Role::Agent => Some(account.id.clone()),
    }
}

/// Call logs, newest first: an agent's own, or (admins) everyone's.
#[utoipa::path(get, path = "/api/calls", tag = "rooms",
    params(CallsQuery),
    responses(
        (status = 200, body = CallLogPage),
        (status = 400, description = "`bad_query`: a parameter is malformed; `invalid_limit`: limit outside 1–200", body = ErrorBody),
        SignedIn, Unavailable))]
async fn calls(Staff(account, state): Staff, ApiQuery(query): ApiQuery<CallsQuery>) -> JsonResult<CallLogPage> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", format!("limit is 1 to {MAX_PAGE}")));
    }
    let agent = whose(&account, query.agent_id);
    let page = Page {
        offset: query.offset,
        limit,
    };
    let (items, total) = state.store.call_logs(agent.as_deref(), page).await?;
    let names = agent_names(&state).await?;
    Ok(Json(CallLogPage {
        total,
        items: items.into_iter().map(|l| view(l, &names)).collect(),
    }))
}

/// The CSV of call logs: a header row, then one row per call, newest first.
fn csv_of(rows: &[CallLogView]) -> Result<Vec<u8>, ApiError> {
    let internal = |e: csv::Error| ApiError::Internal(format!("writing the call log CSV: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "started_at",
        "agent_id",
        "agent_name",
        "peer",
        "peer_name",
        "length_secs",
        "connected_secs",
        "camera_secs",
        "room_id",
        "conversation_id",
        "id",
    ])
    .map_err(internal)?;
    for r in rows {
        let started = jiff::Timestamp::from_millisecond(r.started_at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let peer = match r.peer {
            CallPeer::Customer => "customer",
            CallPeer::Guest => "guest",
        };
        out.write_record([
            started.as_str(),
            &r.agent_id,
            &r.agent_name,
            peer,
            &r.peer_name,
            &r.length_secs.to_string(),
            &r.connected_secs.to_string(),
            &r.camera_secs.to_string(),
            &r.room_id,
            r.conversation_id.as_deref().unwrap_or(""),
            &r.id,
        ])
        .map_err(internal)?;
    }
    out.into_inner()
        .map_err(|e| ApiError::Internal(format!("writing the call log CSV: {e}")))
}

/// Call logs as a CSV file (RFC 4180, UTF-8, a header row; `started_at` in RFC 3339 UTC),
/// newest first: an agent's own, or (admins) everyone's or one agent's.
#[utoipa::path(get, path = "/api/calls/export", tag = "rooms",
    params(ExportQuery),
    responses(
        (status = 200, description = "`text/csv`, as an attachment `call-logs.csv`: columns started_at, \
            agent_id, agent_name, peer, peer_name, length_secs, connected_secs, camera_secs, room_id, \
            conversation_id, id", content_type = "text/csv", body = String),
        (status = 400, description = "`bad_query`", body = ErrorBody),
        SignedIn, Unavailable))]
async fn export(Staff(account, state): Staff, ApiQuery(query): ApiQuery<ExportQuery>) -> Result<Response, ApiError> {
    let agent = whose(&account, query.agent_id);
    let page = Page {
        offset: 0,
        limit: MAX_EXPORT,
    };
    let (items, _) = state.store.call_logs(agent.as_deref(), page).await?;
    let names = agent_names(&state).await?;
    let rows: Vec<CallLogView> = items.into_iter().map(|l| view(l, &names)).collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"call-logs.csv\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        csv_of(&rows)?,
    )
        .into_response())
}
