//! An appointment's video room (issue 17): the representative starts it (from
//! `APPOINTMENT_START_WINDOW_MINUTES` before the start to as long after), which opens a
//! room of the rooms API for the customer; the customer, holding the appointment's link
//! (its cancel token), joins it in one click once it is open.
//!
//! The room's id is derived from the appointment's stored token hash (SHA-256), so it is
//! as unguessable as a random one, needs no field in the appointment, and starting twice
//! (two presses, two nodes) finds the same room: the store's "one room per id" decides.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::responses::{SignedIn, Unavailable};
use super::rooms::{admit_with_token, seat_refused};
use super::session::Authed;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::hash_password;
use crate::hub::now_ms;
use crate::rooms::token::PersonKind;
use crate::store::{Appointment, AppointmentStatus, Audience, Role, Room, RoomState, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start)).routes(routes!(join))
}

/// The room id of appointment `a`: a UUID made of the hash of its token's hash.
pub fn room_id(a: &Appointment) -> String {
    let digest = Sha256::digest(format!("appointment-room\0{}", a.cancel_token_hash));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

fn refused(status: StatusCode, code: &'static str, message: &str) -> ApiError {
    ApiError::Refused {
        status,
        code,
        message: message.to_string(),
    }
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
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 201, description = "the room, opened now", body = StartedRoom),
        (status = 200, description = "the room, opened before", body = StartedRoom),
        (status = 404, description = "`not_found`: no such appointment of this agent", body = ErrorBody),
        (status = 409, description = "`appointment_cancelled`; `not_startable` (outside the start window); \
            `room_ended` (its call was ended); `room_open` (you have another open room: end it first)", body = ErrorBody),
        SignedIn, Unavailable))]
async fn start(
    Authed(me): Authed,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<StartedRoom>), ApiError> {
    let a = match state.store.appointment(&id).await {
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("appointment")),
        other => other?,
    };
    if a.representative_id != me.id && me.role != Role::Admin {
        return Err(ApiError::NotFound("appointment"));
    }
    if a.status == AppointmentStatus::Cancelled {
        return Err(refused(
            StatusCode::CONFLICT,
            "appointment_cancelled",
            "this appointment was cancelled",
        ));
    }
    let window = state.settings.appointment_start_window.as_millis() as i64;
    if !(a.start - window..=a.start + window).contains(&now_ms()) {
        return Err(refused(
            StatusCode::CONFLICT,
            "not_startable",
            "an appointment can be started only around its time",
        ));
    }
    let id = room_id(&a);
    let started = |status| {
        Ok((
            status,
            Json(StartedRoom {
                link: format!("/room.html?room={id}"),
                room_id: id.clone(),
            }),
        ))
    };
    match state.store.room(&id).await {
        Ok(room) if room.state == RoomState::Open => return started(StatusCode::OK),
        Ok(_) => {
            return Err(refused(
                StatusCode::CONFLICT,
                "room_ended",
                "this appointment's call has ended",
            ));
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    // Opened by an admin or by the representative: the room is the representative's.
    // Nobody joins by password: the customer's appointment link gives a token.
    let room = Room::new_open(
        id.clone(),
        a.representative_id.clone(),
        format!("Appointment with {}", a.name),
        Audience::Customer {
            phone: None,
            email: Some(a.email.clone()),
        },
        hash_password(crate::auth::random_token()).await?,
        None,
    );
    match state.store.create_room(room).await {
        Ok(()) => started(StatusCode::CREATED),
        Err(StoreError::Conflict) => match state.store.room(&id).await {
            // Started at the same moment elsewhere.
            Ok(room) if room.state == RoomState::Open => started(StatusCode::OK),
            _ => Err(refused(
                StatusCode::CONFLICT,
                "room_open",
                "the representative has another open room; end it first",
            )),
        },
        Err(e) => Err(e.into()),
    }
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
        (status = 400, description = "`bad_json`", body = ErrorBody),
        (status = 404, description = "`unknown_token`: no appointment has this token", body = ErrorBody),
        (status = 409, description = "`not_started`: the representative has not started it yet (try again); \
            `appointment_cancelled`; `room_ended`; `seat_taken`: the customer's seat is held by an earlier join \
            (another device: connected, within its grace period, or with an unexpired token)", body = ErrorBody),
        Unavailable))]
async fn join(
    State(state): State<AppState>,
    body: Result<Json<JoinAppointment>, JsonRejection>,
) -> Result<Json<JoinedRoom>, ApiError> {
    let Json(body) = body?;
    let a = match state
        .store
        .appointment_by_token(&crate::auth::session_id(body.token.trim()))
        .await
    {
        Err(StoreError::NotFound) => {
            return Err(refused(
                StatusCode::NOT_FOUND,
                "unknown_token",
                "this appointment link is not valid; check that it was copied whole",
            ));
        }
        other => other?,
    };
    if a.status == AppointmentStatus::Cancelled {
        return Err(refused(
            StatusCode::CONFLICT,
            "appointment_cancelled",
            "this appointment was cancelled",
        ));
    }
    let id = room_id(&a);
    match state.store.room(&id).await {
        Ok(room) if room.state == RoomState::Open => {
            // Each join is its own admission: a second device (or a forwarded link) is
            // refused while the first holds the seat, never let in over it.
            let ended = refused(StatusCode::CONFLICT, "room_ended", "this appointment's call has ended");
            let token = admit_with_token(&state, &id, &a.name, PersonKind::Customer)
                .await
                .map_err(|r| seat_refused(r, ended))?;
            Ok(Json(JoinedRoom {
                link: format!("/room.html?room={id}#token={}", token.token),
                room_id: id,
                token: token.token,
            }))
        }
        Ok(_) => Err(refused(
            StatusCode::CONFLICT,
            "room_ended",
            "this appointment's call has ended",
        )),
        Err(StoreError::NotFound) => Err(refused(
            StatusCode::CONFLICT,
            "not_started",
            "your representative has not started the appointment yet; try again in a moment",
        )),
        Err(e) => Err(e.into()),
    }
}
