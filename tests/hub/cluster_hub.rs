//! The hub on the cluster's routing scripts (issue 15): several in-process nodes on one
//! shared store and a real `redis-server`, each with its own clients. A customer on one
//! node and an agent on another are paired and chat; concurrent joins on three nodes keep
//! the routing rules; a node's cut chat subscription loses no message.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::store::{MemoryStore, SharedStore};

use crate::archive::TempDir;
use crate::common::{TestHub, Ws};
use crate::redis_server::RedisServer;

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(20);
/// A short lease, so a node's loss shows within a test's patience.
const LEASE_MS: u64 = 1_000;
const RENEW_MS: u64 = 200;

/// A hub in this process that joins the cluster at `redis` as `node`, on `store`; returns
/// once it holds its lease (before, every routing call would be refused).
async fn node_on(store: SharedStore, redis: &RedisServer, node: &str, scratch: &TempDir) -> TestHub {
    let (url, name) = (redis.url(), node.to_string());
    let data_dir = scratch.0.join(node);
    let hub = TestHub::with_store(store, move |s| {
        s.data_dir = data_dir;
        s.redis_url = Some(url);
        s.node_id = name;
        s.cluster_lease = Duration::from_millis(LEASE_MS);
        s.cluster_renew = Duration::from_millis(RENEW_MS);
    })
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let health: Value = reqwest::get(hub.url("/healthz")).await.unwrap().json().await.unwrap();
        if health["cluster"]["incarnation"].is_u64() {
            return hub;
        }
        assert!(Instant::now() < deadline, "{node} never joined the cluster: {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next `n` chat messages a client gets, in arrival order.
async fn messages(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut got = vec![];
    while got.len() < n {
        got.push(ws.next_of("message").await);
    }
    got
}

/// Customer on alpha, agent on beta: paired (each sees the other's name and one chat id),
/// messages both ways with one gapless seq order the same on both sides, each sender
/// acknowledged with its own client id, typing across, the end told to both, the archive
/// holding the chat once with every message, and the freed capacity taken at once by the
/// customer waiting on alpha.
#[tokio::test]
async fn a_customer_on_one_node_and_an_agent_on_another_are_paired_and_chat() {
    let scratch = TempDir::new("cluster-hub");
    let redis = RedisServer::start().await;
    let store: SharedStore = Arc::new(MemoryStore::new());
    let alpha = node_on(store.clone(), &redis, "alpha", &scratch).await;
    let beta = node_on(store.clone(), &redis, "beta", &scratch).await;

    let mut agent = beta.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let started = carla.next_of("chat_started").await;
    let agent_started = agent.next_of("chat_started").await;
    assert_eq!(started["peer_name"], "ANN", "{started}");
    assert_eq!(agent_started["peer_name"], "Carla", "{agent_started}");
    let chat = started["chat_id"].as_str().unwrap().to_string();
    assert_eq!(agent_started["chat_id"], chat.as_str(), "one chat id on both nodes");

    carla.send(json!({"type": "typing", "active": true})).await;
    let typing = agent.next_of("typing").await;
    assert_eq!((typing["chat_id"].as_str(), typing["active"].as_bool()), (Some(chat.as_str()), Some(true)));

    for i in 0..5 {
        carla
            .send(json!({"type": "message", "text": format!("c{i}"), "client_id": format!("cc{i}")}))
            .await;
        agent
            .send(json!({"type": "message", "chat_id": chat, "text": format!("a{i}"), "client_id": format!("ac{i}")}))
            .await;
    }
    let seen_by_customer = messages(&mut carla, 10).await;
    let seen_by_agent = messages(&mut agent, 10).await;
    for (side, seen) in [("customer", &seen_by_customer), ("agent", &seen_by_agent)] {
        let seqs: Vec<u64> = seen.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=10).collect::<Vec<_>>(), "the {side} got seq 1..10 once each: {seqs:?}");
    }
    let by_seq = |seen: &[Value]| -> BTreeMap<u64, (String, String, String)> {
        seen.iter()
            .map(|m| {
                let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                (m["seq"].as_u64().unwrap(), (s("text"), s("from"), s("id")))
            })
            .collect()
    };
    assert_eq!(by_seq(&seen_by_customer), by_seq(&seen_by_agent), "one order, ids and authors on both sides");
    // Each side's own messages keep their order and come back with their client ids.
    let own = |seen: &[Value], from: &str| -> Vec<String> {
        let mut mine: Vec<&Value> = seen.iter().filter(|m| m["from"] == from).collect();
        mine.sort_by_key(|m| m["seq"].as_u64());
        mine.iter().map(|m| m["client_id"].as_str().unwrap_or_default().to_string()).collect()
    };
    assert_eq!(own(&seen_by_customer, "customer"), ["cc0", "cc1", "cc2", "cc3", "cc4"]);
    assert_eq!(own(&seen_by_agent, "agent"), ["ac0", "ac1", "ac2", "ac3", "ac4"]);

    // A second customer waits: the agent's one chat is taken.
    let mut dora = alpha.customer("Dora", "general").await;
    assert_eq!(dora.next_of("queued").await["place"], 1);
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let ended = carla.next_of("chat_ended").await;
    assert_eq!((ended["chat_id"].as_str(), ended["ended_by"].as_str()), (Some(chat.as_str()), Some("agent")));
    assert_eq!(agent.next_of("chat_ended").await["chat_id"], chat.as_str());
    // The freed capacity goes to the customer waiting on the other node.
    let next = dora.next_of("chat_started").await;
    assert_eq!(next["peer_name"], "ANN");
    assert_eq!(agent.next_of("chat_started").await["peer_name"], "Dora");

    // The customer's node archived the chat once, with every message.
    let deadline = Instant::now() + WAIT;
    let record = loop {
        if let Ok(record) = store.conversation(&chat).await
            && record.closed.is_some()
            && record.messages.len() == 10
        {
            break record;
        }
        assert!(Instant::now() < deadline, "the chat is archived with its 10 messages");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let archived: Vec<u64> = record.messages.iter().map(|m| m.seq).collect();
    assert_eq!(archived, (1..=10).collect::<Vec<_>>());
    assert_eq!(record.opened.customer_name, "Carla");
    assert_eq!(record.opened.agent_name, "ANN");
    alpha.stop().await;
    beta.stop().await;
}
