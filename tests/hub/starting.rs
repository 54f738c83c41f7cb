//! The hub before its store is open (`src/starting.rs`): the port it answers probes
//! on while MongoDB is awaited has the same limits as the hub's own (a request-head
//! deadline, a per-address cap), its connections end at the handover to the real
//! routes, and outsiders see only `{"status":"starting"}`.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::archive::{MongoServer, TempDir, free_port};
use crate::common::ADMIN_PASSWORD;
use crate::edge::{closed_within, tcp_from};

/// The real binary waiting for MongoDB at `mongo_port`, killed when dropped.
struct StartingHub {
    child: Child,
    addr: SocketAddr,
    _scratch: TempDir,
}

impl StartingHub {
    fn start(mongo_port: u16, envs: &[(&str, &str)]) -> Self {
        let scratch = TempDir::new("starting-edge");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", addr.to_string())
            .env("STORE", "mongodb")
            .env(
                "MONGODB_URI",
                format!("mongodb://127.0.0.1:{mongo_port}/?serverSelectionTimeoutMS=300"),
            )
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("AGENT_WHITELIST", "127.0.0.1/32")
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .current_dir(&scratch.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .args(["serve"])
            .spawn()
            .expect("the switchboard binary starts");
        StartingHub {
            child,
            addr,
            _scratch: scratch,
        }
    }

    /// GETs `path` from the loopback address `from` until the port answers.
    async fn get_from(&self, from: &str, path: &str) -> (u16, Value) {
        let client = reqwest::Client::builder()
            .local_address(from.parse::<IpAddr>().unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = client.get(format!("http://{}{path}", self.addr)).send().await {
                let status = res.status().as_u16();
                return (status, res.json().await.unwrap_or(Value::Null));
            }
            assert!(Instant::now() < deadline, "{path} never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for StartingHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a whole request on a fresh connection from `from`; returns everything answered
/// before the server closed it (nothing at all when it was refused at once).
async fn answer_on_new_connection(from: &str, to: SocketAddr) -> String {
    let mut tcp = tcp_from(from, to).await;
    let _ = tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The starting server was plain `axum::serve`: a half-sent
/// request line stayed open for as long as the client liked, one address could open any
/// number of connections, and outsiders were told which store the hub waits for.
#[tokio::test]
async fn the_starting_port_has_the_hubs_limits_and_tells_outsiders_only_the_status() {
    // Nothing listens at the MongoDB port: the hub waits, answering probes.
    let hub = StartingHub::start(
        free_port(),
        &[("HTTP_HEADER_TIMEOUT_SECS", "4"), ("MAX_CONNECTIONS_PER_ADDRESS", "3")],
    );
    let (status, body) = hub.get_from("127.0.0.1", "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "starting", "store": "mongodb"}),
        "the whitelist sees details"
    );
    let (status, body) = hub.get_from("127.0.0.5", "/healthz").await;
    assert_eq!(
        (status, &body),
        (200, &json!({"status": "starting"})),
        "outsiders see the status only"
    );
    let (status, body) = hub.get_from("127.0.0.5", "/readyz").await;
    assert_eq!((status, &body), (503, &json!({"status": "starting"})));

    // A request line and no end: closed at the header deadline, not held for ever.
    let mut half_sent = tcp_from("127.0.0.6", hub.addr).await;
    half_sent
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")
        .await
        .unwrap();
    // The per-address cap: three idle connections hold 127.0.0.7's places, so a fourth is
    // closed without an answer, although it sends a whole request.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tcp_from("127.0.0.7", hub.addr).await);
    }
    let refused = answer_on_new_connection("127.0.0.7", hub.addr).await;
    assert_eq!(
        refused, "",
        "a connection over MAX_CONNECTIONS_PER_ADDRESS is closed unanswered"
    );

    assert!(
        closed_within(&mut half_sent, Duration::from_secs(30)).await,
        "a half-sent request line is still open long after HTTP_HEADER_TIMEOUT_SECS"
    );
    for (i, tcp) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(tcp, Duration::from_secs(30)).await,
            "idle connection {i} is still open"
        );
    }
    // Their places are free again, and loopback is still answered.
    let answered = answer_on_new_connection("127.0.0.7", hub.addr).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let (status, body) = hub.get_from("127.0.0.1", "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("starting")), "{body}");
}

/// When the store opened, the starting server's connections
/// that had not finished a request were left running, answering 503 "starting" beside
/// the real routes. Now they are closed at the handover, well before the (long) header
/// deadline would close them.
#[tokio::test]
async fn the_starting_ports_connections_end_at_the_handover() {
    let mut mongo = MongoServer::start().await;
    let mongo_port = mongo.port;
    mongo.stop().await;
    let hub = StartingHub::start(mongo_port, &[("HTTP_HEADER_TIMEOUT_SECS", "300")]);
    let (status, _) = hub.get_from("127.0.0.1", "/healthz").await;
    assert_eq!(status, 200);
    let mut half_sent = tcp_from("127.0.0.6", hub.addr).await;
    half_sent
        .write_all(b"GET /api/categories HTTP/1.1\r\nHost: hub\r\n")
        .await
        .unwrap();
    let mut idle = tcp_from("127.0.0.6", hub.addr).await;
    // Both are accepted by the starting server: its /healthz answers after them.
    let (status, body) = hub.get_from("127.0.0.1", "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("starting")), "{body}");

    mongo.restart().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = hub.get_from("127.0.0.1", "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Well under the 300 s header deadline: only the handover can have closed them.
    assert!(
        closed_within(&mut idle, Duration::from_secs(30)).await,
        "an idle connection of the starting server outlived the handover"
    );
    // The half-sent request is finished now; it must not be answered "starting".
    let _ = half_sent.write_all(b"\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), half_sent.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.contains("starting"),
        "answered by the starting server after the handover: {answer}"
    );
    assert!(
        closed_within(&mut half_sent, Duration::from_secs(5)).await,
        "a half-sent connection of the starting server outlived the handover"
    );
}
