//! The embedded store acknowledges a batch once its archive journal is synced and
//! lets redb commit it for good later. A hub killed (SIGKILL) before that later commit loses
//! no acknowledged message: opening the store replays the journal.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::archive::TempDir;
use crate::common::*;

/// The real binary in its default configuration (the embedded store) on `dir`.
async fn embedded_hub(dir: &std::path::Path) -> HubProcess {
    let data = dir.join("data");
    let envs = [
        ("DATA_DIR", data.to_str().unwrap()),
        // The test sends its 300 messages before reading an acknowledgement, and its
        // agent reads nothing: on a loaded machine the default 256 frames queued for a
        // connection fill and the hub closes it as not reading (a rule of its own, not
        // what this test is about).
        ("OUTBOUND_BUFFER", "4096"),
    ];
    HubProcess::start(Some(dir), &envs).await
}

#[tokio::test]
async fn sigkill_of_a_hub_on_the_embedded_store_loses_no_acknowledged_message() {
    let dir = TempDir::new("journal");
    let hub = embedded_hub(&dir.0).await;
    let (_agent, mut c, chat) = hub.agent_and_customer_in_a_chat().await;

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
    hub.signal("KILL");
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
        .map(|m| m.id.to_string())
        .collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a message was archived twice");
    let lost = acked.iter().filter(|id| !unique.contains(id)).count();
    assert_eq!(lost, 0, "{lost} of {} acknowledged messages lost", acked.len());
}
