//! Cluster scenario 5: the one `redis-server` of a two-node cluster killed with SIGKILL
//! and started again on the same port — empty (no persistence), or after 10 s with its
//! data (an append-only file synced on every write). Meanwhile clear refusals; after,
//! the nodes recover by themselves, without a restart, and nothing acknowledged is lost
//! (every acknowledged seq is in the archive, once; nothing refused is).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::config::Settings;
use switchboard::store::SharedStore;

use crate::cluster_fixture::{nodes, nodes_with_redis_data, redis_shows, refused_for_now, sent_and_seen};
use crate::common::{TestHub, Ws, archived_when, both_told, health_when};
use crate::redis_server::RedisServer;

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(30);

/// A node's settings with a lease of `lease_ms`, renewed every `lease_ms / 5`, and a
/// grace period long enough for the people to come back on a loaded machine after Redis
/// does.
pub(crate) fn lease_of(lease_ms: u64) -> impl Fn(&mut Settings) + Copy {
    move |s| {
        s.cluster.lease = Duration::from_millis(lease_ms);
        s.cluster.renew = Duration::from_millis(lease_ms / 5);
        s.resume_grace = Duration::from_secs(20);
    }
}

pub(crate) async fn healthy(hub: &TestHub, name: &str) {
    health_when(hub, WAIT, &format!("{name} never recovered"), |health| {
        health["status"] == "ok" && health["cluster"]["incarnation"].is_u64()
    })
    .await;
}

/// The archived seqs and texts of `chat`, once it holds `n` messages.
pub(crate) async fn archived(store: &SharedStore, chat: &str, n: usize) -> Vec<(u64, String)> {
    let record = archived_when(store, chat, WAIT, |r| r.messages.len() >= n)
        .await
        .unwrap_or_else(|| panic!("chat {chat} never held {n} messages"));
    record.messages.iter().map(|m| (m.seq, m.text.clone())).collect()
}

/// A customer on alpha chatting with an agent on beta, two messages acknowledged.
/// Returns (customer, agent, chat id).
async fn chatting(alpha: &TestHub, beta: &TestHub) -> (Ws, Ws, String) {
    let mut agent = beta.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let chat = both_told(&mut carla, &mut agent).await;
    let one = json!({"type": "message", "text": "one", "client_id": "c1"});
    sent_and_seen(&mut carla, &mut agent, one, 1).await;
    let two = json!({"type": "message", "chat_id": chat, "text": "two", "client_id": "a2"});
    sent_and_seen(&mut agent, &mut carla, two, 2).await;
    (carla, agent, chat)
}

/// Sends a message, retried while refused with `cluster_unavailable` (a node's first call
/// after the restart may fail on its broken connection, and a restored chat takes messages
/// once both sides are claimed): its ack.
async fn sent(ws: &mut Ws, chat: &str, text: &str) -> Value {
    loop {
        ws.send(json!({"type": "message", "chat_id": chat, "text": text, "client_id": text}))
            .await;
        let reply = ws
            .next_matching(|f| f["type"] == "ack" || (f["type"] == "error" && f["client_id"] == text))
            .await;
        if reply["type"] == "ack" {
            return reply;
        }
        assert_eq!(reply["code"], "cluster_unavailable", "{reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Redis comes back EMPTY: the nodes notice (the routing domain's id is gone), keep their
/// people's connections, and write the lost domain back from their replicas
/// (docs/cluster.md §9; `cluster_reassert.rs` has the full scenario): the chat goes on with
/// the next seq, a category made after start-up takes customers, and routing works
/// without a restart: a new customer waits, and is paired when the agent's chat ends,
/// in a new chat from seq 1. Every acknowledged message is in the archive once.
/// (Before re-assertion was built, the nodes let go of their people here: 1012.)
#[tokio::test]
async fn an_empty_redis_after_a_crash_is_detected_and_routing_works_again_without_a_restart() {
    let ([alpha, beta], mut servers) = nodes("cluster-redis-empty", ["alpha", "beta"], lease_of(1_000)).await;
    let store = &servers.store;
    let redis = &mut servers.redis;
    let port = redis.port;
    let (mut carla, mut agent, chat) = chatting(&alpha, &beta).await;
    // A category made after the nodes started: it must be in the new domain too.
    let (status, body) = alpha
        .admin()
        .await
        .post("/api/admin/categories", json!({"id": "returns", "name": "Returns"}))
        .await;
    assert_eq!(status, 201, "{body}");

    redis.kill();
    let redis = RedisServer::start_with(port, None).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;
    assert_eq!(sent(&mut carla, &chat, "three").await["seq"], 3);
    assert_eq!(agent.next_of("message").await["seq"], 3);
    assert_eq!(
        archived(store, &chat, 3).await,
        [(1, "one".to_string()), (2, "two".to_string()), (3, "three".to_string())],
        "one order in the archive, nothing twice"
    );
    let mut erin = beta.customer("Erin", "returns").await;
    assert_eq!(erin.next_of("queued").await["place"], 1, "the later category is back");

    let mut dora = alpha.customer("Dora", "general").await;
    assert_eq!(dora.next_of("queued").await["place"], 1, "the agent is at their limit");
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    let started = dora.next_of("chat_started").await;
    let new_chat = started["chat_id"].as_str().unwrap().to_string();
    assert_eq!(started["peer_name"], "ANN", "{started}");
    assert_ne!(new_chat, chat, "a new chat, under a new id");
    assert_eq!(agent.next_of("chat_started").await["chat_id"], new_chat.as_str());
    assert_eq!(sent(&mut dora, &new_chat, "hello again").await["seq"], 1);
    assert_eq!(agent.next_of("message").await["seq"], 1);
    assert_eq!(sent(&mut agent, &new_chat, "welcome back").await["seq"], 2);
    assert_eq!(dora.next_of("message").await["seq"], 2);
    assert_eq!(archived(store, &new_chat, 2).await.len(), 2);
    drop(redis);
    alpha.stop().await;
    beta.stop().await;
}

/// Redis killed for 10 s and started again WITH its data: meanwhile a message is refused
/// with `cluster_unavailable` and its client id; the nodes keep their people's connections
/// while they cannot know how Redis will come back (*suspended*, docs/cluster.md §9), and
/// let them go (1012) when it is back with the same routing domain, in which their leases
/// ran out and their people were handed on; after, the customer resumes on their node with their token and
/// the agent signs in again, the chat goes on with the next seq on both sides, and the
/// archive holds exactly the acknowledged messages, once each.
#[tokio::test]
async fn redis_back_with_its_data_after_ten_seconds_everything_resumes() {
    let ([alpha, beta], mut servers, data) =
        nodes_with_redis_data("cluster-redis-back", ["alpha", "beta"], lease_of(3_000)).await;
    let store = &servers.store;
    let redis = &mut servers.redis;
    let port = redis.port;
    let (mut carla, mut agent, chat) = chatting(&alpha, &beta).await;
    let token = carla.token.clone().expect("a resume token");

    let killed = Instant::now();
    redis.kill();
    redis_shows(&alpha, "down").await;
    refused_for_now(&mut carla, "refused", "x1").await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(killed.elapsed())).await;
    let redis = RedisServer::start_with(port, Some(&data)).await;
    assert_eq!(
        carla.closed().await.map(u16::from),
        Some(1012),
        "Redis back with its data, the lease out: alpha lets go"
    );
    assert_eq!(
        agent.closed().await.map(u16::from),
        Some(1012),
        "Redis back with its data, the lease out: beta lets go"
    );
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;

    let mut back = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": token, "last_seq": 2}))
        .await;
    let resumed = back.next_of("resumed").await;
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");
    let login = beta.login("ann", "agent-password").await.token;
    let mut agent = Ws::agent(&beta, &login).await;
    back.send(json!({"type": "message", "text": "three", "client_id": "c3"}))
        .await;
    assert_eq!(back.next_of("ack").await["seq"], 3);
    // The agent's node re-reads the chat's log for them (the history may come first as
    // messages): one increasing seq order, ending with the customer's third.
    let mut seqs = vec![];
    while seqs.last() != Some(&3) {
        let line = agent.next_of("message").await;
        assert_eq!(line["chat_id"], chat.as_str(), "{line}");
        seqs.push(line["seq"].as_u64().unwrap());
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "one order, nothing twice: {seqs:?}"
    );
    assert_eq!(
        archived(store, &chat, 3).await,
        [(1, "one".to_string()), (2, "two".to_string()), (3, "three".to_string())],
        "every acknowledged message archived once; the refused one nowhere"
    );
    drop(redis);
    alpha.stop().await;
    beta.stop().await;
}
