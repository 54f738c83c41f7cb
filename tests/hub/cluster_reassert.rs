//! Issue 15, Redis restarted EMPTY with people connected: the nodes re-assert what their
//! connected people hold (docs/cluster.md §9, "Back empty: re-assertion"). Two nodes,
//! agents with chats and customers waiting on both; Redis is SIGKILLed and started again
//! without its data. The connections stay open, the running chats go on with the next seq
//! on both sides and in the archive, the waiting customers keep their order, an agent's
//! limit holds, and a new customer is paired afterwards.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard::store::{MemoryStore, SharedStore};

use crate::archive::TempDir;
use crate::cluster_redis_restart::{archived, healthy, node};
use crate::common::{Ws, types};
use crate::redis_server::RedisServer;

/// One message from `from` in its chat: acknowledged with `seq`, delivered to `to` with it.
async fn exchange(from: &mut Ws, to: &mut Ws, chat: &str, text: &str, seq: u64) {
    // A node whose Redis connection broke answers its first call after the restart with
    // `cluster_unavailable` (the connection manager reconnects after the failure): the
    // client retries, as docs/protocol.md tells clients to.
    let ack = loop {
        from.send(json!({"type": "message", "chat_id": chat, "text": text, "client_id": text}))
            .await;
        let reply = from
            .next_matching(|f| f["type"] == "ack" || (f["type"] == "error" && f["client_id"] == text))
            .await;
        if reply["type"] == "ack" {
            break reply;
        }
        assert_eq!(reply["code"], "cluster_unavailable", "{reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ack["seq"], seq, "{text}: {ack}");
    let line = to.next_of("message").await;
    assert_eq!(
        (line["seq"].as_u64(), line["text"].as_str()),
        (Some(seq), Some(text)),
        "{line}"
    );
}

async fn started(ws: &mut Ws) -> String {
    ws.next_of("chat_started").await["chat_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_empty_redis_is_refilled_from_what_the_nodes_people_hold() {
    let scratch = TempDir::new("cluster-reassert");
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let store: SharedStore = Arc::new(MemoryStore::new());
    // Leases of a second: the outage outlasts them, so the nodes are suspended meanwhile.
    let alpha = node(&store, &redis, "alpha", &scratch, 1_000).await;
    let beta = node(&store, &redis, "beta", &scratch, 1_000).await;

    // Ann (beta) chats with Carla (alpha); Bob (alpha) with Dan (beta); both at their limit.
    let mut ann = beta.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let carla_chat = started(&mut carla).await;
    assert_eq!(started(&mut ann).await, carla_chat);
    let mut bob = alpha.agent("bob", &["general"], 1).await;
    let mut dan = beta.customer("Dan", "general").await;
    let dan_chat = started(&mut dan).await;
    assert_eq!(started(&mut bob).await, dan_chat);
    exchange(&mut carla, &mut ann, &carla_chat, "one", 1).await;
    exchange(&mut ann, &mut carla, &carla_chat, "two", 2).await;
    exchange(&mut dan, &mut bob, &dan_chat, "d-one", 1).await;
    // Eve (alpha), Fay (beta), Gus (alpha) wait, in that order.
    let mut eve = alpha.customer("Eve", "general").await;
    assert_eq!(eve.next_of("queued").await["place"], 1);
    let mut fay = beta.customer("Fay", "general").await;
    assert_eq!(fay.next_of("queued").await["place"], 2);
    let mut gus = alpha.customer("Gus", "general").await;
    assert_eq!(gus.next_of("queued").await["place"], 3);

    redis.kill();
    let _redis = RedisServer::start_with(port, None).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;

    // The running chats go on with the next seq, on the same connections.
    exchange(&mut carla, &mut ann, &carla_chat, "three", 3).await;
    exchange(&mut ann, &mut carla, &carla_chat, "four", 4).await;
    exchange(&mut bob, &mut dan, &dan_chat, "d-two", 2).await;
    assert_eq!(
        archived(&store, &carla_chat, 4).await,
        [(1, "one"), (2, "two"), (3, "three"), (4, "four")].map(|(s, t)| (s, t.to_string())),
        "one gapless order in the archive, nothing twice"
    );
    assert_eq!(archived(&store, &dan_chat, 2).await.len(), 2);

    // Ann's freed place goes to Eve, the longest waiting; Fay and Gus move up.
    ann.send(json!({"type": "end_chat", "chat_id": carla_chat})).await;
    carla.next_of("chat_ended").await;
    let eve_chat = started(&mut eve).await;
    assert_eq!(started(&mut ann).await, eve_chat);
    // A new customer waits behind them.
    let mut hal = beta.customer("Hal", "general").await;
    assert_eq!(hal.next_of("queued").await["place"], 3);
    // Bob's freed place goes to Fay, then a new agent takes Gus and then Hal.
    bob.send(json!({"type": "end_chat", "chat_id": dan_chat})).await;
    dan.next_of("chat_ended").await;
    let fay_chat = started(&mut fay).await;
    assert_eq!(started(&mut bob).await, fay_chat);
    // (Not `TestHub::agent`, which reads up to the profile: her chats start before it.)
    let token = alpha.agent_account("cleo", &["general"], 2).await;
    let mut cleo = Ws::agent(&alpha, &token).await;
    cleo.send(json!({"type": "set_available", "available": true})).await;
    let gus_chat = started(&mut gus).await;
    assert_eq!(started(&mut cleo).await, gus_chat);
    let hal_chat = started(&mut hal).await;
    assert_eq!(started(&mut cleo).await, hal_chat);
    exchange(&mut hal, &mut cleo, &hal_chat, "h-one", 1).await;
    // Ann's limit held all along: no second chat came to her.
    assert!(
        !types(&ann.drain().await).contains(&"chat_started".to_string()),
        "ann never holds two chats"
    );
    alpha.stop().await;
    beta.stop().await;
}
