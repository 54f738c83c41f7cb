//! An appointment's video room: the representative starts it (from
//! `APPOINTMENT_START_WINDOW_MINUTES` before the start to as long after), which opens a
//! room of the rooms API for the customer; the customer, holding the appointment's link
//! (its cancel token), joins it in one click once it is open.
//!
//! The room stays open through the whole slot plus `APPOINTMENT_ROOM_GRACE_MINUTES`
//! (`Room::open_until`): leaving is not ending, so "Start" and "Join" work again after a
//! leave until then, and the representative's next room finds it closed by itself.
//! A customer who asks to join before the start is told whom they wait for and marked
//! waiting (`rooms::waiting`); their page asks again until they are let in.
//!
//! The room's id is derived from the appointment's stored token hash (SHA-256), so it is
//! as unguessable as a random one, needs no field in the appointment, and starting twice
//! (two presses, two nodes) finds the same room: the store's "one room per id" decides.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::appointments::appointment_of_link;
use super::error::{ApiJson, ApiQuery, JsonResult, StatusJson, StoreAnswer};
use super::responses::{BadJson, NoToken, NotYourAppointment, SignedIn, Unavailable, UnknownToken};
use super::rooms::{admit_with_token, end_closed_room_of, seat_refused};
use super::session::Staff;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::hash_password;
use crate::clock::now_ms;
use crate::rooms::token::PersonKind;
use crate::store::{Appointment, AppointmentStatus, Audience, Role, Room, RoomState, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(join))
        .routes(routes!(status))
}

/// When appointment `a`'s room closes to joins.
fn closes_at(state: &AppState, a: &Appointment) -> i64 {
    crate::core::room::appointment_room_closes_at(a.end, state.settings.appointments.room_grace.as_millis() as i64)
}

/// `a`'s start as the desk's clock shows it, e.g. `10:00 (Europe/Berlin)`.
fn desk_time(state: &AppState, a: &Appointment) -> String {
    let zone = &state.settings.appointments.zone;
    match jiff::Timestamp::from_millisecond(a.start) {
        Ok(t) => format!(
            "{} ({})",
            t.to_zoned(zone.clone()).strftime("%H:%M"),
            zone.iana_name().unwrap_or("UTC")
        ),
        Err(_) => "its time".into(),
    }
}

/// The name the customer knows their representative by.
async fn representative_name(state: &AppState, a: &Appointment) -> String {
    match state.store.account(&a.representative_id).await {
        Ok(account) => account.display_name,
        Err(_) => "your representative".into(),
    }
}

/// The room id of appointment `a`: a UUID made of the hash of its token's hash.
pub fn room_id(a: &Appointment) -> String {
    let digest = Sha256::digest(format!("appointment-room\0{}", a.cancel_token_hash));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

fn cancelled() -> ApiError {
    ApiError::refused(
        StatusCode::CONFLICT,
        "appointment_cancelled",
        "this appointment was cancelled",
    )
}

/// The appointment's call was ended (by its representative, or by its closing time).
fn call_ended() -> ApiError {
    ApiError::refused(StatusCode::CONFLICT, "room_ended", "this appointment's call has ended")
}

/// The appointment's slot and grace are over, and its room was never opened.
fn time_over() -> ApiError {
    ApiError::refused(StatusCode::CONFLICT, "room_ended", "this appointment's time is over")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StartedRoom {
    pub room_id: String,
    /// The room page; the agent gets their room token from `POST /api/rooms/{id}/token`.
    pub link: String,
}

/// Starts one of the signed-in agent's appointments: opens its room for the customer.
/// Starting again answers the same room.
#[utoipa::path(post, path = "/api/agent/appointments/{id}/start", tag = "session",
    params(("id" = String, Path, description = "the appointment id")),
    responses((status = 201, description = "the room, opened now", body = StartedRoom),
        (status = 200, description = "the room, opened before and still open (within the slot and \
            `APPOINTMENT_ROOM_GRACE_MINUTES`, also after everyone left it, whatever the start window)", body = StartedRoom),
        NotYourAppointment,
        (status = 409, description = "`appointment_cancelled`; `not_startable` (more than `APPOINTMENT_START_WINDOW_MINUTES` before its start, the only time \
            it is not `startable` while booked and before its room would close); \
            `room_ended` (its call was ended for everyone, or its slot and grace are over); `room_open` (you have \
            another open room: end it first; an appointment's room past its slot and grace is ended by itself)", body = ErrorBody),
        SignedIn, Unavailable))]
async fn start(Staff(me, state): Staff, Path(id): Path<String>) -> StatusJson<StartedRoom> {
    let a = state.store.appointment(&id).await.found_if(
        |a| a.representative_id == me.id || me.role == Role::Admin,
        ApiError::NotFound("appointment"),
    )?;
    if a.status == AppointmentStatus::Cancelled {
        return Err(cancelled());
    }
    let id = room_id(&a);
    let now = now_ms();
    let open_until = closes_at(&state, &a);
    let window = state.settings.appointments.start_window.as_millis() as i64;
    let started = |status| {
        Ok((
            status,
            Json(StartedRoom {
                link: format!("/room.html?room={id}"),
                room_id: id.clone(),
            }),
        ))
    };
    // Started before and still open (someone left, or a reload): the same room, back in
    // it whenever within the slot and its grace, in or out of the start window.
    match state.store.room(&id).await {
        Ok(room) if room.state == RoomState::Open && crate::core::room::open_at(room.open_until, now) => {
            return started(StatusCode::OK);
        }
        Ok(room) => {
            if room.state == RoomState::Open {
                crate::rooms::end_stored_room(&state.store, &id).await?;
                state.rooms.ended(&id).await;
            }
            return Err(call_ended());
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    if now > open_until {
        return Err(time_over());
    }
    let grace = state.settings.appointments.room_grace.as_millis() as i64;
    if !crate::core::room::appointment_startable(a.start, a.end, window, grace, now) {
        return Err(ApiError::refused(
            StatusCode::CONFLICT,
            "not_startable",
            "an appointment can be started only around its time",
        ));
    }
    // Opened by an admin or by the representative: the room is the representative's.
    // Nobody joins by password: the customer's appointment link gives a token.
    let mut room = Room::new_open(
        id.clone(),
        a.representative_id.clone(),
        format!("Appointment with {}", a.name),
        Audience::Customer {
            phone: None,
            email: Some(a.email.clone()),
        },
        hash_password(crate::auth::random_token(), state.settings.password_hash_cost).await?,
        None,
    );
    room.open_until = Some(open_until);
    // Twice at most: the second after ending a room of theirs that had closed by itself.
    for _ in 0..2 {
        match state.store.create_room(room.clone()).await {
            Ok(()) => {
                state.rooms.waiting.clear(state.cluster.as_ref(), &a.id).await;
                return started(StatusCode::CREATED);
            }
            Err(StoreError::Conflict) => match state.store.room(&id).await {
                // Started at the same moment elsewhere.
                Ok(room) if room.state == RoomState::Open => return started(StatusCode::OK),
                _ if end_closed_room_of(&state, &a.representative_id).await? => continue,
                _ => break,
            },
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::refused(
        StatusCode::CONFLICT,
        "room_open",
        "the representative has another open room; end it first",
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinAppointment {
    /// The token of the appointment's link (the cancel link of its mail).
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JoinedRoom {
    pub room_id: String,
    /// Send it in the first frame of `/ws/room?room=<room_id>`,
    /// `{"type":"auth","token":"<token>"}`; never in the URL (refused: `token_in_url`).
    pub token: String,
    /// The room page with the token (in the fragment, which never reaches a server), to open.
    pub link: String,
}

/// The customer joins their appointment's room once the representative has started it.
#[utoipa::path(post, path = "/api/appointments/join", tag = "public",
    request_body(content = JoinAppointment, example = json!({"token": "the-token-of-the-appointment-link"})),
    responses((status = 200, body = JoinedRoom),
        BadJson,
        UnknownToken,
        (status = 409, description = "`not_started`: the representative has not started it yet: the customer \
            is in the waiting room (the representative sees them waiting for 30 s after each ask; ask again every few \
            seconds to be let in as soon as the call starts); \
            `appointment_cancelled`; `room_ended` (ended by the representative, or past the slot and \
            `APPOINTMENT_ROOM_GRACE_MINUTES`); `seat_taken`: the customer's seat is held by an earlier join \
            (another device: connected, within its grace period, or with an unexpired token)", body = ErrorBody),
        Unavailable))]
async fn join(State(state): State<AppState>, ApiJson(body): ApiJson<JoinAppointment>) -> JsonResult<JoinedRoom> {
    let a = appointment_of_link(&state, &body.token).await?;
    if a.status == AppointmentStatus::Cancelled {
        return Err(cancelled());
    }
    let id = room_id(&a);
    let now = now_ms();
    match state.store.room(&id).await {
        Ok(room) if room.state == RoomState::Open && crate::core::room::open_at(room.open_until, now) => {
            // Each join is its own admission: a second device (or a forwarded link) is
            // refused while the first holds the seat, never let in over it.
            let token = admit_with_token(&state, &id, &a.name, PersonKind::Customer)
                .await
                .map_err(|r| seat_refused(r, call_ended()))?;
            state.rooms.waiting.clear(state.cluster.as_ref(), &a.id).await;
            Ok(Json(JoinedRoom {
                link: format!("/room.html?room={id}#token={}", token.token),
                room_id: id,
                token: token.token,
            }))
        }
        Ok(_) => Err(call_ended()),
        Err(StoreError::NotFound) if now > closes_at(&state, &a) => Err(time_over()),
        Err(StoreError::NotFound) => {
            // The waiting room: the representative sees this customer waiting while their
            // page keeps asking.
            state.rooms.waiting.mark(state.cluster.as_ref(), &a.id, now).await;
            let who = representative_name(&state, &a).await;
            Err(ApiError::refused(
                StatusCode::CONFLICT,
                "not_started",
                format!(
                    "your call with {who} starts at {}; you will be let in when {who} joins",
                    desk_time(&state, &a)
                ),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomStatusQuery {
    /// The token of the appointment's link.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentRoomStatus {
    /// `waiting` (not started yet), `open` (join now) or `ended`.
    pub state: &'static str,
    /// The representative's name, for "Your call with … starts at …".
    pub representative: String,
    /// The slot, in milliseconds since the epoch.
    pub start: i64,
    pub end: i64,
    /// Until when the room takes joins: the slot's end plus `APPOINTMENT_ROOM_GRACE_MINUTES`.
    pub open_until: i64,
    /// From when the representative may start the call: the start less
    /// `APPOINTMENT_START_WINDOW_MINUTES`. Before it, a page says when to come back rather
    /// than wait in the waiting room.
    pub joinable_from: i64,
    /// The server's clock as it answered, in milliseconds since the epoch: a page compares
    /// `joinable_from` with this, as the customer's own clock may be off.
    pub now: i64,
}

/// The appointment's room as its customer's page needs it to wait: whom they wait for,
/// and whether the call is open. Changes nothing (mail scanners follow links): only
/// `POST /api/appointments/join` puts the customer in the waiting room.
#[utoipa::path(get, path = "/api/appointments/room", tag = "public", params(RoomStatusQuery),
    responses((status = 200, body = AppointmentRoomStatus), NoToken, UnknownToken, Unavailable))]
async fn status(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RoomStatusQuery>,
) -> JsonResult<AppointmentRoomStatus> {
    let a = appointment_of_link(&state, &q.token).await?;
    let open_until = closes_at(&state, &a);
    let now = now_ms();
    let state_name = match state.store.room(&room_id(&a)).await {
        _ if a.status == AppointmentStatus::Cancelled => "ended",
        Ok(room) if room.state == RoomState::Open && crate::core::room::open_at(room.open_until, now) => "open",
        Ok(_) => "ended",
        Err(StoreError::NotFound) if now > open_until => "ended",
        Err(StoreError::NotFound) => "waiting",
        Err(e) => return Err(e.into()),
    };
    Ok(Json(AppointmentRoomStatus {
        state: state_name,
        representative: representative_name(&state, &a).await,
        start: a.start,
        end: a.end,
        open_until,
        joinable_from: a.start - state.settings.appointments.start_window.as_millis() as i64,
        now,
    }))
}
