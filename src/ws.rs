//! The websocket transport: upgrades for customers, agents and buddies, and
//! the one task per connection that moves frames between the socket and the hub.
//!
//! Each connection task owns its socket and a bounded outbox the hub fills.
//! It enforces what belongs to a single connection: frame size, the rate
//! limit, strikes for garbage, heartbeats, and the coalescing of draft
//! previews. It never holds routing state; everything else is the hub's.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use futures_util::SinkExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::http::access::ClientIp;
use crate::http::session::Authed;
use crate::http::{ApiError, AppState};
use crate::hub::ConnRole;
use crate::hub::delivery::{ConnHandle, ConnId, Outbound};
use crate::protocol::{self, ClientFrame, ServerFrame};
use crate::store::Role;

/// Frames larger than this are closed by the websocket library itself (close code 1009);
/// frames between the protocol limit and this get an error frame and the connection lives on.
const LIBRARY_MAX_FRAME: usize = 1 << 20;
/// Socket read chunk per connection. Small on purpose: idle connections are most
/// connections, and the library default (128 KiB) would dominate their memory.
const READ_BUFFER: usize = 1024;
/// Frames queued for one connection that are written together at most.
const WRITE_BATCH: usize = 64;
/// Bytes the websocket layer gathers before writing to the socket; a flush writes the rest.
const WRITE_BUFFER: usize = 16 * 1024;
/// Bad frames in a row before the connection is closed with 1008.
const MAX_STRIKES: u32 = 10;
/// A write that takes longer than this means the peer is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to receive the hub's goodbye before closing on their own.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws/customer", get(customer))
        .route("/ws/agent", get(agent))
        .route("/ws/buddy", get(buddy))
}

/// The largest text frame the protocol accepts: a maximal message and its envelope.
fn max_frame_bytes(settings: &Settings) -> usize {
    (settings.max_message_len * 4 + 1024).max(16 * 1024)
}

/// Browsers always send `Origin`; a cross-site page must not open sockets with the user's cookies.
/// Requests without it (non-browser clients) are allowed. The hub's own origin is always allowed.
fn origin_allowed(settings: &Settings, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if settings
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    bare.is_some_and(|b| b.eq_ignore_ascii_case(host))
}

/// Checks shared by every upgrade: origin and the connection limit.
fn admit(state: &AppState, headers: &HeaderMap) -> Result<OwnedSemaphorePermit, ApiError> {
    if !origin_allowed(&state.settings, headers) {
        return Err(ApiError::Forbidden(
            "websocket connections from this origin are not allowed".into(),
        ));
    }
    state
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable("the hub is at its connection limit".into()))
}

fn upgrade(ws: WebSocketUpgrade, state: AppState, role: ConnRole, permit: OwnedSemaphorePermit) -> Response {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(LIBRARY_MAX_FRAME)
        .max_frame_size(LIBRARY_MAX_FRAME)
        .on_upgrade(move |socket| serve(socket, state, role, permit))
}

async fn customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let permit = admit(&state, &headers)?;
    Ok(upgrade(ws, state, ConnRole::Customer, permit))
}

async fn agent(
    State(state): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if !state.settings.is_whitelisted(ip.0) {
        tracing::info!(client = %ip.0, "agent websocket refused: not in AGENT_WHITELIST");
        return Err(ApiError::NotWhitelisted);
    }
    let Authed(account) = authed(&state, &headers).await?;
    if account.role != Role::Agent {
        return Err(ApiError::Forbidden("only agent accounts take chats".into()));
    }
    let permit = admit(&state, &headers)?;
    Ok(upgrade(ws, state, ConnRole::Agent(account), permit))
}

async fn buddy(
    State(state): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // Signed-in staff on a whitelisted address see the staff roster; everyone else the public one.
    let account = if state.settings.is_whitelisted(ip.0) {
        authed(&state, &headers).await.ok().map(|Authed(a)| a)
    } else {
        None
    };
    let permit = admit(&state, &headers)?;
    Ok(upgrade(ws, state, ConnRole::Buddy { account }, permit))
}

async fn authed(state: &AppState, headers: &HeaderMap) -> Result<Authed, ApiError> {
    let mut request = axum::http::Request::new(());
    *request.headers_mut() = headers.clone();
    let (mut parts, ()) = request.into_parts();
    <Authed as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await
}

/// Holds back draft previews so a fast typist sends at most one per interval;
/// the latest text always gets through.
struct DraftThrottle {
    pending: Option<ClientFrame>,
    next_at: Instant,
    interval: Duration,
}

/// Counts frames over the rate limit within one-second windows.
struct FloodWatch {
    window_start: Instant,
    over: u32,
}

async fn serve(mut socket: WebSocket, state: AppState, role: ConnRole, _permit: OwnedSemaphorePermit) {
    let settings = state.settings.clone();
    let id = ConnId(state.next_conn.fetch_add(1, Ordering::Relaxed));
    let (tx, mut outbox) = mpsc::channel(settings.outbound_buffer);
    let kick = CancellationToken::new();
    let handle = ConnHandle {
        id,
        outbox: tx,
        kick: kick.clone(),
    };
    if state.hub.register(handle, role).await.is_err() {
        return;
    }
    let per_sec = NonZeroU32::new(settings.rate_limit_per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(settings.rate_limit_burst).unwrap_or(NonZeroU32::MIN);
    let limiter: DefaultDirectRateLimiter = RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst));
    let mut flood = FloodWatch {
        window_start: Instant::now(),
        over: 0,
    };
    let mut strikes = 0u32;
    let mut last_seen = Instant::now();
    let mut heartbeat = tokio::time::interval_at(Instant::now() + settings.heartbeat, settings.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut drafts = DraftThrottle {
        pending: None,
        next_at: Instant::now(),
        interval: settings.draft_interval,
    };
    let mut goodbye_by: Option<Instant> = None;
    let max_frame = max_frame_bytes(&settings);

    // Made once, not on every turn of the loop: these are polled for every frame.
    let kicked = kick.cancelled();
    tokio::pin!(kicked);
    let shutting_down = state.shutdown.cancelled();
    tokio::pin!(shutting_down);

    let close: Option<(u16, &'static str)> = loop {
        tokio::select! {
            biased;
            _ = &mut kicked => {
                tracing::warn!(conn = id.0, "closing: outbound buffer full, the client is not reading");
                break Some((1008, "not reading fast enough"));
            }
            out = outbox.recv() => match out {
                Some(Outbound::Frame(text)) => {
                    // Whatever else is queued goes out in the same write: one syscall for a burst.
                    let mut batch = vec![text];
                    let mut then_close = None;
                    while batch.len() < WRITE_BATCH {
                        match outbox.try_recv() {
                            Ok(Outbound::Frame(next)) => batch.push(next),
                            Ok(Outbound::Close(code, reason)) => {
                                then_close = Some((code, reason));
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // A write blocks while the peer's socket buffer is full; the hub's kick must still get through.
                    tokio::select! {
                        written = tokio::time::timeout(WRITE_TIMEOUT, write_all(&mut socket, batch)) => match written {
                            Ok(Ok(())) => {
                                if then_close.is_some() {
                                    break then_close;
                                }
                            }
                            Ok(Err(_)) => break None,
                            Err(_) => {
                                tracing::warn!(conn = id.0, "closing: a write timed out, the client is not reading");
                                break None;
                            }
                        },
                        _ = &mut kicked => {
                            tracing::warn!(conn = id.0, "closing: outbound buffer full, the client is not reading");
                            // The socket is stuck mid-write; a close frame could not get out either.
                            break None;
                        }
                    }
                }
                Some(Outbound::Close(code, reason)) => break Some((code, reason)),
                None => break None,
            },
            incoming = socket.recv() => {
                last_seen = Instant::now();
                let text = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        strikes += 1;
                        reply(&mut socket, ServerFrame::error("binary_not_supported", "send JSON text frames")).await;
                        if strikes >= MAX_STRIKES { break Some((1008, "too many bad frames")); }
                        continue;
                    }
                    Some(Ok(Message::Text(text))) => text,
                };
                if limiter.check().is_err() {
                    let now = Instant::now();
                    if now.duration_since(flood.window_start) > Duration::from_secs(1) {
                        flood = FloodWatch { window_start: now, over: 0 };
                    }
                    flood.over += 1;
                    if flood.over > settings.rate_limit_burst {
                        tracing::info!(conn = id.0, "closing: flooding past the rate limit");
                        break Some((1008, "rate limit exceeded"));
                    }
                    reply(&mut socket, ServerFrame::error("rate_limited", "too many frames; slow down")).await;
                    continue;
                }
                let decoded = if text.len() > max_frame {
                    Err(("frame_too_large", format!("frames are limited to {max_frame} bytes")))
                } else {
                    protocol::decode(text.as_str()).map_err(|e| (e.code(), e.message()))
                };
                match decoded {
                    Err((code, message)) => {
                        strikes += 1;
                        if strikes >= MAX_STRIKES {
                            tracing::info!(conn = id.0, "closing: too many bad frames");
                            break Some((1008, "too many bad frames"));
                        }
                        reply(&mut socket, ServerFrame::error(code, message)).await;
                    }
                    Ok(frame @ ClientFrame::Draft { .. }) => {
                        strikes = 0;
                        let now = Instant::now();
                        if now >= drafts.next_at {
                            drafts.next_at = now + drafts.interval;
                            if state.hub.frame(id, frame).await.is_err() { break None; }
                        } else {
                            drafts.pending = Some(frame);
                        }
                    }
                    Ok(frame) => {
                        strikes = 0;
                        if state.hub.frame(id, frame).await.is_err() { break None; }
                    }
                }
            }
            _ = tokio::time::sleep_until(drafts.next_at), if drafts.pending.is_some() => {
                drafts.next_at = Instant::now() + drafts.interval;
                let frame = drafts.pending.take().expect("guarded by the branch condition");
                if state.hub.frame(id, frame).await.is_err() { break None; }
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > settings.heartbeat * 2 {
                    tracing::info!(conn = id.0, "closing: no pong or frame within two heartbeats");
                    break Some((1001, "heartbeat timeout"));
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() { break None; }
            }
            _ = &mut shutting_down, if goodbye_by.is_none() => {
                // The hub sends a goodbye and a close; this is the deadline for it.
                goodbye_by = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            _ = tokio::time::sleep_until(goodbye_by.unwrap_or_else(Instant::now)), if goodbye_by.is_some() => {
                break Some((1001, "server shutting down"));
            }
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(frame)))).await;
    }
    let _ = state.hub.unregister(id).await;
}

/// Writes frames with one flush at the end, so a burst costs one write to the socket.
async fn write_all(socket: &mut WebSocket, frames: Vec<axum::extract::ws::Utf8Bytes>) -> Result<(), axum::Error> {
    for frame in frames {
        socket.feed(Message::Text(frame)).await?;
    }
    socket.flush().await
}

/// An error straight from the connection (bad frames never reach the hub).
async fn reply(socket: &mut WebSocket, frame: ServerFrame) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Text(frame.encode()))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins_are_the_hubs_own_or_listed() {
        let s = Settings::for_tests();
        assert!(origin_allowed(&s, &headers(None, "127.0.0.1:8080")));
        assert!(origin_allowed(
            &s,
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080")
        ));
        assert!(!origin_allowed(
            &s,
            &headers(Some("https://evil.example"), "127.0.0.1:8080")
        ));
        let mut s = s;
        s.allowed_origins = vec!["https://shop.example".into()];
        assert!(origin_allowed(
            &s,
            &headers(Some("https://shop.example"), "127.0.0.1:8080")
        ));
    }
}
