//! Joining a room over HTTP, public: what a room asks for (`GET
//! /api/join/{id}`) and the join itself (`POST /api/join/{id}`) with the checks in the
//! issue's order and the per-address lock; success is a room token for `/ws/room`.
//! The staff side of rooms is `http::rooms`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access::ClientIp;
use super::error::{ApiJson, JsonResult, StoreAnswer};
use super::responses::Unavailable;
use super::rooms::{AudienceKind, RoomToken, audience_kind, optional_email, optional_phone, token_at, update};
use super::{ApiError, AppState, ErrorBody};
use crate::auth::verify_password;
use crate::clock::now_ms;
use crate::core::room::{
    JoinBy, JoinFacts, JoinRefusal, check_join, count_wrong, is_locked, is_locked_for_all, refund_wrong,
    seat_held_by_other,
};
use crate::rooms::SeatRefused;
use crate::rooms::token::{Entrant, PersonKind};
use crate::store::{Audience, Guest, RoomState, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(info, join))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomInfo {
    pub id: String,
    pub title: String,
    pub audience: AudienceKind,
    /// A customer room asks for the phone number (and the password) when it names one.
    pub asks_phone: bool,
    /// A customer room asks for the email address (and the password) when it names one.
    pub asks_email: bool,
    pub state: RoomState,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phone": "+4915112345678", "password": "tulip-42"}))]
pub struct JoinRequest {
    /// The access code of an invitation (5 digits), instead of the password (and phone).
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Guest rooms: the guest's name (a customer may give one too).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// What a room asks of who joins it (for the room page's form).
#[utoipa::path(get, path = "/api/join/{id}", tag = "public",
    params(("id" = String, Path, description = "room id")),
    responses(
        (status = 200, body = RoomInfo),
        (status = 404, description = "`not_found`: no such room", body = ErrorBody),
        Unavailable))]
async fn info(State(state): State<AppState>, Path(id): Path<String>) -> JsonResult<RoomInfo> {
    let room = state.store.room(&id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("room"),
        e => e.into(),
    })?;
    Ok(Json(RoomInfo {
        id: room.id,
        title: room.title,
        audience: audience_kind(&room.audience),
        asks_phone: matches!(room.audience, Audience::Customer { phone: Some(_), .. }),
        asks_email: matches!(room.audience, Audience::Customer { email: Some(_), .. }),
        state: room.state,
    }))
}

/// `guest_room`: a held seat is `room_full` in a guest room, `seat_taken` in a customer
/// room (its one customer is in, or has a token to come in).
fn join_refused(r: JoinRefusal, max: u32, guest_room: bool) -> ApiError {
    let (status, code, message) = match r {
        JoinRefusal::Full if guest_room => (StatusCode::CONFLICT, "room_full", "already two people".to_string()),
        JoinRefusal::Full => (
            StatusCode::CONFLICT,
            "seat_taken",
            "the customer's seat is taken: someone joined with these details already".to_string(),
        ),
        JoinRefusal::Ended => (StatusCode::GONE, "room_ended", "the meeting has ended".to_string()),
        JoinRefusal::Locked => (
            StatusCode::TOO_MANY_REQUESTS,
            "room_locked",
            format!(
                "{max} wrong attempts from your address: this room is locked for you until the host invites you again"
            ),
        ),
        JoinRefusal::LockedForAll => (
            StatusCode::TOO_MANY_REQUESTS,
            "room_locked",
            "too many wrong attempts on this room: it is locked for everyone until the host sends a new invitation"
                .to_string(),
        ),
        JoinRefusal::MissingName => (StatusCode::BAD_REQUEST, "missing_name", "give your name".to_string()),
        JoinRefusal::MissingContact => (
            StatusCode::BAD_REQUEST,
            "missing_contact",
            "give your email address or phone number".to_string(),
        ),
        JoinRefusal::WrongCode => (
            StatusCode::FORBIDDEN,
            "wrong_code",
            "the access code is incorrect or has expired".to_string(),
        ),
        JoinRefusal::WrongPhone => (
            StatusCode::FORBIDDEN,
            "wrong_phone",
            "phone number is incorrect".to_string(),
        ),
        JoinRefusal::WrongEmail => (
            StatusCode::FORBIDDEN,
            "wrong_email",
            "email address is incorrect".to_string(),
        ),
        JoinRefusal::WrongPassword => (
            StatusCode::FORBIDDEN,
            "wrong_password",
            "password is incorrect".to_string(),
        ),
    };
    ApiError::refused(status, code, message)
}

/// Join a room: with the invitation's code (reusable until the next invitation replaces
/// it or it expires), or a customer room's password and the phone and/or email the room
/// names, or a guest room's name, password and email or phone. Checked in this order,
/// each with its own answer: ended, full, locked (too many wrong attempts from your
/// address, or from all addresses together since the last invitation), then what you
/// gave. Success is a room token for `/ws/room`, and the visitor seat is yours for the
/// token's lifetime (then while you are connected, and for the grace period after a
/// drop): every join is a new person, so a second join is refused while the seat is held.
#[utoipa::path(post, path = "/api/join/{id}", tag = "public",
    params(("id" = String, Path, description = "room id")),
    request_body = JoinRequest,
    responses(
        (status = 200, description = "joined: open the room's websocket and send the token in its first frame", body = RoomToken),
        (status = 400, description = "`bad_json`; `missing_name`; `missing_contact`; `invalid_phone`; `invalid_email`", body = ErrorBody),
        (status = 403, description = "`wrong_code`: the access code is incorrect or has expired; \
            `wrong_phone`: phone number is incorrect; `wrong_email`: email address is incorrect; \
            `wrong_password`: password is incorrect", body = ErrorBody),
        (status = 409, description = "`room_full` (guest room): already two people, or another guest's join holds the seat; \
            `seat_taken` (customer room): the customer's seat is held by an earlier join (connected, within its grace \
            period, or with an unexpired token)", body = ErrorBody),
        (status = 410, description = "`room_ended`: the meeting has ended (or there is no such room)", body = ErrorBody),
        (status = 429, description = "`room_locked`: too many wrong attempts from your address, or from all addresses together (`ROOM_MAX_FAILED_JOINS`); the host's next invitation unlocks it", body = ErrorBody),
        Unavailable))]
async fn join(
    State(state): State<AppState>,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<JoinRequest>,
) -> JsonResult<RoomToken> {
    let max = state.settings.rooms.max_attempts;
    let address = crate::http::access::address_key(ip.key()).to_string();
    let room = state.store.room(&id).await.if_found()?;
    let phone = optional_phone(&body.phone)?;
    let mail = optional_email(&body.email)?;
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| crate::core::names::checked_name(n, 100))
        .transpose()?;
    let guest_room = room.as_ref().is_some_and(|r| r.audience == Audience::Guest);
    let refused = |r: JoinRefusal| join_refused(r, max, guest_room);
    // Who this would be in the room: a new admission, its own person, never one of an
    // earlier join (a second person with the code cannot pass for the first).
    let kind = if guest_room {
        PersonKind::Guest
    } else {
        PersonKind::Customer
    };
    let person = crate::rooms::new_admission(kind);
    let live = state.rooms.view(&id).await;
    let mut facts = JoinFacts {
        // An ended room's last reservation holds nothing: it is `room_ended`.
        full: room.as_ref().is_some_and(|r| r.state == RoomState::Open)
            && seat_held_by_other(
                room.as_ref().and_then(|r| r.seat.as_ref()),
                live.as_ref().and_then(|l| l.visitor_person.as_deref()),
                &person,
                now_ms(),
            ),
        ended: room.as_ref().is_none_or(|r| r.state == RoomState::Ended),
        locked: room
            .as_ref()
            .is_some_and(|r| is_locked(&r.wrong_attempts, &address, max)),
        locked_for_all: room
            .as_ref()
            .is_some_and(|r| is_locked_for_all(&r.wrong_attempts, state.settings.rooms.max_failed_joins)),
        // Everything given is right, for the checks before the credentials.
        how: JoinBy::Customer {
            phone_ok: true,
            email_ok: true,
            password_ok: true,
        },
    };
    check_join(&facts).map_err(refused)?;
    // The attempt counts as wrong until it proves right, in the same stored update as the
    // lock checks: parallel guesses (a botnet's) cannot all pass the checks before any
    // of them is counted. A right one is refunded below.
    let cap = state.settings.rooms.max_failed_joins;
    let mut locked = None;
    let room = update(&state, &id, |r| {
        locked = if is_locked(&r.wrong_attempts, &address, max) {
            Some(JoinRefusal::Locked)
        } else if is_locked_for_all(&r.wrong_attempts, cap) {
            Some(JoinRefusal::LockedForAll)
        } else {
            count_wrong(&mut r.wrong_attempts, &address);
            None
        };
    })
    .await?;
    if let Some(refusal) = locked {
        return Err(refused(refusal));
    }
    let password_ok = |password: Option<String>| {
        let hash = room.password_hash.clone();
        async move {
            match password {
                Some(p) => verify_password(p, hash).await,
                None => Ok(false),
            }
        }
    };
    facts.how = match (&body.code, &room.audience) {
        (Some(code), _) => {
            let current = room.code.as_ref().filter(|c| c.expires_at > now_ms());
            let valid = match current {
                Some(c) => verify_password(code.trim().to_string(), c.hash.clone()).await?,
                None => false,
            };
            JoinBy::Code {
                valid,
                guest_room,
                has_name: name.is_some(),
                has_contact: mail.is_some() || phone.is_some(),
            }
        }
        (
            None,
            Audience::Customer {
                phone: expected_phone,
                email: expected_email,
            },
        ) => {
            // A room naming no one (from a chat or an appointment) admits no one by password.
            let named = expected_phone.is_some() || expected_email.is_some();
            JoinBy::Customer {
                phone_ok: named && expected_phone.as_ref().is_none_or(|e| phone.as_ref() == Some(e)),
                email_ok: expected_email
                    .as_ref()
                    .is_none_or(|e| mail.as_ref().is_some_and(|m| m.eq_ignore_ascii_case(e))),
                password_ok: password_ok(body.password.clone()).await?,
            }
        }
        (None, Audience::Guest) => JoinBy::Guest {
            has_name: name.is_some(),
            has_contact: mail.is_some() || phone.is_some(),
            password_ok: password_ok(body.password.clone()).await?,
        },
    };
    let verdict = check_join(&facts);
    if verdict.is_ok() || verdict.is_err_and(|r| !r.counts_as_wrong()) {
        update(&state, &id, |r| refund_wrong(&mut r.wrong_attempts, &address)).await?;
    }
    if let Err(refusal) = verdict {
        return Err(refused(refusal));
    }
    // The seat is this admission's for its token's lifetime, decided by compare-and-set
    // on the stored room: of two joins racing (on any nodes), one gets it; a join racing
    // the room's end is refused here, never given a token the socket then refuses.
    let now_secs = (now_ms() / 1000) as u64;
    let until = ((now_secs + state.settings.rooms.token_ttl.as_secs()) * 1000) as i64;
    match state.rooms.reserve_seat(&state.store, &id, &person, until).await {
        Ok(_) => {}
        Err(SeatRefused::Ended) => return Err(refused(JoinRefusal::Ended)),
        Err(SeatRefused::Taken) => return Err(refused(JoinRefusal::Full)),
        Err(SeatRefused::Store(StoreError::Conflict)) => {
            return Err(ApiError::Unavailable("the room is busy; try again".into()));
        }
        Err(SeatRefused::Store(e)) => return Err(e.into()),
    }
    let (name, guest_id) = if guest_room {
        let guest = state
            .store
            .guest_for(Guest {
                id: uuid::Uuid::new_v4().to_string(),
                name: name.clone().unwrap_or_default(),
                email: mail,
                phone,
                created_at: now_ms(),
            })
            .await?;
        (guest.name, Some(guest.id))
    } else {
        (name.unwrap_or_else(|| "Customer".into()), None)
    };
    let entrant = Entrant {
        room: &room.id,
        person: &person,
        name: &name,
        kind,
        guest_id,
    };
    Ok(Json(token_at(&state, entrant, now_secs)))
}
