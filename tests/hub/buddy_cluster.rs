//! The buddy list across the cluster: buddies connected to different nodes
//! (in-process nodes on one store and a real `redis-server`, and a real hub process for
//! the kill) see each other come and go, invite, chat and end chats exactly as on one
//! node; a key works on every node; a node's loss is a disconnect of its people.

use crate::buddy::invite_and_accept;
use crate::common::signal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::config::Settings;
use switchboard::store::{MemoryStore, SharedStore};

use crate::archive::TempDir;
use crate::cluster_fixture::{Process, ProcessAndNodes, nodes, process_and_nodes, redis_conn, until_reaped};
use crate::cluster_hub::{NodeProcess, messages, node_process_with, node_with};
use crate::common::{TestHub, Ws, closed_conversation, named, strs_in, until_ok};
use crate::redis_server::RedisServer;

/// How long a test waits for something the cluster must do.
const WAIT: Duration = Duration::from_secs(20);
/// The buddies' grace period in these tests (the settings' is 5 s).
const GRACE: Duration = Duration::from_secs(1);

fn buddy_grace(s: &mut Settings) {
    s.buddy_grace = GRACE;
}

pub(crate) async fn buddy_at(url: &str, name: &str, key: Option<&str>) -> (Ws, Value) {
    let mut ws = Ws::connect(url, &[]).await.unwrap();
    ws.send(json!({"type": "buddy_join", "name": name, "key": key})).await;
    // A join in a cluster goes through Redis and back: on a loaded machine (CI) more
    // than the 5 s of `next_of`.
    let welcome = ws.next_matching_within(WAIT, |f| f["type"] == "buddy_welcome").await;
    (ws, welcome)
}

pub(crate) async fn buddy(hub: &TestHub, name: &str, key: Option<&str>) -> (Ws, Value) {
    buddy_at(&hub.ws_url("/ws/buddy"), name, key).await
}

pub(crate) fn id(welcome: &Value) -> u64 {
    welcome["you"].as_u64().unwrap()
}

pub(crate) fn listed(welcome: &Value, who: u64) -> bool {
    welcome["buddies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["id"].as_u64() == Some(who))
}

/// `a` invites `b` (whose id is `b_id`), `b` accepts; returns the chat's id as both see it.
pub(crate) async fn start_chat(a: &mut Ws, b: &mut Ws, b_id: u64) -> String {
    invite_and_accept(a, b, b_id).await;
    let chat = a.chat_id_in("buddy_chat_started").await;
    assert_eq!(b.next_of("buddy_chat_started").await["chat_id"], chat.as_str());
    chat
}

/// Ann and Bob each send five lines at once in `chat` ("a0"…"a4" and "b0"…"b4", client ids
/// "ac…" and "bc…"): the ten chat frames each then gets (their own as acks).
async fn five_lines_each(ann: &mut Ws, bob: &mut Ws, chat: &str) -> (Vec<Value>, Vec<Value>) {
    for i in 0..5 {
        ann.send(json!({"type": "message", "chat_id": chat, "text": format!("a{i}"), "client_id": format!("ac{i}")}))
            .await;
        bob.send(json!({"type": "message", "chat_id": chat, "text": format!("b{i}"), "client_id": format!("bc{i}")}))
            .await;
    }
    (messages(ann, 10).await, messages(bob, 10).await)
}

/// `seen`'s (seq, message id) pairs in seq order.
fn by_seq(seen: &[Value]) -> Vec<(u64, String)> {
    let mut pairs: Vec<(u64, String)> = seen
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["id"].as_str().unwrap().to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// The next frame of `kind` on `ws`, asserted to be about `chat`.
async fn next_in_chat(ws: &mut Ws, kind: &str, chat: &str) -> Value {
    let frame = ws.next_of(kind).await;
    assert_eq!(frame["chat_id"].as_str(), Some(chat), "{frame}");
    frame
}

/// The next `buddy_chat_ended` on `ws`: `chat`, ended by the person `by`, for `reason`.
async fn told_ended(ws: &mut Ws, chat: &str, by: u64, reason: &str) {
    let ended = next_in_chat(ws, "buddy_chat_ended", chat).await;
    let got = (ended["ended_by"].as_u64(), ended["reason"].as_str());
    assert_eq!(got, (Some(by), Some(reason)), "{ended}");
}

/// The next `buddy_typing` on `ws`: in `chat`, from the person `from`, `active` or not.
async fn told_typing(ws: &mut Ws, chat: &str, from: u64, active: bool) {
    let typing = next_in_chat(ws, "buddy_typing", chat).await;
    assert_eq!(
        (typing["from"].as_u64(), typing["active"].as_bool()),
        (Some(from), Some(active)),
        "{typing}"
    );
}

/// Part 1: presence across nodes. Bob signing in on beta shows on Ann's list on alpha;
/// Bob's key works on alpha (the same person, not announced twice); Bob is offline for
/// Ann only when his last device, on either node, has been gone for the grace period.
#[tokio::test]
async fn buddies_on_two_nodes_see_each_other_and_a_key_works_on_every_node() {
    let ([alpha, beta], _servers) = nodes("buddy-cluster-presence", ["alpha", "beta"], buddy_grace).await;

    let (mut ann, ann_welcome) = buddy(&alpha, "Ann", None).await;
    let (bob_beta, bob_welcome) = buddy(&beta, "Bob", None).await;
    let bob = id(&bob_welcome);
    assert!(
        listed(&bob_welcome, id(&ann_welcome)),
        "Ann on alpha is on Bob's list: {bob_welcome}"
    );
    let joined = ann.next_of("buddy_joined").await;
    assert_eq!(
        (joined["buddy"]["id"].as_u64(), joined["buddy"]["name"].as_str()),
        (Some(bob), Some("Bob"))
    );

    // Bob's key, issued by beta, is Bob on alpha too.
    let key = bob_welcome["key"].as_str().unwrap().to_string();
    let (bob_alpha, again) = buddy(&alpha, "Bob", Some(&key)).await;
    assert_eq!(id(&again), bob, "the same person from a device on another node");
    assert_eq!(again["key"], key.as_str());

    // His device on beta goes: still online through alpha, past the grace period.
    drop(bob_beta);
    tokio::time::sleep(GRACE * 3).await;
    let seen = ann.drain().await;
    assert!(
        seen.iter()
            .all(|f| f["type"] != "buddy_left" && f["type"] != "buddy_joined"),
        "one device left of two is neither a leave nor a join: {seen:?}"
    );
    // His last device goes: offline for Ann after the grace period.
    drop(bob_alpha);
    let left = ann.next_of("buddy_left").await;
    assert_eq!(left["id"].as_u64(), Some(bob));
    // A newcomer on beta no longer sees him.
    let (_cid, cid_welcome) = buddy(&beta, "Cid", None).await;
    assert!(!listed(&cid_welcome, bob), "{cid_welcome}");
    assert!(listed(&cid_welcome, id(&ann_welcome)), "{cid_welcome}");
    alpha.stop().await;
    beta.stop().await;
}

/// A buddy with a page on each of two nodes sends from one: the sending page gets the
/// compact `ack`, the page on the other node the whole `message`, never a text-less `ack`.
#[tokio::test]
async fn a_message_sent_from_a_page_on_one_node_reaches_the_senders_page_on_another_whole() {
    let ([alpha, beta], _servers) = nodes("buddy-cluster-tabs", ["alpha", "beta"], buddy_grace).await;

    let (mut ann, _) = buddy(&alpha, "Ann", None).await;
    let (mut bob_alpha, wb) = buddy(&alpha, "Bob", None).await;
    let key = wb["key"].as_str().unwrap().to_string();
    let (mut bob_beta, _) = buddy(&beta, "Bob", Some(&key)).await;
    let chat = start_chat(&mut ann, &mut bob_alpha, id(&wb)).await;
    bob_beta.next_of("buddy_chat_started").await;

    bob_alpha
        .send(json!({"type": "message", "chat_id": chat, "text": "sent on alpha", "client_id": "b1"}))
        .await;
    let ack = bob_alpha.next_of("ack").await;
    let copy = tokio::time::timeout(
        WAIT,
        bob_beta.next_matching(|f| f["type"] == "message" || f["type"] == "ack"),
    )
    .await
    .expect("Bob's page on beta hears of his message");
    assert_eq!(
        (copy["type"].as_str(), copy["text"].as_str(), copy["seq"].as_u64()),
        (Some("message"), Some("sent on alpha"), ack["seq"].as_u64()),
        "the page on beta gets the message whole: {copy}"
    );
    assert_eq!(ann.next_of("message").await["text"], "sent on alpha");
    alpha.stop().await;
    beta.stop().await;
}

/// Part 2: invitations and chats between nodes, with the single node's frames and rules:
/// busy status, a refusal by the rules, decline, accept, typing, messages with ids and one
/// gapless seq order (the same on both sides and in the archive), the end told to both.
#[tokio::test]
async fn invitations_and_chats_between_nodes_follow_the_single_node_rules() {
    let ([alpha, beta], servers) = nodes("buddy-cluster-chat", ["alpha", "beta"], buddy_grace).await;
    let store = &servers.store;

    let (mut ann, wa) = buddy(&alpha, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    let (ia, ib) = (id(&wa), id(&wb));
    ann.next_of("buddy_joined").await;

    ann.send(json!({"type": "invite", "to": ib})).await;
    let invited = bob.next_of("invited").await;
    assert_eq!(
        (
            invited["invitation"]["from"].as_u64(),
            invited["invitation"]["to"].as_u64()
        ),
        (Some(ia), Some(ib))
    );
    let inv = invited["invitation"]["invitation_id"].as_u64().unwrap();
    assert_eq!(ann.next_of("invited").await["invitation"]["invitation_id"], inv);
    let busy = bob.next_of("buddy_status").await;
    assert_eq!((busy["id"].as_u64(), busy["status"].as_str()), (Some(ia), Some("busy")));
    // The rules across nodes: an inviter cannot be invited.
    bob.send(json!({"type": "invite", "to": ia})).await;
    assert_eq!(bob.next_of("error").await["code"], "target_not_available");
    bob.send(json!({"type": "decline", "invitation_id": inv})).await;
    for side in [&mut ann, &mut bob] {
        let closed = side.next_of("invitation_closed").await;
        assert_eq!(
            (closed["invitation_id"].as_u64(), closed["reason"].as_str()),
            (Some(inv), Some("declined"))
        );
    }

    let chat = start_chat(&mut ann, &mut bob, ib).await;
    ann.send(json!({"type": "typing", "chat_id": chat, "active": true}))
        .await;
    told_typing(&mut bob, &chat, ia, true).await;
    let (seen_by_ann, seen_by_bob) = five_lines_each(&mut ann, &mut bob, &chat).await;
    let (ann_order, bob_order) = (by_seq(&seen_by_ann), by_seq(&seen_by_bob));
    assert_eq!(
        ann_order.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>(),
        "seq 1..10 once each: {seen_by_ann:?}"
    );
    assert_eq!(ann_order, bob_order, "one order, the same ids, on both sides");
    for m in seen_by_ann.iter().filter(|m| m["type"] == "ack") {
        assert!(m["client_id"].as_str().unwrap().starts_with("ac"), "{m}");
    }
    for m in seen_by_ann.iter().filter(|m| m["type"] == "message") {
        assert_eq!(
            (m["from"].as_str(), m["sender"].as_u64()),
            (Some("buddy"), Some(ib)),
            "{m}"
        );
    }

    bob.send(json!({"type": "end_chat", "chat_id": chat})).await;
    for side in [&mut ann, &mut bob] {
        told_ended(side, &chat, ib, "ended").await;
    }
    bob.send(json!({"type": "message", "chat_id": chat, "text": "late", "client_id": "late"}))
        .await;
    assert_eq!(bob.next_of("error").await["code"], "not_in_chat");

    // Archived once, closed, with seq 1..10.
    let record = archived_closed(store, &chat, 10).await;
    let archived: Vec<(u64, String)> = record.messages.iter().map(|m| (m.seq, m.id.to_string())).collect();
    assert_eq!(archived, ann_order);
    alpha.stop().await;
    beta.stop().await;
}

/// Typing in a buddy chat goes to the nodes holding the peer, not through the routing
/// events stream that every node reads (docs/cluster.md §15): Bob on beta and on gamma
/// (the same key) sees Ann's typing from alpha on both devices; Ann's own typing reaches
/// no device of hers; the stream holds no typing entry.
#[tokio::test]
async fn buddy_typing_reaches_the_peers_nodes_without_the_events_stream() {
    let ([alpha, beta, gamma], servers) = nodes("buddy-cluster-typing", ["alpha", "beta", "gamma"], buddy_grace).await;
    let redis = &servers.redis;

    let (mut ann, wa) = buddy(&alpha, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    let (ia, ib, key) = (id(&wa), id(&wb), wb["key"].as_str().unwrap().to_string());
    ann.next_of("buddy_joined").await;
    let chat = start_chat(&mut ann, &mut bob, ib).await;
    let (mut bob2, back) = buddy(&gamma, "Bob", Some(&key)).await;
    assert_eq!(back["chat"]["chat_id"], chat.as_str(), "{back}");
    // Gamma's replica has applied Bob's second page once a message sent after it arrives there.
    ann.send(json!({"type": "message", "chat_id": chat, "text": "hi"}))
        .await;
    bob2.next_of("message").await;

    for active in [true, false] {
        ann.send(json!({"type": "typing", "chat_id": chat, "active": active}))
            .await;
        for device in [&mut bob, &mut bob2] {
            told_typing(device, &chat, ia, active).await;
        }
    }
    bob.send(json!({"type": "typing", "chat_id": chat, "active": true}))
        .await;
    assert_eq!(ann.next_of("buddy_typing").await["from"], ib);
    let seen = bob.drain().await;
    assert!(
        seen.iter().all(|f| f["type"] != "buddy_typing"),
        "Bob's own typing came back: {seen:?}"
    );

    let typing_entries = events_naming(redis, "typing").await;
    assert!(
        typing_entries.is_empty(),
        "typing in the events stream: {typing_entries:?}"
    );
    alpha.stop().await;
    beta.stop().await;
    gamma.stop().await;
}

/// Buddy chat messages take the chat's own path, not the routing events stream every
/// node reads (docs/cluster.md §15): Ann on alpha and Bob on beta chat while Cid, on
/// gamma, holds only his own page: gamma's channel carries none of their lines and the
/// stream holds no message entry; both sides see one gapless order and the archive holds
/// it once. Then Bob opens a page on gamma: its welcome has every line so far (read from
/// the chat's log) and the next lines reach it there.
#[tokio::test]
async fn buddy_messages_reach_only_the_members_nodes_without_the_events_stream() {
    use futures_util::StreamExt;
    let ([alpha, beta, gamma], servers) =
        nodes("buddy-cluster-per-chat", ["alpha", "beta", "gamma"], buddy_grace).await;
    let store = &servers.store;
    let redis = &servers.redis;

    let client = redis::Client::open(redis.url()).unwrap();
    let mut to_gamma = client.get_async_pubsub().await.unwrap();
    to_gamma.subscribe("{sb}:to:gamma").await.unwrap();
    let mut to_alpha = client.get_async_pubsub().await.unwrap();
    to_alpha.subscribe("{sb}:to:alpha").await.unwrap();

    let (mut ann, _) = buddy(&alpha, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    let (_cid, _) = buddy(&gamma, "Cid", None).await;
    let (ib, key) = (id(&wb), wb["key"].as_str().unwrap().to_string());
    ann.next_of("buddy_joined").await;
    let chat = start_chat(&mut ann, &mut bob, ib).await;
    let (seen_by_ann, seen_by_bob) = five_lines_each(&mut ann, &mut bob, &chat).await;
    let ann_order = by_seq(&seen_by_ann);
    assert_eq!(
        ann_order.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>(),
        "{seen_by_ann:?}"
    );
    assert_eq!(
        ann_order,
        by_seq(&seen_by_bob),
        "one order, the same ids, on both sides"
    );

    // Bob's lines reached alpha by its channel; gamma's carried none.
    let published = |pubsub: &mut redis::aio::PubSub| {
        let mut lines = 0;
        let mut stream = pubsub.on_message();
        let mut payloads = vec![];
        while let Some(Some(m)) = futures_util::FutureExt::now_or_never(stream.next()) {
            payloads.push(m.get_payload::<String>().unwrap());
        }
        for p in &payloads {
            if p.contains("\"k\":\"bm\"") {
                lines += 1;
            }
        }
        (lines, payloads)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (to_alpha_lines, _) = published(&mut to_alpha);
    assert_eq!(to_alpha_lines, 5, "Bob's five lines, published to Ann's node");
    let (to_gamma_lines, payloads) = published(&mut to_gamma);
    assert_eq!(to_gamma_lines, 0, "gamma holds neither member: {payloads:?}");
    let message_entries = events_naming(redis, "message").await;
    assert!(
        message_entries.is_empty(),
        "messages in the events stream: {message_entries:?}"
    );

    // Bob's second page, on gamma: the whole chat in its welcome, and the next line.
    let (mut bob2, back) = buddy(&gamma, "Bob", Some(&key)).await;
    let texts: Vec<&str> = strs_in(&back["chat"]["messages"], "text");
    assert_eq!(texts.len(), 10, "{back}");
    ann.send(json!({"type": "message", "chat_id": chat, "text": "to both devices"}))
        .await;
    let got = bob2.next_of("message").await;
    assert_eq!(
        (got["seq"].as_u64(), got["text"].as_str()),
        (Some(11), Some("to both devices"))
    );
    assert_eq!(bob.next_of("message").await["seq"], 11);

    bob.send(json!({"type": "end_chat", "chat_id": chat})).await;
    ann.next_of("buddy_chat_ended").await;
    let record = archived_closed(store, &chat, 11).await;
    let archived: Vec<u64> = record.messages.iter().map(|m| m.seq).collect();
    assert_eq!(archived, (1..=11).collect::<Vec<_>>());
    alpha.stop().await;
    beta.stop().await;
    gamma.stop().await;
}

/// A buddy line's place in the events stream decides whether it belongs to its chat, on
/// every node alike, whatever reaches a node first (docs/cluster.md §15). Ann's node (a
/// process) hands each batch of events to its hub 1.5 s after reading it
/// (`SWITCHBOARD_TEST_FOLLOWER_LAG`, debug builds). Ann writes a line after an entry her
/// replica has not applied: it waits for her replica; Bob ends the chat on beta meanwhile,
/// so beta, which archives the chat, gets her line only from its last read of the log
/// after the end: it goes to Bob (after the end) and to the archive before the closing,
/// and Ann's `ack` comes once her replica reaches its place. Ann's next line, written
/// while her replica still shows the chat running, is stamped after the end: refused
/// `not_in_chat`, and nobody keeps it.
#[tokio::test]
async fn a_line_stamped_before_the_end_is_kept_everywhere_and_one_after_it_nowhere() {
    let scratch = TempDir::new("buddy-cluster-late-line");
    let redis = RedisServer::start().await;
    let store: SharedStore = Arc::new(MemoryStore::new());
    let hook = [
        ("BUDDY_GRACE_SECS", "5"),
        ("SWITCHBOARD_TEST_FOLLOWER_LAG", "laggard:1500"),
    ];
    let NodeProcess {
        running: _laggard,
        bind,
        ..
    } = node_process_with(&redis, &mut redis_conn(&redis).await, &scratch, "laggard", None, &hook).await;
    let beta = node_with(store.clone(), &redis, "beta", &scratch, buddy_grace).await;

    let (mut ann, _) = buddy_on(&bind, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    let ib = id(&wb);
    ann.next_matching_within(WAIT, |f| f["type"] == "buddy_joined").await;
    invite_and_accept(&mut ann, &mut bob, ib).await;
    let chat = bob.chat_id_in("buddy_chat_started").await;
    ann.next_matching_within(WAIT, |f| f["type"] == "buddy_chat_started")
        .await;
    // An entry Ann's replica will apply 1.5 s after reading it; her line comes after it.
    let (_cid, _) = buddy(&beta, "Cid", None).await;
    ann.send(json!({"type": "message", "chat_id": chat, "text": "before the end", "client_id": "m1"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.send(json!({"type": "end_chat", "chat_id": chat})).await;
    bob.next_of("buddy_chat_ended").await;
    let late = bob.next_of("message").await;
    assert_eq!(
        (late["seq"].as_u64(), late["text"].as_str()),
        (Some(1), Some("before the end")),
        "{late}"
    );
    ann.send(json!({"type": "message", "chat_id": chat, "text": "after the end", "client_id": "m2"}))
        .await;
    let ack = ann.next_matching_within(WAIT, |f| f["type"] == "ack").await;
    assert_eq!((ack["client_id"].as_str(), ack["seq"].as_u64()), (Some("m1"), Some(1)));
    let refused = ann.next_matching_within(WAIT, |f| f["type"] == "error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["client_id"].as_str()),
        (Some("not_in_chat"), Some("m2")),
        "{refused}"
    );
    let record = closed_conversation(&store, &chat, WAIT)
        .await
        .expect("the buddy chat is archived as closed");
    let archived: Vec<(u64, &str)> = record.messages.iter().map(|m| (m.seq, m.text.as_str())).collect();
    assert_eq!(archived, [(1, "before the end")]);
    let seen = bob.drain().await;
    assert!(seen.iter().all(|f| f["text"] != "after the end"), "{seen:?}");
    beta.stop().await;
}

/// Part 3 (scenario 6, a buddy): Bob drops from beta and comes back on alpha within the
/// grace period with his key: his welcome there holds the chat and its messages, Ann is
/// told nothing, and the chat goes on in one seq order.
#[tokio::test]
async fn a_buddy_back_on_another_node_within_grace_keeps_their_chat() {
    let settle = Duration::from_secs(5);
    let ([alpha, beta], _servers) = nodes("buddy-cluster-resume", ["alpha", "beta"], move |s| {
        s.buddy_grace = settle
    })
    .await;

    let (mut ann, _) = buddy(&alpha, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    let (ib, key) = (id(&wb), wb["key"].as_str().unwrap().to_string());
    ann.next_of("buddy_joined").await;
    let chat = start_chat(&mut ann, &mut bob, ib).await;
    for text in ["one", "two"] {
        ann.send(json!({"type": "message", "chat_id": chat, "text": text}))
            .await;
    }
    assert_eq!(messages(&mut bob, 2).await[1]["seq"], 2);

    drop(bob);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut bob, back) = buddy(&alpha, "Bob", Some(&key)).await;
    assert_eq!(id(&back), ib);
    let snapshot = &back["chat"];
    assert_eq!(snapshot["chat_id"], chat.as_str(), "{back}");
    let texts: Vec<&str> = strs_in(&snapshot["messages"], "text");
    assert_eq!(texts, ["one", "two"]);

    bob.send(json!({"type": "message", "chat_id": chat, "text": "three", "client_id": "b3"}))
        .await;
    let got = ann.next_of("message").await;
    assert_eq!((got["seq"].as_u64(), got["text"].as_str()), (Some(3), Some("three")));
    assert_eq!(bob.next_of("ack").await["seq"], 3);
    // Past the grace period of the device he left: still online, still chatting.
    tokio::time::sleep(settle + Duration::from_secs(1)).await;
    let seen = ann.drain().await;
    assert!(
        seen.iter()
            .all(|f| f["type"] != "buddy_left" && f["type"] != "buddy_chat_ended"),
        "{seen:?}"
    );
    alpha.stop().await;
    beta.stop().await;
}

/// The nodes registered in Redis now.
async fn registered_nodes(redis: &RedisServer) -> Vec<String> {
    let mut conn = redis_conn(redis).await;
    redis::cmd("HKEYS")
        .arg("{sb}:nodes")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// The routing events stream's entries whose arguments contain `word`.
async fn events_naming(redis: &RedisServer, word: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut conn = redis_conn(redis).await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("{sb}:routing-events")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .filter(|(_, fields)| fields.iter().any(|(k, v)| k == "a" && v.contains(word)))
        .collect()
}

/// A buddy joined on the hub process at `bind`, retried while it is not yet a member of
/// the cluster (it refuses with `cluster_unavailable` until it holds its lease).
pub(crate) async fn buddy_on(bind: &str, name: &str, key: Option<&str>) -> (Ws, Value) {
    let url = format!("ws://{bind}/ws/buddy");
    let deadline = Instant::now() + WAIT;
    loop {
        let mut ws = Ws::connect(&url, &[]).await.unwrap();
        ws.send(json!({"type": "buddy_join", "name": name, "key": key})).await;
        let frame = ws
            .next_matching(|f| f["type"] == "buddy_welcome" || f["type"] == "error")
            .await;
        if frame["type"] == "buddy_welcome" {
            return (ws, frame);
        }
        assert!(Instant::now() < deadline, "{bind} never took a buddy: {frame}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `chat`'s archive once it is closed with `messages` messages.
async fn archived_closed(store: &SharedStore, chat: &str, messages: usize) -> switchboard::store::Conversation {
    let what = format!("chat {chat} never archived as closed with {messages} messages");
    until_ok(WAIT, &what, async || match store.conversation(chat).await {
        Ok(record) if record.closed.is_some() && record.messages.len() == messages => Ok(record),
        seen => {
            let seen = seen.map(|r| (r.closed.is_some(), r.messages.len()));
            Err(format!("(closed, messages: {seen:?})"))
        }
    })
    .await
}

/// Requires `chat` archived closed with exactly `lines` (seq and text), once it has as many.
async fn archived_lines(store: &SharedStore, chat: &str, lines: &[(u64, &str)]) {
    let record = archived_closed(store, chat, lines.len()).await;
    let archived: Vec<(u64, &str)> = record.messages.iter().map(|m| (m.seq, m.text.as_str())).collect();
    assert_eq!(archived, lines);
}

/// A real hub process ("doomed", grace 1 s) and an in-process node ("live") on the same
/// MongoDB database, so the archive is one.
async fn doomed_and_live(scratch: &str) -> ProcessAndNodes<1> {
    let grace = [("BUDDY_GRACE_SECS", "1")];
    process_and_nodes(scratch, Process::named("doomed").env(&grace), ["live"], buddy_grace).await
}

/// `texts` sent in turn, `a` first, each seen by the other before the next (seq 1, 2, …):
/// one order to compare the archive with.
async fn in_turn(a: &mut Ws, b: &mut Ws, chat: &str, texts: &[&str]) {
    for (i, text) in texts.iter().enumerate() {
        let (from, to) = if i % 2 == 0 {
            (&mut *a, &mut *b)
        } else {
            (&mut *b, &mut *a)
        };
        from.send(json!({"type": "message", "chat_id": chat, "text": text}))
            .await;
        assert_eq!(to.next_of("message").await["seq"], i + 1);
    }
}

/// Part 4: a real hub process ("doomed") holds Bob, in a chat with Ann (on a live node)
/// that he accepted (so doomed archives it), and Dan, who has invited Cid (live). Killed
/// with SIGKILL: the live node reaps it, and after the grace period today's rules on a
/// disconnect apply — Ann's chat ends (`peer_left`), Cid's invitation closes
/// (`inviter_left`), Bob and Dan leave the list — and the live node, heir of the
/// archive, has the chat archived once: opened, its messages, closed.
#[tokio::test]
async fn a_killed_nodes_buddies_go_offline_after_the_grace_period() {
    let (mut doomed, bind, [live], servers) = doomed_and_live("buddy-cluster-kill").await;
    let store = &servers.store;

    let (mut ann, _) = buddy(&live, "Ann", None).await;
    let (mut cid, wc) = buddy(&live, "Cid", None).await;
    let (mut bob, wb) = buddy_on(&bind, "Bob", None).await;
    let (mut dan, wd) = buddy_on(&bind, "Dan", None).await;
    let (ib, id_dan) = (id(&wb), id(&wd));

    let chat = start_chat(&mut ann, &mut bob, ib).await;
    in_turn(&mut ann, &mut bob, &chat, &["one", "two", "three"]).await;
    dan.send(json!({"type": "invite", "to": id(&wc)})).await;
    let inv = cid.invitation_id().await;

    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    drop((bob, dan));
    told_ended(&mut ann, &chat, ib, "peer_left").await;
    let closed = cid.next_of("invitation_closed").await;
    assert_eq!(
        (closed["invitation_id"].as_u64(), closed["reason"].as_str()),
        (Some(inv), Some("inviter_left"))
    );
    let mut gone = vec![];
    while gone.len() < 2 {
        gone.push(
            ann.next_matching(|f| f["type"] == "buddy_left").await["id"]
                .as_u64()
                .unwrap(),
        );
    }
    gone.sort_unstable();
    assert_eq!(gone, [ib.min(id_dan), ib.max(id_dan)]);

    archived_lines(store, &chat, &[(1, "one"), (2, "two"), (3, "three")]).await;
    live.stop().await;
}

/// A page opened in a running chat while its lines flow: Ann on alpha sends 300 lines,
/// one every 2 ms or so, and Bob, chatting on beta, opens a second page on gamma (a node
/// holding no page of either) once 20 have reached him. Gamma reads the chat's log before
/// that page's welcome, and lines published while the other nodes did not know gamma
/// needed them are found at the next gap: the new page has every line exactly once and in
/// order, the welcome's and the live ones together.
#[tokio::test]
async fn a_page_opened_in_a_running_chat_mid_flow_gets_every_line_once() {
    let fast = |s: &mut Settings| {
        s.buddy_grace = GRACE;
        s.rate_limit_per_sec = 100_000;
        s.rate_limit_burst = 100_000;
    };
    let ([alpha, beta, gamma], _servers) = nodes("buddy-cluster-welcome-race", ["alpha", "beta", "gamma"], fast).await;
    let (mut ann, _) = buddy(&alpha, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    let key = wb["key"].as_str().unwrap().to_string();
    let chat = start_chat(&mut ann, &mut bob, id(&wb)).await;

    const LINES: u64 = 300;
    let flow = {
        let chat = chat.clone();
        tokio::spawn(async move {
            for i in 1..=LINES {
                ann.send(json!({"type": "message", "chat_id": chat, "text": format!("line {i}"), "client_id": format!("c{i}")}))
                    .await;
                // Paced, so the flow outlasts the page's opening (a welcome shows at most
                // the chat's last 500 lines, more than these).
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            ann
        })
    };
    bob.next_matching(|f| f["type"] == "message" && f["seq"].as_u64() >= Some(20))
        .await;
    let (mut bob_on_gamma, welcome) = buddy(&gamma, "Bob", Some(&key)).await;
    let mut seqs: Vec<u64> = welcome["chat"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("the welcome shows the running chat: {welcome}"))
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    let in_welcome = seqs.len();
    assert!(
        (in_welcome as u64) < LINES,
        "the page opened while the lines flowed (all {LINES} were in its welcome)"
    );
    while seqs.last().copied().unwrap_or(0) < LINES {
        let line = bob_on_gamma.next_of("message").await;
        seqs.push(line["seq"].as_u64().unwrap());
    }
    assert_eq!(
        seqs,
        (1..=LINES).collect::<Vec<_>>(),
        "every line once, in order ({in_welcome} in the welcome)"
    );
    let _ann = flow.await.unwrap();
    for hub in [alpha, beta, gamma] {
        hub.stop().await;
    }
}

/// The heir of an ended chat's archive: "doomed", a real hub process, archives Bob's chat
/// with Ann (Bob accepted there). Doomed is stopped (SIGSTOP); Ann sends a line (stamped in
/// the chat's log and acknowledged by her node, but never received by doomed) and ends
/// the chat, so doomed neither archives the line nor the chat's closing. Doomed is then
/// killed (SIGKILL). The live node, reaping it, inherits the archive of the chat it ended
/// minutes ago at most: the archive holds every line, Ann's last one included, and the
/// closing. (On code whose heir took over only running chats, it stayed open for ever.)
#[tokio::test]
async fn the_heir_of_a_dead_archiving_node_closes_a_chat_that_ended_while_it_was_stopped() {
    let (mut doomed, bind, [live], servers) = doomed_and_live("buddy-cluster-heir-ended").await;
    let store = &servers.store;
    let redis = &servers.redis;

    let (mut ann, _) = buddy(&live, "Ann", None).await;
    let (mut bob, wb) = buddy_on(&bind, "Bob", None).await;
    let chat = start_chat(&mut ann, &mut bob, id(&wb)).await;
    in_turn(&mut ann, &mut bob, &chat, &["one", "two"]).await;

    signal(&doomed.0, libc::SIGSTOP);
    ann.send(json!({"type": "message", "chat_id": chat, "text": "three", "client_id": "c3"}))
        .await;
    let ack = ann.next_of("ack").await;
    assert_eq!((ack["client_id"].as_str(), ack["seq"].as_u64()), (Some("c3"), Some(3)));
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    assert_eq!(ann.next_of("buddy_chat_ended").await["chat_id"], chat.as_str());
    // The chat ended with doomed still a member (not reaped yet): its heir inherits an
    // ended chat, not a running one.
    let ended = registered_nodes(redis).await;
    assert!(
        ended.contains(&"doomed".to_string()),
        "doomed was reaped before the end: {ended:?}"
    );
    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    drop(bob);

    archived_lines(store, &chat, &[(1, "one"), (2, "two"), (3, "three")]).await;
    live.stop().await;
}

/// The staff roster across nodes: agents on the desk on alpha show, with their role, on
/// an admin's staff buddy page on beta; one on shift without a buddy page anywhere cannot
/// be invited; another coming on shift on alpha shows up live on beta, and leaves it when
/// their desk closes, after the grace period.
#[tokio::test]
async fn agents_on_the_desk_on_one_node_show_on_the_staff_roster_of_another() {
    let ([alpha, beta], _servers) = nodes("buddy-cluster-staff", ["alpha", "beta"], buddy_grace).await;

    let _ann = alpha.agent("ann", &["general"], 1).await;
    let admin = beta.admin().await;
    let auth = format!("Bearer {}", admin.token);
    let url = beta.ws_url("/ws/buddy");
    // The desk's coming online reaches beta through the stream: wait for it.
    let deadline = Instant::now() + WAIT;
    let (mut staff, welcome) = loop {
        let mut staff = Ws::connect(&url, &[("authorization", &auth)]).await.unwrap();
        let welcome = staff.next_of("buddy_welcome").await;
        let ann = welcome["buddies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "ANN" && b["role"] == "agent");
        if ann {
            break (staff, welcome);
        }
        assert!(
            Instant::now() < deadline,
            "ANN never showed on beta's staff roster: {welcome}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ann_id = named(&welcome["buddies"], "ANN")["id"].clone();
    staff.send(json!({"type": "invite", "to": ann_id})).await;
    assert_eq!(staff.next_of("error").await["code"], "target_not_reachable");

    let bob = alpha.agent("bob", &["general"], 1).await;
    let joined = staff.next_of("buddy_joined").await;
    assert_eq!(
        (joined["buddy"]["name"].as_str(), joined["buddy"]["role"].as_str()),
        (Some("BOB"), Some("agent"))
    );
    drop(bob);
    let left = staff.next_of("buddy_left").await;
    assert_eq!(left["id"], joined["buddy"]["id"]);
    alpha.stop().await;
    beta.stop().await;
}

/// A stalled node ("sleepy", SIGSTOP past its lease) holding Bob is reaped; woken, it is
/// fenced and closes Bob's page (1012: reconnect, any node); Bob comes back on the live
/// node with his key within the grace period and is the same person, and Ann, who saw
/// him all along, is told nothing.
#[tokio::test]
async fn a_stalled_nodes_buddy_is_let_go_on_waking_and_comes_back_elsewhere_as_themselves() {
    let grace = Duration::from_secs(8);
    let (sleepy, bind, [live], servers) = process_and_nodes(
        "buddy-cluster-stall",
        Process::named("sleepy").env(&[("BUDDY_GRACE_SECS", "8")]),
        ["live"],
        move |s| s.buddy_grace = grace,
    )
    .await;
    let mut conn = redis_conn(&servers.redis).await;
    let (mut ann, _) = buddy(&live, "Ann", None).await;
    let (mut bob, wb) = buddy_on(&bind, "Bob", None).await;
    let (ib, key) = (id(&wb), wb["key"].as_str().unwrap().to_string());
    assert_eq!(ann.next_of("buddy_joined").await["buddy"]["id"].as_u64(), Some(ib));

    signal(&sleepy.0, libc::SIGSTOP);
    until_reaped(&mut conn, "sleepy").await;
    signal(&sleepy.0, libc::SIGCONT);
    assert_eq!(
        bob.closed().await.map(u16::from),
        Some(1012),
        "the fenced node lets go of its buddy"
    );
    let (_bob, back) = buddy(&live, "Bob", Some(&key)).await;
    assert_eq!(id(&back), ib, "the same person on the live node");
    let seen = ann.drain().await;
    assert!(seen.iter().all(|f| f["type"] != "buddy_left"), "{seen:?}");
    live.stop().await;
}

/// More buddy chats than a node's queue of calls to Redis holds (a test capacity of 8,
/// `SWITCHBOARD_TEST_ROUTER_BUFFER`, standing for the 8,192 a node with 20,000 chats would
/// overrun): 20 chats, Ann n on an in-process node and Bob n on "beta", a real hub process
/// whose chat channel drops every line published to it until it subscribes again
/// (`SWITCHBOARD_TEST_DEAF_CHAT_CHANNEL`, standing for lines lost with a cut). Each Ann's
/// acknowledged line never reaches beta; then every node's subscription is cut
/// (`CLIENT KILL TYPE pubsub`). Every Bob still gets his line, with nothing sent after it:
/// beta reads every buddy chat's log again once subscribed, outside that queue. Before, it
/// queued one read per buddy chat there, and each read past the queue's capacity was
/// dropped: those Bobs got the line only with their chat's next one.
#[tokio::test]
async fn every_buddy_chat_of_a_node_with_more_chats_than_its_queue_holds_gets_its_missed_line_after_a_cut() {
    const CHATS: usize = 20;
    let (_beta, bind, [alpha], servers) = process_and_nodes(
        "buddy-cluster-many-missed-lines",
        Process::named("beta").env(&crate::cluster_fixture::DEAF_BETA_WITH_A_SMALL_QUEUE),
        ["alpha"],
        buddy_grace,
    )
    .await;
    let mut pairs = vec![];
    for n in 0..CHATS {
        let (mut ann, _) = buddy(&alpha, &format!("Ann {n}"), None).await;
        let (mut bob, wb) = buddy_on(&bind, &format!("Bob {n}"), None).await;
        let bob_id = id(&wb);
        ann.next_matching(|f| f["type"] == "buddy_joined" && f["buddy"]["id"].as_u64() == Some(bob_id))
            .await;
        let chat = start_chat(&mut ann, &mut bob, bob_id).await;
        // Stamped, kept and acknowledged on alpha, published to beta, which drops it.
        let text = format!("one {n}");
        ann.send(json!({"type": "message", "chat_id": chat, "text": text, "client_id": "one"}))
            .await;
        let ack = ann.next_matching(|f| f["type"] == "ack" || f["type"] == "error").await;
        assert_eq!(
            (ack["client_id"].as_str(), ack["seq"].as_u64()),
            (Some("one"), Some(1)),
            "{ack}"
        );
        pairs.push((ann, bob, chat, text));
    }

    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis_conn(&servers.redis).await)
        .await
        .unwrap();
    assert!(killed >= 2, "both nodes' subscriptions were cut ({killed})");

    for (_ann, bob, chat, text) in &mut pairs {
        let line = bob
            .next_matching_within(Duration::from_secs(30), |f| f["type"] == "message")
            .await;
        assert_eq!(
            (line["chat_id"].as_str(), line["seq"].as_u64(), line["text"].as_str()),
            (Some(chat.as_str()), Some(1), Some(text.as_str())),
            "{line}"
        );
    }
    alpha.stop().await;
}
