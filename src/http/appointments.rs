//! The appointments API (issue 17): the public slot list, booking and cancelling by the
//! link's token; an agent's day and an admin's range, and cancelling by staff.
//!
//! Whether a start is a slot, in the past or too soon is `core::schedule`'s rule; who
//! serves it is `core::representatives`'; that a slot is booked once per representative
//! is decided by the store's unique key, never here: this module only retries another
//! free representative when the store refuses the first.
//!
//! The confirmation and cancellation mail (`appointments::mails`) are written by the same
//! store call as the booking or cancellation (the outbox); a worker sends them
//! (`appointments::mailer`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access::ClientIp;
use super::error::ErrorDetail;
use super::responses::{AdminsOnly, SignedIn, Unavailable};
use super::session::{AdminOnly, Authed};
use super::{ApiError, AppState, ErrorBody};
use crate::appointments::mails;
use crate::core::guesses::{FailedGuesses, GuessLimit};
use crate::core::names::checked_name;
use crate::core::representatives::{Candidate, choose};
use crate::core::schedule::{Calendar, Slot};
use crate::store::{Account, Appointment, AppointmentStatus, Cancellation, Millis, Role, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(slots))
        .routes(routes!(book))
        .routes(routes!(show_by_token, cancel_by_token))
        .routes(routes!(agent_day))
        .routes(routes!(agent_cancel))
        .routes(routes!(admin_list))
        .routes(routes!(admin_cancel))
}

/// Longest comment a booking may carry, in characters.
const MAX_COMMENT: usize = 2_000;
/// Longest email address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;
/// Most local days one admin listing may span.
const MAX_RANGE_DAYS: i32 = 92;

/// Addresses remembered at most; at capacity the one closest to recovery makes room.
const BOOKING_THROTTLE_CAPACITY: usize = 10_000;

/// Bookings per client address (an IPv6 address by its /64), as a leaky bucket
/// (`core::guesses`): an address may make `APPOINTMENT_BOOKING_BURST` bookings back to
/// back, then earns one back per `APPOINTMENT_BOOKING_REFILL_SECS` (a customer books one or
/// two; a script booking every slot of a week is held back). Only bookings that succeed
/// count; addresses in `AGENT_WHITELIST` (the desk itself, booking for callers) are not
/// limited. In memory, per node.
pub struct BookingThrottle {
    made: std::sync::Mutex<FailedGuesses<std::net::IpAddr>>,
}

impl BookingThrottle {
    pub fn new(settings: &crate::config::Settings) -> Self {
        let limit = GuessLimit {
            burst: settings.appointment_booking_burst,
            refill: settings.appointment_booking_refill,
        };
        BookingThrottle {
            made: std::sync::Mutex::new(FailedGuesses::new(limit, BOOKING_THROTTLE_CAPACITY)),
        }
    }
}

impl BookingThrottle {
    fn with<T>(&self, f: impl FnOnce(&mut FailedGuesses<std::net::IpAddr>) -> T) -> T {
        // Plain counters: a panic elsewhere mid-update leaves nothing inconsistent.
        f(&mut self.made.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// An error with its own code (the shared `ApiError` codes are generic).
enum Refusal {
    Api(ApiError),
    Coded(StatusCode, &'static str, String),
    /// 429 `too_many_bookings` with `Retry-After`.
    Throttled(std::time::Duration),
}

impl Refusal {
    fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal::Coded(status, code, message.into())
    }
}

impl<E: Into<ApiError>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Api(e.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Api(e) => e.into_response(),
            Refusal::Throttled(wait) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: "too_many_bookings".to_string(),
                        message: format!("too many bookings from this address; try again in {seconds} s"),
                    },
                };
                let retry_after = [(axum::http::header::RETRY_AFTER, seconds.max(1).to_string())];
                (StatusCode::TOO_MANY_REQUESTS, retry_after, Json(body)).into_response()
            }
            Refusal::Coded(status, code, message) => (
                status,
                Json(ErrorBody {
                    error: ErrorDetail {
                        code: code.to_string(),
                        message,
                    },
                }),
            )
                .into_response(),
        }
    }
}

fn bad_query(e: QueryRejection) -> Refusal {
    Refusal::Api(ApiError::invalid("bad_query", e.body_text()))
}

/// The desk's calendar for labels and day bounds (the zone; the settings' hours).
fn calendar(state: &AppState) -> Calendar {
    calendar_with(state, state.settings.appointment_hours.clone())
}

fn calendar_with(state: &AppState, hours: crate::core::schedule::Hours) -> Calendar {
    let notice = SignedDuration::try_from(state.settings.appointment_min_notice).unwrap_or(SignedDuration::MAX);
    Calendar::new(state.settings.appointment_zone.clone(), hours, notice)
}

/// The calendar whose slots apply to `category`: the hours an admin set (the
/// category's own, else the desk's), else the settings'.
async fn calendar_for(state: &AppState, category: Option<&str>) -> Result<Calendar, Refusal> {
    let hours = super::appointment_hours::hours_for(state, category).await?;
    Ok(calendar_with(state, hours))
}

/// What the desk's mails share: its zone and its From address.
fn desk(state: &AppState) -> mails::Desk<'_> {
    mails::Desk {
        zone: &state.settings.appointment_zone,
        organizer: mails::address_of(&state.settings.mail_from),
    }
}

/// The desk's public address for links in mail: `PUBLIC_URL`, else what the request was sent to.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.clone();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn zone_name(state: &AppState) -> String {
    state.settings.appointment_zone.iana_name().unwrap_or("UTC").to_string()
}

fn parse_date(raw: &str) -> Result<Date, Refusal> {
    raw.trim().parse::<Date>().map_err(|_| {
        Refusal::Api(ApiError::invalid(
            "bad_date",
            format!("{raw:?} is not a date YYYY-MM-DD"),
        ))
    })
}

fn millis(at: Timestamp) -> Millis {
    at.as_millisecond()
}

fn instant(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `[start, end)` of a local day in the desk's zone, in ms.
fn day_bounds(calendar: &Calendar, day: Date) -> Result<(Millis, Millis), Refusal> {
    let out_of_range = || Refusal::Api(ApiError::invalid("bad_date", format!("{day} is out of range")));
    let start = day.to_zoned(calendar.zone().clone()).map_err(|_| out_of_range())?;
    let end = day
        .tomorrow()
        .and_then(|d| d.to_zoned(calendar.zone().clone()))
        .map_err(|_| out_of_range())?;
    Ok((millis(start.timestamp()), millis(end.timestamp())))
}

/// `2026-06-15 10:00`: an instant on the desk's wall clock.
fn local_label(calendar: &Calendar, at: Timestamp) -> String {
    at.to_zoned(calendar.zone().clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// Enabled agents who may serve `category` (any agent when none is given), by id.
async fn eligible(state: &AppState, category: Option<&str>) -> Result<Vec<Account>, Refusal> {
    let mut agents: Vec<Account> = state
        .store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| a.enabled && a.role == Role::Agent)
        .filter(|a| category.is_none_or(|c| a.categories.iter().any(|held| held == c)))
        .collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(agents)
}

async fn known_category(state: &AppState, category: Option<&str>) -> Result<(), Refusal> {
    if let Some(c) = category
        && !state.store.categories().await?.iter().any(|known| known.id == c)
    {
        return Err(Refusal::Api(ApiError::invalid(
            "unknown_category",
            format!("no category {c:?}"),
        )));
    }
    Ok(())
}

// ---------- the public slot list ----------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlotsQuery {
    /// The local day in the desk's zone, `YYYY-MM-DD`.
    #[param(example = "2030-06-17")]
    pub date: String,
    /// Only representatives holding this category id count.
    pub category: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotView {
    /// The slot's start instant, UTC RFC 3339: what a booking names.
    pub start: String,
    pub end: String,
    /// The start on the desk's wall clock, `YYYY-MM-DD HH:MM`.
    pub local_start: String,
    /// Bookable now: some eligible representative is free then, and it is neither past
    /// nor sooner than the minimum notice. Who booked what is never shown.
    pub free: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DaySlots {
    pub date: String,
    /// The desk's IANA time zone, which `local_start` is in.
    pub zone: String,
    pub slots: Vec<SlotView>,
}

/// A day's slots in the desk's zone, and which are free.
#[utoipa::path(get, path = "/api/appointments/slots", tag = "public", params(SlotsQuery),
    responses((status = 200, body = DaySlots),
        (status = 400, description = "`bad_query`, `bad_date`: the date is missing or not YYYY-MM-DD; \
            `unknown_category`", body = ErrorBody),
        Unavailable))]
async fn slots(
    State(state): State<AppState>,
    query: Result<Query<SlotsQuery>, QueryRejection>,
) -> Result<Json<DaySlots>, Refusal> {
    let Query(q) = query.map_err(bad_query)?;
    let day = parse_date(&q.date)?;
    let category = q.category.as_deref().filter(|c| !c.is_empty());
    known_category(&state, category).await?;
    let calendar = calendar_for(&state, category).await?;
    let (from, to) = day_bounds(&calendar, day)?;
    let agents = eligible(&state, category).await?;
    let booked = state.store.appointments(from, to, None).await?;
    let now = Timestamp::now();
    let slots = calendar
        .slots(day)
        .into_iter()
        .map(|slot| {
            let someone_free = agents.iter().any(|agent| {
                !booked.iter().any(|a| {
                    a.status == AppointmentStatus::Booked
                        && a.representative_id == agent.id
                        && a.start == millis(slot.start)
                })
            });
            SlotView {
                start: slot.start.to_string(),
                end: slot.end.to_string(),
                local_start: slot.local_start.strftime("%Y-%m-%d %H:%M").to_string(),
                free: someone_free && calendar.check_booking(slot.start, now).is_ok(),
            }
        })
        .collect();
    Ok(Json(DaySlots {
        date: day.to_string(),
        zone: zone_name(&state),
        slots,
    }))
}

// ---------- booking ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// The slot's start instant, RFC 3339, as the slot list gives it.
    pub start: String,
    /// 1 to 100 characters, something visible.
    pub name: String,
    /// Where the confirmation goes.
    pub email: String,
    /// Up to 2000 characters.
    pub comment: Option<String>,
    /// A category id: only agents holding it may be assigned.
    pub category: Option<String>,
    /// An agent's account id, to book that representative; else one is assigned.
    pub representative: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Booked {
    pub id: String,
    pub start: String,
    pub end: String,
    pub local_start: String,
    pub zone: String,
    /// The representative's display name.
    pub representative: String,
    /// The secret of the cancel link; shown once, stored only hashed.
    pub cancel_token: String,
    /// The cancel page's path with the token, to put behind the desk's public address.
    pub cancel_url: String,
}

fn valid_email(raw: &str) -> Result<String, Refusal> {
    let email = raw.trim();
    let parsed = (email.len() <= MAX_EMAIL)
        .then(|| email.parse::<lettre::Address>().ok())
        .flatten()
        .filter(|a| a.domain().contains('.'));
    parsed.map(|a| a.to_string()).ok_or_else(|| {
        Refusal::Api(ApiError::invalid(
            "invalid_email",
            "an email address like name@example.com is needed",
        ))
    })
}

fn valid_comment(raw: Option<String>) -> Result<String, Refusal> {
    let comment = raw.unwrap_or_default().trim().to_string();
    if comment.chars().count() > MAX_COMMENT {
        return Err(Refusal::Api(ApiError::invalid(
            "comment_too_long",
            format!("a comment has at most {MAX_COMMENT} characters"),
        )));
    }
    Ok(comment)
}

/// Books a slot; one of simultaneous bookings of a representative's slot wins.
#[utoipa::path(post, path = "/api/appointments", tag = "public",
    request_body(content = BookingRequest, example = json!({"start": "2030-06-17T10:00:00Z", "name": "Carla",
        "email": "carla@example.com", "comment": "about my order"})),
    responses((status = 201, body = Booked),
        (status = 400, description = "`bad_json`, `bad_start` (not an RFC 3339 instant), `invalid_name`, \
            `invalid_email`, `comment_too_long`, `unknown_category`: which rule the body breaks", body = ErrorBody),
        (status = 409, description = "`slot_taken`: no representative is free at that slot any more", body = ErrorBody),
        (status = 422, description = "`not_a_slot` (outside the hours or not on a slot boundary), \
            `slot_in_past`, `too_short_notice`, `no_representative` (no agent serves the category, or the named \
            one is no agent for it)", body = ErrorBody),
        (status = 429, description = "`too_many_bookings`: this address booked too often; `Retry-After` says \
            when to try again", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait"))),
        Unavailable))]
async fn book(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Result<Json<BookingRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Booked>), Refusal> {
    // Counted before the work, so bookings sent side by side cannot all pass the check
    // first; handed back unless the booking is made.
    let throttled = !ip.is_whitelisted(&state.settings);
    let key = crate::http::access::address_key(ip.key());
    if throttled {
        let now = std::time::Instant::now();
        state
            .booking_throttle
            .with(|t| t.take(key, now))
            .map_err(Refusal::Throttled)?;
    }
    let made = book_checked(&state, &base_url(&state, &headers), body).await;
    if throttled && made.is_err() {
        state.booking_throttle.with(|t| t.give_back(&key));
    }
    made
}

async fn book_checked(
    state: &AppState,
    base_url: &str,
    body: Result<Json<BookingRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Booked>), Refusal> {
    let Json(body) = body?;
    let start: Timestamp = body.start.trim().parse().map_err(|_| {
        Refusal::Api(ApiError::invalid(
            "bad_start",
            "start must be an RFC 3339 instant such as 2030-06-17T10:00:00Z",
        ))
    })?;
    let name = checked_name(&body.name, 100).map_err(|e| Refusal::Api(ApiError::invalid(e.code(), e.to_string())))?;
    let email = valid_email(&body.email)?;
    let comment = valid_comment(body.comment)?;
    let category = body.category.filter(|c| !c.is_empty());
    known_category(state, category.as_deref()).await?;
    let calendar = calendar_for(state, category.as_deref()).await?;
    let slot = calendar
        .check_booking(start, Timestamp::now())
        .map_err(|r| Refusal::coded(StatusCode::UNPROCESSABLE_ENTITY, r.code(), refusal_message(r.code())))?;
    let mut agents = eligible(state, category.as_deref()).await?;
    if let Some(named) = &body.representative {
        agents.retain(|a| &a.id == named);
    }
    if agents.is_empty() {
        return Err(Refusal::coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_representative",
            "no agent serves appointments for this choice",
        ));
    }
    let token = crate::auth::random_token();
    let mut appointment = Appointment {
        id: uuid::Uuid::now_v7().to_string(),
        start: millis(slot.start),
        end: millis(slot.end),
        representative_id: String::new(),
        category,
        name,
        email,
        comment,
        status: AppointmentStatus::Booked,
        cancel_token_hash: crate::auth::session_id(&token),
        created_at: crate::hub::now_ms(),
        cancelled_at: None,
        sequence: 0,
    };
    // Each round books the representative the store's current day says is best; a
    // refusal means someone else took that one meanwhile, so look again. Every round
    // but the last loses to a booking that succeeded, so this ends.
    for _ in 0..agents.len() {
        let Some(chosen) = pick(state, &calendar, &slot, &agents).await? else {
            break;
        };
        appointment.representative_id = chosen.id.clone();
        let cancel_url = format!("{base_url}/cancel.html?token={token}");
        let mail = mails::confirmation(
            &desk(state),
            &appointment,
            &chosen.display_name,
            &cancel_url,
            Timestamp::now(),
        );
        match state.store.book_appointment_with_mail(appointment.clone(), mail).await {
            Ok(()) => {
                metrics::counter!("switchboard_appointments_booked_total").increment(1);
                let booked = Booked {
                    id: appointment.id.clone(),
                    start: slot.start.to_string(),
                    end: slot.end.to_string(),
                    local_start: local_label(&calendar, slot.start),
                    zone: zone_name(state),
                    representative: chosen.display_name.clone(),
                    cancel_url: format!("/cancel.html?token={token}"),
                    cancel_token: token,
                };
                return Ok((StatusCode::CREATED, Json(booked)));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Refusal::coded(
        StatusCode::CONFLICT,
        "slot_taken",
        "this slot has just been booked; please pick another",
    ))
}

fn refusal_message(code: &str) -> &'static str {
    match code {
        "not_a_slot" => "that time is not one of the desk's slots",
        "slot_in_past" => "that slot has already begun",
        _ => "that slot starts too soon to be booked",
    }
}

/// The representative the day's bookings say should take `slot`, if any is free.
async fn pick<'a>(
    state: &AppState,
    calendar: &Calendar,
    slot: &Slot,
    agents: &'a [Account],
) -> Result<Option<&'a Account>, Refusal> {
    let (from, to) = day_bounds(calendar, slot.local_start.date())?;
    let booked: Vec<Appointment> = state
        .store
        .appointments(from, to, None)
        .await?
        .into_iter()
        .filter(|a| a.status == AppointmentStatus::Booked)
        .collect();
    let candidates: Vec<Candidate> = agents
        .iter()
        .map(|agent| {
            let theirs = booked.iter().filter(|a| a.representative_id == agent.id);
            Candidate {
                id: &agent.id,
                booked_that_day: theirs.clone().count(),
                free_at_slot: !theirs.clone().any(|a| a.start == millis(slot.start)),
            }
        })
        .collect();
    Ok(choose(&candidates).and_then(|id| agents.iter().find(|a| a.id == id)))
}

// ---------- cancelling by the link's token ----------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The token of the cancel link.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The token of the cancel link.
    pub token: String,
}

/// An appointment as its customer (the token's holder) sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    pub id: String,
    pub start: String,
    pub end: String,
    pub local_start: String,
    pub zone: String,
    pub name: String,
    pub status: AppointmentStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelOutcome {
    /// `cancelled` by this request, or `already_cancelled` before it (nothing changed).
    pub outcome: &'static str,
    pub appointment: CustomerView,
}

fn customer_view(state: &AppState, calendar: &Calendar, a: &Appointment) -> CustomerView {
    CustomerView {
        id: a.id.clone(),
        start: instant(a.start).to_string(),
        end: instant(a.end).to_string(),
        local_start: local_label(calendar, instant(a.start)),
        zone: zone_name(state),
        name: a.name.clone(),
        status: a.status,
    }
}

async fn by_token(state: &AppState, token: &str) -> Result<Appointment, Refusal> {
    match state
        .store
        .appointment_by_token(&crate::auth::session_id(token.trim()))
        .await
    {
        Err(StoreError::NotFound) => Err(Refusal::coded(
            StatusCode::NOT_FOUND,
            "unknown_cancel_token",
            "this cancel link is not valid; check that it was copied whole",
        )),
        other => Ok(other?),
    }
}

/// The appointment a cancel link names. Changes nothing, as mail scanners follow links.
#[utoipa::path(get, path = "/api/appointments/cancel", tag = "public", params(TokenQuery),
    responses((status = 200, body = CustomerView),
        (status = 400, description = "`bad_query`: no token", body = ErrorBody),
        (status = 404, description = "`unknown_cancel_token`: no appointment has this token", body = ErrorBody),
        Unavailable))]
async fn show_by_token(
    State(state): State<AppState>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Json<CustomerView>, Refusal> {
    let Query(q) = query.map_err(bad_query)?;
    let a = by_token(&state, &q.token).await?;
    Ok(Json(customer_view(&state, &calendar(&state), &a)))
}

/// Cancels the appointment a cancel link names; a second time answers `already_cancelled`.
#[utoipa::path(post, path = "/api/appointments/cancel", tag = "public",
    request_body(content = CancelRequest, example = json!({"token": "the-token-of-the-cancel-link"})),
    responses((status = 200, body = CancelOutcome),
        (status = 400, description = "`bad_json`", body = ErrorBody),
        (status = 404, description = "`unknown_cancel_token`: no appointment has this token", body = ErrorBody),
        Unavailable))]
async fn cancel_by_token(
    State(state): State<AppState>,
    body: Result<Json<CancelRequest>, JsonRejection>,
) -> Result<Json<CancelOutcome>, Refusal> {
    let Json(body) = body?;
    let a = by_token(&state, &body.token).await?;
    let done = cancel_with_mail(&state, a).await?;
    Ok(Json(outcome(&state, done)))
}

/// Cancels `a` (as read) and writes its cancellation mail with it.
async fn cancel_with_mail(state: &AppState, a: Appointment) -> Result<Cancellation, Refusal> {
    let mut cancelled = a;
    cancelled.status = AppointmentStatus::Cancelled;
    // The store raises the sequence by one when it cancels; the mail announces that one.
    cancelled.sequence += 1;
    let mail = mails::cancellation(&desk(state), &cancelled, Timestamp::now());
    Ok(state
        .store
        .cancel_appointment_with_mail(&cancelled.id, crate::hub::now_ms(), mail)
        .await?)
}

fn outcome(state: &AppState, done: Cancellation) -> CancelOutcome {
    let calendar = calendar(state);
    let (outcome, a) = match done {
        Cancellation::Cancelled(a) => {
            metrics::counter!("switchboard_appointments_cancelled_total").increment(1);
            ("cancelled", a)
        }
        Cancellation::AlreadyCancelled(a) => ("already_cancelled", a),
    };
    CancelOutcome {
        outcome,
        appointment: customer_view(state, &calendar, &a),
    }
}

// ---------- staff ----------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayQuery {
    /// The local day in the desk's zone, `YYYY-MM-DD`; default today.
    pub date: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// The first local day, `YYYY-MM-DD`.
    #[param(example = "2030-06-17")]
    pub from: String,
    /// The last local day (included), at most 92 days after `from`.
    #[param(example = "2030-06-18")]
    pub to: String,
}

/// An appointment as staff see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffView {
    pub id: String,
    pub start: String,
    pub end: String,
    pub local_start: String,
    pub representative_id: String,
    pub category: Option<String>,
    pub name: String,
    pub email: String,
    pub comment: String,
    pub status: AppointmentStatus,
    /// Booked, and from `APPOINTMENT_START_WINDOW_MINUTES` before its start until that long
    /// after it or until its room closes (`APPOINTMENT_ROOM_GRACE_MINUTES` after its end),
    /// whichever is later: the time to start it, or to go back into its room.
    pub startable: bool,
    /// Since when (ms) its customer waits for the call to start (their page asked to join
    /// within the last 30 s); null when no one waits.
    pub waiting_since: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StaffList {
    pub zone: String,
    pub appointments: Vec<StaffView>,
}

fn staff_list(state: &AppState, calendar: &Calendar, list: Vec<Appointment>) -> StaffList {
    let now = crate::hub::now_ms();
    let window = state.settings.appointment_start_window.as_millis() as Millis;
    let grace = state.settings.appointment_room_grace.as_millis() as Millis;
    let appointments = list
        .into_iter()
        .map(|a| StaffView {
            // From the window's start until the window or the room's grace after the slot
            // ends, whichever is later: "Start" also takes the representative back into a
            // room they left.
            startable: a.status == AppointmentStatus::Booked
                && (a.start - window
                    ..=(a.start + window).max(crate::core::room::appointment_room_closes_at(a.end, grace)))
                    .contains(&now),
            start: instant(a.start).to_string(),
            end: instant(a.end).to_string(),
            local_start: local_label(calendar, instant(a.start)),
            id: a.id,
            representative_id: a.representative_id,
            category: a.category,
            name: a.name,
            email: a.email,
            comment: a.comment,
            status: a.status,
            waiting_since: None,
        })
        .collect();
    StaffList {
        zone: zone_name(state),
        appointments,
    }
}

/// The signed-in agent's appointments of a local day (booked and cancelled).
#[utoipa::path(get, path = "/api/agent/appointments", tag = "session", params(DayQuery),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = StaffList),
        (status = 400, description = "`bad_query`, `bad_date`", body = ErrorBody),
        SignedIn, Unavailable))]
async fn agent_day(
    Authed(me): Authed,
    State(state): State<AppState>,
    query: Result<Query<DayQuery>, QueryRejection>,
) -> Result<Json<StaffList>, Refusal> {
    let Query(q) = query.map_err(bad_query)?;
    let calendar = calendar(&state);
    let day = match q.date.as_deref() {
        Some(raw) => parse_date(raw)?,
        None => calendar.local_date(Timestamp::now()),
    };
    let (from, to) = day_bounds(&calendar, day)?;
    let list = state.store.appointments(from, to, Some(&me.id)).await?;
    let mut answer = staff_list(&state, &calendar, list);
    let ids: Vec<String> = answer.appointments.iter().map(|a| a.id.clone()).collect();
    let waiting = state
        .rooms
        .waiting
        .since(state.cluster.as_ref(), &ids, crate::hub::now_ms())
        .await;
    for (a, since) in answer.appointments.iter_mut().zip(waiting) {
        a.waiting_since = since;
    }
    Ok(Json(answer))
}

/// Every appointment of a range of local days, admins only.
#[utoipa::path(get, path = "/api/admin/appointments", tag = "admin", params(RangeQuery),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = StaffList),
        (status = 400, description = "`bad_query`, `bad_date`, `bad_range` (`to` before `from`, or more than \
            92 days)", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn admin_list(
    _: AdminOnly,
    State(state): State<AppState>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<StaffList>, Refusal> {
    let Query(q) = query.map_err(bad_query)?;
    let (first, last) = (parse_date(&q.from)?, parse_date(&q.to)?);
    let days = (last - first).get_days();
    if !(0..=MAX_RANGE_DAYS).contains(&days) {
        return Err(Refusal::Api(ApiError::invalid(
            "bad_range",
            format!("to must be from `from` to {MAX_RANGE_DAYS} days after it"),
        )));
    }
    let calendar = calendar(&state);
    let (from, _) = day_bounds(&calendar, first)?;
    let (_, to) = day_bounds(&calendar, last)?;
    let list = state.store.appointments(from, to, None).await?;
    Ok(Json(staff_list(&state, &calendar, list)))
}

async fn cancel_as_staff(state: &AppState, me: &Account, id: &str) -> Result<Json<CancelOutcome>, Refusal> {
    let a = match state.store.appointment(id).await {
        Err(StoreError::NotFound) => return Err(Refusal::Api(ApiError::NotFound("appointment"))),
        other => other?,
    };
    // An agent may cancel only their own; to them another's does not exist.
    if me.role != Role::Admin && a.representative_id != me.id {
        return Err(Refusal::Api(ApiError::NotFound("appointment")));
    }
    let done = cancel_with_mail(state, a).await?;
    Ok(Json(outcome(state, done)))
}

/// Cancels one of the signed-in agent's appointments (an admin: any).
#[utoipa::path(post, path = "/api/agent/appointments/{id}/cancel", tag = "session",
    params(("id" = String, Path, description = "the appointment id")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = CancelOutcome),
        (status = 404, description = "`not_found`: no such appointment of this agent", body = ErrorBody),
        SignedIn, Unavailable))]
async fn agent_cancel(
    Authed(me): Authed,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CancelOutcome>, Refusal> {
    cancel_as_staff(&state, &me, &id).await
}

/// Cancels any appointment, admins only.
#[utoipa::path(post, path = "/api/admin/appointments/{id}/cancel", tag = "admin",
    params(("id" = String, Path, description = "the appointment id")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, body = CancelOutcome),
        (status = 404, description = "`not_found`: no such appointment", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn admin_cancel(
    AdminOnly(me): AdminOnly,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CancelOutcome>, Refusal> {
    cancel_as_staff(&state, &me, &id).await
}
