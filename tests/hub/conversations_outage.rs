//! Conversations while MongoDB is frozen (SIGSTOP): a customer continuing one, its agent
//! setting its status or a label, each get a clear answer within the archive's write
//! timeout and change nothing; the connection lives on, and once the server runs again the
//! same requests go through with the `seq` going on from the last acknowledged line.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::continuing::{VISITOR, continuing, first_visit, own_until};

/// The archive's write timeout here (`ARCHIVE_WRITE_TIMEOUT_MS`; 15 s by default).
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// The next frame of `ws` that is not a `place`/`queued`/`desk_status` notice, within `wait`.
async fn answer_within(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let frame = ws.recv_within(left).await?;
        if !matches!(frame["type"].as_str(), Some("welcome" | "desk_status")) {
            return Some(frame);
        }
    }
    None
}

/// The answer to `ws`'s frame `client_id` (an error, or the change it asked for), within `wait`.
async fn answer_to(ws: &mut Ws, client_id: &str, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let frame = ws.recv_within(left).await?;
        if frame["type"] == "error" || frame["client_id"] == client_id {
            return Some(frame);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mongodb_frozen_continuing_a_status_and_a_label_are_refused_clearly_and_go_through_after() {
    let (server, uri) = in_memory_mongod().await;
    let (hub, _spool_dir) = crate::archive_once::hub_on_mongo(&uri, "conv_outage", WRITE_TIMEOUT).await;
    let admin = hub.admin().await;
    let (status, _) = admin
        .post(
            "/api/admin/labels",
            json!({"name": "VIP", "colour": "#d29922", "id": "vip"}),
        )
        .await;
    assert_eq!(status, 201);
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let chat = first_visit(&hub, &mut ann).await;
    own_until(&hub, VISITOR, "resolved").await;
    let ann_api = hub.login("ann", "agent-password").await;

    signal(&server.0, libc::SIGSTOP);

    // Carla comes back: told to try again shortly, not left waiting, nothing opened.
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    let answer = answer_within(&mut carla, 4 * WRITE_TIMEOUT).await;
    assert_eq!(
        answer.as_ref().map(|f| (f["type"].clone(), f["code"].clone())),
        Some((json!("error"), json!("archive_unavailable"))),
        "{answer:?}"
    );
    // Ann parks it: refused as the store's fault, nothing changed.
    ann.send(
        json!({"type": "set_conversation_status", "conversation_id": chat, "status": "pending", "client_id": "p1"}),
    )
    .await;
    let refused = answer_to(&mut ann, "p1", 4 * WRITE_TIMEOUT).await;
    assert_eq!(
        refused.as_ref().map(|f| (f["type"].clone(), f["code"].clone())),
        Some((json!("error"), json!("store_unavailable"))),
        "{refused:?}"
    );
    let started = Instant::now();
    let (status, body) = ann_api
        .put(&format!("/api/conversations/{chat}/labels/vip"), json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (503, "unavailable"), "{body}");
    assert!(started.elapsed() < 4 * WRITE_TIMEOUT, "answered within the timeout");

    signal(&server.0, libc::SIGCONT);

    // The same requests go through once it runs again, on the same connections.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = ann_api
            .put(&format!("/api/conversations/{chat}/labels/vip"), json!({}))
            .await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the label never went on: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = loop {
        carla
            .send(json!({"type": "join", "name": "Carla", "category": "general", "conversation": chat, "visitor": VISITOR}))
            .await;
        let answer = answer_within(&mut carla, 4 * WRITE_TIMEOUT).await.expect("an answer");
        match answer["type"].as_str() {
            Some("chat_started") => break answer,
            _ if answer["code"] == "archive_unavailable" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => panic!("continuing after the outage: {answer}"),
        }
    };
    assert_eq!(started["chat_id"].as_str(), Some(chat.as_str()), "{started}");
    ann.next_of("chat_started").await;
    carla
        .send(json!({"type": "message", "text": "back again", "client_id": "c9"}))
        .await;
    assert_eq!(carla.next_of("ack").await["seq"], 3);
    ann.send(
        json!({"type": "set_conversation_status", "conversation_id": chat, "status": "pending", "client_id": "p2"}),
    )
    .await;
    let changed = answer_to(&mut ann, "p2", Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(
        (changed["status"].as_str(), changed["labels"][0].as_str()),
        (Some("pending"), Some("vip")),
        "{changed}"
    );
    hub.stop().await;
    drop(server);
}
