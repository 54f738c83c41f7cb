//! No message is stored twice in MongoDB, even when a write that hung while the server was
//! frozen lands after the archive writer retried it grouped differently.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::{Value, json};

use crate::archive::TempDir;
use crate::common::{TestHub, Ws, get_json, in_memory_mongod, signal};

/// The archive writer's write timeout in this test (`ARCHIVE_WRITE_TIMEOUT_MS`; 15 s by
/// default): short, so the freeze below need not be long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longer than the archive writer's write timeout: the write in flight when the
/// server froze times out, the writer retries with what came meanwhile, and the hung
/// write is still in the server's socket, to be carried out when it thaws.
const FREEZE: Duration = Duration::from_secs(6);

async fn health(hub: &TestHub) -> Value {
    get_json(hub, "/healthz").await
}

/// Sends `count` messages at once, without waiting for their acknowledgements.
async fn send_many(customer: &mut Ws, label: &str, count: usize) -> Vec<String> {
    let mut sent = vec![];
    for i in 0..count {
        let client_id = format!("{label} {i}");
        customer
            .send(json!({"type": "message", "text": client_id, "client_id": client_id}))
            .await;
        sent.push(client_id);
    }
    sent
}

/// Waits (generously: a frozen store holds them until its write times out) for the
/// acknowledgement of every one of `client_ids`; returns their seqs.
async fn acks(customer: &mut Ws, client_ids: &[String]) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seqs = BTreeMap::new();
    while seqs.len() < client_ids.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = customer.recv_within(left).await;
        let frame = frame.unwrap_or_else(|| panic!("acknowledged {seqs:?} of {client_ids:?}, then nothing"));
        if let (Some("ack"), Some(client_id)) = (frame["type"].as_str(), frame["client_id"].as_str())
            && client_ids.iter().any(|c| c == client_id)
        {
            seqs.insert(client_id.to_string(), frame["seq"].as_u64().unwrap());
        }
    }
    seqs.into_values().collect()
}

/// MongoDB frozen (SIGSTOP) for longer than a write's timeout mid-chat, messages flowing
/// and acknowledged through the spool meanwhile, then thawed (SIGCONT): once the archive
/// has caught up, the RAW `message_buckets` collection (what an export or a migration
/// reads, not the history API, which would hide copies) holds every acknowledged message
/// of the chat exactly once.
/// A hub on the MongoDB at `uri` (database `db`), whose archive writes time out after
/// `timeout`, spooling to a fresh directory (returned: keep it while the hub runs).
pub(crate) async fn hub_on_mongo(uri: &str, db: &str, timeout: Duration) -> (TestHub, TempDir) {
    let store = switchboard::store::MongoStore::connect(uri, db).await.unwrap();
    let spool_dir = TempDir::new(&format!("{db}-spool"));
    let dir = spool_dir.0.clone();
    let hub = TestHub::with_store(std::sync::Arc::new(store), move |s| {
        s.store.data_dir = dir;
        s.archive.write_timeout = timeout;
    })
    .await;
    (hub, spool_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_hung_and_landed_late_stores_no_message_twice() {
    let (server, uri) = in_memory_mongod().await;
    let (hub, _spool_dir) = hub_on_mongo(&uri, "once", WRITE_TIMEOUT).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (mut customer, chat) = hub.paired_customer(&mut agent, "Carla", "general").await;

    let before = send_many(&mut customer, "before", 10).await;
    let mut acknowledged = acks(&mut customer, &before).await;

    let frozen_at = Instant::now();
    signal(&server.0, libc::SIGSTOP);
    // The first of these starts a write that hangs; the others queue behind it, so the
    // writer's retry after the timeout carries them all: grouped otherwise than the hung one.
    let frozen = send_many(&mut customer, "frozen", 30).await;
    acknowledged.extend(acks(&mut customer, &frozen).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(&hub).await["archive_degraded"] != true {
        assert!(Instant::now() < deadline, "the frozen store never showed as degraded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Retries hang or fail meanwhile; more messages are acknowledged through the spool.
    let more = send_many(&mut customer, "degraded", 10).await;
    acknowledged.extend(acks(&mut customer, &more).await);
    tokio::time::sleep(FREEZE.saturating_sub(frozen_at.elapsed())).await;
    signal(&server.0, libc::SIGCONT);

    let after = send_many(&mut customer, "after", 10).await;
    acknowledged.extend(acks(&mut customer, &after).await);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let h = health(&hub).await;
        if h["archive_backlog"] == 0 && h["archive_degraded"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "the archive never caught up: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The hung write is carried out as the server thaws; give it a moment past the catch-up.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let buckets: mongodb::Collection<bson::Document> = client.database("once").collection("message_buckets");
    let docs: Vec<bson::Document> = buckets
        .find(bson::doc! {"conversation_id": &chat})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut copies: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for d in &docs {
        let id = d.get("_id").map(|v| v.to_string()).unwrap_or_default();
        for m in d.get_array("messages").unwrap() {
            let m = m.as_document().unwrap();
            let seq = m.get_i64("seq").or_else(|_| m.get_i32("seq").map(i64::from)).unwrap();
            copies.entry(seq).or_default().push(id.clone());
        }
    }
    let twice: Vec<_> = copies.iter().filter(|(_, buckets)| buckets.len() > 1).collect();
    assert!(twice.is_empty(), "stored more than once (seq → buckets): {twice:?}");
    let missing: Vec<u64> = acknowledged
        .iter()
        .copied()
        .filter(|s| !copies.contains_key(&(*s as i64)))
        .collect();
    assert!(missing.is_empty(), "acknowledged but not stored: {missing:?}");
    assert_eq!(acknowledged.len(), 60);
    hub.stop().await;
    drop(server);
}
