//! The calls a node makes on its own — a page closing, a grace timer
//! running out — while Redis does not answer are kept in order and sent when it answers
//! again, so the other nodes see those people go without waiting for this node's loss
//! (which never comes: the outage is shorter than its lease).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::archive::TempDir;
use crate::cluster_fixture::{
    ChatAcrossNodes, chat_across_nodes_with, nodes, nodes_with_redis_data, redis_shows, sent_and_seen,
};
use crate::common::{TestHub, Ws, assert_shows, both_told, until_ok};
use crate::redis_server::RedisServer;

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(20);

/// A node whose lease (8 s) outlasts the outage, renewed (and Redis probed) every 400 ms,
/// with short grace periods so the expiries come soon after Redis is back.
fn outlasting_lease(s: &mut switchboard::config::Settings) {
    s.cluster.lease = Duration::from_millis(8_000);
    s.cluster.renew = Duration::from_millis(400);
    s.resume_grace = Duration::from_secs(2);
    s.buddy_grace = Duration::from_secs(1);
}

/// Carla on alpha chatting with Ann on beta, both nodes with [`outlasting_lease`].
async fn chat_on_two_nodes(scratch: &str) -> ChatAcrossNodes<2> {
    chat_across_nodes_with(scratch, ["alpha", "beta"], outlasting_lease).await
}

/// Waits for `hub` to show its Redis connection `state`, its lease kept.
async fn redis_is(hub: &TestHub, state: &str) {
    let health = redis_shows(hub, state).await;
    assert!(
        health["cluster"]["incarnation"].is_u64(),
        "the node kept its lease: {health}"
    );
}

async fn buddy(hub: &TestHub, name: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(&hub.ws_url("/ws/buddy"), &[]).await.unwrap();
    ws.send(serde_json::json!({"type": "buddy_join", "name": name})).await;
    let welcome = ws.next_of("buddy_welcome").await;
    (ws, welcome)
}

/// Redis frozen (SIGSTOP) for about two seconds, shorter than the lease: on alpha a
/// customer chatting with beta's agent and a buddy both close their pages meanwhile.
/// Once Redis answers again, beta's agent sees the customer away and, after the grace
/// period, the chat ended (`customer_gone`); beta's buddy sees the other leave. Before
/// the outbox, the disconnects were refused and lost, and alpha — alive throughout —
/// never handed those people on: beta saw them stay forever.
#[tokio::test]
async fn pages_closed_while_redis_is_away_are_seen_gone_once_it_is_back() {
    let (mut agent, _, carla, chat, [alpha, beta], _, servers) = chat_on_two_nodes("cluster-own-calls").await.parts();
    let redis = &servers.redis;
    let (bob, bob_welcome) = buddy(&alpha, "Bob").await;
    let bob_id = bob_welcome["you"].as_u64().unwrap();
    let (mut eve, _) = buddy(&beta, "Eve").await;

    redis.pause();
    redis_is(&alpha, "down").await;
    drop(carla);
    drop(bob);
    // Alpha handles both closes while Redis is frozen (its calls cannot go through).
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.resume();
    redis_is(&alpha, "up").await;

    assert_eq!(
        agent.next_of("peer_away").await["chat_id"],
        chat.as_str(),
        "beta's agent sees the customer's page closed"
    );
    let ended = agent.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].as_str(), ended["reason"].as_str()),
        (Some(chat.as_str()), Some("customer_gone")),
        "the customer's grace expiry, made on alpha, applies"
    );
    let left = eve.next_of("buddy_left").await;
    assert_eq!(left["id"].as_u64(), Some(bob_id), "beta's buddy sees Bob go");
    alpha.stop().await;
    beta.stop().await;
}

/// Redis killed (SIGKILL) and started again at once with its data (an append-only file),
/// between two lease renewals: the nodes still say they are ready, and the first message
/// each side sends is accepted — not refused with `cluster_unavailable` ("broken pipe")
/// because the connection, idle across the restart, had not noticed it yet.
#[tokio::test]
async fn the_first_message_after_redis_restarts_with_its_data_is_accepted() {
    // Renewals 5 s apart: the restart falls between two of them.
    let slow_renewals = |s: &mut switchboard::config::Settings| {
        s.cluster.lease = Duration::from_secs(20);
        s.cluster.renew = Duration::from_secs(5);
    };
    let ([alpha, beta], mut servers, data) =
        nodes_with_redis_data("cluster-first-call", ["alpha", "beta"], slow_renewals).await;
    let redis = &mut servers.redis;
    let port = redis.port;
    let mut agent = beta.agent("ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let chat = both_told(&mut carla, &mut agent).await;
    let one = json!({"type": "message", "text": "one", "client_id": "c1"});
    sent_and_seen(&mut carla, &mut agent, one, 1).await;

    redis.kill();
    let _redis = RedisServer::start_with(port, Some(&data)).await;
    for hub in [&alpha, &beta] {
        until_ok(WAIT, "never ready again", async || {
            let r = reqwest::get(hub.url("/readyz")).await.unwrap();
            let status = r.status().as_u16();
            let ready: Value = r.json().await.unwrap();
            if status == 200 { Ok(()) } else { Err(ready) }
        })
        .await;
    }
    let first = json!({"type": "message", "text": "two", "client_id": "c2"});
    acked_after_the_restart(&mut carla, first, 2, "the customer's").await;
    let first = json!({"type": "message", "chat_id": chat, "text": "three", "client_id": "a3"});
    acked_after_the_restart(&mut agent, first, 3, "the agent's").await;
    alpha.stop().await;
    beta.stop().await;
}

/// `whose` first message after Redis's restart, `message`, sent on `ws`: answered with an
/// ack (not a refusal) carrying `seq`.
async fn acked_after_the_restart(ws: &mut Ws, message: Value, seq: u64, whose: &str) {
    let client_id = message["client_id"].clone();
    ws.send(message).await;
    let answer = ws.next_matching(|f| f["client_id"] == client_id).await;
    assert_eq!(
        answer["type"], "ack",
        "{whose} first message after the restart: {answer}"
    );
    assert_eq!(answer["seq"], seq);
}

/// Found by review: a customer who reloads their page on the same node while Redis is
/// frozen. Their close is queued (an own call); their resume cannot be recorded, so it is
/// refused and the new connection closed with 1013 (the page tries again) instead of
/// staying attached. Otherwise, once Redis answered, the queued close would make them
/// away in Redis while connected here, and their chat would end after the grace period
/// (`customer_gone`) with the customer still on the page. Here: they resume again after
/// Redis is back and the chat goes on past the grace period.
#[tokio::test]
async fn a_reload_on_the_same_node_while_redis_is_away_keeps_the_chat() {
    let (mut agent, _, carla, chat, [alpha, beta], _, servers) =
        chat_on_two_nodes("cluster-own-calls-reload").await.parts();
    let redis = &servers.redis;
    let token = carla.token.clone().unwrap();

    redis.pause();
    redis_is(&alpha, "down").await;
    drop(carla);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut reload = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
    reload.send(serde_json::json!({"type": "resume", "token": token})).await;
    assert_eq!(
        reload.closed().await.map(u16::from),
        Some(1013),
        "a resume that cannot be recorded closes the page to try again"
    );
    redis.resume();
    redis_is(&alpha, "up").await;
    assert_eq!(agent.next_of("peer_away").await["chat_id"], chat.as_str());

    // The page tries again: now the resume is recorded, and the chat outlives the grace.
    let mut back = until_ok(WAIT, "the customer never resumed", async || {
        let mut ws = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
        ws.send(serde_json::json!({"type": "resume", "token": token})).await;
        let first = ws
            .next_matching(|f| f["type"] == "resumed" || f["type"] == "error")
            .await;
        if first["type"] == "resumed" && first["chat"]["chat_id"] == chat.as_str() {
            Ok(ws)
        } else {
            Err(first)
        }
    })
    .await;
    assert_eq!(agent.next_of("peer_back").await["chat_id"], chat.as_str());
    tokio::time::sleep(Duration::from_secs(3)).await; // past the 2 s grace period
    back.send(serde_json::json!({"type": "message", "text": "still here"}))
        .await;
    let got = agent.next_of("message").await;
    assert_eq!(got["text"], "still here", "the chat went on: {got}");
    alpha.stop().await;
    beta.stop().await;
}

/// Redis frozen (SIGSTOP) while a customer sends a message: alpha's calls time out and it
/// refuses the message `cluster_unavailable` with its client id, though the call waits in
/// Redis's socket and is applied when Redis wakes (the agent gets it). The customer sends
/// it again with the same client id, as the protocol asks: it is that message, stamped
/// once — acknowledged with the seq and id the agent saw, archived once — and the next
/// message follows it. Before, the second sending was stamped again: the agent saw the
/// text twice under two seqs, and the archive held it twice.
#[tokio::test]
async fn a_message_refused_while_redis_was_slow_and_sent_again_is_stamped_once() {
    let (mut agent, _, mut customer, chat, [alpha, beta], _, servers) =
        chat_on_two_nodes("cluster-resent-message").await.parts();
    let redis = &servers.redis;
    let message = |text: &str, client_id: &str| json!({"type": "message", "text": text, "client_id": client_id});

    sent_and_seen(&mut customer, &mut agent, message("hello", "c-0"), 1).await;

    let busy = busy_for(redis, Duration::from_millis(1_500));
    customer.send(message("is my refund on its way?", "c-1")).await;
    customer.next_refusal("cluster_unavailable", "c-1").await;
    busy.join().unwrap();
    let late = agent.next_of("message").await;
    assert_eq!(
        (late["seq"].as_u64(), late["text"].as_str()),
        (Some(2), Some("is my refund on its way?")),
        "Redis applied the refused call when it woke: {late}"
    );

    // Sent again until taken, as a client does (alpha refuses it while it has not seen
    // Redis answer again).
    let ack = loop {
        customer.send(message("is my refund on its way?", "c-1")).await;
        let answer = customer
            .next_matching(|f| f["type"] == "ack" || f["type"] == "error")
            .await;
        if answer["type"] == "ack" {
            break answer;
        }
        assert_eq!(answer["code"], "cluster_unavailable", "{answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (ack["seq"].as_u64(), ack["id"].as_str(), ack["client_id"].as_str()),
        (Some(2), late["id"].as_str(), Some("c-1")),
        "sent again: the message the agent has, acknowledged"
    );
    customer.send(message("thanks", "c-2")).await;
    assert_eq!(customer.next_of("ack").await["seq"], 3);
    let next = agent.next_of("message").await;
    assert_shows(
        &next,
        json!({"seq": 3, "text": "thanks"}),
        "the agent gets no second copy",
    );

    customer.send(json!({"type": "leave"})).await;
    agent.next_of("chat_ended").await;
    let admin = beta.admin().await;
    let record = until_ok(WAIT, "never archived closed", async || {
        let (status, record) = admin.get(&format!("/api/conversations/{chat}")).await;
        if status == 200 && !record["ended_at"].is_null() {
            Ok(record)
        } else {
            Err(format!("{status} {record}"))
        }
    })
    .await;
    let archived: Vec<(Option<u64>, Option<&str>)> = record["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["seq"].as_u64(), m["text"].as_str()))
        .collect();
    assert_eq!(
        archived,
        [
            (Some(1), Some("hello")),
            (Some(2), Some("is my refund on its way?")),
            (Some(3), Some("thanks"))
        ],
        "archived once each: {record}"
    );
    alpha.stop().await;
    beta.stop().await;
}

/// Keeps `redis` busy for `how_long` (a script that spins; Redis answers nobody meanwhile,
/// then goes through what queued up), as a loaded machine does; returns once it runs.
fn busy_for(redis: &RedisServer, how_long: Duration) -> std::thread::JoinHandle<()> {
    let url = redis.url();
    let millis = how_long.as_millis() as u64;
    let (started, running) = std::sync::mpsc::channel();
    let spinning = std::thread::spawn(move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let script = "local t = redis.call('TIME') local start = t[1] * 1000 + t[2] / 1000 \
             repeat t = redis.call('TIME') until t[1] * 1000 + t[2] / 1000 - start >= tonumber(ARGV[1])";
        started.send(()).unwrap();
        let _: () = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .arg(millis)
            .query(&mut conn)
            .unwrap();
    });
    running.recv().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    spinning
}

/// Alpha and beta on one redis-server, each with [`outlasting_lease`] then `tweak`, and Ann
/// signed in on beta, available (limit 1, "general"), with no chat yet: the agent, the
/// nodes, then Redis and the scratch directory they use (bind each to a name until the
/// end of the test: dropped at once, they would stop Redis under the nodes).
async fn ann_on_beta(
    scratch: &str,
    tweak: impl Fn(&mut switchboard::config::Settings) + Copy,
) -> (Ws, TestHub, TestHub, RedisServer, TempDir) {
    let ([alpha, beta], servers) = nodes(scratch, ["alpha", "beta"], move |s| {
        outlasting_lease(s);
        tweak(s);
    })
    .await;
    let agent = beta.agent("ann", &["general"], 1).await;
    (agent, alpha, beta, servers.redis, servers.scratch)
}

/// A customer page on `hub` that sent its `join` (its answer not read yet).
async fn joining(hub: &TestHub, name: &str) -> Ws {
    let mut ws = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    ws.send(json!({"type": "join", "name": name, "category": "general"}))
        .await;
    ws
}

/// Redis busy (a long script) while a customer joins: alpha's call and its one retry time
/// out, though both wait in Redis's socket and the join is applied when Redis is free
/// (the retry, under the same request id, changes nothing). The customer is not refused
/// while their join may stand: it waits for Redis's answer and they are welcomed into the
/// chat the agent was given. Before, they were refused `cluster_unavailable` while the
/// agent got a chat with a customer nobody held; a customer who joined again was paired a
/// second time (the checker's scenario 4, seed 4: a Redis restarted with its data).
#[tokio::test]
async fn a_join_whose_answer_was_lost_is_answered_not_refused() {
    let (mut agent, alpha, beta, redis, _scratch) = ann_on_beta("cluster-join-unanswered", |_| {}).await;

    let busy = busy_for(&redis, Duration::from_millis(2_000));
    let mut carla = joining(&alpha, "Carla").await;
    // Both calls time out (400 ms each) while Redis spins; it applies them once free.
    let given = agent.next_of("chat_started").await;
    busy.join().unwrap();
    let answer = carla
        .next_matching(|f| f["type"] == "welcome" || f["type"] == "error")
        .await;
    assert_eq!(
        answer["type"], "welcome",
        "the join Redis applied is answered, not refused: {answer}"
    );
    let started = carla.next_of("chat_started").await;
    assert_eq!(
        started["chat_id"], given["chat_id"],
        "the customer has the chat the agent was given"
    );
    carla
        .send(json!({"type": "message", "text": "hello", "client_id": "c-1"}))
        .await;
    assert_eq!(carla.next_of("ack").await["seq"], 1);
    assert_eq!(agent.next_of("message").await["text"], "hello");
    alpha.stop().await;
    beta.stop().await;
}

/// As [`a_join_whose_answer_was_lost_is_answered_not_refused`] for three customers joining
/// one after the other as Redis stops answering: the first join's calls go unanswered and
/// it waits for Redis; the others reach the router once it knows Redis is away and are
/// refused `cluster_unavailable` without being sent (or, had it not known yet, wait
/// likewise). A refused customer joins again, as a page does. Whatever each was told, each
/// is in the routing once: the first paired with the agent (limit 1), the two others in
/// line at places 1 and 2 — a refusal of a join that stood would put a customer nobody
/// holds ahead of them.
#[tokio::test]
async fn customers_joining_as_redis_stops_answering_are_each_in_line_once() {
    let (mut agent, alpha, beta, redis, _scratch) = ann_on_beta("cluster-joins-unanswered", |_| {}).await;

    let busy = busy_for(&redis, Duration::from_millis(2_500));
    let names = ["Carla", "Dora", "Emil"];
    let mut customers = vec![];
    for name in names {
        customers.push(joining(&alpha, name).await);
    }
    let given = agent.next_of("chat_started").await;
    busy.join().unwrap();
    let mut places = vec![];
    for (ws, name) in customers.iter_mut().zip(names) {
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = ws
                .next_matching(|f| f["type"] == "welcome" || f["type"] == "error")
                .await;
            if answer["type"] == "welcome" {
                break;
            }
            assert_eq!(answer["code"], "cluster_unavailable", "{name}: {answer}");
            assert!(Instant::now() < deadline, "{name} was never welcomed: {answer}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            ws.send(json!({"type": "join", "name": name, "category": "general"}))
                .await;
        }
        let next = ws
            .next_matching(|f| f["type"] == "chat_started" || f["type"] == "queued")
            .await;
        places.push(match next["type"].as_str() {
            Some("chat_started") => {
                assert_eq!(next["chat_id"], given["chat_id"], "{name} has the agent's chat");
                0
            }
            _ => next["place"].as_u64().unwrap(),
        });
    }
    assert_eq!(places, [0, 1, 2], "paired, then in line once each");
    alpha.stop().await;
    beta.stop().await;
}

/// A page closed while its join waits for Redis's answer (a page that reconnects sends a
/// new `join`: it has no token yet). When the join is applied it is paired at once, and
/// the customer leaves at once: nobody holds their token, so nobody can come back as
/// them. Before, they were only marked away, and the agent (limit 1) kept a chat with no
/// one for the whole grace period (30 s here), the customers behind them waiting.
#[tokio::test]
async fn a_join_whose_page_closed_while_it_waited_for_redis_leaves_at_once() {
    let long_grace = |s: &mut switchboard::config::Settings| s.resume_grace = Duration::from_secs(30);
    let (mut agent, alpha, beta, redis, _scratch) = ann_on_beta("cluster-join-page-closed", long_grace).await;

    let busy = busy_for(&redis, Duration::from_millis(2_000));
    let carla = joining(&alpha, "Carla").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(carla);
    let given = agent.next_of("chat_started").await;
    busy.join().unwrap();
    let ended = agent.next_of("chat_ended").await;
    assert_eq!(
        ended["chat_id"], given["chat_id"],
        "the chat with a customer nobody can resume ends within the grace period: {ended}"
    );
    alpha.stop().await;
    beta.stop().await;
}
