//! `/ws/room?room=<id>`: one room member's socket. The room token comes in
//! the first frame, `{"type":"auth","token":"…"}`, never in the URL: URLs end up in
//! access logs (a proxy's, the browser's history), frames do not. A token in the query
//! is refused (`token_in_url`), so no client keeps leaking it.
//!
//! The upgrade is always accepted (after the origin and connection-limit checks), so a
//! browser learns *why* it is refused: a refused token or seat gets an `error` frame
//! and then a Close with its own code (4400 bad or missing token, 4401 expired, 4403
//! another room's token, 4409 full or seat taken, 4410 ended; see docs/protocol.md). Then the socket relays:
//! frames in are size- and rate-limited, decoded and handed to the rooms task; frames
//! out come from the member's bounded outbox. The connection watches shutdown and a
//! heartbeat. It ends as the hub's other sockets do ([`closing`]): protocol violations
//! get their close code (1009 for a frame over 1 MiB) and a lingering close, a run of
//! bad frames 1008, the peer's Close its answer.
//!
//! A lobby may send `{"type":"peek","token":"…"}` as the first frame instead: the same
//! checks of the token (none of the seat), answered `room_inside` (who holds the other
//! seat) and a Close 1000. It takes no seat and no one in the room hears of it; the
//! names go only to someone the room admitted (the token is the proof).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use governor::{Quota, RateLimiter};
use tokio::sync::mpsc;

use super::closing::{self, Ending};
use crate::core::room::Refusal;
use crate::http::listener::LingeringClose;
use crate::http::{ApiError, AppState};
use crate::rooms::SeatRefused;
use crate::rooms::cluster::{ConnectRefused, LinkDown};
use crate::rooms::frames::{InsideView, RoomClientFrame, RoomServerFrame};
use crate::rooms::live::{Conn, OUTBOX, Outbound};
use crate::rooms::token::{PersonKind, RoomClaims, TokenRefusal};
use crate::store::{RoomState, StoreError};

/// The largest room frame: an SDP offer with many codecs and candidates is ~10 KB.
pub const MAX_ROOM_FRAME: usize = 64 * 1024;
/// Signalling frames per second a member may send, and the burst: ICE gathering sends a
/// few dozen candidates at once, then little.
const FRAMES_PER_SEC: u32 = 50;
const FRAMES_BURST: u32 = 100;
/// Frames refused in a row for the rate before the member is closed (1008): a client
/// that does not slow down when told is flooding.
const FLOOD_STRIKES: u32 = 200;

/// How long a new socket may take to send its `auth` frame.
const AUTH_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, serde::Deserialize)]
pub struct RoomQuery {
    #[serde(default)]
    room: String,
    /// Refused when present: the token belongs in the first frame.
    #[serde(default)]
    token: Option<String>,
}

/// The first frame of a room socket.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum FirstFrame {
    Auth {
        token: String,
    },
    /// Who is inside, without joining (a lobby).
    Peek {
        token: String,
    },
}

type Refused = (u16, &'static str, &'static str);

/// Why a socket ends before its member is let in.
enum NotIn {
    /// An error frame, then a Close with the refusal's code.
    Refused(Refused),
    /// The socket ended or broke the protocol before its `auth` frame.
    Ended(Ending),
}

/// Reads the `auth` (or `peek`) frame; anything else first, or nothing within
/// [`AUTH_DEADLINE`], is refused (4400).
async fn read_token(socket: &mut WebSocket) -> Result<FirstFrame, NotIn> {
    const MISSING: Refused = (
        4400,
        "bad_token",
        "send {\"type\":\"auth\",\"token\":\"<room token>\"} as the first frame",
    );
    let first = tokio::time::timeout(AUTH_DEADLINE, async {
        loop {
            match closing::read_outcome(socket.next().await) {
                Ok(Message::Text(t)) => return Ok(t),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(_) => return Err(NotIn::Refused(MISSING)),
                Err(ending) => return Err(NotIn::Ended(ending)),
            }
        }
    })
    .await;
    match first {
        Ok(Ok(text)) if text.len() <= MAX_ROOM_FRAME => {
            serde_json::from_str::<FirstFrame>(&text).map_err(|_| NotIn::Refused(MISSING))
        }
        Ok(Err(not_in)) => Err(not_in),
        _ => Err(NotIn::Refused(MISSING)),
    }
}

pub async fn room(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<RoomQuery>,
    tcp: LingeringClose,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let permit = super::admit(&state, &headers)?;
    Ok(super::configured(ws).on_upgrade(move |socket| async move {
        serve(socket, state, query, tcp).await;
        drop(permit);
    }))
}

/// Sends an error frame and a Close with `code`, then ends with the closing handshake.
async fn refuse(mut socket: WebSocket, tcp: &LingeringClose, (code, error, message): Refused) {
    let frame = RoomServerFrame::error(error, message).encode();
    let _ = socket.send(Message::Text(frame.into())).await;
    closing::finish(&mut socket, Ending::Close(code, message), tcp).await;
}

/// The checks before a member is let in: the token, its room, the stored room.
/// What the stored room tells a new member's socket: its agent, title and chat.
struct Stored {
    agent_id: String,
    title: String,
    conversation_id: Option<String>,
    open_until: Option<i64>,
}

/// The visitor seat is another admission's: `seat_taken` in a customer room, `room_full` in a guest room.
fn seat_refusal(kind: PersonKind) -> Refused {
    match kind {
        PersonKind::Customer => (4409, "seat_taken", "the customer's seat is taken by another join"),
        _ => (4409, "room_full", "already two people"),
    }
}

/// The token's claims, for this socket's room.
fn check_token(state: &AppState, query: &RoomQuery, token: &str) -> Result<RoomClaims, Refused> {
    let claims = match state.rooms.tokens.verify(token) {
        Ok(c) => c,
        Err(TokenRefusal::Expired) => return Err((4401, "token_expired", "the room token has expired; join again")),
        Err(TokenRefusal::Invalid) => return Err((4400, "bad_token", "the room token is not valid")),
    };
    if claims.room != query.room {
        return Err((4403, "wrong_room", "the room token is for another room"));
    }
    Ok(claims)
}

/// A stored room that takes members now: open, and (an appointment's) not past its end.
fn still_open(room: &crate::store::Room) -> bool {
    room.state == RoomState::Open && crate::core::room::open_at(room.open_until, crate::clock::now_ms())
}

/// The store did not answer.
fn store_down(e: StoreError) -> Refused {
    tracing::warn!(error = %e, "room websocket: the store did not answer");
    (1011, "unavailable", "the hub cannot reach its store; try again shortly")
}

/// A lobby's `peek`: who holds the other seat now (and whether the asker is in the room
/// on another connection), then a Close 1000. Takes no seat and reserves none.
async fn peek(state: &AppState, query: &RoomQuery, token: &str) -> Result<RoomServerFrame, Refused> {
    let claims = check_token(state, query, token)?;
    match state.store.room(&claims.room).await {
        Ok(room) if still_open(&room) => {}
        Ok(_) | Err(StoreError::NotFound) => return Err((4410, "room_ended", "the meeting has ended")),
        Err(e) => return Err(store_down(e)),
    }
    let view = state.rooms.view(&claims.room).await;
    let inside = |name: Option<String>, present: bool| name.map(|name| InsideView { name, present });
    Ok(match (view, claims.kind) {
        (None, _) => RoomServerFrame::RoomInside {
            peer: None,
            elsewhere: false,
        },
        (Some(v), PersonKind::Agent) => RoomServerFrame::RoomInside {
            peer: inside(v.visitor, v.visitor_present),
            elsewhere: v.agent_present,
        },
        (Some(v), _) => RoomServerFrame::RoomInside {
            peer: inside(v.agent, v.agent_present),
            elsewhere: v.visitor_present && v.visitor_person.as_deref() == Some(claims.sub.as_str()),
        },
    })
}

async fn admit_member(state: &AppState, query: &RoomQuery, token: &str) -> Result<(RoomClaims, Stored), Refused> {
    let claims = check_token(state, query, token)?;
    let stored = if claims.kind == PersonKind::Agent {
        state.store.room(&claims.room).await
    } else {
        // The visitor seat is this admission's (its reservation, renewed), or it is refused.
        let until = (claims.exp * 1000) as i64;
        match state
            .rooms
            .reserve_seat(&state.store, &claims.room, &claims.sub, until)
            .await
        {
            Ok(room) => Ok(room),
            Err(SeatRefused::Ended) => Err(StoreError::NotFound),
            Err(SeatRefused::Taken) => return Err(seat_refusal(claims.kind)),
            Err(SeatRefused::Store(e)) => Err(e),
        }
    };
    match stored {
        Ok(room) if still_open(&room) => Ok((
            claims,
            Stored {
                agent_id: room.agent_id,
                title: room.title,
                conversation_id: room.conversation_id,
                open_until: room.open_until,
            },
        )),
        Ok(_) | Err(StoreError::NotFound) => Err((4410, "room_ended", "the meeting has ended")),
        Err(e) => Err(store_down(e)),
    }
}

async fn serve(mut socket: WebSocket, state: AppState, query: RoomQuery, tcp: LingeringClose) {
    if query.token.is_some() {
        let refused = (
            4400,
            "token_in_url",
            "the room token belongs in the first frame, not in the URL (URLs are logged)",
        );
        return refuse(socket, &tcp, refused).await;
    }
    let token = match read_token(&mut socket).await {
        Ok(FirstFrame::Auth { token }) => token,
        Ok(FirstFrame::Peek { token }) => {
            return match peek(&state, &query, &token).await {
                Ok(inside) => {
                    let _ = socket.send(Message::Text(inside.encode().into())).await;
                    closing::finish(&mut socket, Ending::Close(1000, "that is who is inside"), &tcp).await
                }
                Err(refused) => refuse(socket, &tcp, refused).await,
            };
        }
        Err(NotIn::Refused(refused)) => return refuse(socket, &tcp, refused).await,
        Err(NotIn::Ended(ending)) => return closing::finish(&mut socket, ending, &tcp).await,
    };
    let (claims, stored) = match admit_member(&state, &query, &token).await {
        Ok(x) => x,
        Err(refused) => return refuse(socket, &tcp, refused).await,
    };
    let call_mode = crate::rooms::live::call_mode(stored.conversation_id.as_deref());
    let conn_id = state.next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (out, mut outbox) = mpsc::channel(OUTBOX);
    let connected = state
        .rooms
        .connect(
            claims.clone(),
            stored.agent_id,
            stored.conversation_id,
            Conn { id: conn_id, out },
        )
        .await;
    let refused = match connected {
        Ok(x) => Ok(x),
        Err(ConnectRefused::Room(Refusal::Full)) => Err(seat_refusal(claims.kind)),
        Err(ConnectRefused::Room(_)) => Err((4410, "room_ended", "the meeting has ended")),
        Err(ConnectRefused::Unavailable) => Err((
            1011,
            "unavailable",
            "the hub cannot reach the room's server; try again shortly",
        )),
        Err(ConnectRefused::Shutdown) => Err((1001, "shutdown", "the hub is shutting down")),
    };
    let (admitted, link) = match refused {
        Ok(x) => x,
        Err(refused) => return refuse(socket, &tcp, refused).await,
    };
    let now_secs = (crate::clock::now_ms() / 1000) as u64;
    let (token, fresh) = state.rooms.tokens.issue(claims.entrant(), now_secs);
    let welcome = RoomServerFrame::RoomWelcome {
        room_id: claims.room.clone(),
        title: stored.title,
        name: claims.name.clone(),
        kind: claims.kind,
        polite: admitted.seat.polite(),
        peer: admitted.peer,
        call: admitted.call,
        call_mode,
        ice_servers: crate::rooms::ice::ice_servers(&state.settings.ice, &claims.sub, now_secs),
        token,
        token_expires_at: (fresh.exp * 1000) as i64,
        open_until: stored.open_until,
    };
    let (mut sink, mut stream) = socket.split();
    let limiter = RateLimiter::direct(
        Quota::per_second(NonZeroU32::new(FRAMES_PER_SEC).expect("non-zero"))
            .allow_burst(NonZeroU32::new(FRAMES_BURST).expect("non-zero")),
    );
    // Frames over the rate limit in a row, and bad frames in a row.
    let mut strikes = 0u32;
    let mut bad_frames = 0u32;
    let heartbeat = state.settings.heartbeat;
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    let mut last_heard = Instant::now();
    let mut ending: Option<Ending> = None;
    if sink.send(Message::Text(welcome.encode().into())).await.is_err() {
        ending = Some(Ending::Drop);
    }
    while ending.is_none() {
        tokio::select! {
            _ = state.shutdown.cancelled() => ending = Some(Ending::Close(1001, "the hub is shutting down")),
            out = outbox.recv() => match out {
                Some(Outbound::Frame(text)) => {
                    if sink.send(Message::Text(text.as_ref().into())).await.is_err() {
                        ending = Some(Ending::Drop);
                    }
                }
                Some(Outbound::Close(code, reason)) => ending = Some(Ending::Close(code, reason)),
                None => ending = Some(Ending::Close(1001, "the hub is shutting down")),
            },
            _ = ticker.tick() => {
                if last_heard.elapsed() > heartbeat * 2 {
                    ending = Some(Ending::Close(1001, "no answer to heartbeats"));
                } else if sink.send(Message::Ping(Default::default())).await.is_err() {
                    ending = Some(Ending::Drop);
                }
            }
            incoming = stream.next() => {
                let message = match closing::read_outcome(incoming) {
                    Ok(message) => message,
                    Err(end) => {
                        ending = Some(end);
                        continue;
                    }
                };
                last_heard = Instant::now();
                let refusal = match message {
                    Message::Text(text) if text.len() > MAX_ROOM_FRAME => Some(RoomServerFrame::error(
                        "frame_too_large",
                        format!("a room frame may hold {MAX_ROOM_FRAME} bytes"),
                    )),
                    Message::Text(text) => {
                        if limiter.check().is_err() {
                            strikes += 1;
                            if strikes >= FLOOD_STRIKES {
                                ending = Some(Ending::Close(1008, "flooding past the rate limit"));
                                continue;
                            }
                            let limited = RoomServerFrame::error(
                                "rate_limited",
                                format!("at most {FRAMES_PER_SEC} frames a second; this one was dropped"),
                            );
                            if sink.send(Message::Text(limited.encode().into())).await.is_err() {
                                ending = Some(Ending::Drop);
                            }
                            continue;
                        }
                        strikes = 0;
                        match serde_json::from_str::<RoomClientFrame>(&text) {
                            Ok(frame) => {
                                bad_frames = 0;
                                // `leave` is answered by the rooms task: room_ended, then a Close 1000.
                                match link.frame(frame, &text).await {
                                    Ok(()) => {}
                                    Err(LinkDown::Shutdown) => {
                                        ending = Some(Ending::Close(1001, "the hub is shutting down"));
                                    }
                                    Err(LinkDown::Unavailable) => {
                                        let e = RoomServerFrame::error(
                                            "unavailable",
                                            "the room's server could not be reached; this frame was dropped",
                                        );
                                        if sink.send(Message::Text(e.encode().into())).await.is_err() {
                                            ending = Some(Ending::Drop);
                                        }
                                    }
                                }
                                continue;
                            }
                            Err(e) => Some(RoomServerFrame::error("bad_frame", format!("not a room frame: {e}"))),
                        }
                    }
                    Message::Binary(_) => Some(RoomServerFrame::error("binary_not_supported", "send JSON text frames")),
                    // Pings and pongs only count as hearing from the peer; a Close is an ending above.
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) => None,
                };
                if let Some(refusal) = refusal {
                    bad_frames += 1;
                    if bad_frames >= closing::MAX_BAD_FRAMES {
                        ending = Some(Ending::Close(1008, "too many bad frames"));
                    } else if sink.send(Message::Text(refusal.encode().into())).await.is_err() {
                        ending = Some(Ending::Drop);
                    }
                }
            }
        }
    }
    link.disconnect().await;
    let ending = ending.unwrap_or(Ending::Drop);
    if let Ending::Close(..) = ending {
        // Frames already queued for this member go out before the Close.
        while let Ok(Outbound::Frame(text)) = outbox.try_recv() {
            let _ = sink.send(Message::Text(text.as_ref().into())).await;
        }
    }
    let Ok(mut socket) = sink.reunite(stream) else {
        return;
    };
    closing::finish(&mut socket, ending, &tcp).await;
}
