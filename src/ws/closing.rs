//! How a websocket connection ends (RFC 6455 §5.5.1, §7): every way a socket task can
//! stop is an [`Ending`], and [`finish`] carries it out on the socket, so the hub's
//! connections and the conformance echo end the same way.
//!
//! tungstenite reports protocol violations as read errors and leaves answering them to
//! its user: a task that just drops the socket on an error ends with a bare FIN (or an
//! RST when unread bytes remain), and one that drops it on the peer's Close never sends
//! the reply tungstenite queued. [`Ending::after_read_error`] names the close code each
//! violation deserves; [`finish`] sends it, or flushes the queued reply, and then gives
//! the peer a moment to answer before the socket goes.
//!
//! After a read error tungstenite reads nothing more (the stream has ended), so the
//! peer's answer to a violation's Close cannot be read through it, and what the peer
//! still sends — the rest of a frame refused on its header, its Close — would be unread
//! when the socket goes, which makes the kernel reset the connection (RST) instead of
//! closing it; the peer may then lose the Close. So a violation's Close is followed by
//! the listener's lingering close ([`LingeringClose`]): FIN, and the peer's bytes read
//! and dropped until it closes too or 2 s pass.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tungstenite::error::{Error as WsError, ProtocolError};

use crate::http::listener::LingeringClose;

/// Close codes the hub sends (RFC 6455 §7.4.1); the 4000s are the hub's own, in docs/protocol.md.
pub mod code {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// Bad frames in a row (garbage, wrong fields, too large for the protocol, binary) before a
/// connection is closed with 1008; a good frame starts the count again.
pub const MAX_BAD_FRAMES: u32 = 10;

/// How long the hub spends on a closing handshake: writing its close frame, then waiting
/// for the peer's. A peer that does not answer in this time is dropped (RFC 6455 §7.1.1
/// lets the server close the TCP connection then).
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The peer sent a Close: tungstenite has queued the reply (its code echoed, or 1002 for
    /// a code no one may send); it only has to be flushed.
    PeerClosed,
    /// The hub starts the closing handshake with this code and reason.
    Close(u16, &'static str),
    /// The peer broke the protocol (a read error): the hub sends this Close, and the TCP
    /// connection ends with a lingering close, since the socket reads nothing more.
    Violation(u16, &'static str),
    /// The socket cannot carry a close frame (the peer is gone, or a write is stuck): drop it.
    Drop,
}

impl Ending {
    /// What a failed read means for the connection: the violations a peer can commit get
    /// their close code, failures of the connection itself get no frame at all.
    pub fn after_read_error(error: &WsError) -> Ending {
        match error {
            // The peer dropped the TCP connection: nobody is left to tell.
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Ending::Drop,
            WsError::Protocol(_) => Ending::Violation(code::PROTOCOL_ERROR, "protocol error"),
            WsError::Utf8(_) => Ending::Violation(code::INVALID_PAYLOAD, "invalid UTF-8"),
            // A frame or a reassembled message over the library's limit.
            WsError::Capacity(_) => Ending::Violation(code::TOO_BIG, "message too big"),
            WsError::AttackAttempt => Ending::Violation(code::POLICY, "refused"),
            _ => Ending::Drop,
        }
    }

    /// [`Ending::after_read_error`] for the error axum wraps tungstenite's in.
    pub fn after_axum_error(error: axum::Error) -> Ending {
        match error.into_inner().downcast::<WsError>() {
            Ok(error) => Self::after_read_error(&error),
            Err(_) => Ending::Drop,
        }
    }
}

/// One item read from the socket: a message to handle, or how the connection ends.
pub fn read_outcome(item: Option<Result<Message, axum::Error>>) -> Result<Message, Ending> {
    match item {
        Some(Ok(Message::Close(_))) => Err(Ending::PeerClosed),
        Some(Ok(message)) => Ok(message),
        Some(Err(error)) => Err(Ending::after_axum_error(error)),
        // The stream ends only after a completed handshake or a failure already reported.
        None => Err(Ending::Drop),
    }
}

/// Carries out `ending` on `socket`, whose TCP connection is `tcp`; the socket is done with afterwards.
pub async fn finish(socket: &mut WebSocket, ending: Ending, tcp: &LingeringClose) {
    if matches!(ending, Ending::Violation(..)) {
        // Asked first: a Close that cannot be written within the timeout still ends so.
        tcp.ask();
    }
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, handshake(socket, ending)).await;
}

async fn handshake(socket: &mut WebSocket, ending: Ending) {
    match ending {
        Ending::Drop => {}
        // A flush writes tungstenite's queued reply; as the server, it then ends the stream.
        Ending::PeerClosed => {
            let _ = socket.flush().await;
        }
        // The stream ended at the read error: the listener reads the peer's answer.
        Ending::Violation(code, reason) => {
            let _ = socket.send(close_frame(code, reason)).await;
        }
        Ending::Close(code, reason) => {
            if socket.send(close_frame(code, reason)).await.is_err() {
                return;
            }
            // The peer's reply ends the stream; frames it sent before reading our close are dropped.
            while let Some(Ok(message)) = socket.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        }
    }
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::error::CapacityError;

    #[test]
    fn protocol_violations_get_their_close_codes() {
        let cases = [
            (
                WsError::Protocol(ProtocolError::NonZeroReservedBits),
                code::PROTOCOL_ERROR,
            ),
            (
                WsError::Protocol(ProtocolError::UnknownDataFrameType(3)),
                code::PROTOCOL_ERROR,
            ),
            (
                WsError::Protocol(ProtocolError::UnmaskedFrameFromClient),
                code::PROTOCOL_ERROR,
            ),
            (WsError::Utf8("bad".into()), code::INVALID_PAYLOAD),
            (
                WsError::Capacity(CapacityError::MessageTooLong {
                    size: 2 << 20,
                    max_size: 1 << 20,
                }),
                code::TOO_BIG,
            ),
        ];
        for (error, expected) in cases {
            let described = error.to_string();
            match Ending::after_axum_error(axum::Error::new(error)) {
                Ending::Violation(code, reason) => {
                    assert_eq!(code, expected, "{described}");
                    assert!(reason.len() <= 123, "a close reason fits a control frame");
                }
                other => panic!("{described}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_gone_peer_gets_no_close_frame() {
        let gone = [
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
            WsError::ConnectionClosed,
            WsError::AlreadyClosed,
            WsError::Io(std::io::ErrorKind::ConnectionReset.into()),
        ];
        for error in gone {
            assert_eq!(Ending::after_read_error(&error), Ending::Drop, "{error}");
        }
    }
}
