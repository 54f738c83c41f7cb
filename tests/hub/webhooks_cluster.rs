//! Webhooks on two nodes over one MongoDB database: each event of a conversation whose
//! customer and agent are on different nodes reaches the receiver once, in order, though
//! both nodes run a deliverer over the same deliveries (a slow receiver gives the other
//! node every chance to send one twice); and a delivery whose node was killed (SIGKILL)
//! while sending it is sent by the other node once its claim has run out. The node a chat
//! ends on archives it too: its events come in order even when they reach the store
//! before those of the chat's own node.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard::store::{DeliveryStatus, MongoStore, SharedStore};

use crate::archive::{TempDir, mongo_uri};
use crate::cluster_fixture::{Process, nodes_on, one_then_two, paired, process_and_nodes};
use crate::cluster_hub::node_with;
use crate::common::{Endpoint, TestHub, post, resolved};
use crate::held_link::HeldLink;
use crate::redis_server::RedisServer;
use crate::webhooks::{Received, assert_a_conversations_life, delivered_within, receiver_as, register};

/// How long a test waits for what the nodes must do (a lease included).
const WAIT: Duration = Duration::from_secs(40);

/// Nodes "node-a" and "node-b" in the cluster at `redis`, each with its own connection to
/// one MongoDB database of their own, webhooks allowed to reach the test's receiver.
async fn two_nodes_on_mongo(redis: &RedisServer, scratch: &TempDir) -> (TestHub, TestHub) {
    two_nodes_on_mongo_allowing(redis, scratch, Some(true)).await
}

/// [`two_nodes_on_mongo`], with `WEBHOOK_ALLOW_PRIVATE` as `allow_private` says.
async fn two_nodes_on_mongo_allowing(
    redis: &RedisServer,
    scratch: &TempDir,
    allow_private: Option<bool>,
) -> (TestHub, TestHub) {
    let (uri, db) = (mongo_uri(), format!("t{}", uuid::Uuid::new_v4().simple()));
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        let store: SharedStore = Arc::new(MongoStore::connect(&uri, &db).await.unwrap());
        nodes.push(
            node_with(store, redis, name, scratch, |s| {
                s.webhooks.allow_private = allow_private
            })
            .await,
        );
    }
    let b = nodes.pop().unwrap();
    (nodes.pop().unwrap(), b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_nodes_each_event_of_a_conversation_is_delivered_once_in_order() {
    let redis = RedisServer::start().await;
    let scratch = TempDir::new("webhooks-two-nodes");
    let (a, b) = two_nodes_on_mongo(&redis, &scratch).await;
    // Slow: each answer takes a second, longer than a deliverer's pause between looks.
    let (url, got) = receiver_as(Received {
        answer_after: Duration::from_secs(1),
        ..Received::default()
    })
    .await;
    let all = [
        "conversation.created",
        "conversation.status_changed",
        "message.created",
        "rating.given",
    ];
    let endpoint = register(&a.admin().await, &url, &all).await;

    // Carla on node-a (which archives the chat: its events), Ann on node-b (her status
    // change is hers).
    let (mut ann, mut carla, started) = paired(&b, "ann", 1, &a, "Carla").await;
    let chat = started.as_str().unwrap().to_string();
    one_then_two(&mut carla, &mut ann, &chat).await;
    resolved(&mut ann, &mut carla, &chat).await;

    let deliveries = delivered_within(&got, 4, WAIT).await;
    assert_a_conversations_life(&deliveries);
    let texts: Vec<&Value> = deliveries[1..3].iter().map(|(_, b)| &b["data"]["text"]).collect();
    assert_eq!(texts, [&json!("one"), &json!("two")]);
    assert!(
        deliveries
            .iter()
            .all(|(_, b)| b["data"]["conversation_id"] == chat.as_str())
    );

    // Settled: the log shows every delivery delivered, so no node sends any more (a send
    // needs a pending delivery). Each event reached the receiver once, in one attempt.
    let id = endpoint["id"].as_str().unwrap();
    let log = all_delivered(&b.admin().await, id, 4).await;
    for delivery in log.as_array().unwrap() {
        assert_eq!(delivery["attempts"].as_array().map(Vec::len), Some(1), "{delivery}");
    }
    let sent: Vec<String> = got
        .lock()
        .unwrap()
        .deliveries
        .iter()
        .map(|(h, _, _)| h["switchboard-event-id"].to_str().unwrap().to_string())
        .collect();
    let mut once = sent.clone();
    once.dedup();
    assert_eq!(sent.len(), 4, "each event once: {sent:?}");
    assert_eq!(once, sent, "each event once: {sent:?}");
    a.stop().await;
    b.stop().await;
}

/// Ann ends the chat on node-b, which then archives it too (its customer's node may be
/// stopped, and nobody else would write its last lines): node-b's events of the chat reach
/// the store while node-a's wait on a stalled link to MongoDB. They begin with the
/// conversation's creation, so the receiver gets the conversation's life in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_a_chat_ended_on_the_agents_node_come_in_order_while_the_customers_node_lags() {
    let redis = RedisServer::start().await;
    let scratch = TempDir::new("webhooks-lagging-node");
    let (uri, db) = (mongo_uri(), format!("t{}", uuid::Uuid::new_v4().simple()));
    // The server's address: the URI's host and port, before any path or options.
    let server = uri
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap();
    let link = HeldLink::to(server).await;
    let through_link = format!(
        "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=120000",
        link.addr
    );
    let mut nodes = Vec::new();
    for (name, uri) in [("node-a", &through_link), ("node-b", &uri)] {
        let store: SharedStore = Arc::new(MongoStore::connect(uri, &db).await.unwrap());
        nodes.push(node_with(store, &redis, name, &scratch, |s| s.webhooks.allow_private = Some(true)).await);
    }
    let (b, a) = (nodes.pop().unwrap(), nodes.pop().unwrap());
    let (url, got) = receiver_as(Received::default()).await;
    let all = ["conversation.created", "conversation.status_changed", "message.created"];
    register(&a.admin().await, &url, &all).await;
    // Every node reads the endpoints at least every half second (node-b may have missed
    // the admin bus's word).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut carla = a.customer("Carla", "general").await;
    link.hold(true);
    // Comes online to Carla waiting: her chat starts at once.
    let mut ann = b.agent("ann", &["general"], 1).await;
    let chat = carla.chat_started().await;
    one_then_two(&mut carla, &mut ann, &chat).await;
    resolved(&mut ann, &mut carla, &chat).await;
    // Node-b's events of the chat's lines are sent while node-a's wait.
    delivered_within(&got, 2, WAIT).await;
    link.hold(false);

    let deliveries = delivered_within(&got, 4, WAIT).await;
    assert_a_conversations_life(&deliveries);
    assert_eq!(deliveries.len(), 4, "each event once");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_node_was_killed_while_sending_it_is_sent_by_another_node() {
    // The receiver holds the first request: "doomed" is mid-send when it is killed.
    let (url, got) = receiver_as(Received {
        hold_first: 1,
        ..Received::default()
    })
    .await;
    let env = [("WEBHOOK_ALLOW_PRIVATE", "true"), ("WEBHOOK_LEASE_SECS", "15")];
    let (mut doomed, bind, [], servers) =
        process_and_nodes("webhooks-killed", Process::named("doomed").env(&env), [], |_| {}).await;
    let on_doomed = Endpoint::at(&bind);
    let endpoint = register(&on_doomed.admin().await, &url, &["offline_message.created"]).await;
    let id = endpoint["id"].as_str().unwrap();
    let (status, left) = post(
        &on_doomed,
        "/api/offline-messages",
        json!({"category": "general", "name": "Olga", "email": "olga@example.com", "text": "Call me back"}),
    )
    .await;
    assert_eq!(status, 201, "{left}");
    // Doomed claimed it and is sending it (the receiver holds the request).
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.lock().unwrap().deliveries.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "doomed never sent the delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claimed = servers.store.deliveries_of(id, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].claimed_by.as_deref(), Some("doomed"), "{claimed:?}");

    // The heir runs beside it, then doomed dies without a chance to record anything.
    let [heir] = nodes_on(&servers.store, &servers.redis, &servers.scratch, ["heir"], |s| {
        s.webhooks.allow_private = Some(true);
    })
    .await;
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();

    let deliveries = delivered_within(&got, 1, WAIT).await;
    let body = &deliveries[0].1;
    assert_eq!(
        (&body["type"], &body["data"]["offline_message_id"]),
        (&json!("offline_message.created"), &left["id"]),
        "{body}"
    );
    let all: Vec<(String, u16)> = got
        .lock()
        .unwrap()
        .deliveries
        .iter()
        .map(|(h, _, status)| (h["switchboard-event-id"].to_str().unwrap().to_string(), *status))
        .collect();
    assert_eq!(all.len(), 2, "held by doomed, then sent by the heir: {all:?}");
    assert_eq!(all[0].0, all[1].0, "the same event, so the receiver can drop a repeat");
    assert_eq!((all[0].1, all[1].1), (0, 200));
    let log = all_delivered(&heir.admin().await, id, 1).await;
    assert_eq!(
        log[0]["attempts"].as_array().map(Vec::len),
        Some(1),
        "the heir's: {log}"
    );
    let stored = servers.store.deliveries_of(id, 10).await.unwrap();
    assert_eq!(
        (stored[0].status, stored[0].claimed_by.as_deref()),
        (DeliveryStatus::Delivered, Some("heir"))
    );
    heir.stop().await;
}

/// `endpoint`'s delivery log once it holds `n` deliveries, all delivered.
async fn all_delivered(admin: &crate::common::Api, endpoint: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, log) = admin.get(&format!("/api/admin/webhooks/{endpoint}/deliveries")).await;
        let items = log.as_array().cloned().unwrap_or_default();
        if items.len() == n && items.iter().all(|d| d["status"] == "delivered") {
            return log;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all delivered: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long a node may take to heed the admins' choice made on another: a second is
/// promised (the admin bus at once, else the deliverer's look twice a second); the rest
/// is slack for a loaded machine.
const HEEDED_WITHIN: Duration = Duration::from_secs(3);

/// Waits until every one of `admins`' nodes answers that it heeds `allowed` (`effective`),
/// within [`HEEDED_WITHIN`].
async fn heeded_on(admins: &[&crate::common::Api], allowed: bool) {
    use crate::webhooks_private::SETTING;
    let deadline = tokio::time::Instant::now() + HEEDED_WITHIN;
    for admin in admins {
        loop {
            let (_, shown) = admin.get(SETTING).await;
            if shown["allowed"] == allowed && shown["effective"] == allowed {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not heeded on {}: {shown}",
                admin.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The admins' choice on private addresses changed on one node applies on both nodes'
/// deliverers (both claim deliveries), each heeding it within a second (asked before any
/// event is made): turned off on node-a, neither sends to the loopback receiver; turned on
/// at node-b, every event made then goes in its first attempt, whichever node sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admins_choice_on_private_addresses_made_on_one_node_applies_on_the_other() {
    use crate::webhooks::logged_when;
    use crate::webhooks_private::{choose, offline_message};
    let redis = RedisServer::start().await;
    let scratch = TempDir::new("webhooks-private-two-nodes");
    let (a, b) = two_nodes_on_mongo_allowing(&redis, &scratch, None).await;
    let (admin_a, admin_b) = (a.admin().await, b.admin().await);
    let (url, got) = receiver_as(Received::default()).await;
    choose(&admin_a, true).await;
    let endpoint = register(&admin_b, &url, &["offline_message.created"]).await;
    let id = endpoint["id"].as_str().unwrap();
    choose(&admin_a, false).await;
    heeded_on(&[&admin_a, &admin_b], false).await;

    // Off: events made on either node are tried and refused, whichever node tries them.
    for (n, node) in [&a, &b, &a, &b].into_iter().enumerate() {
        offline_message(node, &format!("while off {n}")).await;
    }
    let log = logged_when(&admin_a, id, |log| {
        log.len() == 4
            && log
                .iter()
                .all(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    for delivery in &log {
        let excerpt = delivery["attempts"][0]["excerpt"].as_str().unwrap();
        assert!(excerpt.contains("private"), "{delivery}");
    }
    assert!(
        got.lock().unwrap().deliveries.is_empty(),
        "nothing reached the receiver"
    );
    let refused: Vec<Value> = log.iter().map(|d| d["id"].clone()).collect();

    // On, at node-b: what is made now goes at its first attempt, from either node.
    choose(&admin_b, true).await;
    heeded_on(&[&admin_a, &admin_b], true).await;
    for (n, node) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        offline_message(node, &format!("while on {n}")).await;
    }
    let log = logged_when(&admin_b, id, |log| {
        let made_on: Vec<&Value> = log.iter().filter(|d| !refused.contains(&d["id"])).collect();
        made_on.len() == 6 && made_on.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    for delivery in log.iter().filter(|d| !refused.contains(&d["id"])) {
        assert_eq!(delivery["attempts"].as_array().map(Vec::len), Some(1), "{delivery}");
    }
    a.stop().await;
    b.stop().await;
}

/// A conversation continued and ended on its agent's node, which then archives it as well:
/// it was created long before (an endpoint registered since never heard of it), so that
/// node tells of no creation; its line and its status change come, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continued_conversation_ended_on_the_agents_node_is_not_created_again() {
    use crate::continuing::{VISITOR, back_with_her_lines, continuing, first_visit, her_third_line, own_until};
    let cluster = crate::common::Cluster::start("webhooks-continued").await;
    let alpha = cluster.node("alpha", |s| s.webhooks.allow_private = Some(true)).await;
    let gamma = cluster.node("gamma", |s| s.webhooks.allow_private = Some(true)).await;
    let mut ann = gamma.agent("ann", &["general"], 2).await;
    let chat = first_visit(&alpha, &mut ann).await;
    own_until(&alpha, VISITOR, "resolved").await;

    // The CRM is connected now.
    let (url, got) = receiver_as(Received::default()).await;
    let all = ["conversation.created", "conversation.status_changed", "message.created"];
    let endpoint = register(&alpha.admin().await, &url, &all).await;
    // Every node reads the endpoints at least every half second.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut carla = continuing(&alpha, Some(VISITOR), &chat).await;
    back_with_her_lines(&mut carla, &mut ann, &chat).await;
    her_third_line(&mut carla, &mut ann, &chat).await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;

    // Reopened, her line, resolved (the statuses' node and the line's may be two, so in
    // the order their copies reached the store). Once both nodes' journals are empty,
    // whatever either made is in the log: those three and no creation.
    delivered_within(&got, 3, WAIT).await;
    for node in [&alpha, &gamma] {
        journal_drained(node).await;
    }
    let log = all_delivered(&alpha.admin().await, endpoint["id"].as_str().unwrap(), 3).await;
    let mut types: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    let statuses = "conversation.status_changed";
    assert_eq!(types, [statuses, statuses, "message.created"], "{log}");
    alpha.stop().await;
    gamma.stop().await;
}

/// Waits until `node`'s webhook journal holds nothing: every event it made is a delivery.
async fn journal_drained(node: &TestHub) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let backlog = crate::webhooks_durable::metric(node, "switchboard_webhook_journal_backlog").await;
        if backlog == 0.0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the journal kept {backlog} events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
