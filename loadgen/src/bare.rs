//! `loadgen bare-relay`: the floor the relay and long-queue benchmarks are read against.
//!
//! A websocket server with none of Switchboard's work: it parses no JSON, makes
//! no ids or timestamps, archives nothing, keeps no accounts. A connection's
//! first frame says what it plays:
//!
//! - `hello <side> <chat>[,<chat>...]` (side 0 = customer, 1 = agent): a relay
//!   side, answered `{"type":"ready"}` once its chats are registered (the
//!   loadgen sends nothing before). After that every text frame goes verbatim to the other side of its
//!   chat, and back to its sender as the acknowledgement, as the hub does. A
//!   customer's frames belong to its one chat; an agent's name theirs in a
//!   `"chat_id":"…"` field, found by a substring search.
//! - a frame with `"type":"join"`: a customer waiting in the one line, told
//!   `queued` with its place.
//! - a frame with `"type":"set_available"`: the agent taking that line. That
//!   frame and each one after it route the first in line (`chat_started` to
//!   both) and tell everyone left their new `place` in the bytes the hub uses
//!   for it, so `loadgen run queue --bare` checks them the same way. The agent's
//!   task writes those frames itself, one socket after the other, waking no
//!   other task: about the least this stack (tokio, tungstenite) can do to tell
//!   a line its places, and no way to serve a client that stops reading.
//!
//! It runs on tokio's current-thread runtime with the websocket buffer sizes
//! the hub uses. A relay side has a reader task and a writer task with an
//! outbox that writes everything queued with one flush. Driven by the same load
//! generator (`--bare`), the difference between it and the hub is what
//! Switchboard's work costs on this machine, and its own figures are what the
//! kernel and the websocket library leave for any server here.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The hub's websocket buffer sizes (`src/ws/mod.rs`), so both pay the same per read and write.
const READ_BUFFER: usize = 512;
const WRITE_BUFFER: usize = 16 * 1024;

type Outbox = mpsc::UnboundedSender<Message>;
type WsSink = SplitSink<WebSocketStream<TcpStream>, Message>;
type WsStream = SplitStream<WebSocketStream<TcpStream>>;

/// What the connections share.
#[derive(Default)]
struct Floor {
    /// Chat id → the customer's and the agent's outbox.
    chats: Mutex<HashMap<String, [Option<Outbox>; 2]>>,
    /// The waiting customers' sockets with their numbers, first in line first; held
    /// while a route writes to them.
    line: tokio::sync::Mutex<VecDeque<(u64, WsSink)>>,
    /// The number of the next customer to join.
    joined: AtomicU64,
}

/// Serves until the process is killed.
pub fn serve(bind: SocketAddr) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = TcpListener::bind(bind).await.map_err(|e| format!("{bind}: {e}"))?;
        eprintln!("bare relay and line listening on {bind}");
        let floor = Arc::new(Floor::default());
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(stream, floor.clone()));
        }
    })
}

async fn connection(stream: TcpStream, floor: Arc<Floor>) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (sink, mut stream) = ws.split();
    let Some(Ok(Message::Text(first))) = stream.next().await else {
        return;
    };
    if first.contains(r#""type":"join""#) {
        return wait_in_line(sink, stream, &floor).await;
    }
    let agent = first.contains(r#""type":"set_available""#);
    let hello = first.strip_prefix("hello ");
    if !agent && hello.is_none() {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(write_loop(sink, rx));
    if let Some(hello) = hello {
        relay_side(hello, stream, tx, &floor).await;
    } else {
        // Every frame of the agent's is a route, the first one included.
        let mut routes = 1;
        route(routes, &tx, &floor).await;
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(_) = frame {
                routes += 1;
                route(routes, &tx, &floor).await;
            }
        }
    }
    writer.abort();
}

/// Writes what the outbox holds, everything queued with one flush.
async fn write_loop(mut sink: WsSink, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(frame) = rx.recv().await {
        let mut ok = sink.feed(frame).await.is_ok();
        while ok && let Ok(frame) = rx.try_recv() {
            ok = sink.feed(frame).await.is_ok();
        }
        if !ok || sink.flush().await.is_err() {
            return;
        }
    }
}

/// One side of relayed chats: `hello` named the side and its chats.
async fn relay_side(hello: &str, mut stream: WsStream, tx: Outbox, floor: &Floor) {
    let mut words = hello.split(' ');
    let (Some(side), Some(mine)) = (words.next(), words.next()) else {
        return;
    };
    let side = usize::from(side == "1");
    let mine: Vec<String> = mine.split(',').map(str::to_string).collect();
    {
        let mut chats = floor.chats.lock().unwrap();
        for chat in &mine {
            chats.entry(chat.clone()).or_default()[side] = Some(tx.clone());
        }
    }
    let _ = tx.send(Message::text(crate::relay::READY));
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
                && let Some(peer) = floor.chats.lock().unwrap().get(chat).and_then(|c| c[1 - side].clone())
            {
                peers.insert(chat.to_string(), peer);
            }
            if let Some(peer) = peers.get(chat) {
                let _ = peer.send(Message::Text(text.clone()));
            }
        }
        let _ = tx.send(Message::Text(text));
    }
}

/// A customer in the line: told its place on joining, then only listens, and
/// leaves the line when its socket closes.
async fn wait_in_line(mut sink: WsSink, mut stream: WsStream, floor: &Floor) {
    let me = floor.joined.fetch_add(1, Ordering::Relaxed);
    {
        let mut line = floor.line.lock().await;
        let queued = Message::text(format!(r#"{{"type":"queued","place":{}}}"#, line.len() + 1));
        if sink.send(queued).await.is_err() {
            return;
        }
        line.push_back((me, sink));
    }
    while let Some(Ok(_)) = stream.next().await {}
    floor.line.lock().await.retain(|(number, _)| *number != me);
}

/// Pairs the first in line with the agent and tells everyone left their new place,
/// writing to each socket in turn. With nobody waiting it does nothing, as the hub.
/// A socket that fails has left the line.
async fn route(n: u64, agent: &Outbox, floor: &Floor) {
    let mut line = floor.line.lock().await;
    let started = Message::text(format!(r#"{{"type":"chat_started","chat_id":"floor-{n}"}}"#));
    let mut routed = false;
    while let Some((_, mut first)) = line.pop_front() {
        if first.send(started.clone()).await.is_ok() {
            routed = true;
            break;
        }
    }
    if !routed {
        return;
    }
    let mut stayed = VecDeque::with_capacity(line.len());
    for (number, mut waiting) in line.drain(..) {
        let place = Message::text(format!(r#"{{"type":"place","place":{}}}"#, stayed.len() + 1));
        if waiting.send(place).await.is_ok() {
            stayed.push_back((number, waiting));
        }
    }
    *line = stayed;
    let _ = agent.send(started);
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
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    async fn next_text(ws: &mut Client) -> String {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        match frame {
            Ok(Some(Ok(Message::Text(text)))) => text.to_string(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Starts the bare server on a free loopback port, on a thread of its own.
    fn start_bare() -> std::net::SocketAddr {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        std::thread::spawn(move || super::serve(addr));
        addr
    }

    /// A websocket to the bare server, once it listens.
    async fn connect(addr: std::net::SocketAddr) -> Client {
        loop {
            if let Ok((ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await {
                return ws;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn silent(ws: &mut Client) -> bool {
        tokio::time::timeout(Duration::from_millis(200), ws.next())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn each_route_takes_the_first_in_line_and_tells_the_rest_their_places() {
        let addr = start_bare();
        let mut line = vec![];
        for place in 1..=3 {
            let mut ws = connect(addr).await;
            ws.send(Message::text(r#"{"type":"join","name":"w","category":"c"}"#))
                .await
                .expect("sent");
            assert_eq!(
                next_text(&mut ws).await,
                format!(r#"{{"type":"queued","place":{place}}}"#)
            );
            line.push(ws);
        }
        let mut agent = connect(addr).await;
        let started = |n: u32| format!(r#"{{"type":"chat_started","chat_id":"floor-{n}"}}"#);

        agent
            .send(Message::text(r#"{"type":"set_available","available":true}"#))
            .await
            .expect("sent");
        assert_eq!(next_text(&mut line[0]).await, started(1));
        assert_eq!(next_text(&mut line[1]).await, r#"{"type":"place","place":1}"#);
        assert_eq!(next_text(&mut line[2]).await, r#"{"type":"place","place":2}"#);
        assert_eq!(next_text(&mut agent).await, started(1));

        // The second in line leaves: the next route goes to the third, with nobody left to tell.
        line.remove(1).close(None).await.expect("closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
        agent
            .send(Message::text(r#"{"type":"end_chat","chat_id":"floor-1"}"#))
            .await
            .expect("sent");
        assert_eq!(next_text(&mut line[1]).await, started(2));
        assert_eq!(next_text(&mut agent).await, started(2));

        // An empty line routes nobody and tells the agent nothing, as the hub.
        agent
            .send(Message::text(r#"{"type":"end_chat","chat_id":"floor-2"}"#))
            .await
            .expect("sent");
        assert!(silent(&mut agent).await);
    }

    #[tokio::test]
    async fn a_relay_side_is_ready_after_hello_and_each_frame_goes_to_the_peer_and_back() {
        let addr = start_bare();
        let mut customer = connect(addr).await;
        customer.send(Message::text("hello 0 floor-0")).await.expect("sent");
        assert_eq!(next_text(&mut customer).await, crate::relay::READY);
        let mut agent = connect(addr).await;
        agent
            .send(Message::text("hello 1 floor-0,floor-1"))
            .await
            .expect("sent");
        assert_eq!(next_text(&mut agent).await, crate::relay::READY);

        let from_customer = r#"{"type":"message","chat_id":"floor-0","text":"x","client_id":"0.0.0.5"}"#;
        customer.send(Message::text(from_customer)).await.expect("sent");
        assert_eq!(next_text(&mut agent).await, from_customer);
        assert_eq!(
            next_text(&mut customer).await,
            from_customer,
            "the echo, as the hub's acknowledgement"
        );

        let from_agent = r#"{"type":"message","chat_id":"floor-0","text":"y","client_id":"0.1.0.9"}"#;
        agent.send(Message::text(from_agent)).await.expect("sent");
        assert_eq!(next_text(&mut customer).await, from_agent);
        assert_eq!(next_text(&mut agent).await, from_agent);
    }

    #[test]
    fn finds_the_chat_id_without_parsing() {
        let frame = r#"{"type":"message","chat_id":"floor-7","text":"x","client_id":"7.1.0.5"}"#;
        assert_eq!(super::chat_id(frame), Some("floor-7"));
        assert_eq!(super::chat_id(r#"{"type":"message"}"#), None);
    }
}
