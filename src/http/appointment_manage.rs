//! What a customer does with their appointment's token (the secret of the links in its
//! mails): see what they booked, move it to another free slot, cancel it (the page asks
//! first; a reason is optional), and download it as an ICS file.
//!
//! One token serves all of these and the join (`appointment_rooms`); a token no
//! appointment has answers 404 `unknown_token` everywhere. Opening a link changes nothing
//! (mail scanners follow links): only the POSTs do.
//!
//! Whether the move is allowed is `core::reschedule`'s rule; who serves the new slot is
//! `core::representatives`' (the same representative when free); that the old slot is
//! freed and the new one held at once, and that one of concurrent moves to a slot wins, is
//! the store's single write (`Store::reschedule_appointment_with_mail`), which also writes
//! the reschedule mail (ICS `REQUEST`, same `UID`, next `SEQUENCE`) to the outbox.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::appointments::{
    CancelOutcome, CustomerAppointment, CustomerLinks, appointment_of_link, calendar, calendar_for, cancel_with_mail,
    customer_view, desk, eligible, instant, millis, names_of, pick_preferring, slot_taken,
};
use super::error::{ApiJson, ApiQuery, JsonResult};
use super::public_url::PublicUrl;
use super::responses::{NoToken, Unavailable, UnknownToken};
use super::{ApiError, AppState, ErrorBody};
use crate::appointments::ics::Method;
use crate::appointments::mails;
use crate::core::reschedule::{RescheduleRefusal, check_move};
use crate::store::{Appointment, AppointmentStatus, Rescheduling, StoreError};
use crate::webhooks::event::Event;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(show_by_cancel_link, cancel))
        .routes(routes!(reschedule))
        .routes(routes!(ics))
}

/// Longest cancellation reason, in characters.
const MAX_REASON: usize = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The token of the appointment's links.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The token of the appointment's links.
    pub token: String,
    /// Why, if the customer wants to say (up to 500 characters): in the cancellation mail
    /// and the staff's lists.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// The token of the appointment's links.
    pub token: String,
    /// The new slot's start instant, RFC 3339, as the slot list gives it.
    pub start: String,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Rescheduled {
    /// `rescheduled`.
    pub outcome: &'static str,
    pub appointment: CustomerAppointment,
    /// Whether the new time goes out by mail (as `Booked::mailed`).
    pub mailed: bool,
}

async fn view(state: &AppState, a: &Appointment, token: &str, base: &str) -> Result<CustomerAppointment, ApiError> {
    let (representative, topic) = names_of(state, a).await?;
    let calendar = calendar(state);
    Ok(customer_view(
        state,
        &calendar,
        a,
        &representative,
        topic.as_deref(),
        Some((token.trim(), base)),
    ))
}

/// The appointment a link's token names, as booked: when (in the customer's zone and the
/// desk's), with whom, for whom (name, email, comment), its status, and its links.
#[utoipa::path(get, path = "/api/appointments/booking", tag = "public", params(TokenQuery),
    responses((status = 200, body = CustomerAppointment), NoToken, UnknownToken, Unavailable))]
async fn show(
    State(state): State<AppState>,
    PublicUrl(base): PublicUrl,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> JsonResult<CustomerAppointment> {
    let a = appointment_of_link(&state, &q.token).await?;
    Ok(Json(view(&state, &a, &q.token, &base).await?))
}

/// The same as `GET /api/appointments/booking` (the address of older cancel links).
#[utoipa::path(get, path = "/api/appointments/cancel", tag = "public", params(TokenQuery),
    responses((status = 200, body = CustomerAppointment), NoToken, UnknownToken, Unavailable))]
async fn show_by_cancel_link(
    state: State<AppState>,
    base: PublicUrl,
    query: ApiQuery<TokenQuery>,
) -> JsonResult<CustomerAppointment> {
    show(state, base, query).await
}

/// Cancels the appointment a token names, with an optional reason; a second time answers
/// `already_cancelled`. The cancellation mail links to the booking page.
#[utoipa::path(post, path = "/api/appointments/cancel", tag = "public",
    request_body(content = CancelRequest, example = json!({"token": "the-token-of-the-appointment-link",
        "reason": "I found the answer myself"})),
    responses((status = 200, body = CancelOutcome),
        (status = 400, description = "`bad_json`; `reason_too_long` (over 500 characters)", body = ErrorBody),
        UnknownToken, Unavailable))]
async fn cancel(
    State(state): State<AppState>,
    PublicUrl(base): PublicUrl,
    ApiJson(body): ApiJson<CancelRequest>,
) -> JsonResult<CancelOutcome> {
    let reason = body.reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON) {
        return Err(ApiError::invalid(
            "reason_too_long",
            format!("a reason has at most {MAX_REASON} characters"),
        ));
    }
    let a = appointment_of_link(&state, &body.token).await?;
    let mut done = cancel_with_mail(&state, a, reason, &base).await?;
    let a = appointment_of_link(&state, &body.token).await?;
    done.appointment = view(&state, &a, &body.token, &base).await?;
    Ok(Json(done))
}

fn move_refused(refusal: RescheduleRefusal) -> ApiError {
    let (status, message) = match refusal {
        RescheduleRefusal::Cancelled => (
            StatusCode::CONFLICT,
            "this appointment is cancelled; please book a new one",
        ),
        RescheduleRefusal::AlreadyBegun => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "this appointment has already begun and can no longer be moved",
        ),
        RescheduleRefusal::SameSlot => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the appointment is already at that time",
        ),
        RescheduleRefusal::Slot(r) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            match r {
                crate::core::schedule::BookingRefusal::NotASlot => "that time is not one of the desk's slots",
                crate::core::schedule::BookingRefusal::Past => "that slot has already begun",
                crate::core::schedule::BookingRefusal::TooSoon => "that slot starts too soon to be booked",
            },
        ),
    };
    ApiError::refused(status, refusal.code(), message)
}

/// Moves the appointment a token names to another free slot, in one step: its old slot is
/// free and the new one held at the same moment, and of simultaneous moves to one slot one
/// wins. Same token, same room; the customer is mailed once, with the invitation updated
/// (ICS `REQUEST`, same `UID`, next `SEQUENCE`).
#[utoipa::path(post, path = "/api/appointments/reschedule", tag = "public",
    request_body(content = RescheduleRequest, example = json!({"token": "the-token-of-the-appointment-link",
        "start": "2030-06-18T09:00:00Z"})),
    responses((status = 200, body = Rescheduled),
        (status = 400, description = "`bad_json`; `bad_start` (not an RFC 3339 instant)", body = ErrorBody),
        UnknownToken,
        (status = 409, description = "`slot_taken`: no representative is free at that slot any more; \
            `appointment_cancelled`; `appointment_changed`: it was moved or cancelled meanwhile (read it again)",
            body = ErrorBody),
        (status = 422, description = "`already_begun`; `same_slot`; `not_a_slot`, `slot_in_past`, \
            `too_short_notice` as for booking; `no_representative`", body = ErrorBody),
        Unavailable))]
async fn reschedule(
    State(state): State<AppState>,
    PublicUrl(base): PublicUrl,
    ApiJson(body): ApiJson<RescheduleRequest>,
) -> JsonResult<Rescheduled> {
    let requested: Timestamp = body.start.trim().parse().map_err(|_| {
        ApiError::invalid(
            "bad_start",
            "start must be an RFC 3339 instant such as 2030-06-17T10:00:00Z",
        )
    })?;
    let was = appointment_of_link(&state, &body.token).await?;
    let calendar = calendar_for(&state, was.category.as_deref()).await?;
    let slot = check_move(
        &calendar,
        was.status == AppointmentStatus::Booked,
        instant(was.start),
        requested,
        Timestamp::now(),
    )
    .map_err(move_refused)?;
    let agents = eligible(&state, was.category.as_deref()).await?;
    if agents.is_empty() {
        return Err(ApiError::refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_representative",
            "no agent serves appointments for this choice",
        ));
    }
    let links = CustomerLinks::of(body.token.trim(), was.category.as_deref()).behind(&base);
    let topic = names_of(&state, &was).await?.1;
    // As booking: each round moves to the representative the day says (the same one when
    // free); a refusal means someone took that one meanwhile, so look again.
    for _ in 0..agents.len() {
        let Some(chosen) = pick_preferring(&state, &calendar, &slot, &agents, Some(&was.representative_id)).await?
        else {
            break;
        };
        let mut moved = was.clone();
        moved.start = millis(slot.start);
        moved.end = millis(slot.end);
        moved.representative_id = chosen.id.clone();
        moved.sequence = was.sequence + 1;
        let context = links.mail_context(&chosen.display_name, topic.as_deref());
        let mail = mails::reschedule(&desk(&state), &was, &moved, &context, Timestamp::now());
        match state.store.reschedule_appointment_with_mail(moved, mail).await {
            Ok(Rescheduling::Moved(now)) => {
                metrics::counter!("switchboard_appointments_rescheduled_total").increment(1);
                if let Some(hooks) = state.archive.webhooks() {
                    hooks
                        .emit_durably(Event::appointment_rescheduled(&was, &now, crate::clock::now_ms()))
                        .await;
                }
                return Ok(Json(Rescheduled {
                    outcome: "rescheduled",
                    appointment: view(&state, &now, &body.token, &base).await?,
                    mailed: state.rooms.senders.mail.delivers(),
                }));
            }
            Ok(Rescheduling::Changed(current)) => {
                return Err(if current.status == AppointmentStatus::Cancelled {
                    move_refused(RescheduleRefusal::Cancelled)
                } else {
                    ApiError::refused(
                        StatusCode::CONFLICT,
                        "appointment_changed",
                        "this appointment was changed meanwhile; please look at it again",
                    )
                });
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(slot_taken())
}

/// The appointment as an ICS file to add to a calendar (`METHOD:PUBLISH`, the `UID` and
/// `SEQUENCE` of its mails; `STATUS:CANCELLED` once cancelled).
#[utoipa::path(get, path = "/api/appointments/ics", tag = "public", params(TokenQuery),
    responses((status = 200, description = "`text/calendar`, as an attachment `appointment.ics`",
            content_type = "text/calendar", body = String),
        NoToken, UnknownToken, Unavailable))]
async fn ics(
    State(state): State<AppState>,
    PublicUrl(base): PublicUrl,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Response, ApiError> {
    let a = appointment_of_link(&state, &q.token).await?;
    let (representative, topic) = names_of(&state, &a).await?;
    let manage = format!("{base}{}", CustomerLinks::of(q.token.trim(), None).manage);
    let context = mails::Context {
        manage_url: &manage,
        ..mails::Context::bare(&representative, topic.as_deref())
    };
    let summary = mails::summary(&context);
    let description = format!("{summary}\n\nJoin, reschedule or cancel on your appointment's page:\n{manage}");
    let method = if a.status == AppointmentStatus::Cancelled {
        Method::Cancel
    } else {
        Method::Publish
    };
    let body = mails::calendar(&desk(&state), &a, &context, method, Timestamp::now(), &description);
    Ok((
        [
            (header::CONTENT_TYPE, crate::appointments::ics::content_type(method)),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"appointment.ics\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}
