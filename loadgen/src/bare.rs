//! `loadgen bare-relay`: the floor the relay benchmark is read against.
//!
//! A websocket relay with none of Switchboard's work: it parses no JSON, makes
//! no ids or timestamps, archives nothing. Each connection first says which
//! chats it holds (`hello <side> <chat>[,<chat>...]`, side 0 = customer, 1 =
//! agent); after that every text frame goes verbatim to the other side of its
//! chat, and back to its sender as the acknowledgement, as the hub does. A
//! customer's frames belong to its one chat; an agent's name theirs in a
//! `"chat_id":"…"` field, found by a substring search.
//!
//! It runs on tokio's current-thread runtime with the websocket buffer sizes
//! the hub uses, and each connection writes everything queued with one flush.
//! Driven by the same load generator (`loadgen run relay --bare`), the
//! difference between it and the hub is what Switchboard's chat work costs on
//! this machine, and its own ceiling is what the kernel and the websocket
//! library leave for any relay here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The hub's websocket buffer sizes (`src/ws/mod.rs`), so both pay the same per read and write.
const READ_BUFFER: usize = 512;
const WRITE_BUFFER: usize = 16 * 1024;

type Outbox = mpsc::UnboundedSender<Message>;

/// Chat id → the customer's and the agent's outbox.
type Chats = Arc<Mutex<HashMap<String, [Option<Outbox>; 2]>>>;

/// Serves until the process is killed.
pub fn serve(bind: SocketAddr) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = TcpListener::bind(bind).await.map_err(|e| format!("{bind}: {e}"))?;
        eprintln!("bare relay listening on {bind}");
        let chats: Chats = Arc::default();
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(stream, chats.clone()));
        }
    })
}

async fn connection(stream: tokio::net::TcpStream, chats: Chats) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let Some(Ok(Message::Text(hello))) = stream.next().await else {
        return;
    };
    let mut words = hello.split(' ');
    let (Some("hello"), Some(side), Some(mine)) = (words.next(), words.next(), words.next()) else {
        return;
    };
    let side = usize::from(side == "1");
    let mine: Vec<String> = mine.split(',').map(str::to_string).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    {
        let mut chats = chats.lock().unwrap();
        for chat in &mine {
            chats.entry(chat.clone()).or_default()[side] = Some(tx.clone());
        }
    }
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let mut ok = sink.feed(frame).await.is_ok();
            while ok && let Ok(frame) = rx.try_recv() {
                ok = sink.feed(frame).await.is_ok();
            }
            if !ok || sink.flush().await.is_err() {
                return;
            }
        }
    });
    // Peers are looked up once per chat: the other side may connect after this one.
    let mut peers: HashMap<String, Outbox> = HashMap::new();
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        let chat = if side == 0 {
            Some(mine[0].as_str())
        } else {
            chat_id(&text)
        };
        if let Some(chat) = chat {
            if !peers.contains_key(chat)
                && let Some(peer) = chats.lock().unwrap().get(chat).and_then(|c| c[1 - side].clone())
            {
                peers.insert(chat.to_string(), peer);
            }
            if let Some(peer) = peers.get(chat) {
                let _ = peer.send(Message::Text(text.clone()));
            }
        }
        let _ = tx.send(Message::Text(text));
    }
    writer.abort();
}

/// The value of the first `"chat_id":"…"` in a frame, without parsing it.
fn chat_id(text: &str) -> Option<&str> {
    const KEY: &str = r#""chat_id":""#;
    let start = text.find(KEY)? + KEY.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_chat_id_without_parsing() {
        let frame = r#"{"type":"message","chat_id":"floor-7","text":"x","client_id":"7.1.0.5"}"#;
        assert_eq!(super::chat_id(frame), Some("floor-7"));
        assert_eq!(super::chat_id(r#"{"type":"message"}"#), None);
    }
}
