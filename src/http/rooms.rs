//! Rooms over HTTP for staff: create a room (or one from a live chat), invite
//! to it by mail and/or SMS, see its state, take a token for its websocket, end it, and
//! read call logs. Joining, which is public, is `http::join`.
//!
//! These routes (`/api/rooms…`, `/api/calls`, `/api/chats/{id}/video`) are behind the
//! whitelist like the other staff routes. A room belongs to the account that created
//! it: only that account invites to it, takes its agent token or ends it (admins may
//! read any room's state and every call log).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult, StatusJson, StoreAnswer};
use super::public_url::PublicUrl;
use super::responses::{NoRoomOfYours, RoomEnded, RoomOpen, SignedIn, Unavailable};
use super::session::Staff;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::hash_password;
use crate::clock::now_ms;
use crate::mail::Outgoing;
use crate::rooms::live::LiveView;
use crate::rooms::token::{Entrant, PersonKind};
use crate::store::{AccessCode, Account, Audience, Role, Room, RoomState, StoreError};

/// Attempts at a compare-and-set room update before giving up (each retry re-reads).
const UPDATE_TRIES: usize = 5;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(from_chat))
        .routes(routes!(current))
        .routes(routes!(one, end))
        .routes(routes!(invite))
        .routes(routes!(agent_token))
}

// ---------- shapes ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudienceKind {
    /// One known customer, named by phone and/or email, who joins with the password and what the room names.
    Customer,
    /// Anyone with the password, who gives a name and an email or phone.
    Guest,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Your contract", "audience": "customer", "phone": "+4915112345678", "password": "tulip-42"}))]
pub struct CreateRoom {
    /// 1 to 200 characters.
    pub title: String,
    pub audience: AudienceKind,
    /// Customer rooms: the customer's phone in E.164 (`+` and 7–15 digits).
    #[serde(default)]
    pub phone: Option<String>,
    /// Customer rooms: the customer's email.
    #[serde(default)]
    pub email: Option<String>,
    /// 4 to 200 characters; stored hashed.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    pub id: String,
    pub agent_id: String,
    pub title: String,
    pub audience: AudienceKind,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub state: RoomState,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    /// When it stops taking joins (an appointment's room: its slot's end plus
    /// `APPOINTMENT_ROOM_GRACE_MINUTES`); null: until its agent ends it.
    pub open_until: Option<i64>,
    /// The current access code's invitation number (1, 2, …), if one was sent.
    pub code_version: Option<u32>,
    pub code_expires_at: Option<i64>,
    /// Who is in the room now; null when no one is or was recently.
    pub live: Option<LiveView>,
    /// Where the invited person joins.
    pub link: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "carla@example.org"}))]
pub struct InviteRequest {
    /// Send the invitation by mail to this address.
    #[serde(default)]
    pub email: Option<String>,
    /// Send the invitation by SMS to this E.164 number.
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InviteAnswer {
    /// The channels the invitation went out on: `mail`, `sms`.
    pub sent: Vec<String>,
    pub code_version: u32,
    pub code_expires_at: i64,
    pub link: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomToken {
    pub room_id: String,
    /// Send it in the first frame of `/ws/room?room=<room_id>`,
    /// `{"type":"auth","token":"<token>"}`; never in the URL (refused: `token_in_url`).
    pub token: String,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
    pub name: String,
    pub kind: PersonKind,
}

// ---------- rules of input ----------

/// An E.164 number: `+`, a non-zero digit, 7 to 15 digits in all; spaces, dashes,
/// dots and brackets people type are dropped first.
pub fn e164(raw: &str) -> Option<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+')?;
    let ok = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    ok.then_some(compact)
}

fn email(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    trimmed.parse::<lettre::Address>().ok().map(|_| trimmed.to_string())
}

pub(super) fn optional_phone(raw: &Option<String>) -> Result<Option<String>, ApiError> {
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(p) => e164(p).map(Some).ok_or_else(|| {
            ApiError::invalid(
                "invalid_phone",
                "a phone number is + and 7 to 15 digits (E.164), e.g. +4915112345678",
            )
        }),
    }
}

pub(super) fn optional_email(raw: &Option<String>) -> Result<Option<String>, ApiError> {
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(e) => email(e)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("invalid_email", "that is not a mail address")),
    }
}

pub(super) fn audience_kind(a: &Audience) -> AudienceKind {
    match a {
        Audience::Customer { .. } => AudienceKind::Customer,
        Audience::Guest => AudienceKind::Guest,
    }
}

/// Where people reach the hub: `PUBLIC_URL`, else the request's own host.
fn link(base: &str, room: &str) -> String {
    format!("{base}/room.html?room={room}")
}

fn view(room: &Room, live: Option<LiveView>, base: &str) -> RoomView {
    let (phone, email) = match &room.audience {
        Audience::Customer { phone, email } => (phone.clone(), email.clone()),
        Audience::Guest => (None, None),
    };
    RoomView {
        id: room.id.clone(),
        agent_id: room.agent_id.clone(),
        title: room.title.clone(),
        audience: audience_kind(&room.audience),
        phone,
        email,
        state: room.state,
        created_at: room.created_at,
        ended_at: room.ended_at,
        open_until: room.open_until,
        code_version: room.code.as_ref().map(|c| c.version),
        code_expires_at: room.code.as_ref().map(|c| c.expires_at),
        live,
        link: link(base, &room.id),
    }
}

pub(super) fn ended_error() -> ApiError {
    ApiError::refused(StatusCode::GONE, "room_ended", "the meeting has ended")
}

/// The caller's own room (404 for anyone else's, as if it did not exist).
async fn own_room(state: &AppState, account: &Account, id: &str) -> Result<Room, ApiError> {
    state
        .store
        .room(id)
        .await
        .found_if(|room| room.agent_id == account.id, ApiError::NotFound("room"))
}

/// Applies `change` to the stored room by compare-and-set, re-reading on conflict.
pub(super) async fn update(state: &AppState, id: &str, mut change: impl FnMut(&mut Room)) -> Result<Room, ApiError> {
    for _ in 0..UPDATE_TRIES {
        let mut room = state.store.room(id).await?;
        change(&mut room);
        match state.store.update_room(room).await {
            Err(StoreError::Conflict) => continue,
            other => return other.map_err(ApiError::from),
        }
    }
    Err(ApiError::Unavailable("the room is busy; try again".into()))
}

// ---------- staff ----------

/// Create a room (one open room per account).
#[utoipa::path(post, path = "/api/rooms", tag = "rooms",
    request_body = CreateRoom,
    responses(
        (status = 201, description = "the room, open", body = RoomView),
        (status = 400, description = "`bad_json`; `invalid_name` (title); `invalid_password` (4 to 200 characters); \
            `invalid_phone`; `invalid_email`; `missing_customer`: a customer room without a phone or an email", body = ErrorBody),
        RoomOpen, SignedIn, Unavailable))]
async fn create(
    Staff(account, state): Staff,
    PublicUrl(base): PublicUrl,
    ApiJson(body): ApiJson<CreateRoom>,
) -> StatusJson<RoomView> {
    let title = crate::core::names::checked_name(&body.title, 200)?;
    let length = body.password.chars().count();
    if !(4..=200).contains(&length) {
        return Err(ApiError::invalid(
            "invalid_password",
            "a room password is 4 to 200 characters",
        ));
    }
    let audience = match body.audience {
        AudienceKind::Customer => {
            let (phone, email) = (optional_phone(&body.phone)?, optional_email(&body.email)?);
            if phone.is_none() && email.is_none() {
                // The join checks who comes in against this: a room naming no one would
                // admit anyone with the password.
                return Err(ApiError::invalid(
                    "missing_customer",
                    "a customer room names its customer: give a phone number, an email address or both",
                ));
            }
            Audience::Customer { phone, email }
        }
        AudienceKind::Guest => Audience::Guest,
    };
    let room = Room::new_open(
        uuid::Uuid::new_v4().to_string(),
        account.id.clone(),
        title,
        audience,
        hash_password(body.password, state.settings.password_hash_cost).await?,
        None,
    );
    create_own_room(&state, &room).await?;
    Ok((StatusCode::CREATED, Json(view(&room, None, &base))))
}

/// Stores a new room of an agent's; `room_open` when they have one open already.
async fn create_own_room(state: &AppState, room: &Room) -> Result<(), ApiError> {
    let mut created = state.store.create_room(room.clone()).await;
    if matches!(created, Err(StoreError::Conflict)) && end_closed_room_of(state, &room.agent_id).await? {
        created = state.store.create_room(room.clone()).await;
    }
    match created {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(ApiError::refused(
            StatusCode::CONFLICT,
            "room_open",
            "you already have an open room",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Ends `agent_id`'s open room when its closing time has passed (an appointment's room
/// after its slot and grace), so that it does not stand in the way of their next room.
/// True when one was ended.
pub(super) async fn end_closed_room_of(state: &AppState, agent_id: &str) -> Result<bool, StoreError> {
    let Some(room) = state.store.open_room_of(agent_id).await? else {
        return Ok(false);
    };
    if crate::core::room::open_at(room.open_until, now_ms()) {
        return Ok(false);
    }
    crate::rooms::end_stored_room(&state.store, &room.id).await?;
    state.rooms.ended(&room.id).await;
    Ok(true)
}

/// Turn one of your live chats into a video call: a room for its customer (no code or
/// password: they are known by the chat), who gets a `video_invite` frame in the chat
/// with a link that joins in one click. The call log links to the conversation.
#[utoipa::path(post, path = "/api/chats/{id}/video", tag = "rooms",
    params(("id" = String, Path, description = "one of your live chats (`chat_started.chat_id`)")),
    responses(
        (status = 201, description = "the room, open; the customer has the invitation", body = RoomView),
        (status = 404, description = "`not_found`: no live chat of yours has this id", body = ErrorBody),
        RoomOpen, SignedIn, Unavailable))]
async fn from_chat(
    Staff(account, state): Staff,
    PublicUrl(base): PublicUrl,
    Path(chat_id): Path<String>,
) -> StatusJson<RoomView> {
    let not_yours = || ApiError::NotFound("live chat of yours");
    let name = state
        .hub
        .chat_customer(&account.id, &chat_id)
        .await?
        .ok_or_else(not_yours)?;
    // Nobody joins by password: the invitation in the chat carries a token.
    let room = Room::new_open(
        uuid::Uuid::new_v4().to_string(),
        account.id.clone(),
        format!("Video call with {name}"),
        Audience::Customer {
            phone: None,
            email: None,
        },
        hash_password(crate::auth::random_token(), state.settings.password_hash_cost).await?,
        Some(chat_id.clone()),
    );
    create_own_room(&state, &room).await?;
    let token = admit_with_token(&state, &room.id, &name, PersonKind::Customer)
        .await
        .map_err(|r| seat_refused(r, ended_error()))?;
    let link = format!("/room.html?room={}#token={}", room.id, token.token);
    if !state.hub.video_invite(&account.id, &chat_id, &room.id, link).await? {
        // The chat ended meanwhile: the room goes with it.
        crate::rooms::end_stored_room(&state.store, &room.id).await?;
        return Err(not_yours());
    }
    Ok((StatusCode::CREATED, Json(view(&room, None, &base))))
}

/// The caller's open room.
#[utoipa::path(get, path = "/api/rooms/current", tag = "rooms",
    responses(
        (status = 200, body = RoomView),
        (status = 404, description = "`not_found`: you have no open room", body = ErrorBody),
        SignedIn, Unavailable))]
async fn current(Staff(account, state): Staff, PublicUrl(base): PublicUrl) -> JsonResult<RoomView> {
    let room = state
        .store
        .open_room_of(&account.id)
        .await?
        .ok_or(ApiError::NotFound("open room"))?;
    Ok(Json(live_view(&state, &room, &base).await))
}

/// A room and who is in it now (its owner, or an admin).
#[utoipa::path(get, path = "/api/rooms/{id}", tag = "rooms",
    params(("id" = String, Path, description = "room id")),
    responses(
        (status = 200, body = RoomView),
        NoRoomOfYours, SignedIn, Unavailable))]
async fn one(Staff(account, state): Staff, PublicUrl(base): PublicUrl, Path(id): Path<String>) -> JsonResult<RoomView> {
    let room = state.store.room(&id).await.found_if(
        |room| room.agent_id == account.id || account.role == Role::Admin,
        ApiError::NotFound("room"),
    )?;
    Ok(Json(live_view(&state, &room, &base).await))
}

/// End your room for good: both members get `room_ended`; it cannot be reopened.
#[utoipa::path(delete, path = "/api/rooms/{id}", tag = "rooms",
    params(("id" = String, Path, description = "room id")),
    responses(
        (status = 200, description = "the room, ended (ending an ended room changes nothing)", body = RoomView),
        NoRoomOfYours, SignedIn, Unavailable))]
async fn end(Staff(account, state): Staff, PublicUrl(base): PublicUrl, Path(id): Path<String>) -> JsonResult<RoomView> {
    own_room(&state, &account, &id).await?;
    let room = crate::rooms::end_stored_room(&state.store, &id).await?;
    state.rooms.ended(&id).await;
    Ok(Json(view(&room, None, &base)))
}

/// A room as stored with who is in it now (on this node or another).
async fn live_view(state: &AppState, room: &Room, base: &str) -> RoomView {
    view(room, state.rooms.view(&room.id).await, base)
}

/// A fresh 5-digit code from the OS generator.
fn new_code() -> String {
    use rand::Rng;
    format!("{:05}", rand::rng().random_range(0..100_000u32))
}

/// Invite to your room by mail and/or SMS: a link and a new 5-digit code, which replaces
/// the previous one (the old code stops working) and clears the wrong-attempt counts.
#[utoipa::path(post, path = "/api/rooms/{id}/invite", tag = "rooms",
    params(("id" = String, Path, description = "room id")),
    request_body = InviteRequest,
    responses(
        (status = 200, description = "sent on every channel asked for", body = InviteAnswer),
        (status = 400, description = "`bad_json`; `no_address` (neither email nor phone); `invalid_email`; `invalid_phone`", body = ErrorBody),
        NoRoomOfYours, RoomEnded,
        (status = 502, description = "`send_failed`: a sender failed (the message says which and why); \
            the new code is in force, so invite again once the sender works", body = ErrorBody),
        SignedIn, Unavailable))]
async fn invite(
    Staff(account, state): Staff,
    PublicUrl(base): PublicUrl,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InviteRequest>,
) -> JsonResult<InviteAnswer> {
    let room = own_room(&state, &account, &id).await?;
    let to_mail = optional_email(&body.email)?;
    let to_phone = optional_phone(&body.phone)?;
    if to_mail.is_none() && to_phone.is_none() {
        return Err(ApiError::invalid(
            "no_address",
            "give an email address, a phone number or both",
        ));
    }
    if room.state == RoomState::Ended {
        return Err(ended_error());
    }
    let code = new_code();
    let hash = hash_password(code.clone(), state.settings.password_hash_cost).await?;
    let expires_at = now_ms() + state.settings.rooms.code_ttl.as_millis() as i64;
    let room = update(&state, &id, |r| {
        let version = r.code.as_ref().map_or(1, |c| c.version + 1);
        r.code = Some(AccessCode {
            hash: hash.clone(),
            expires_at,
            version,
        });
        r.wrong_attempts.clear();
    })
    .await?;
    let version = room.code.as_ref().map_or(1, |c| c.version);
    let link = link(&base, &room.id);
    let hours = state.settings.rooms.code_ttl.as_secs().div_ceil(3600);
    let text = format!(
        "{} invites you to a video meeting: {}\n\nJoin here:\n{link}\n\nYour access code: {code}\nThe code works for {hours} h.",
        account.display_name, room.title
    );
    let mut sent = Vec::new();
    let channels = [
        (to_mail, &state.rooms.senders.mail),
        (to_phone, &state.rooms.senders.sms),
    ];
    for (to, sender) in channels {
        let Some(to) = to else { continue };
        let message = Outgoing {
            to,
            subject: format!("Invitation: {}", room.title),
            text: text.clone(),
            ..Outgoing::default()
        };
        if let Err(e) = sender.send(&message).await {
            let already = if sent.is_empty() {
                String::new()
            } else {
                format!(" (sent by {} already)", sent.join(", "))
            };
            return Err(ApiError::refused(
                StatusCode::BAD_GATEWAY,
                "send_failed",
                format!("the invitation was not sent by {}: {e}{already}", sender.channel()),
            ));
        }
        sent.push(sender.channel().to_string());
    }
    Ok(Json(InviteAnswer {
        sent,
        code_version: version,
        code_expires_at: expires_at,
        link,
    }))
}

/// A room token for the room's agent, to open its websocket.
#[utoipa::path(post, path = "/api/rooms/{id}/token", tag = "rooms",
    params(("id" = String, Path, description = "room id")),
    responses(
        (status = 200, body = RoomToken),
        NoRoomOfYours, RoomEnded, SignedIn, Unavailable))]
async fn agent_token(Staff(account, state): Staff, Path(id): Path<String>) -> JsonResult<RoomToken> {
    let room = own_room(&state, &account, &id).await?;
    if room.state == RoomState::Ended {
        return Err(ended_error());
    }
    let person = format!("agent:{}", account.id);
    let entrant = Entrant {
        room: &room.id,
        person: &person,
        name: &account.display_name,
        kind: PersonKind::Agent,
        guest_id: None,
    };
    Ok(Json(token_at(&state, entrant, (now_ms() / 1000) as u64)))
}

/// A new admission to `room`'s visitor seat without a join (a link that carries its
/// token: a chat's video invitation, an appointment's room): its own person id, the
/// seat reserved for the token's lifetime, refused while another admission holds it.
pub(super) async fn admit_with_token(
    state: &AppState,
    room: &str,
    name: &str,
    kind: PersonKind,
) -> Result<RoomToken, crate::rooms::SeatRefused> {
    let person = crate::rooms::new_admission(kind);
    let now_secs = (now_ms() / 1000) as u64;
    let until = ((now_secs + state.settings.rooms.token_ttl.as_secs()) * 1000) as i64;
    state.rooms.reserve_seat(&state.store, room, &person, until).await?;
    let entrant = Entrant {
        room,
        person: &person,
        name,
        kind,
        guest_id: None,
    };
    Ok(token_at(state, entrant, now_secs))
}

/// A seat refusal as an answer: `ended` is the room's own answer for an ended room.
pub(super) fn seat_refused(r: crate::rooms::SeatRefused, ended: ApiError) -> ApiError {
    match r {
        crate::rooms::SeatRefused::Ended => ended,
        crate::rooms::SeatRefused::Taken => seat_taken(),
        crate::rooms::SeatRefused::Store(StoreError::Conflict) => {
            ApiError::Unavailable("the room is busy; try again".into())
        }
        crate::rooms::SeatRefused::Store(e) => e.into(),
    }
}

/// The customer's seat is held by another admission.
pub(super) fn seat_taken() -> ApiError {
    ApiError::refused(
        StatusCode::CONFLICT,
        "seat_taken",
        "the customer's seat is taken: someone joined with these details already",
    )
}

pub(super) fn token_at(state: &AppState, entrant: Entrant<'_>, now_secs: u64) -> RoomToken {
    let (room, kind) = (entrant.room.to_string(), entrant.kind);
    let (token, claims) = state.rooms.tokens.issue(entrant, now_secs);
    RoomToken {
        room_id: room,
        token,
        expires_at: (claims.exp * 1000) as i64,
        name: claims.name,
        kind,
    }
}
