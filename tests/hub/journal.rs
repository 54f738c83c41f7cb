//! The embedded store acknowledges a batch once its archive journal is synced and
//! lets redb commit it for good later. A hub killed (SIGKILL) before that later commit loses
//! no acknowledged message: opening the store replays the journal.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::archive::{TempDir, free_port};
use crate::common::*;
use crate::durability::wait_until_the_store_is_open;

/// The real binary in its default configuration (the embedded store) on `dir`.
struct EmbeddedHub {
    port: u16,
    child: std::process::Child,
}

impl EmbeddedHub {
    async fn start(dir: &std::path::Path) -> Self {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("hub.log"))
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("DATA_DIR", dir.join("data"))
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RATE_LIMIT_PER_SEC", "10000")
            .env("RATE_LIMIT_BURST", "10000")
            // The test sends its 300 messages before reading an acknowledgement, and its
            // agent reads nothing: on a loaded machine the default 256 frames queued for a
            // connection fill and the hub closes it as not reading (a rule of its own, not
            // what this test is about).
            .env("OUTBOUND_BUFFER", "4096")
            .env("RUST_LOG", "warn")
            .current_dir(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the hub binary starts");
        wait_until_the_store_is_open(port).await;
        Self { port, child }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn ws(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for EmbeddedHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(client: &reqwest::Client, hub: &EmbeddedHub, user: &str, password: &str) -> String {
    let res = client
        .post(hub.url("/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login as {user}");
    res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn sigkill_of_a_hub_on_the_embedded_store_loses_no_acknowledged_message() {
    let dir = TempDir::new("journal");
    let hub = EmbeddedHub::start(&dir.0).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &hub, "admin", ADMIN_PASSWORD).await;
    let res = client
        .post(hub.url("/api/admin/agents"))
        .bearer_auth(&admin)
        .json(
            &json!({"username": "ann", "display_name": "Ann", "password": "agent-password", "categories": ["general"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let token = login(&client, &hub, "ann", "agent-password").await;
    let mut agent = Ws::connect(&hub.ws("/ws/agent"), &[("authorization", &format!("Bearer {token}"))])
        .await
        .unwrap();
    agent.next_of("agent_welcome").await;
    agent.send(json!({"type": "set_available", "available": true})).await;
    let mut c = Ws::connect(&hub.ws("/ws/customer"), &[]).await.unwrap();
    c.send(json!({"type": "join", "name": "Carla", "category": "general"}))
        .await;
    let chat = c.next_of("chat_started").await["chat_id"].as_str().unwrap().to_string();

    // Many small batches: each acknowledged once it is in the journal.
    let total = 300;
    for i in 0..total {
        c.send(json!({"type": "message", "text": format!("message {i}"), "client_id": format!("m{i}")}))
            .await;
    }
    let mut acked = vec![];
    while acked.len() < total {
        let frame = c.recv_within(Duration::from_secs(30)).await.unwrap_or_else(|| {
            let log = std::fs::read_to_string(dir.0.join("hub.log")).unwrap_or_default();
            panic!(
                "{} of {total} messages acknowledged, then nothing; saw {:?}; the hub's log:\n{log}",
                acked.len(),
                c.seen
            )
        });
        match frame["type"].as_str() {
            Some("message") | Some("ack") if frame["client_id"].is_string() => {
                acked.push(frame["id"].as_str().unwrap().to_string())
            }
            Some("error") => panic!("refused: {frame}"),
            _ => {}
        }
    }

    let journal = dir.0.join("data").join("archive-journal.log");
    let mut hub = hub;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &hub.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    hub.child.wait().unwrap();
    drop(hub);
    assert!(journal.exists(), "the hub keeps an archive journal in DATA_DIR");

    // Opening the store (as the next start does) replays the journal.
    use switchboard::store::ArchiveStore;
    let store = switchboard::store::EmbeddedStore::open(&dir.0.join("data"))
        .await
        .unwrap();
    let stored: Vec<String> = store
        .conversation(&chat)
        .await
        .expect("the conversation is archived")
        .messages
        .iter()
        .map(|m| m.id.clone())
        .collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a message was archived twice");
    let lost = acked.iter().filter(|id| !unique.contains(id)).count();
    assert_eq!(lost, 0, "{lost} of {} acknowledged messages lost", acked.len());
}
