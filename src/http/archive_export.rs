//! Archive exports: one conversation, or every conversation a listing (its filters and
//! search) finds, as a CSV or JSON file to download.
//!
//! - Who may export what is the archive's own rule (`history.rs`): agents only the
//!   conversations they served, admins any; an agent's request for another agent's
//!   conversation is a 404, as when reading it.
//! - CSV: one row per message (a conversation without messages has one row with the
//!   message columns empty) carrying its conversation's columns, an agent line's author in
//!   the last (`message_agent_name`: the conversation's `agent_name` is whoever has it
//!   now), RFC 4180 quoting by the
//!   `csv` crate, times in RFC 3339 UTC. A cell a spreadsheet would take for a formula
//!   (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a `'` in front
//!   ([`cell`], the OWASP advice against CSV injection): customers write these texts.
//! - JSON: the conversations whole (customer details, messages, transfers), as the
//!   archive's API reads them.
//! - Files: each message's, by name and size in the CSV's `attachments` column, and with
//!   their ids, types and sizes in the JSON. Never a link: links expire within minutes
//!   (`attachments::links`) and an export is read long after; staff ask for one by id
//!   (`GET /api/attachments/{id}/link`), under the hub's access rules.
//! - Agents' internal notes are never exported: a file leaves the hub's access rules
//!   (it is mailed, attached to a ticket, handed to a customer asking for their data),
//!   and notes are for staff in the archive only.
//! - At most [`MAX_EXPORT`] conversations in one file: more is refused (`export_too_large`)
//!   before any file is made, never silently cut.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::ApiQuery;
use super::history::{ExportedConversation, ListingQuery, exported, found, readable, with_desk_state};
use super::responses::{NotServed, SignedIn, Unavailable};
use super::session::Staff;
use super::{ApiError, AppState, ErrorBody};
use crate::store::{ConversationFilter, EndReason, Page, Side};

/// The most conversations one export holds.
pub const MAX_EXPORT: u64 = 1_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_listing))
        .routes(routes!(export_one))
}

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

fn format_of(asked: Option<&str>) -> Result<Format, ApiError> {
    match asked.unwrap_or("csv") {
        "csv" => Ok(Format::Csv),
        "json" => Ok(Format::Json),
        _ => Err(ApiError::invalid("bad_query", "format must be csv or json")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatQuery {
    /// `csv` (the default) or `json`.
    pub format: Option<String>,
}

/// A JSON export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveExport {
    /// When the file was made (ms since the Unix epoch).
    pub exported_at: i64,
    /// Newest paired first.
    pub conversations: Vec<ExportedConversation>,
}

/// Every conversation the archive's listing finds (its filters and `q`), as one file.
#[utoipa::path(get, path = "/api/conversations/export", tag = "history", params(FormatQuery, ListingQuery),
    responses(
        (status = 200, description = "An attachment, `conversations.csv` or `conversations.json`, newest \
            first. CSV (`text/csv`, UTF-8, RFC 4180, a header row): one row per message with the columns \
            conversation_id, kind, category, customer_name, customer_email, agent_id, agent_name, paired_at, \
            ended_at, end_reason, rating, status, labels (label ids, space-separated), seq, message_id, from, at, text, \
            attachments (the message's files as `name (size bytes)`, joined with `; `), message_agent_name (an agent \
            line's author, as the JSON's `agent_name`; empty for the customer's) (times RFC 3339 UTC; a cell starting \
            with = + - @, a tab or a carriage return has a ' put in front). JSON (`format=json`, \
            `application/json`): the conversations whole, each message's files with their id, name, type and size \
            (no link: links expire; ask `GET /api/attachments/{id}/link`). Agents' notes are never exported.",
            content((String = "text/csv"), (ArchiveExport = "application/json"))),
        (status = 400, description = "`bad_query`: a parameter is malformed, `q` or `status` refused (as for the listing), \
            or `format` not csv or json; `export_too_large`: more than 1,000 conversations match", body = ErrorBody),
        SignedIn, Unavailable))]
async fn export_listing(
    Staff(me, state): Staff,
    ApiQuery(format): ApiQuery<FormatQuery>,
    ApiQuery(listing): ApiQuery<ListingQuery>,
) -> Result<Response, ApiError> {
    let format = format_of(format.format.as_deref())?;
    let filter: ConversationFilter = listing.filter_for(&me)?;
    let page = Page {
        offset: 0,
        limit: MAX_EXPORT,
    };
    let (found_ones, total) = state.store.conversations(&filter, page).await?;
    if total > MAX_EXPORT {
        return Err(ApiError::invalid(
            "export_too_large",
            format!(
                "{total} conversations match; an export holds at most {MAX_EXPORT}: narrow the filters or the search"
            ),
        ));
    }
    let mut conversations: Vec<ExportedConversation> = found_ones
        .iter()
        .map(|c| exported(c, found(c, filter.text.as_ref())))
        .collect();
    with_desk_state(&state, conversations.iter_mut().map(|c| &mut c.summary)).await?;
    file(format, "conversations", conversations)
}

/// One conversation as a file. Agents may export only those they served at any point.
#[utoipa::path(get, path = "/api/conversations/{id}/export", tag = "history",
    params(("id" = String, Path, description = "the conversation id"), FormatQuery),
    responses(
        (status = 200, description = "An attachment, `conversation-<id>.csv` or `.json`: the CSV and JSON of \
            `GET /api/conversations/export` for this one conversation",
            content((String = "text/csv"), (ArchiveExport = "application/json"))),
        (status = 400, description = "`bad_query`: `format` not csv or json", body = ErrorBody),
        NotServed, SignedIn, Unavailable))]
async fn export_one(
    Staff(me, state): Staff,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> Result<Response, ApiError> {
    let format = format_of(q.format.as_deref())?;
    let c = readable(&state, &me, &id).await?;
    let name = format!("conversation-{}", file_safe(&c.opened.id));
    let mut one = exported(&c, found(&c, None));
    with_desk_state(&state, [&mut one.summary]).await?;
    file(format, &name, vec![one])
}

/// `id` as a file name: letters, digits, `-` and `_` kept, anything else `_`.
fn file_safe(id: &str) -> String {
    id.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn file(format: Format, name: &str, conversations: Vec<ExportedConversation>) -> Result<Response, ApiError> {
    let (content_type, extension, body) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", csv_of(&conversations)?),
        Format::Json => {
            let export = ArchiveExport {
                exported_at: crate::clock::now_ms(),
                conversations,
            };
            let body = serde_json::to_vec_pretty(&export)
                .map_err(|e| ApiError::Internal(format!("writing the archive export: {e}")))?;
            ("application/json", "json", body)
        }
    };
    let disposition = format!("attachment; filename=\"{name}.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// The CSV's columns.
pub const CSV_COLUMNS: [&str; 20] = [
    "conversation_id",
    "kind",
    "category",
    "customer_name",
    "customer_email",
    "agent_id",
    "agent_name",
    "paired_at",
    "ended_at",
    "end_reason",
    "rating",
    "status",
    "labels",
    "seq",
    "message_id",
    "from",
    "at",
    "text",
    "attachments",
    // Last, so a reader of the columns before it by position reads them as it did.
    "message_agent_name",
];

/// A cell as written: one a spreadsheet would run as a formula gets a `'` in front.
pub fn cell(value: &str) -> std::borrow::Cow<'_, str> {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}").into(),
        _ => value.into(),
    }
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn snake<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A message's files as its CSV cell: `name (size bytes)` each, joined with `; ` (empty
/// for none). No link: links expire within minutes and the file outlives them; staff
/// ask for one by the file's id, which the JSON export carries.
fn files_cell(files: &[crate::attachments::AttachmentMeta]) -> String {
    files
        .iter()
        .map(|f| format!("{} ({} bytes)", f.name, f.size))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The CSV of `conversations` (see the module comment).
pub fn csv_of(conversations: &[ExportedConversation]) -> Result<Vec<u8>, ApiError> {
    let internal = |e: csv::Error| ApiError::Internal(format!("writing the archive CSV: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_COLUMNS).map_err(internal)?;
    for c in conversations {
        let s = &c.summary;
        let rating = s.rating.as_ref().map(|r| r.score.to_string()).unwrap_or_default();
        let reason = s.reason.map(|r: EndReason| snake(&r)).unwrap_or_default();
        let ended_at = s.ended_at.map(time).unwrap_or_default();
        let head = [
            s.id.clone(),
            snake(&s.kind),
            s.category.clone().unwrap_or_default(),
            s.customer_name.clone(),
            c.customer.email.clone().unwrap_or_default(),
            s.agent_id.clone(),
            s.agent_name.clone(),
            time(s.paired_at),
            ended_at,
            reason,
            rating,
            snake(&s.status),
            s.labels.join(" "),
        ];
        let mut row = |message: [String; 7]| {
            out.write_record(head.iter().chain(message.iter()).map(|v| cell(v).into_owned()))
                .map_err(internal)
        };
        if c.messages.is_empty() {
            row(Default::default())?;
        }
        for line in &c.messages {
            let m = &line.message;
            row([
                m.seq.to_string(),
                m.id.clone(),
                snake::<Side>(&m.from),
                time(m.at),
                m.text.clone(),
                files_cell(&m.attachments),
                line.agent_name.clone().unwrap_or_default(),
            ])?;
        }
    }
    out.into_inner()
        .map_err(|e| ApiError::Internal(format!("writing the archive CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_others_kept() {
        for hostile in ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(cell(hostile), format!("'{hostile}"));
        }
        for plain in ["", "hello", "1+1", " =x", "'quoted", "2026-01-01T00:00:00Z"] {
            assert_eq!(cell(plain), plain);
        }
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_safe("0190-ab_C"), "0190-ab_C");
        assert_eq!(file_safe("a\"b/../c\r\n"), "a_b____c__");
    }

    #[test]
    fn formats_are_csv_by_default_else_named() {
        assert_eq!(format_of(None).unwrap(), Format::Csv);
        assert_eq!(format_of(Some("json")).unwrap(), Format::Json);
        assert!(format_of(Some("xlsx")).is_err());
        assert!(format_of(Some("CSV")).is_err());
    }
}
