//! The appointments API: the topics a booking may be about (who serves each), the public
//! slot list and month of free days (in the customer's time zone), booking; an agent's day and an admin's range, and cancelling by staff. What
//! a customer does with their appointment's token (see it, move it, cancel it, download
//! its calendar file) is `appointment_manage`.
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
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access::ClientIp;
use super::error::{ApiQuery, JsonResult, StatusJson, StoreAnswer};
use super::public_url::PublicUrl;
use super::responses::{AdminsOnly, NotYourAppointment, SignedIn, Unavailable};
use super::session::{Admin, AdminOnly, Staff};
use super::{ApiError, AppState, ErrorBody};
use crate::appointments::{calendar_links, mails};
use crate::core::availability::{self, Held, day_span, is_free};
use crate::core::guesses::{FailedGuesses, GuessLimit};
use crate::core::names::checked_name;
use crate::core::representatives::{Candidate, choose};
use crate::core::schedule::{Calendar, Slot};
use crate::store::{
    Account, Appointment, AppointmentCancel, AppointmentStatus, Cancellation, Millis, Role, StoreError,
};
use crate::webhooks::event::Event;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(topics))
        .routes(routes!(slots))
        .routes(routes!(free_days))
        .routes(routes!(book))
        .routes(routes!(agent_day))
        .routes(routes!(agent_cancel))
        .routes(routes!(admin_list))
        .routes(routes!(admin_cancel))
}

/// Longest comment a booking may carry, in characters.
const MAX_COMMENT: usize = 2_000;
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
            burst: settings.appointments.booking_burst,
            refill: settings.appointments.booking_refill,
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

/// The desk's calendar for labels and day bounds (the zone; the settings' hours).
pub(super) fn calendar(state: &AppState) -> Calendar {
    calendar_with(state, state.settings.appointments.hours.clone())
}

fn calendar_with(state: &AppState, hours: crate::core::schedule::Hours) -> Calendar {
    let notice = SignedDuration::try_from(state.settings.appointments.min_notice).unwrap_or(SignedDuration::MAX);
    Calendar::new(state.settings.appointments.zone.clone(), hours, notice)
}

/// The calendar whose slots apply to `category`: the hours an admin set (the
/// category's own, else the desk's), else the settings'.
pub(super) async fn calendar_for(state: &AppState, category: Option<&str>) -> Result<Calendar, ApiError> {
    let hours = super::appointment_hours::hours_for(state, category).await?;
    Ok(calendar_with(state, hours))
}

/// What the desk's mails share: its zone and its From address.
pub(super) fn desk(state: &AppState) -> mails::Desk<'_> {
    mails::Desk {
        zone: &state.settings.appointments.zone,
        organizer: mails::address_of(&state.settings.mail.from),
    }
}

pub(super) fn zone_name(state: &AppState) -> String {
    state
        .settings
        .appointments
        .zone
        .iana_name()
        .unwrap_or("UTC")
        .to_string()
}

fn parse_date(raw: &str) -> Result<Date, ApiError> {
    raw.trim()
        .parse::<Date>()
        .map_err(|_| ApiError::invalid("bad_date", format!("{raw:?} is not a date YYYY-MM-DD")))
}

pub(super) fn millis(at: Timestamp) -> Millis {
    at.as_millisecond()
}

pub(super) fn instant(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The customer's zone from a request: `None` when not given; 400 `unknown_zone` when it
/// names no zone of the IANA time zone database (jiff's bundled copy).
pub(super) fn customer_zone(raw: Option<&str>) -> Result<Option<TimeZone>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|z| !z.is_empty()) else {
        return Ok(None);
    };
    let zone = TimeZone::get(raw).ok().filter(|z| z.iana_name().is_some());
    zone.map(Some).ok_or_else(|| {
        ApiError::invalid(
            "unknown_zone",
            format!("{raw:?} is not an IANA time zone such as Europe/Berlin"),
        )
    })
}

/// The representative's display name and the category's name that `a`'s pages and mails show.
pub(super) async fn names_of(state: &AppState, a: &Appointment) -> Result<(String, Option<String>), ApiError> {
    let representative = state
        .store
        .accounts()
        .await?
        .into_iter()
        .find(|account| account.id == a.representative_id)
        .map_or_else(|| "the desk".to_string(), |account| account.display_name);
    let topic = match &a.category {
        Some(c) => state
            .store
            .categories()
            .await?
            .into_iter()
            .find(|known| &known.id == c)
            .map(|known| known.name),
        None => None,
    };
    Ok((representative, topic))
}

/// The customer's links of an appointment, as paths (to put behind the desk's address).
pub(super) struct CustomerLinks {
    pub manage: String,
    pub reschedule: String,
    pub ics: String,
    pub book: String,
}

impl CustomerLinks {
    pub(super) fn of(token: &str, category: Option<&str>) -> Self {
        CustomerLinks {
            manage: format!("/manage.html?token={token}"),
            reschedule: format!("/book.html?reschedule={token}"),
            ics: format!("/api/appointments/ics?token={token}"),
            book: match category {
                Some(c) => format!("/book.html?category={c}"),
                None => "/book.html".to_string(),
            },
        }
    }

    /// The same links behind the desk's address `base`, as mails and calendars carry them.
    pub(super) fn behind(&self, base: &str) -> Self {
        CustomerLinks {
            manage: format!("{base}{}", self.manage),
            reschedule: format!("{base}{}", self.reschedule),
            ics: format!("{base}{}", self.ics),
            book: format!("{base}{}", self.book),
        }
    }

    /// A mail's context with every link of these (absolute ones: see [`Self::behind`]).
    pub(super) fn mail_context<'a>(&'a self, representative: &'a str, topic: Option<&'a str>) -> mails::Context<'a> {
        mails::Context {
            manage_url: &self.manage,
            reschedule_url: &self.reschedule,
            book_url: &self.book,
            ..mails::Context::bare(representative, topic)
        }
    }
}

/// The appointment a customer's link names (its token), or `404 unknown_token`.
pub(super) async fn appointment_of_link(state: &AppState, token: &str) -> Result<Appointment, ApiError> {
    let missing = ApiError::refused(
        StatusCode::NOT_FOUND,
        "unknown_token",
        "this appointment link is not valid; check that it was copied whole",
    );
    state
        .store
        .appointment_by_token(&crate::auth::session_id(token.trim()))
        .await
        .missing_as(missing)
}

/// No representative was free any more at the slot, after every round of looking.
pub(super) fn slot_taken() -> ApiError {
    ApiError::refused(
        StatusCode::CONFLICT,
        "slot_taken",
        "this slot has just been booked; please pick another",
    )
}

/// `[start, end)` of a local day in the desk's zone, in ms.
fn day_bounds(calendar: &Calendar, day: Date) -> Result<(Millis, Millis), ApiError> {
    let out_of_range = || ApiError::invalid("bad_date", format!("{day} is out of range"));
    let start = day.to_zoned(calendar.zone().clone()).map_err(|_| out_of_range())?;
    let end = day
        .tomorrow()
        .and_then(|d| d.to_zoned(calendar.zone().clone()))
        .map_err(|_| out_of_range())?;
    Ok((millis(start.timestamp()), millis(end.timestamp())))
}

/// `2026-06-15 10:00`: an instant on the desk's wall clock.
pub(super) fn local_label(calendar: &Calendar, at: Timestamp) -> String {
    label_in(calendar.zone(), at)
}

/// `2026-06-15 10:00`: an instant on the wall clock of `zone`.
pub(super) fn label_in(zone: &TimeZone, at: Timestamp) -> String {
    at.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M").to_string()
}

/// Enabled agents who may serve `category` (any agent when none is given), by id.
pub(super) async fn eligible(state: &AppState, category: Option<&str>) -> Result<Vec<Account>, ApiError> {
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

async fn known_category(state: &AppState, category: Option<&str>) -> Result<(), ApiError> {
    match category {
        Some(c) => super::admin::known_category(state, c).await,
        None => Ok(()),
    }
}

// ---------- the topics a booking may be about ----------

/// A category as the booking page offers it as a topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct Topic {
    pub id: String,
    pub name: String,
    /// How many representatives serve appointments about it (enabled agents holding the
    /// category), as the month and slot lists count them: 0 when nobody does yet.
    pub representatives: usize,
}

/// The desk's categories as booking topics, each with how many representatives serve it:
/// all the booking page needs to offer only topics someone serves, in one read.
#[utoipa::path(get, path = "/api/appointments/topics", tag = "public",
    responses((status = 200, body = [Topic]), Unavailable))]
async fn topics(State(state): State<AppState>) -> JsonResult<Vec<Topic>> {
    let agents = eligible(&state, None).await?;
    let serving = |category: &str| {
        agents
            .iter()
            .filter(|a| a.categories.iter().any(|held| held == category))
            .count()
    };
    Ok(Json(
        state
            .store
            .categories()
            .await?
            .into_iter()
            .map(|c| Topic {
                representatives: serving(&c.id),
                id: c.id,
                name: c.name,
            })
            .collect(),
    ))
}

// ---------- the public slot list ----------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlotsQuery {
    /// The local day, `YYYY-MM-DD`: in `zone` when given, else in the desk's zone.
    #[param(example = "2030-06-17")]
    pub date: String,
    /// Only representatives holding this category id count.
    pub category: Option<String>,
    /// The customer's IANA time zone (e.g. `America/New_York`): the day is theirs, and
    /// holds the slots that start on it there, whichever desk days they fall on.
    #[param(example = "America/New_York")]
    pub zone: Option<String>,
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
    /// The zone `date` is a day of: the requested `zone`, else the desk's.
    pub day_zone: String,
    /// How long each slot lasts, in minutes.
    pub slot_minutes: u16,
    /// How many representatives may serve these slots (of the category when given). 0: no
    /// agent serves appointments (for this category) yet, so nothing can be booked.
    pub representatives: usize,
    pub slots: Vec<SlotView>,
}

/// The booked appointments starting in `[from, to)`, as availability sees them.
async fn held_between(state: &AppState, from: Timestamp, to: Timestamp) -> Result<Vec<Appointment>, ApiError> {
    Ok(state
        .store
        .appointments(millis(from)..millis(to), None)
        .await?
        .into_iter()
        .filter(|a| a.status == AppointmentStatus::Booked)
        .collect())
}

fn held(booked: &[Appointment]) -> Vec<Held<'_>> {
    booked
        .iter()
        .map(|a| Held {
            representative: &a.representative_id,
            start_ms: a.start,
        })
        .collect()
}

fn out_of_range(day: impl std::fmt::Display) -> ApiError {
    ApiError::invalid("bad_date", format!("{day} is out of range"))
}

/// A day's slots (of the customer's day in their zone, or of the desk's day), and which are free.
#[utoipa::path(get, path = "/api/appointments/slots", tag = "public", params(SlotsQuery),
    responses((status = 200, body = DaySlots),
        (status = 400, description = "`bad_query`, `bad_date`: the date is missing or not YYYY-MM-DD; \
            `unknown_category`; `unknown_zone`: `zone` is no IANA time zone", body = ErrorBody),
        Unavailable))]
async fn slots(State(state): State<AppState>, ApiQuery(q): ApiQuery<SlotsQuery>) -> JsonResult<DaySlots> {
    let day = parse_date(&q.date)?;
    let category = q.category.as_deref().filter(|c| !c.is_empty());
    let day_zone = customer_zone(q.zone.as_deref())?.unwrap_or_else(|| state.settings.appointments.zone.clone());
    known_category(&state, category).await?;
    let calendar = calendar_for(&state, category).await?;
    let (from, to) = day_span(day, &day_zone).ok_or_else(|| out_of_range(day))?;
    let agents = eligible(&state, category).await?;
    let representatives: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    let booked = held_between(&state, from, to).await?;
    let held = held(&booked);
    let now = Timestamp::now();
    let slots = calendar
        .slots_between(from, to)
        .into_iter()
        .map(|slot| SlotView {
            start: slot.start.to_string(),
            end: slot.end.to_string(),
            local_start: slot.local_start.strftime("%Y-%m-%d %H:%M").to_string(),
            free: is_free(&calendar, &slot, &representatives, &held, now),
        })
        .collect();
    Ok(Json(DaySlots {
        date: day.to_string(),
        zone: zone_name(&state),
        day_zone: day_zone.iana_name().unwrap_or("UTC").to_string(),
        slot_minutes: calendar.hours().slot_minutes(),
        representatives: agents.len(),
        slots,
    }))
}

// ---------- the month's free days ----------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// The month, `YYYY-MM`.
    #[param(example = "2030-06")]
    pub month: String,
    /// The customer's IANA time zone: the days are theirs. Default: the desk's zone.
    #[param(example = "America/New_York")]
    pub zone: Option<String>,
    /// Only representatives holding this category id count.
    pub category: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FreeDays {
    /// `YYYY-MM`.
    pub month: String,
    /// The zone the days are days of: the requested `zone`, else the desk's.
    pub day_zone: String,
    /// The desk's IANA time zone.
    pub zone: String,
    pub slot_minutes: u16,
    /// As in the slot list: 0 when no agent serves appointments (for this category) yet.
    pub representatives: usize,
    /// The days of the month (`YYYY-MM-DD`, in `day_zone`) with at least one free slot.
    pub free_days: Vec<String>,
}

fn parse_month(raw: &str) -> Result<Date, ApiError> {
    let raw = raw.trim();
    let first = (raw.len() == 7)
        .then(|| format!("{raw}-01").parse::<Date>().ok())
        .flatten();
    first.ok_or_else(|| ApiError::invalid("bad_month", format!("{raw:?} is not a month YYYY-MM")))
}

/// The days of a month on which some slot is free, in the customer's zone: what a month
/// view marks.
#[utoipa::path(get, path = "/api/appointments/days", tag = "public", params(DaysQuery),
    responses((status = 200, body = FreeDays),
        (status = 400, description = "`bad_query`; `bad_month`: not YYYY-MM; `unknown_category`; `unknown_zone`",
            body = ErrorBody),
        Unavailable))]
async fn free_days(State(state): State<AppState>, ApiQuery(q): ApiQuery<DaysQuery>) -> JsonResult<FreeDays> {
    let first = parse_month(&q.month)?;
    let last = first.last_of_month();
    let category = q.category.as_deref().filter(|c| !c.is_empty());
    let day_zone = customer_zone(q.zone.as_deref())?.unwrap_or_else(|| state.settings.appointments.zone.clone());
    known_category(&state, category).await?;
    let calendar = calendar_for(&state, category).await?;
    let (from, _) = day_span(first, &day_zone).ok_or_else(|| out_of_range(first))?;
    let (_, to) = day_span(last, &day_zone).ok_or_else(|| out_of_range(last))?;
    let agents = eligible(&state, category).await?;
    let representatives: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    let booked = held_between(&state, from, to).await?;
    let days = availability::free_days(
        &calendar,
        &day_zone,
        first,
        last,
        &representatives,
        &held(&booked),
        Timestamp::now(),
    );
    Ok(Json(FreeDays {
        month: first.strftime("%Y-%m").to_string(),
        day_zone: day_zone.iana_name().unwrap_or("UTC").to_string(),
        zone: zone_name(&state),
        slot_minutes: calendar.hours().slot_minutes(),
        representatives: agents.len(),
        free_days: days.iter().map(ToString::to_string).collect(),
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
    /// The customer's IANA time zone (a browser's
    /// `Intl.DateTimeFormat().resolvedOptions().timeZone`): their mails and pages give
    /// times in it, with the desk's beside. Default: the desk's zone.
    #[schema(example = "America/New_York")]
    pub zone: Option<String>,
    /// Whether the customer's clock shows 12 hours (a browser's
    /// `Intl.DateTimeFormat([], {hour: 'numeric'}).resolvedOptions().hour12`): their mails
    /// give times as their page does ("10:00 AM" or "10:00"). Default: 24 hours.
    #[serde(default)]
    pub hour12: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Booked {
    /// The appointment as its customer sees it, with its links.
    #[serde(flatten)]
    pub appointment: CustomerAppointment,
    /// The secret of the appointment's links (manage, join, reschedule, cancel); shown
    /// once, stored only hashed.
    pub cancel_token: String,
    /// The same as `links.manage` (the appointment's page), kept for older clients.
    pub cancel_url: String,
    /// Whether the confirmation goes out by mail: false when this node's mail is only
    /// logged (no `SMTP_URL`, or one it could not set up), so a page does not say one was sent.
    pub mailed: bool,
}

fn valid_email(raw: &str) -> Result<String, ApiError> {
    Ok(crate::core::customer_details::email(raw)?)
}

fn valid_comment(raw: Option<String>) -> Result<String, ApiError> {
    let comment = raw.unwrap_or_default().trim().to_string();
    if comment.chars().count() > MAX_COMMENT {
        return Err(ApiError::invalid(
            "comment_too_long",
            format!("a comment has at most {MAX_COMMENT} characters"),
        ));
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
    PublicUrl(base): PublicUrl,
    body: Result<Json<BookingRequest>, JsonRejection>,
) -> StatusJson<Booked> {
    // Counted before the work, so bookings sent side by side cannot all pass the check
    // first; handed back unless the booking is made.
    let throttled = !ip.is_whitelisted(&state.settings);
    let key = crate::http::access::address_key(ip.key());
    if throttled {
        let now = std::time::Instant::now();
        state
            .booking_throttle
            .with(|t| t.take(key, now))
            .map_err(|wait| ApiError::too_many("too_many_bookings", "bookings from this address", wait))?;
    }
    let made = book_checked(&state, &base, body).await;
    if throttled && made.is_err() {
        state.booking_throttle.with(|t| t.give_back(&key));
    }
    made
}

async fn book_checked(
    state: &AppState,
    base_url: &str,
    body: Result<Json<BookingRequest>, JsonRejection>,
) -> StatusJson<Booked> {
    let Json(body) = body?;
    let start: Timestamp = body.start.trim().parse().map_err(|_| {
        ApiError::invalid(
            "bad_start",
            "start must be an RFC 3339 instant such as 2030-06-17T10:00:00Z",
        )
    })?;
    let name = checked_name(&body.name, 100)?;
    let email = valid_email(&body.email)?;
    let comment = valid_comment(body.comment)?;
    let category = body.category.filter(|c| !c.is_empty());
    let zone = customer_zone(body.zone.as_deref())?;
    known_category(state, category.as_deref()).await?;
    let calendar = calendar_for(state, category.as_deref()).await?;
    let slot = calendar
        .check_booking(start, Timestamp::now())
        .map_err(|r| ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, r.code(), refusal_message(r.code())))?;
    let mut agents = eligible(state, category.as_deref()).await?;
    if let Some(named) = &body.representative {
        agents.retain(|a| &a.id == named);
    }
    if agents.is_empty() {
        return Err(ApiError::refused(
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
        created_at: crate::clock::now_ms(),
        cancelled_at: None,
        sequence: 0,
        customer_zone: zone.and_then(|z| z.iana_name().map(str::to_string)),
        customer_hour12: body.hour12,
        cancel_reason: None,
    };
    let links = CustomerLinks::of(&token, appointment.category.as_deref());
    let absolute = links.behind(base_url);
    let topic = match &appointment.category {
        Some(c) => names_of(state, &appointment).await?.1.or_else(|| Some(c.clone())),
        None => None,
    };
    // Each round books the representative the store's current day says is best; a
    // refusal means someone else took that one meanwhile, so look again. Every round
    // but the last loses to a booking that succeeded, so this ends.
    for _ in 0..agents.len() {
        let Some(chosen) = pick(state, &calendar, &slot, &agents).await? else {
            break;
        };
        appointment.representative_id = chosen.id.clone();
        let context = absolute.mail_context(&chosen.display_name, topic.as_deref());
        let mail = mails::confirmation(&desk(state), &appointment, &context, Timestamp::now());
        match state.store.book_appointment_with_mail(appointment.clone(), mail).await {
            Ok(()) => {
                metrics::counter!("switchboard_appointments_booked_total").increment(1);
                if let Some(hooks) = state.archive.webhooks() {
                    hooks.emit_durably(Event::appointment_booked(&appointment)).await;
                }
                let view = customer_view(
                    state,
                    &calendar,
                    &appointment,
                    &chosen.display_name,
                    topic.as_deref(),
                    Some((&token, base_url)),
                );
                let booked = Booked {
                    appointment: view,
                    cancel_url: links.manage.clone(),
                    cancel_token: token,
                    mailed: state.rooms.senders.mail.delivers(),
                };
                return Ok((StatusCode::CREATED, Json(booked)));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(slot_taken())
}

fn refusal_message(code: &str) -> &'static str {
    match code {
        "not_a_slot" => "that time is not one of the desk's slots",
        "slot_in_past" => "that slot has already begun",
        _ => "that slot starts too soon to be booked",
    }
}

/// The representative the day's bookings say should take `slot`, if any is free.
pub(super) async fn pick<'a>(
    state: &AppState,
    calendar: &Calendar,
    slot: &Slot,
    agents: &'a [Account],
) -> Result<Option<&'a Account>, ApiError> {
    pick_preferring(state, calendar, slot, agents, None).await
}

/// As [`pick`], but `preferred` (an appointment's representative, when it moves) when
/// they are among `agents` and free at `slot`.
pub(super) async fn pick_preferring<'a>(
    state: &AppState,
    calendar: &Calendar,
    slot: &Slot,
    agents: &'a [Account],
    preferred: Option<&str>,
) -> Result<Option<&'a Account>, ApiError> {
    let (from, to) = day_bounds(calendar, slot.local_start.date())?;
    let booked: Vec<Appointment> = state
        .store
        .appointments(from..to, None)
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
    let preferred = preferred.and_then(|p| candidates.iter().find(|c| c.id == p && c.free_at_slot));
    let chosen = preferred.map(|c| c.id).or_else(|| choose(&candidates));
    Ok(chosen.and_then(|id| agents.iter().find(|a| a.id == id)))
}

// ---------- the customer's view ----------

/// The add-to-calendar links of an appointment.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarLinks {
    /// Google Calendar's event template, filled in.
    pub google: String,
    /// Outlook on the web's new-event link, filled in.
    pub outlook: String,
    /// The ICS file (`METHOD:PUBLISH`), a path.
    pub ics: String,
}

/// The customer's links of an appointment, as paths (to put behind the desk's address).
#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentLinks {
    /// The appointment's page: what was booked, "Join the video call", reschedule, cancel.
    pub manage: String,
    /// The booking page in reschedule mode for this appointment.
    pub reschedule: String,
    /// The booking page (of the same category), to book another one.
    pub book: String,
    pub calendar: CalendarLinks,
}

/// An appointment as its customer (the token's holder) sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerAppointment {
    pub id: String,
    pub start: String,
    pub end: String,
    /// The start on the desk's wall clock, `YYYY-MM-DD HH:MM`.
    pub local_start: String,
    /// The desk's IANA time zone.
    pub zone: String,
    /// The customer's IANA time zone, as given at booking (the desk's when none was).
    pub customer_zone: String,
    /// The start on the customer's wall clock, `YYYY-MM-DD HH:MM`.
    pub customer_local_start: String,
    /// How long it lasts, in minutes.
    pub minutes: i64,
    /// "Video call with Anna Berg — Support".
    pub summary: String,
    /// The representative's display name.
    pub representative: String,
    /// The category's id, when booked for one (the slots of a move are that category's).
    pub category: Option<String>,
    /// The category's name, when booked for one.
    pub topic: Option<String>,
    pub name: String,
    /// Where the mails go.
    pub email: String,
    pub comment: String,
    pub status: AppointmentStatus,
    /// Why it was cancelled, when the customer said.
    pub cancel_reason: Option<String>,
    /// Only when the token is at hand (not in staff answers).
    pub links: Option<AppointmentLinks>,
}

/// `a` as its customer sees it; `with_links` is its token and the desk's address.
pub(super) fn customer_view(
    state: &AppState,
    calendar: &Calendar,
    a: &Appointment,
    representative: &str,
    topic: Option<&str>,
    with_links: Option<(&str, &str)>,
) -> CustomerAppointment {
    let desk = desk(state);
    let theirs = mails::customer_zone(desk.zone, a);
    let summary = mails::summary(&mails::Context::bare(representative, topic));
    let links = with_links.map(|(token, base)| {
        let paths = CustomerLinks::of(token, a.category.as_deref());
        let manage = format!("{base}{}", paths.manage);
        let details = format!("{summary}\n\nJoin, reschedule or cancel on your appointment's page:\n{manage}");
        let event = calendar_links::Event {
            title: &summary,
            start: instant(a.start),
            end: instant(a.end),
            details: &details,
            location: &manage,
        };
        AppointmentLinks {
            calendar: CalendarLinks {
                google: calendar_links::google(&event),
                outlook: calendar_links::outlook(&event),
                ics: paths.ics,
            },
            manage: paths.manage,
            reschedule: paths.reschedule,
            book: paths.book,
        }
    });
    CustomerAppointment {
        id: a.id.clone(),
        start: instant(a.start).to_string(),
        end: instant(a.end).to_string(),
        local_start: local_label(calendar, instant(a.start)),
        zone: zone_name(state),
        customer_zone: theirs.iana_name().unwrap_or("UTC").to_string(),
        customer_local_start: label_in(&theirs, instant(a.start)),
        minutes: (a.end - a.start) / 60_000,
        summary,
        representative: representative.to_string(),
        category: a.category.clone(),
        topic: topic.map(str::to_string),
        name: a.name.clone(),
        email: a.email.clone(),
        comment: a.comment.clone(),
        status: a.status,
        cancel_reason: a.cancel_reason.clone(),
        links,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelOutcome {
    /// `cancelled` by this request, or `already_cancelled` before it (nothing changed).
    pub outcome: &'static str,
    pub appointment: CustomerAppointment,
}

/// Cancels `a` (as read) and writes its cancellation mail with it; `base_url` is the
/// desk's address for the mail's link to the booking page.
pub(super) async fn cancel_with_mail(
    state: &AppState,
    a: Appointment,
    reason: Option<String>,
    base_url: &str,
) -> Result<CancelOutcome, ApiError> {
    let (representative, topic) = names_of(state, &a).await?;
    let mut cancelled = a;
    cancelled.status = AppointmentStatus::Cancelled;
    cancelled.cancel_reason = reason.clone();
    // The store raises the sequence by one when it cancels; the mail announces that one.
    cancelled.sequence += 1;
    let book = format!(
        "{base_url}{}",
        CustomerLinks::of("", cancelled.category.as_deref()).book
    );
    let context = mails::Context {
        book_url: &book,
        ..mails::Context::bare(&representative, topic.as_deref())
    };
    let mail = mails::cancellation(&desk(state), &cancelled, &context, Timestamp::now());
    let done = state
        .store
        .cancel_appointment_with_mail(
            AppointmentCancel::new(&cancelled.id, crate::clock::now_ms(), reason),
            mail,
        )
        .await?;
    let (outcome, a) = match done {
        Cancellation::Cancelled(a) => {
            metrics::counter!("switchboard_appointments_cancelled_total").increment(1);
            if let Some(hooks) = state.archive.webhooks() {
                hooks.emit_durably(Event::appointment_cancelled(&a)).await;
            }
            ("cancelled", a)
        }
        Cancellation::AlreadyCancelled(a) => ("already_cancelled", a),
    };
    Ok(CancelOutcome {
        outcome,
        appointment: customer_view(state, &calendar(state), &a, &representative, topic.as_deref(), None),
    })
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
    /// The customer's IANA time zone, when given at booking.
    pub customer_zone: Option<String>,
    /// Why the customer cancelled, when they said.
    pub cancel_reason: Option<String>,
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
    let now = crate::clock::now_ms();
    let window = state.settings.appointments.start_window.as_millis() as Millis;
    let grace = state.settings.appointments.room_grace.as_millis() as Millis;
    let appointments = list
        .into_iter()
        .map(|a| StaffView {
            // From the window's start until the window or the room's grace after the slot
            // ends, whichever is later: "Start" also takes the representative back into a
            // room they left.
            startable: a.status == AppointmentStatus::Booked
                && crate::core::room::appointment_startable(a.start, a.end, window, grace, now),
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
            customer_zone: a.customer_zone,
            cancel_reason: a.cancel_reason,
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
    responses((status = 200, body = StaffList),
        (status = 400, description = "`bad_query`, `bad_date`", body = ErrorBody),
        SignedIn, Unavailable))]
async fn agent_day(Staff(me, state): Staff, ApiQuery(q): ApiQuery<DayQuery>) -> JsonResult<StaffList> {
    let calendar = calendar(&state);
    let day = match q.date.as_deref() {
        Some(raw) => parse_date(raw)?,
        None => calendar.local_date(Timestamp::now()),
    };
    let (from, to) = day_bounds(&calendar, day)?;
    let list = state.store.appointments(from..to, Some(&me.id)).await?;
    let mut answer = staff_list(&state, &calendar, list);
    let ids: Vec<String> = answer.appointments.iter().map(|a| a.id.clone()).collect();
    let waiting = state
        .rooms
        .waiting
        .since(state.cluster.as_ref(), &ids, crate::clock::now_ms())
        .await;
    for (a, since) in answer.appointments.iter_mut().zip(waiting) {
        a.waiting_since = since;
    }
    Ok(Json(answer))
}

/// Every appointment of a range of local days, admins only.
#[utoipa::path(get, path = "/api/admin/appointments", tag = "admin", params(RangeQuery),
    responses((status = 200, body = StaffList),
        (status = 400, description = "`bad_query`, `bad_date`, `bad_range` (`to` before `from`, or more than \
            92 days)", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn admin_list(Admin(state): Admin, ApiQuery(q): ApiQuery<RangeQuery>) -> JsonResult<StaffList> {
    let (first, last) = (parse_date(&q.from)?, parse_date(&q.to)?);
    let days = (last - first).get_days();
    if !(0..=MAX_RANGE_DAYS).contains(&days) {
        return Err(ApiError::invalid(
            "bad_range",
            format!("to must be from `from` to {MAX_RANGE_DAYS} days after it"),
        ));
    }
    let calendar = calendar(&state);
    let (from, _) = day_bounds(&calendar, first)?;
    let (_, to) = day_bounds(&calendar, last)?;
    let list = state.store.appointments(from..to, None).await?;
    Ok(Json(staff_list(&state, &calendar, list)))
}

async fn cancel_as_staff(state: &AppState, me: &Account, id: &str, base_url: &str) -> JsonResult<CancelOutcome> {
    let a = state
        .store
        .appointment(id)
        .await
        .missing_as(ApiError::NotFound("appointment"))?;
    // An agent may cancel only their own; to them another's does not exist.
    if me.role != Role::Admin && a.representative_id != me.id {
        return Err(ApiError::NotFound("appointment"));
    }
    Ok(Json(cancel_with_mail(state, a, None, base_url).await?))
}

/// Cancels one of the signed-in agent's appointments (an admin: any).
#[utoipa::path(post, path = "/api/agent/appointments/{id}/cancel", tag = "session",
    params(("id" = String, Path, description = "the appointment id")),
    responses((status = 200, body = CancelOutcome), NotYourAppointment, SignedIn, Unavailable))]
async fn agent_cancel(
    Staff(me, state): Staff,
    PublicUrl(base): PublicUrl,
    Path(id): Path<String>,
) -> JsonResult<CancelOutcome> {
    cancel_as_staff(&state, &me, &id, &base).await
}

/// Cancels any appointment, admins only.
#[utoipa::path(post, path = "/api/admin/appointments/{id}/cancel", tag = "admin",
    params(("id" = String, Path, description = "the appointment id")),
    responses((status = 200, body = CancelOutcome),
        (status = 404, description = "`not_found`: no such appointment", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn admin_cancel(
    AdminOnly(me): AdminOnly,
    State(state): State<AppState>,
    PublicUrl(base): PublicUrl,
    Path(id): Path<String>,
) -> JsonResult<CancelOutcome> {
    cancel_as_staff(&state, &me, &id, &base).await
}
