//! The support manager's reports over HTTP, for admins: per day and category, per agent,
//! and in total, as JSON or CSV (`GET /api/reports`). The store gives the facts of the
//! range, this adapter gives each its day in the report's time zone, and
//! `core::reports` computes the numbers (its module comment defines each).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::ApiQuery;
use super::responses::{AdminsOnly, Unavailable};
use super::session::AdminOrReader;
use super::{ApiError, AppState, ErrorBody};
use crate::core::reports::{self, AbandonFact, ConversationFact, Figures, OfflineFact, Score};
use crate::store::{ConversationRecord, ConversationStatus, RatingScale, ReportFacts};

/// The longest range one report covers (days).
const MAX_DAYS: i64 = 366;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The first day, `YYYY-MM-DD`, in `zone`.
    #[param(example = "2026-03-02")]
    pub from: String,
    /// The last day (included), `YYYY-MM-DD`: at most 366 days from `from` to `to`, both
    /// counted.
    #[param(example = "2026-03-08")]
    pub to: String,
    /// An IANA time zone the days are counted in; default the desk's
    /// (`APPOINTMENT_TIME_ZONE`).
    #[param(example = "Europe/Paris")]
    pub zone: Option<String>,
    /// Only this category id.
    pub category: Option<String>,
    /// Only conversations carrying this label id (customers who left the line and offline
    /// messages carry none, so they are left out).
    pub label: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// The numbers of one row; durations in milliseconds, `null` where nothing was measured.
#[derive(Debug, Serialize, ToSchema)]
pub struct FiguresView {
    /// Service conversations paired (served).
    pub conversations: u64,
    /// Customers who left the line before any agent served them.
    pub abandoned: u64,
    pub wait_median_ms: Option<i64>,
    pub wait_p90_ms: Option<i64>,
    pub first_response_median_ms: Option<i64>,
    pub first_response_p90_ms: Option<i64>,
    /// Conversations in which no agent wrote.
    pub unanswered: u64,
    pub handle_median_ms: Option<i64>,
    pub handle_p90_ms: Option<i64>,
    /// Star ratings given, and their average (1 to 5).
    pub rating_count: u64,
    pub rating_average: Option<f64>,
    pub thumbs_up: u64,
    pub thumbs_down: u64,
    /// Offline messages left, handled, and the time from left to handled.
    pub offline_messages: u64,
    pub offline_handled: u64,
    pub offline_handle_median_ms: Option<i64>,
    pub offline_handle_p90_ms: Option<i64>,
    /// Conversations resolved at least once, those of them opened again by their customer,
    /// and reopened ÷ resolved (null without a resolved one).
    pub resolved: u64,
    pub reopened: u64,
    pub reopen_rate: Option<f64>,
    /// From opening to the last resolve, over conversations resolved now.
    pub resolution_median_ms: Option<i64>,
    pub resolution_p90_ms: Option<i64>,
    /// Conversations a bot opened and kept (it still has them, or they ended with it).
    pub bot_resolved: u64,
    /// Conversations a bot opened and handed over to people.
    pub bot_handed_over: u64,
}

impl From<&Figures> for FiguresView {
    fn from(f: &Figures) -> Self {
        Self {
            conversations: f.conversations,
            abandoned: f.abandoned,
            wait_median_ms: f.wait.median_ms,
            wait_p90_ms: f.wait.p90_ms,
            first_response_median_ms: f.first_response.median_ms,
            first_response_p90_ms: f.first_response.p90_ms,
            unanswered: f.unanswered,
            handle_median_ms: f.handle.median_ms,
            handle_p90_ms: f.handle.p90_ms,
            rating_count: f.stars_count,
            rating_average: f.stars_average.map(|a| (a * 100.0).round() / 100.0),
            thumbs_up: f.thumbs_up,
            thumbs_down: f.thumbs_down,
            offline_messages: f.offline_messages,
            offline_handled: f.offline_handled,
            offline_handle_median_ms: f.offline_handle.median_ms,
            offline_handle_p90_ms: f.offline_handle.p90_ms,
            resolved: f.resolved,
            reopened: f.reopened,
            reopen_rate: f.reopen_rate.map(|r| (r * 1000.0).round() / 1000.0),
            resolution_median_ms: f.resolution.median_ms,
            resolution_p90_ms: f.resolution.p90_ms,
            bot_resolved: f.bot_resolved,
            bot_handed_over: f.bot_handed_over,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayRowView {
    /// `YYYY-MM-DD` in the report's zone.
    pub day: String,
    pub category: String,
    /// Its name now (the id when it was removed since).
    pub category_name: String,
    #[serde(flatten)]
    pub figures: FiguresView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayTotalView {
    /// `YYYY-MM-DD` in the report's zone.
    pub day: String,
    #[serde(flatten)]
    pub figures: FiguresView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentRowView {
    pub agent_id: String,
    pub agent_name: String,
    #[serde(flatten)]
    pub figures: FiguresView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelRowView {
    pub label: String,
    /// Its name now (the id when it was deleted since).
    pub label_name: String,
    #[serde(flatten)]
    pub figures: FiguresView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    pub from: String,
    pub to: String,
    pub zone: String,
    /// A row per day and category with anything in it, by day then category id.
    pub days: Vec<DayRowView>,
    /// A row per day with anything in it, every category (of the report) together.
    pub day_totals: Vec<DayTotalView>,
    /// A row per agent with a conversation or a handled offline message, by agent id.
    pub agents: Vec<AgentRowView>,
    /// A row per label carried by a conversation of the report, by label id (a conversation
    /// with two labels counts in both).
    pub labels: Vec<LabelRowView>,
    pub totals: FiguresView,
}

/// Reports of the desk: conversations, customers who left unserved, waits (median and
/// 90th percentile), first response and handle times, ratings and offline messages, per
/// day and category, per agent and in total. Computed from the archive.
#[utoipa::path(get, path = "/api/reports", tag = "admin", params(ReportQuery),
    responses(
        (status = 200, description = "the report (`format=csv`: `text/csv` as an attachment `report-<from>-<to>.csv`, \
            a row per day and category (`scope` day), per agent (`scope` agent), per label (`scope` label) and the totals (`scope` total), \
            the columns of `FiguresView` after scope, day, category, category_name, agent_id, agent_name, then label, label_name)",
            body = ReportView),
        (status = 400, description = "`bad_query`, `invalid_date`, `invalid_range` (to before from, or over 366 days from from to to, both counted), \
            `invalid_zone`, `invalid_format`", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn report(
    AdminOrReader(_me): AdminOrReader,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("invalid_format", "format is json or csv")),
    };
    let zone = match query.zone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|_| ApiError::invalid("invalid_zone", "zone is not an IANA time zone name"))?,
        None => state.settings.appointments.zone.clone(),
    };
    let date = |s: &str| {
        s.trim()
            .parse::<jiff::civil::Date>()
            .map_err(|_| ApiError::invalid("invalid_date", "from and to are dates, YYYY-MM-DD"))
    };
    let (first, last) = (date(&query.from)?, date(&query.to)?);
    let days = (last - first).get_days();
    if days < 0 || (days as i64) >= MAX_DAYS {
        return Err(ApiError::invalid(
            "invalid_range",
            "to is from or a later day, at most 366 days on",
        ));
    }
    let start = |d: jiff::civil::Date| {
        d.to_zoned(zone.clone())
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|_| ApiError::invalid("invalid_date", "that day does not exist in the zone"))
    };
    let from_ms = start(first)?;
    let after = last
        .tomorrow()
        .map_err(|_| ApiError::invalid("invalid_date", "to is out of range"))?;
    let to_ms = start(after)?;
    let mut facts = state.store.report_facts(from_ms, to_ms).await?;
    let records = desk_state(&state, &facts).await?;
    // An offline message's conversation counts once, as the offline message it began as.
    facts
        .conversations
        .retain(|c| !records.get(&c.id).is_some_and(|r| r.offline));
    let label_names = names_by_id(state.store.labels().await?, |l| (l.id, l.name));
    let names = names_by_id(state.store.accounts().await?, |a| (a.id, a.display_name));
    let category_names = names_by_id(state.store.categories().await?, |c| (c.id, c.name));
    let wanted = Wanted {
        category: query.category.as_deref().filter(|c| !c.is_empty()),
        label: query.label.as_deref().filter(|l| !l.is_empty()),
    };
    let computed = compute(facts, &records, &zone, wanted, &names);
    let view = ReportView {
        from: first.to_string(),
        to: last.to_string(),
        zone: zone_name(&zone),
        days: computed
            .days
            .iter()
            .map(|d| DayRowView {
                category_name: category_names
                    .get(&d.category)
                    .cloned()
                    .unwrap_or_else(|| d.category.clone()),
                day: d.day.clone(),
                category: d.category.clone(),
                figures: (&d.figures).into(),
            })
            .collect(),
        day_totals: computed
            .day_totals
            .iter()
            .map(|d| DayTotalView {
                day: d.day.clone(),
                figures: (&d.figures).into(),
            })
            .collect(),
        agents: computed
            .agents
            .iter()
            .map(|a| AgentRowView {
                agent_id: a.agent_id.clone(),
                agent_name: a.agent_name.clone(),
                figures: (&a.figures).into(),
            })
            .collect(),
        labels: computed
            .labels
            .iter()
            .map(|l| LabelRowView {
                label_name: label_names.get(&l.label).cloned().unwrap_or_else(|| l.label.clone()),
                label: l.label.clone(),
                figures: (&l.figures).into(),
            })
            .collect(),
        totals: (&computed.totals).into(),
    };
    if csv {
        let name = format!("attachment; filename=\"report-{}-{}.csv\"", view.from, view.to);
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, name),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            csv_of(&view)?,
        )
            .into_response());
    }
    Ok(axum::Json(view).into_response())
}

/// The names of `records` by their ids (labels', agents', categories'), to name the rows.
fn names_by_id<T>(records: Vec<T>, id_and_name: impl Fn(T) -> (String, String)) -> HashMap<String, String> {
    records.into_iter().map(id_and_name).collect()
}

/// The zone's IANA name, else its fixed offset ("UTC+05:30").
fn zone_name(zone: &jiff::tz::TimeZone) -> String {
    match (zone.iana_name(), zone.to_fixed_offset()) {
        (Some(name), _) => name.to_string(),
        (None, Ok(offset)) => format!("UTC{offset}"),
        (None, Err(_)) => "UTC".to_string(),
    }
}

/// How many conversations' records one read asks for.
const RECORDS_AT_ONCE: usize = 500;

/// The records (status, reopens, labels) of the report's conversations, by id.
async fn desk_state(state: &AppState, facts: &ReportFacts) -> Result<HashMap<String, ConversationRecord>, ApiError> {
    let ids: Vec<String> = facts.conversations.iter().map(|c| c.id.clone()).collect();
    let mut records = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(RECORDS_AT_ONCE) {
        for record in state.store.conversation_records(chunk).await? {
            records.insert(record.id.clone(), record);
        }
    }
    Ok(records)
}

/// Which facts a report counts.
#[derive(Clone, Copy)]
struct Wanted<'a> {
    category: Option<&'a str>,
    label: Option<&'a str>,
}

/// The report of `facts` (with their conversations' `records`), each given its day in
/// `zone`; only what `wanted` names.
fn compute(
    facts: ReportFacts,
    records: &HashMap<String, ConversationRecord>,
    zone: &jiff::tz::TimeZone,
    wanted: Wanted<'_>,
    names: &HashMap<String, String>,
) -> reports::Report {
    let day = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_zoned(zone.clone()).date().to_string())
            .unwrap_or_default()
    };
    // Customers who left the line and offline messages carry no label.
    let wanted_uncounted = |c: &str| wanted.label.is_none() && wanted.category.is_none_or(|want| want == c);
    let conversations: Vec<ConversationFact> = facts
        .conversations
        .into_iter()
        .filter_map(|c| {
            let cat = c.category.clone().unwrap_or_default();
            let record = records.get(&c.id);
            let labels = record.map(|r| r.labels.clone()).unwrap_or_default();
            let in_category = wanted.category.is_none_or(|want| want == cat);
            let labelled = wanted.label.is_none_or(|want| labels.iter().any(|l| l == want));
            // A conversation archived before statuses were kept has no record: it ended, so
            // it was resolved once (as the archive's migration reads it).
            let resolved = record.map_or_else(|| c.ended_at.is_some(), |r| r.resolutions > 0);
            let resolution_ms = match record {
                Some(r) if r.status == ConversationStatus::Resolved => r.resolved_at.map(|at| at - r.opened_at),
                Some(_) => None,
                None => c.ended_at.map(|at| at - c.paired_at),
            };
            let times = reports::Times {
                queued_at: c.queued_at,
                paired_at: c.paired_at,
                first_agent_at: c.first_agent_at,
                ended_at: c.ended_at,
            };
            let (wait_ms, first_response_ms, handle_ms) = reports::durations(times, c.bot);
            (in_category && labelled).then(|| ConversationFact {
                resolved,
                reopened: record.is_some_and(|r| r.reopens > 0),
                resolution_ms,
                labels,
                bot: c.bot,
                day: day(c.paired_at),
                category: cat,
                wait_ms,
                first_response_ms,
                handle_ms,
                score: c.rating.map(|(scale, score)| match scale {
                    RatingScale::Stars => Score::Stars(score),
                    RatingScale::Thumbs if score >= 1 => Score::ThumbUp,
                    RatingScale::Thumbs => Score::ThumbDown,
                }),
                agent_name: names.get(&c.agent_id).cloned().unwrap_or(c.agent_name),
                agent_id: c.agent_id,
            })
        })
        .collect();
    let abandoned: Vec<AbandonFact> = facts
        .abandoned
        .into_iter()
        .filter(|a| wanted_uncounted(&a.category))
        .map(|a| AbandonFact {
            day: day(a.left_at),
            category: a.category,
        })
        .collect();
    let offline: Vec<OfflineFact> = facts
        .offline
        .into_iter()
        .filter(|o| wanted_uncounted(&o.category))
        .map(|o| OfflineFact {
            day: day(o.created_at),
            handled: o.handled.map(|(agent, at)| {
                let name = names.get(&agent).cloned().unwrap_or_else(|| agent.clone());
                (agent, name, at.map(|at| at - o.created_at))
            }),
            category: o.category,
        })
        .collect();
    reports::report(&conversations, &abandoned, &offline)
}

/// A cell a spreadsheet would not run as a formula: one starting with `=`, `+`, `-`, `@`
/// (or a tab or carriage return) gets a leading `'`.
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

const FIGURE_COLUMNS: [&str; 24] = [
    "conversations",
    "abandoned",
    "wait_median_ms",
    "wait_p90_ms",
    "first_response_median_ms",
    "first_response_p90_ms",
    "unanswered",
    "handle_median_ms",
    "handle_p90_ms",
    "rating_count",
    "rating_average",
    "thumbs_up",
    "thumbs_down",
    "offline_messages",
    "offline_handled",
    "offline_handle_median_ms",
    "offline_handle_p90_ms",
    "resolved",
    "reopened",
    "reopen_rate",
    "resolution_median_ms",
    "resolution_p90_ms",
    "bot_resolved",
    "bot_handed_over",
];

fn figure_cells(f: &FiguresView) -> Vec<String> {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    vec![
        f.conversations.to_string(),
        f.abandoned.to_string(),
        opt(f.wait_median_ms),
        opt(f.wait_p90_ms),
        opt(f.first_response_median_ms),
        opt(f.first_response_p90_ms),
        f.unanswered.to_string(),
        opt(f.handle_median_ms),
        opt(f.handle_p90_ms),
        f.rating_count.to_string(),
        f.rating_average.map(|a| a.to_string()).unwrap_or_default(),
        f.thumbs_up.to_string(),
        f.thumbs_down.to_string(),
        f.offline_messages.to_string(),
        f.offline_handled.to_string(),
        opt(f.offline_handle_median_ms),
        opt(f.offline_handle_p90_ms),
        f.resolved.to_string(),
        f.reopened.to_string(),
        f.reopen_rate.map(|r| r.to_string()).unwrap_or_default(),
        opt(f.resolution_median_ms),
        opt(f.resolution_p90_ms),
        f.bot_resolved.to_string(),
        f.bot_handed_over.to_string(),
    ]
}

fn csv_of(view: &ReportView) -> Result<Vec<u8>, ApiError> {
    let internal = |e: csv::Error| ApiError::Internal(format!("writing the report CSV: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["scope", "day", "category", "category_name", "agent_id", "agent_name"];
    header.extend(FIGURE_COLUMNS);
    // Added after the figures, so the columns before them stay where they were.
    header.extend(["label", "label_name"]);
    out.write_record(&header).map_err(internal)?;
    // scope, day, category, category_name, agent_id, agent_name; the figures; label, label_name.
    let mut write = |head: [String; 6], figures: &FiguresView, tail: [String; 2]| {
        let row: Vec<String> = head.into_iter().chain(figure_cells(figures)).chain(tail).collect();
        out.write_record(&row).map_err(internal)
    };
    let none = String::new;
    for d in &view.days {
        let head = [
            "day".into(),
            d.day.clone(),
            cell(&d.category),
            cell(&d.category_name),
            none(),
            none(),
        ];
        write(head, &d.figures, [none(), none()])?;
    }
    for a in &view.agents {
        let head = [
            "agent".into(),
            none(),
            none(),
            none(),
            cell(&a.agent_id),
            cell(&a.agent_name),
        ];
        write(head, &a.figures, [none(), none()])?;
    }
    for l in &view.labels {
        let head = ["label".into(), none(), none(), none(), none(), none()];
        write(head, &l.figures, [cell(&l.label), cell(&l.label_name)])?;
    }
    let head = ["total".into(), none(), none(), none(), none(), none()];
    write(head, &view.totals, [none(), none()])?;
    out.into_inner()
        .map_err(|e| ApiError::Internal(format!("writing the report CSV: {e}")))
}
