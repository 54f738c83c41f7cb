//! Offers with a timeout over the websocket and the admin API: a category in offer mode
//! offers each customer to one agent, who accepts or declines; an offer nobody answers
//! lapses and goes on; two lapses in a row set the agent away; a standing offer counts
//! against the agent's limit. Then across nodes: accepted on another node than the
//! customer's, and an offer whose agent's node is killed (a real process) going on to an
//! agent on a live node long before its timeout.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard::store::SharedStore;

use crate::archive::TempDir;
use crate::cluster_fixture::available_agent_at;
use crate::cluster_hub::{NodeProcess, node_process_with, node_with};
use crate::common::*;
use crate::redis_server::RedisServer;

/// Puts `category` in offer mode through the admin API.
pub(crate) async fn offer_mode(hub: &TestHub, category: &str) {
    let (status, body) = hub
        .admin()
        .await
        .put(&format!("/api/admin/routing/{category}"), json!({"mode": "offer"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["category"] == category && c["mode"] == "offer"),
        "{body}"
    );
}

/// A hub whose "general" is in offer mode, Ann serving it (limit 1) and Carla joined:
/// the hub, Ann, Carla and the offer of Carla that Ann got.
async fn carla_offered_to_ann() -> (TestHub, Ws, Ws, Value) {
    let hub = TestHub::start().await;
    offer_mode(&hub, "general").await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    let carla = hub.customer("Carla", "general").await;
    let offer = ann.next_of("offer").await;
    (hub, ann, carla, offer)
}

/// The next `offer_ended` on `agent`: it ends `offer`, for `reason`.
async fn offer_ended(agent: &mut Ws, offer: &Value, reason: &str) {
    let ended = agent.next_of("offer_ended").await;
    assert_eq!(
        (ended["offer_id"].as_str(), ended["reason"].as_str()),
        (offer["offer_id"].as_str(), Some(reason)),
        "{ended}"
    );
}

/// A customer who joins `category` saying what they came about.
async fn customer_saying(hub: &TestHub, name: &str, category: &str, message: &str) -> Ws {
    let mut ws = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    ws.send(json!({"type": "join", "name": name, "category": category, "message": message}))
        .await;
    ws.next_of("welcome").await;
    ws
}

/// `agent` accepts `offer`.
async fn accept(agent: &mut Ws, offer: &Value) {
    agent
        .send(json!({"type": "accept_offer", "offer_id": offer_id(offer)}))
        .await;
}

fn offer_id(offer: &Value) -> String {
    offer["offer_id"].as_str().expect("an offer id").to_string()
}

#[tokio::test]
async fn an_offer_shows_the_customer_and_their_question_and_accepting_starts_the_chat() {
    let hub = TestHub::start().await;
    offer_mode(&hub, "general").await;
    let mut agent = hub.agent("ann", &["general"], 2).await;
    let mut carla = customer_saying(&hub, "Carla", "general", "  Where is my parcel?  ").await;
    let queued = carla.next_of("queued").await;
    assert_eq!(queued["place"], 1, "{queued}");
    let offer = agent.next_of("offer").await;
    assert_eq!(
        (
            offer["customer_name"].as_str(),
            offer["category"].as_str(),
            offer["first_message"].as_str(),
            offer["video_request"].as_bool(),
        ),
        (Some("Carla"), Some("general"), Some("Where is my parcel?"), Some(false)),
        "{offer}"
    );
    assert!(offer["expires_in_secs"].as_f64().unwrap() > 0.0, "{offer}");
    assert!(offer["waited_secs"].as_f64().unwrap() >= 0.0, "{offer}");
    // Offered, not paired: the customer still waits, in their place.
    assert!(carla.drain().await.iter().all(|f| f["type"] != "chat_started"));

    // Someone else's offer, or nonsense: refused, and the connection lives on.
    agent
        .send(json!({"type": "accept_offer", "offer_id": "not-an-offer"}))
        .await;
    assert_eq!(agent.next_of("error").await["code"], "unknown_offer");
    accept(&mut agent, &offer).await;
    let started = agent.next_of("chat_started").await;
    assert_eq!(started["peer_name"], "Carla");
    assert_eq!(
        started["offer_id"], offer["offer_id"],
        "the chat names the offer it answers"
    );
    carla.next_of("chat_started").await;
    // An offer answered twice: the second answer finds nothing.
    agent
        .send(json!({"type": "decline_offer", "offer_id": offer_id(&offer)}))
        .await;
    assert_eq!(agent.next_of("error").await["code"], "unknown_offer");
    hub.stop().await;
}

#[tokio::test]
async fn a_declined_customer_is_offered_to_the_next_agent() {
    let (hub, mut ann, mut carla, offer) = carla_offered_to_ann().await;
    let mut bob = hub.agent("bob", &["general"], 1).await;
    // Carla has an offer standing: Bob, free, is offered nobody.
    assert!(bob.drain().await.iter().all(|f| f["type"] != "offer"));
    ann.send(json!({"type": "decline_offer", "offer_id": offer_id(&offer)}))
        .await;
    offer_ended(&mut ann, &offer, "declined").await;
    let second = bob.next_of("offer").await;
    assert_eq!(second["customer_name"], "Carla");
    accept(&mut bob, &second).await;
    assert_eq!(carla.next_of("chat_started").await["peer_name"], "BOB");
    hub.stop().await;
}

#[tokio::test]
async fn an_offer_ignored_twice_sets_the_agent_away_and_the_customer_goes_on() {
    let hub = TestHub::with(|s| s.offer_timeout = Duration::from_millis(400)).await;
    offer_mode(&hub, "general").await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    let mut carla = hub.customer("Carla", "general").await;
    carla.next_of("queued").await;
    for _ in 1..=2 {
        let offer = ann.next_of("offer").await;
        offer_ended(&mut ann, &offer, "lapsed").await;
    }
    let profile = ann.next_of("profile").await;
    assert_eq!(
        (profile["status"].as_str(), profile["away_reason"].as_str()),
        (Some("away"), Some("Missed two chat offers")),
        "{profile}"
    );
    // Away: rung no more. Carla keeps her place.
    assert!(ann.drain().await.iter().all(|f| f["type"] != "offer"));
    assert!(carla.drain().await.iter().all(|f| f["type"] != "chat_started"));
    let figures = hub.admin().await.get("/api/admin/stats").await.1;
    assert_eq!(
        figures["agents"][0]["away_reason"], "Missed two chat offers",
        "{figures}"
    );
    // Another agent gets her.
    let mut bob = hub.agent("bob", &["general"], 1).await;
    let offer = bob.next_of("offer").await;
    accept(&mut bob, &offer).await;
    carla.next_of("chat_started").await;
    hub.stop().await;
}

#[tokio::test]
async fn a_standing_offer_counts_against_the_limit_and_is_withdrawn_when_the_customer_leaves() {
    let (hub, mut ann, mut carla, offer) = carla_offered_to_ann().await;
    let mut dan = hub.customer_queued("Dan", "general", 2).await;
    // Ann's one slot is held by the offer: Dan is not offered to her.
    assert!(ann.drain().await.iter().all(|f| f["type"] != "offer"));
    carla.send(json!({"type": "leave"})).await;
    offer_ended(&mut ann, &offer, "withdrawn").await;
    let next = ann.next_of("offer").await;
    assert_eq!(next["customer_name"], "Dan");
    // Back to assigning: the offer is withdrawn and Dan is paired at once.
    let (status, body) = hub
        .admin()
        .await
        .put("/api/admin/routing/general", json!({"mode": "assign"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ann.next_of("offer_ended").await["reason"], "withdrawn");
    dan.next_of("chat_started").await;
    // A bad mode, or an unknown category: refused.
    let admin = hub.admin().await;
    let (status, body) = admin.put("/api/admin/routing/general", json!({"mode": "ring"})).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_mode"), "{body}");
    let (status, body) = admin.put("/api/admin/routing/nope", json!({"mode": "offer"})).await;
    assert_eq!((status, error_code(&body)), (400, "unknown_category"), "{body}");
    hub.stop().await;
}

#[tokio::test]
async fn a_second_tab_taking_over_gets_the_standing_offer_again_with_the_time_left() {
    let hub = TestHub::start().await;
    offer_mode(&hub, "general").await;
    let token = hub.agent_account("ann", &["general"], 1).await;
    let mut first = Ws::agent(&hub, &token).await;
    first.send(json!({"type": "set_available", "available": true})).await;
    let _carla = hub.customer("Carla", "general").await;
    let offer = first.next_of("offer").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = Ws::agent(&hub, &token).await;
    let again = second.next_of("offer").await;
    assert_eq!(again["offer_id"], offer["offer_id"]);
    let left = again["expires_in_secs"].as_f64().unwrap();
    assert!(left < offer["expires_in_secs"].as_f64().unwrap(), "{again}");
    accept(&mut second, &again).await;
    assert_eq!(second.next_of("chat_started").await["offer_id"], offer["offer_id"]);
    hub.stop().await;
}

#[tokio::test]
async fn a_join_message_too_long_or_with_control_characters_is_refused_with_a_clear_error() {
    let hub = TestHub::start().await;
    let mut ws = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    ws.send(json!({"type": "join", "name": "Carla", "category": "general", "message": "x".repeat(1001)}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "message_too_long");
    ws.send(json!({"type": "join", "name": "Carla", "category": "general", "message": "pay \u{202E}gnp.exe"}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "invalid_message");
    ws.send(json!({"type": "join", "name": "Carla", "category": "general", "message": "hello"}))
        .await;
    ws.next_of("welcome").await;
    hub.stop().await;
}

// ---- across nodes ---------------------------------------------------------------------

#[tokio::test]
async fn an_offer_made_for_a_customer_on_one_node_is_accepted_on_another() {
    let cluster = Cluster::start("cluster-offers").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    offer_mode(&alpha, "general").await;
    let mut ann = beta.agent("ann", &["general"], 1).await;
    let mut carla = customer_saying(&alpha, "Carla", "general", "Refund please").await;
    carla.next_of("queued").await;
    let offer = ann.next_of("offer").await;
    assert_eq!(
        (offer["customer_name"].as_str(), offer["first_message"].as_str()),
        (Some("Carla"), Some("Refund please")),
        "{offer}"
    );
    accept(&mut ann, &offer).await;
    let chat = carla.next_of("chat_started").await["chat_id"].clone();
    assert_eq!(ann.next_of("chat_started").await["chat_id"], chat);
    carla.send(json!({"type": "message", "text": "hello"})).await;
    assert_eq!(ann.next_of("message").await["text"], "hello");
    alpha.stop().await;
    beta.stop().await;
}

/// The node holding the offered agent is killed (SIGKILL, a real process on MongoDB) long
/// before the offer's timeout: the survivors reap it within the lease, the offer is
/// withdrawn with the agent's connection, and the customer is offered to an agent on a
/// live node at once — not left waiting on a timer that died with its node.
#[tokio::test]
async fn an_offer_whose_agents_node_is_killed_goes_to_an_agent_on_a_live_node() {
    let redis = RedisServer::start().await;
    let mut conn = redis::aio::ConnectionManager::new(redis::Client::open(redis.url()).unwrap())
        .await
        .unwrap();
    let scratch = TempDir::new("cluster-offers-kill");
    let NodeProcess {
        running: doomed,
        bind,
        uri,
        db,
        ..
    } = node_process_with(&redis, &mut conn, &scratch, "doomed", None, &[]).await;
    let store: SharedStore = Arc::new(switchboard::store::MongoStore::connect(&uri, &db).await.unwrap());
    let alpha = node_with(store.clone(), &redis, "alpha", &scratch, |_| {}).await;
    let beta = node_with(store, &redis, "beta", &scratch, |_| {}).await;
    offer_mode(&alpha, "general").await;

    let ann_token = alpha.agent_account("ann", &["general"], 1).await;
    let mut ann = available_agent_at(&bind, &ann_token).await;
    let mut carla = beta.customer("Carla", "general").await;
    carla.next_of("queued").await;
    let first = ann.next_of("offer").await;
    assert_eq!(first["customer_name"], "Carla");
    let mut bob = alpha.agent("bob", &["general"], 1).await;
    assert!(bob.drain().await.iter().all(|f| f["type"] != "offer"));

    let killed = std::time::Instant::now();
    let mut doomed = doomed;
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();
    // Within the lease and the reap, well before the 20 s an offer waits by default.
    let second = bob
        .next_matching_within(Duration::from_secs(15), |f| f["type"] == "offer")
        .await;
    eprintln!("offered to the live node's agent {:?} after the kill", killed.elapsed());
    assert_eq!(second["customer_name"], "Carla");
    assert_ne!(second["offer_id"], first["offer_id"]);
    accept(&mut bob, &second).await;
    assert_eq!(carla.next_of("chat_started").await["peer_name"], "BOB");
    alpha.stop().await;
    beta.stop().await;
}

/// Node `alpha` (in this process) beside a node process whose hours keeper holds its
/// readings back 4 s before handing them to its hub (the test hook), both on one Redis and
/// one store: what they run on (kept alive by the caller), alpha, and when the lagging node
/// began to start (its keeper's first read is just after).
async fn beside_a_lagging_keeper(name: &str) -> ((RedisServer, TempDir, NodeProcess), TestHub, std::time::Instant) {
    let redis = RedisServer::start().await;
    let mut conn = redis::aio::ConnectionManager::new(redis::Client::open(redis.url()).unwrap())
        .await
        .unwrap();
    let scratch = TempDir::new(name);
    let started = std::time::Instant::now();
    let lagging = node_process_with(
        &redis,
        &mut conn,
        &scratch,
        "lagging",
        None,
        &[("SWITCHBOARD_TEST_KEEPER_LAG_MS", "4000")],
    )
    .await;
    let store: SharedStore = Arc::new(
        switchboard::store::MongoStore::connect(&lagging.uri, &lagging.db)
            .await
            .unwrap(),
    );
    let alpha = node_with(store, &redis, "alpha", &scratch, |_| {}).await;
    ((redis, scratch, lagging), alpha, started)
}

/// A node's hours keeper read the routing modes (every category assigns) just before an
/// admin put "general" in offer mode on another node, and hands its read to its hub only
/// after that change was applied (a test hook holds it back 4 s): the older read must not
/// undo the admin's newer change, so the offer made meanwhile still stands and is accepted.
#[tokio::test]
async fn a_keepers_older_read_does_not_undo_an_admins_newer_mode() {
    let (_servers, alpha, started) = beside_a_lagging_keeper("cluster-offers-keeper").await;
    offer_mode(&alpha, "general").await;
    let mut ann = alpha.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    carla.next_of("queued").await;
    let offer = ann.next_of("offer").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the test set up too slowly to stage the race ({:?})",
        started.elapsed()
    );
    // Past the lagging keeper's hand-over: 4 s after its read at start-up.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    let since = ann.drain().await;
    assert!(
        since
            .iter()
            .all(|f| f["type"] != "offer_ended" && f["type"] != "chat_started"),
        "the older read undid the offer mode: {since:?}"
    );
    accept(&mut ann, &offer).await;
    assert_eq!(carla.next_of("chat_started").await["peer_name"], "ANN");
    alpha.stop().await;
}

/// The same race with the chat hours: a node's keeper read the hours (every category open)
/// just before an admin closed "general" on another node, and hands its read to its hub
/// only after that change was applied (the test hook holds it back 4 s). The older read
/// must not open the category again: a customer joining after it is still refused.
#[tokio::test]
async fn a_keepers_older_read_does_not_reopen_a_category_an_admin_closed() {
    let (_servers, alpha, started) = beside_a_lagging_keeper("cluster-hours-keeper").await;
    close_chat_hours(&alpha, "general").await;
    let mut early = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
    early
        .send(json!({"type": "join", "name": "Early", "category": "general"}))
        .await;
    assert_eq!(early.next_of("error").await["code"], "category_closed");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the test set up too slowly to stage the race ({:?})",
        started.elapsed()
    );
    // Customers keep trying until well past the lagging keeper's hand-over (4 s after its
    // read at its start-up; an older read opened the category until alpha's keeper closed
    // it again at its next tick, up to 5 s later).
    while started.elapsed() < Duration::from_secs(10) {
        let mut late = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
        late.send(json!({"type": "join", "name": "Late", "category": "general"}))
            .await;
        let answer = late
            .next_matching(|f| f["type"] == "error" || f["type"] == "queued")
            .await;
        assert_eq!(
            answer["code"],
            "category_closed",
            "the older read opened it again at {:?}: {answer}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alpha.stop().await;
}

/// Two admins on two nodes put different categories in offer mode at the same moment:
/// neither change undoes the other (each category's mode is its own setting).
#[tokio::test]
async fn modes_set_at_once_on_two_nodes_all_hold() {
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let store: SharedStore = Arc::new(
        switchboard::store::MongoStore::connect(&crate::archive::mongo_uri(), &db)
            .await
            .unwrap(),
    );
    let cluster = Cluster::on("cluster-modes-race", store).await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    let (on_alpha, on_beta) = (alpha.admin().await, beta.admin().await);
    let puts = ["general", "sales", "billing", "technical"].map(|category| {
        let api = if category.len() % 2 == 0 { &on_alpha } else { &on_beta };
        async move {
            api.put(&format!("/api/admin/routing/{category}"), json!({"mode": "offer"}))
                .await
        }
    });
    for (status, body) in futures_util::future::join_all(puts).await {
        assert_eq!(status, 200, "{body}");
    }
    let (_, body) = on_alpha.get("/api/admin/routing").await;
    let offered: Vec<&str> = body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["mode"] == "offer")
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(offered.len(), 4, "every change holds: {body}");
    alpha.stop().await;
    beta.stop().await;
}
