//! A websocket echo for conformance runs (the Autobahn cases, driven by kosoku): every
//! text and binary message goes back as it came. It runs on the hub's websocket stack —
//! the same upgrade settings and size limits ([`super::configured`]), the same admission
//! and the same endings ([`closing`]) — so the cases test what the real endpoints do
//! with frames, fragments, pings and closes. Only the chat protocol is left out.
//!
//! Off unless `WS_ECHO_ENDPOINT` is on, which the settings refuse for a non-loopback
//! `BIND_ADDR`: it has no rate limit, so it is no endpoint for the public.

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::closing::{self, Ending, code};
use crate::http::listener::LingeringClose;

/// Echoes until either side ends the connection; `_permit` is its place under `MAX_CONNECTIONS`.
pub(super) async fn serve(
    mut socket: WebSocket,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
    tcp: LingeringClose,
) {
    let ending = loop {
        let item = tokio::select! {
            item = socket.next() => item,
            () = shutdown.cancelled() => break Ending::Close(code::GOING_AWAY, "server shutting down"),
        };
        let message = match closing::read_outcome(item) {
            Ok(message) => message,
            Err(ending) => break ending,
        };
        let echo = match message {
            Message::Text(_) | Message::Binary(_) => message,
            // tungstenite queues the pong itself and writes it with the next read.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
        };
        if socket.send(echo).await.is_err() {
            break Ending::Drop;
        }
    };
    closing::finish(&mut socket, ending, &tcp).await;
}
