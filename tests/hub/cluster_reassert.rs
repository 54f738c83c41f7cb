//! Redis restarted EMPTY with people connected: the nodes re-assert what their
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
use crate::cluster_fixture::{
    Servers, killed_and_back_empty, nodes, redis_conn, redis_shows, refused_for_now, resume_tried, resumed_on,
};
use crate::cluster_redis_restart::{archived, healthy, lease_of};
use crate::common::{Ws, closed_with_lines, types, u64s_in};
use crate::redis_server::RedisServer;

/// Sends `frame` until the reply of type `taken` comes, sending it again a moment after
/// each refusal with `cluster_unavailable`, as docs/protocol.md tells clients to: a node
/// refuses while it restores, and a node whose Redis connection broke answers its first
/// call after the restart so (the connection manager reconnects after the failure). Any
/// other error fails the test (for a frame with a `client_id`, any error naming it).
async fn until_taken(ws: &mut Ws, frame: serde_json::Value, taken: &str) -> serde_json::Value {
    loop {
        ws.send(frame.clone()).await;
        let reply = ws
            .next_matching(|f| {
                f["type"] == taken
                    || (f["type"] == "error" && (frame["client_id"].is_null() || f["client_id"] == frame["client_id"]))
            })
            .await;
        if reply["type"] == taken {
            return reply;
        }
        assert_eq!(reply["code"], "cluster_unavailable", "{reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `text` from `from` in `chat` (its client id the same), sent until it is taken: the ack.
async fn acked(from: &mut Ws, chat: &str, text: &str) -> serde_json::Value {
    let message = json!({"type": "message", "chat_id": chat, "text": text, "client_id": text});
    until_taken(from, message, "ack").await
}

/// One message from `from` in its chat: acknowledged with `seq`, delivered to `to` with it.
async fn exchange(from: &mut Ws, to: &mut Ws, chat: &str, text: &str, seq: u64) {
    let ack = acked(from, chat, text).await;
    assert_eq!(ack["seq"], seq, "{text}: {ack}");
    let line = to.next_of("message").await;
    assert_eq!(
        (line["seq"].as_u64(), line["text"].as_str()),
        (Some(seq), Some(text)),
        "{line}"
    );
}

/// Two nodes on one store and a fresh Redis, with leases of a second: an outage outlasts
/// them, so the nodes are suspended meanwhile.
async fn two_nodes(name: &str) -> ([crate::common::TestHub; 2], Servers) {
    nodes(name, ["alpha", "beta"], lease_of(1_000)).await
}

/// Agent `agent` on `agent_hub`, at a limit of one, chatting with customer `customer` on
/// `customer_hub`: (agent, customer, the chat's id).
async fn chatting(
    agent_hub: &crate::common::TestHub,
    agent: &str,
    customer_hub: &crate::common::TestHub,
    customer: &str,
) -> (Ws, Ws, String) {
    let mut agent = agent_hub.agent(agent, &["general"], 1).await;
    let mut customer = customer_hub.customer(customer, "general").await;
    let chat = started(&mut customer).await;
    assert_eq!(started(&mut agent).await, chat);
    (agent, customer, chat)
}

/// Beta as a real process with the test hooks `hook` (beta deaf to its chat channel, and
/// more), and alpha in this process, with leases of a second: the process, beta's address,
/// alpha, the servers.
async fn beta_process_and_alpha(
    scratch: &str,
    hook: &[(&str, &str)],
) -> (
    crate::common::Running,
    crate::common::Endpoint,
    crate::common::TestHub,
    Servers,
) {
    use crate::cluster_fixture::{Process, process_and_nodes};
    let (beta, bind, [alpha], servers) =
        process_and_nodes(scratch, Process::named("beta").env(hook), ["alpha"], lease_of(1_000)).await;
    (beta, crate::common::Endpoint::at(&bind), alpha, servers)
}

/// A hub process alone (node `name`, with the test hooks `hook`), with leases of a second:
/// the process (bind it to a name: dropped, it is killed), its endpoint, the servers.
async fn process_alone(
    scratch: &str,
    name: &str,
    hook: &[(&str, &str)],
) -> (crate::common::Running, crate::common::Endpoint, Servers) {
    use crate::cluster_fixture::{Process, process_and_nodes};
    let (process, bind, [], servers) =
        process_and_nodes(scratch, Process::named(name).env(hook), [], lease_of(1_000)).await;
    (process, crate::common::Endpoint::at(&bind), servers)
}

/// Ann on `ann_on` chatting with Carla on `carla_on` (as [`chatting`]): Carla has said "one"
/// and Ann "two".
async fn two_lines_said(ann_on: &crate::common::TestHub, carla_on: &crate::common::TestHub) -> (Ws, Ws, String) {
    let (mut ann, mut carla, chat) = chatting(ann_on, "ann", carla_on, "Carla").await;
    exchange(&mut carla, &mut ann, &chat, "one", 1).await;
    exchange(&mut ann, &mut carla, &chat, "two", 2).await;
    (ann, carla, chat)
}

/// The customer `customer` (in `chat` with `agent`) closes their page, and `agent` is told
/// they are away: their resume token.
async fn gone_away(customer: Ws, agent: &mut Ws, chat: &str) -> String {
    let token = customer.token.clone().unwrap();
    drop(customer);
    assert_eq!(agent.next_of("peer_away").await["chat_id"], chat);
    token
}

async fn started(ws: &mut Ws) -> String {
    ws.chat_id_in("chat_started").await
}

#[tokio::test]
async fn an_empty_redis_is_refilled_from_what_the_nodes_people_hold() {
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert").await;
    let store = &servers.store;
    let redis = &mut servers.redis;

    // Ann (beta) chats with Carla (alpha); Bob (alpha) with Dan (beta); both at their limit.
    let (mut ann, mut carla, carla_chat) = chatting(&beta, "ann", &alpha, "Carla").await;
    let (mut bob, mut dan, dan_chat) = chatting(&alpha, "bob", &beta, "Dan").await;
    exchange(&mut carla, &mut ann, &carla_chat, "one", 1).await;
    exchange(&mut ann, &mut carla, &carla_chat, "two", 2).await;
    exchange(&mut dan, &mut bob, &dan_chat, "d-one", 1).await;
    // Eve (alpha), Fay (beta), Gus (alpha) wait, in that order.
    let mut eve = alpha.customer_queued("Eve", "general", 1).await;
    let mut fay = beta.customer_queued("Fay", "general", 2).await;
    let mut gus = alpha.customer_queued("Gus", "general", 3).await;

    let _redis = killed_and_back_empty(redis).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;

    // The running chats go on with the next seq, on the same connections.
    exchange(&mut carla, &mut ann, &carla_chat, "three", 3).await;
    exchange(&mut ann, &mut carla, &carla_chat, "four", 4).await;
    exchange(&mut bob, &mut dan, &dan_chat, "d-two", 2).await;
    assert_eq!(
        archived(store, &carla_chat, 4).await,
        [(1, "one"), (2, "two"), (3, "three"), (4, "four")].map(|(s, t)| (s, t.to_string())),
        "one gapless order in the archive, nothing twice"
    );
    assert_eq!(archived(store, &dan_chat, 2).await.len(), 2);

    // Ann's freed place goes to Eve, the longest waiting; Fay and Gus move up.
    ann.send(json!({"type": "end_chat", "chat_id": carla_chat})).await;
    carla.next_of("chat_ended").await;
    let eve_chat = started(&mut eve).await;
    assert_eq!(started(&mut ann).await, eve_chat);
    // A new customer waits behind them.
    let mut hal = beta.customer_queued("Hal", "general", 3).await;
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

/// A buddy joining, again while the cluster refuses joins (it restores the
/// buddy list), as the page does.
async fn buddy_joining(hub: &crate::common::TestHub, name: &str) -> (Ws, serde_json::Value) {
    let mut ws = Ws::connect(&hub.ws_url("/ws/buddy"), &[]).await.unwrap();
    let welcome = until_taken(&mut ws, json!({"type": "buddy_join", "name": name}), "buddy_welcome").await;
    (ws, welcome)
}

/// A line sent again once Redis came back empty keeps its first stamp. (Found by scenario
/// 4: an agent's page, closed and signed in again across the restart, sent its answer
/// again on its new welcome, and it was stamped a second time: the check that knows a line
/// sent again had gone with Redis's data.) The check comes back with the line its node
/// writes back. Ann's page here has the line's ack already, so it hears nothing of the
/// second sending; what matters is that nobody gets the line twice and the chat goes on
/// from seq 3.
#[tokio::test]
async fn a_line_sent_again_after_redis_came_back_empty_keeps_its_first_stamp() {
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert-resend").await;
    let (mut ann, mut carla, chat) = two_lines_said(&beta, &alpha).await;

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;

    // Ann's page sends "two" again, under its client id.
    sent_again(&mut ann, &chat, "two", 2).await;
    exchange(&mut ann, &mut carla, &chat, "three", 3).await;
    exchange(&mut carla, &mut ann, &chat, "four", 4).await;
    assert_eq!(
        archived(&servers.store, &chat, 4).await,
        [(1, "one"), (2, "two"), (3, "three"), (4, "four")].map(|(s, t)| (s, t.to_string())),
    );
    alpha.stop().await;
    beta.stop().await;
}

/// `text` sent again by `ws` in `chat` under its client id (the text, as [`acked`]) until
/// the cluster takes it (`cluster_unavailable` while it restores): answered with its first
/// stamp, `first_seq`, or, for a page that has that ack already, with nothing.
async fn sent_again(ws: &mut Ws, chat: &str, text: &str, first_seq: u64) {
    let line = json!({"type": "message", "chat_id": chat, "text": text, "client_id": text});
    loop {
        ws.send(line.clone()).await;
        let answer = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                let f = ws.recv_within(Duration::from_secs(2)).await?;
                if f["type"] == "ack" || (f["type"] == "error" && f["client_id"] == text) {
                    return Some(f);
                }
            }
        });
        match answer.await.ok().flatten() {
            Some(f) if f["type"] == "error" => {
                assert_eq!(f["code"], "cluster_unavailable", "{f}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some(ack) => {
                assert_eq!(ack["seq"], first_seq, "the first stamp again: {ack}");
                return;
            }
            None => return,
        }
    }
}

/// The same in a buddy chat, whose lines have a guard of their own (lua/buddy_message.lua),
/// written back by its node's claim of its buddy chats (lua/buddy_claim.lua).
#[tokio::test]
async fn a_buddy_line_sent_again_after_redis_came_back_empty_keeps_its_first_stamp() {
    use crate::buddy_cluster::{buddy, id, start_chat};
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert-buddy-resend").await;
    let (mut ann, _) = buddy(&alpha, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    let chat = start_chat(&mut ann, &mut bob, id(&wb)).await;
    exchange(&mut ann, &mut bob, &chat, "one", 1).await;
    exchange(&mut bob, &mut ann, &chat, "two", 2).await;

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;

    sent_again(&mut bob, &chat, "two", 2).await;
    exchange(&mut bob, &mut ann, &chat, "three", 3).await;
    exchange(&mut ann, &mut bob, &chat, "four", 4).await;
    alpha.stop().await;
    beta.stop().await;
}

/// A page closed just after Redis came back empty, while its node re-asserts the customer
/// as connected, and the customer resumes at once on another node: they go on there.
/// (Found by scenario 4, seed 4: `resumed` on the other node, then every line refused
/// "you are connected on another node" for two minutes.)
#[tokio::test]
async fn a_page_closed_as_redis_came_back_empty_resumes_elsewhere_and_goes_on() {
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert-closed").await;
    let (mut ann, carla, chat) = two_lines_said(&beta, &alpha).await;
    let token = carla.token.clone().unwrap();

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    // Alpha has noticed the loss and counts Carla in what it re-asserts; her page closes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(carla);
    let (mut back, resumed) = resumed_on(&beta, &token, 2, Duration::from_secs(30), "carla").await;
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");
    let going_on = async {
        exchange(&mut back, &mut ann, &chat, "three", 3).await;
        exchange(&mut ann, &mut back, &chat, "four", 4).await;
    };
    tokio::time::timeout(Duration::from_secs(30), going_on)
        .await
        .expect("the chat goes on after the resume");
    alpha.stop().await;
    beta.stop().await;
}

/// The buddy list is re-asserted too (docs/cluster.md §9, "Back empty: the buddy list").
/// Ann (alpha) and Bob (beta) chat; Cid (alpha) has invited Dan (beta); Gil is on gamma.
/// Redis is SIGKILLed and started empty, and gamma stops meanwhile. Every page on alpha
/// and beta stays open and gets its list again; the chat goes on with the next seq on both
/// sides and in the archive; Dan accepts Cid's invitation; a newcomer sees everyone; Gil,
/// whose node never claimed him, leaves after the claim window and the grace period; and
/// Ann, closing her page, leaves Bob's list, her one page counted once.
#[tokio::test]
async fn an_empty_redis_keeps_the_buddy_list_its_nodes_hold() {
    use crate::buddy_cluster::{buddy, id, listed, start_chat};
    let grace = Duration::from_secs(2);
    let ([alpha, beta, gamma], mut servers) = nodes("cluster-reassert-buddies", ["alpha", "beta", "gamma"], move |s| {
        lease_of(1_000)(s);
        s.buddy_grace = grace;
    })
    .await;
    let store = &servers.store;
    let redis = &mut servers.redis;
    let port = redis.port;

    let (mut ann, wa) = buddy(&alpha, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    let (mut cid, wc) = buddy(&alpha, "Cid", None).await;
    let (mut dan, wd) = buddy(&beta, "Dan", None).await;
    let (_gil, wg) = buddy(&gamma, "Gil", None).await;
    // Zed's desk on alpha shows on the staff roster.
    let zed = alpha.agent("zed", &["general"], 1).await;
    let (ia, ib, ic, id_dan, ig) = (id(&wa), id(&wb), id(&wc), id(&wd), id(&wg));
    let chat = start_chat(&mut ann, &mut bob, ib).await;
    exchange(&mut ann, &mut bob, &chat, "one", 1).await;
    exchange(&mut bob, &mut ann, &chat, "two", 2).await;
    cid.send(json!({"type": "invite", "to": id_dan})).await;
    let invitation = dan.invitation_id().await;
    cid.next_of("invited").await;

    redis.kill();
    gamma.stop().await;
    let _redis = RedisServer::start_with(port, None).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;

    // Each page gets its list again, from the restored one: the chat with its messages,
    // the invitation, everyone still online.
    for (ws, who) in [
        (&mut ann, "Ann"),
        (&mut bob, "Bob"),
        (&mut cid, "Cid"),
        (&mut dan, "Dan"),
    ] {
        let again = ws.next_of("buddy_welcome").await;
        for other in [ia, ib, ic, id_dan, ig] {
            assert!(listed(&again, other), "{who}'s list after the restore: {again}");
        }
        if who == "Ann" || who == "Bob" {
            assert_eq!(again["chat"]["chat_id"], chat.as_str(), "{again}");
            assert_eq!(again["chat"]["messages"].as_array().unwrap().len(), 2, "{again}");
        }
        if who == "Cid" || who == "Dan" {
            assert_eq!(again["invitations"][0]["invitation_id"], invitation, "{again}");
        }
    }
    // The chat goes on with the next seq, on the same connections.
    exchange(&mut bob, &mut ann, &chat, "three", 3).await;
    exchange(&mut ann, &mut bob, &chat, "four", 4).await;
    // Dan accepts the invitation Cid sent before.
    dan.send(json!({"type": "accept", "invitation_id": invitation})).await;
    let cid_dan = cid.next_of("buddy_chat_started").await["chat_id"].clone();
    assert_eq!(dan.next_of("buddy_chat_started").await["chat_id"], cid_dan);
    // A newcomer on beta sees everyone (Gil too, until his node's people are handed on).
    let (_eve, we) = buddy_joining(&beta, "Eve").await;
    for other in [ia, ib, ic, id_dan] {
        assert!(listed(&we, other), "{we}");
    }
    // Zed's desk is still on the staff roster (a staff page registering while the
    // cluster restores is closed with 1013 and comes back, as the page does).
    let admin = beta.admin().await;
    let auth = format!("Bearer {}", admin.token);
    let (mut staff, staff_welcome) = loop {
        let mut ws = Ws::connect(&beta.ws_url("/ws/buddy"), &[("authorization", &auth)])
            .await
            .unwrap();
        match ws.recv_within(Duration::from_secs(5)).await {
            Some(f) if f["type"] == "buddy_welcome" => break (ws, f),
            other => {
                assert!(other.is_none(), "{other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let zed_id = staff_welcome["buddies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "ZED" && b["role"] == "agent")
        .unwrap_or_else(|| panic!("Zed's desk on the staff roster after the restore: {staff_welcome}"))["id"]
        .as_u64();
    // Gamma never claimed Gil: once the restore's window is over he is handed on, and he
    // leaves after the grace period.
    let left = ann.next_of("buddy_left").await;
    assert_eq!(left["id"].as_u64(), Some(ig), "{left}");
    // Ann closes her only page: Bob's chat ends and she leaves his list (her page was
    // counted once in the restored list).
    drop(ann);
    let ended = bob.next_of("buddy_chat_ended").await;
    assert_eq!(ended["reason"], "peer_left", "{ended}");
    bob.next_matching(|f| f["type"] == "buddy_left" && f["id"].as_u64() == Some(ia))
        .await;
    assert_eq!(
        archived(store, &chat, 4).await,
        [(1, "one"), (2, "two"), (3, "three"), (4, "four")].map(|(s, t)| (s, t.to_string())),
        "one gapless order in the archive, nothing twice"
    );
    // Zed's desk closes: he leaves the staff roster (his desk was counted once).
    drop(zed);
    staff
        .next_matching(|f| f["type"] == "buddy_left" && f["id"].as_u64() == zed_id)
        .await;
    // Cid and Dan's pages were never counted twice either: both still chatting.
    cid.send(json!({"type": "message", "chat_id": cid_dan, "text": "hi", "client_id": "c1"}))
        .await;
    assert_eq!(dan.next_of("message").await["text"], "hi");
    alpha.stop().await;
    beta.stop().await;
}

/// A buddy line in flight when Redis lost its data (docs/cluster.md §15, "Redis back
/// empty"), Bob's node's replica being the one restored. Ann's node is a hub process whose
/// follower applies each batch 1.5 s late: her line "three" waits there for an entry her
/// replica has not applied, and is stamped seq 3 in Redis, which is killed before her node
/// keeps it; her node then keeps and acknowledges it, but cannot publish it, so Bob's node
/// has only 1 and 2 (and a later entry Ann's node never read, so Bob's node's replica is
/// the longer one, the one restored). Redis comes back empty. Bob's next line takes seq 4,
/// not a 3 of its own; Bob gets "three" once, as a line his node read from the log Ann's
/// node's claim wrote it back to, before his ack; Ann gets "four"; the archive holds 1-4
/// once each.
#[tokio::test]
async fn a_buddy_line_in_flight_when_redis_lost_its_data_keeps_its_seq_everywhere() {
    line_in_flight_when_redis_lost_its_data(true).await;
}

/// The same with no later entry: whichever node's replica is restored (the first to offer,
/// as both applied the same entries), Bob gets "three" once (from the restored list's
/// welcome, or from the log), and the archive holds 1-4 once (Bob's node, archiving the
/// chat, archives the lines a longer restored list gives it).
#[tokio::test]
async fn a_buddy_line_in_flight_keeps_its_seq_whichever_replica_is_restored() {
    line_in_flight_when_redis_lost_its_data(false).await;
}

async fn line_in_flight_when_redis_lost_its_data(bobs_node_restored: bool) {
    use crate::buddy_cluster::{buddy, buddy_on, id, start_chat};
    use crate::cluster_hub::{NodeProcess, node_process_with};
    let scratch = TempDir::new("cluster-reassert-buddy-in-flight");
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let store: SharedStore = Arc::new(MemoryStore::new());
    let hook = [
        ("BUDDY_GRACE_SECS", "20"),
        ("SWITCHBOARD_TEST_FOLLOWER_LAG", "alpha:1500"),
    ];
    let NodeProcess {
        running: _alpha, bind, ..
    } = node_process_with(&redis, &mut redis_conn(&redis).await, &scratch, "alpha", None, &hook).await;
    let beta = crate::cluster_hub::node_with(store.clone(), &redis, "beta", &scratch, |s| {
        lease_of(1_000)(s);
        s.buddy_grace = Duration::from_secs(20);
    })
    .await;

    let (mut ann, _) = buddy_on(&bind, "Ann", None).await;
    let (mut bob, wb) = buddy(&beta, "Bob", None).await;
    ann.next_matching(|f| f["type"] == "buddy_joined").await;
    // Bob accepts: beta archives the chat.
    let chat = start_chat(&mut ann, &mut bob, id(&wb)).await;
    exchange(&mut ann, &mut bob, &chat, "one", 1).await;
    exchange(&mut bob, &mut ann, &chat, "two", 2).await;

    // An entry Ann's replica applies 1.5 s after reading it; "three" is stamped after it.
    let (_cid, _) = buddy(&beta, "Cid", None).await;
    ann.send(json!({"type": "message", "chat_id": chat, "text": "three", "client_id": "three"}))
        .await;
    let mut conn = redis::aio::ConnectionManager::new(redis::Client::open(redis.url()).unwrap())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let len: u64 = redis::cmd("XLEN")
            .arg(format!("{{sb}}:bchat-log:{chat}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if len == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Ann's line was never stamped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stamped is not yet answered: killed before Ann's node read the script's reply, Redis
    // takes the answer with it and the line is refused `cluster_unavailable` (a loaded
    // machine did that once), which is another case. A moment for the reply, well inside
    // the 1.5 s her replica waits before applying Cid's entry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Ann's node is still sleeping over Cid's entry: Dan's, after it, it never reads.
    let _dan = if bobs_node_restored {
        Some(buddy(&beta, "Dan", None).await)
    } else {
        None
    };
    redis.kill();
    let ack = ann.next_matching(|f| f["type"] == "ack").await;
    assert_eq!(
        (ack["client_id"].as_str(), ack["seq"].as_u64()),
        (Some("three"), Some(3)),
        "{ack}"
    );
    // Redis stays away a moment longer: Ann's node tries to publish "three" meanwhile.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let _redis = RedisServer::start_with(port, None).await;
    healthy(&beta, "beta").await;

    // Bob's next line, sent again while the cluster restores (as the protocol asks), is
    // acknowledged with seq 4. "three" reaches him first: as a line his node read from
    // the chat's log, or in the list his node sends his page again from the restored one
    // (when Ann's node's replica was the one restored).
    let four = json!({"type": "message", "chat_id": chat, "text": "four", "client_id": "four"});
    let mut three = None;
    bob.send(four.clone()).await;
    let ack = loop {
        let frame = bob
            .next_matching(|f| ["ack", "message", "error", "buddy_welcome"].contains(&f["type"].as_str().unwrap_or("")))
            .await;
        match frame["type"].as_str() {
            Some("ack") => break frame,
            Some("message") => {
                assert!(three.is_none(), "\"three\" reaches Bob once: {frame}");
                three = Some(frame);
            }
            Some("buddy_welcome") => {
                let lines = frame["chat"]["messages"].as_array().cloned().unwrap_or_default();
                // (A list Bob's node sends after it kept "three" shows it again, as a list.)
                if let Some(line) = lines.into_iter().find(|m| m["seq"] == 3)
                    && three.is_none()
                {
                    assert!(!bobs_node_restored, "Bob's node's own list has no \"three\": {line}");
                    three = Some(line);
                }
            }
            _ => {
                assert_eq!(frame["code"], "cluster_unavailable", "{frame}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                bob.send(four.clone()).await;
            }
        }
    };
    assert_eq!(
        ack["seq"].as_u64(),
        Some(4),
        "Bob's line after the loss takes the next seq: {ack}"
    );
    let three = three.expect("\"three\" reached Bob before his line's ack");
    assert_eq!(
        (three["seq"].as_u64(), three["text"].as_str()),
        (Some(3), Some("three")),
        "{three}"
    );
    let four = ann.next_matching(|f| f["type"] == "message").await;
    assert_eq!(
        (four["seq"].as_u64(), four["text"].as_str()),
        (Some(4), Some("four")),
        "{four}"
    );
    assert_eq!(
        archived(&store, &chat, 4).await,
        [(1, "one"), (2, "two"), (3, "three"), (4, "four")].map(|(s, t)| (s, t.to_string())),
        "one gapless order in the archive, nothing twice"
    );
    let later = bob.drain().await;
    assert!(later.iter().all(|f| f["type"] != "message"), "{later:?}");
    beta.stop().await;
}

/// A customer who leaves while their node is suspended (Redis away past the lease): the
/// disconnect cannot be recorded then, and the domain restored from the replicas shows
/// them connected. Their node keeps the call and makes it right after its claim, so an
/// agent's freed place goes to the next customer, not to the one who left.
#[tokio::test]
async fn a_customer_gone_while_their_node_was_suspended_is_not_paired_after_the_restore() {
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert-gone").await;
    let redis = &mut servers.redis;
    let port = redis.port;
    let (mut ann, mut carla, chat) = chatting(&beta, "ann", &alpha, "Carla").await;
    let eve = alpha.customer_queued("Eve", "general", 1).await;
    let mut fay = beta.customer_queued("Fay", "general", 2).await;

    redis.kill();
    // Past the lease: alpha is suspended, and Eve's leaving cannot be recorded.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    drop(eve);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _redis = RedisServer::start_with(port, None).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;

    // Carla's message is taken once both sides of her chat are claimed: alpha's claim,
    // and right behind it the calls alpha kept while suspended, Eve's disconnect among them.
    exchange(&mut carla, &mut ann, &chat, "still here", 1).await;
    // Ann ends her chat: her place goes to Fay, since Eve is gone.
    until_taken(&mut ann, json!({"type": "end_chat", "chat_id": chat}), "chat_ended").await;
    let fay_chat = started(&mut fay).await;
    assert_eq!(
        started(&mut ann).await,
        fay_chat,
        "the freed place goes to Fay, not to Eve who left"
    );
    alpha.stop().await;
    beta.stop().await;
}

/// Found by scenario 4: a customer away from alpha resumes on beta while the nodes restore
/// the data Redis lost. Beta's lookup of the token waited behind its re-assertion, so its
/// `customer_resumed` reached the restored domain (after the restore's entry) — and then
/// loading the restore settled every resume under way: the customer was told 1013
/// ("recovering") while Redis held them on beta, alpha let go of them, and nobody
/// archived their chat. The agent's next line was acknowledged and never archived, and
/// once the agent ended the chat the customer's resume within grace was `resume_expired`.
/// (A lookup before the nodes recorded the tokens again was `resume_expired` too: now
/// `cluster_unavailable`, then 1013, and the client tries again.)
#[tokio::test]
async fn a_customer_resuming_elsewhere_while_redis_is_restored_keeps_their_chat_and_its_archive() {
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert-resume").await;
    let (mut ann, carla, chat) = two_lines_said(&beta, &alpha).await;
    let token = gone_away(carla, &mut ann, &chat).await;

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    // Once, while the nodes notice the loss and restore (beta's lookup waits behind its
    // re-assertion, which takes a lease period).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (mut first, answer) = resume_tried(&beta, &token, 2, "resumed").await;
    eprintln!("the resume during the restore: {answer}");
    assert_ne!(
        answer["code"], "resume_expired",
        "a customer within grace is never told their visit expired because Redis restarted empty"
    );

    // Whatever the answer, Ann says something and ends the chat.
    let three = json!({"type": "message", "chat_id": chat, "text": "three", "client_id": "a3"});
    assert_eq!(until_taken(&mut ann, three, "ack").await["seq"], 3);
    until_taken(&mut ann, json!({"type": "end_chat", "chat_id": chat}), "chat_ended").await;

    // Every acknowledged line archived once, and the closing, whoever archives the chat.
    assert_eq!(
        closed_with_lines(&servers.store, &chat, 3, Duration::from_secs(10)).await,
        [(1, "one"), (2, "two"), (3, "three")].map(|(s, t)| (s, t.to_string()))
    );

    if answer["type"] == "resumed" {
        // Resumed then and there: the line and the end came live.
        assert_eq!(first.next_of("message").await["seq"], 3);
        first.next_of("chat_ended").await;
    } else {
        // Refused for now (1013): back within grace, she gets the chat and its end.
        let (mut back, resumed) = resumed_on(&beta, &token, 2, Duration::from_secs(30), "carla after the end").await;
        let seqs: Vec<u64> = u64s_in(&resumed["chat"]["messages"], "seq");
        assert_eq!(seqs, [3], "{resumed}");
        back.next_of("chat_ended").await;
    }
    alpha.stop().await;
    beta.stop().await;
}

/// A customer away from alpha resumes on beta at once after Redis came back empty, before
/// any node restored the domain or recorded its customers' tokens again: their token is
/// not in Redis yet. That is no proof their visit is over — it was answered
/// `resume_expired`, which a client takes as final (found by scenario 4). Now it is
/// refused for now (`cluster_unavailable`, the connection kept), and a moment later they
/// resume.
#[tokio::test]
async fn a_resume_before_the_nodes_record_their_tokens_again_is_refused_for_now_not_expired() {
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert-token").await;
    let (mut ann, mut carla, chat) = chatting(&beta, "ann", &alpha, "Carla").await;
    exchange(&mut carla, &mut ann, &chat, "one", 1).await;
    let token = gone_away(carla, &mut ann, &chat).await;

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    let (_early, answer) = resume_tried(&beta, &token, 1, "resumed").await;
    assert_eq!(answer["code"], "cluster_unavailable", "{answer}");

    let (_back, resumed) = resumed_on(&beta, &token, 1, Duration::from_secs(30), "carla").await;
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");
    alpha.stop().await;
    beta.stop().await;
}

/// Found by scenario 4 (seed 4, in CI on 2026-12-02): a customer away when their agent
/// ended the chat gets the chat and its ending on resuming, on any node: their node keeps
/// the ending and records it in Redis for the grace period. Redis then lost its data, and
/// with it that record; the nodes recorded their customers' tokens again, but she was no
/// longer anyone's customer, so her resume on the other node, refused for now while the
/// restore settled, was then `resume_expired` with most of her grace left. Now her node
/// records again the endings it keeps.
#[tokio::test]
async fn a_customer_whose_chat_ended_while_away_sees_its_end_on_another_node_after_redis_came_back_empty() {
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert-ended-away").await;
    let (mut ann, mut carla, chat) = chatting(&beta, "ann", &alpha, "Carla").await;
    exchange(&mut carla, &mut ann, &chat, "one", 1).await;
    let token = gone_away(carla, &mut ann, &chat).await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    assert_eq!(ann.next_of("chat_ended").await["chat_id"], chat.as_str());
    // Alpha (hers) and beta (Ann's) each record the ending: the loss comes after both.
    let redis = redis_conn(&servers.redis).await;
    crate::cluster_base::eventually("both nodes record the ending", || {
        let mut redis = redis.clone();
        async move {
            let kept =
                keys(&mut redis, "{sb}:ended:*").await.len() + keys(&mut redis, "{sb}:ended-customer:*").await.len();
            (kept == 2).then_some(())
        }
    })
    .await;
    drop(redis);

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&alpha, "alpha").await;
    shows_the_end_on(beta, &token, &chat).await;
    alpha.stop().await;
}

/// Carla, whose chat `chat` Ann ended while she was away (after "one"), resumes with
/// `token` on `hub` once the restore let it answer: she gets the chat and its end.
async fn shows_the_end_on(hub: crate::common::TestHub, token: &str, chat: &str) {
    healthy(&hub, "the node she resumes on").await;
    let (mut back, resumed) = resumed_on(&hub, token, 0, Duration::from_secs(30), "carla").await;
    assert_eq!(resumed["chat"]["chat_id"], chat, "{resumed}");
    assert_eq!(resumed["chat"]["messages"][0]["text"], "one", "{resumed}");
    let ended = back.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].as_str(), ended["ended_by"].as_str()),
        (Some(chat), Some("agent")),
        "{ended}"
    );
    hub.stop().await;
}

/// The same for a customer whose node was lost: the node that reaped it (Ann's) keeps the
/// ending under her id (it never had her token), reached through her token's key. Both
/// went with Redis's data, and nobody recorded them again.
#[tokio::test]
async fn a_customer_of_a_lost_node_whose_chat_ended_while_away_sees_its_end_after_redis_came_back_empty() {
    let (live, mut ann, mut servers, (chat, token)) = away_on_the_reaper("cluster-reassert-reaped-ended").await;
    // Ann ends the chat.
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    assert_eq!(ann.next_of("chat_ended").await["chat_id"], chat.as_str());
    let redis = redis_conn(&servers.redis).await;
    crate::cluster_base::eventually("live records the ending", || {
        let mut redis = redis.clone();
        async move { (!keys(&mut redis, "{sb}:ended-customer:*").await.is_empty()).then_some(()) }
    })
    .await;
    drop(redis);

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    shows_the_end_on(live, &token, &chat).await;
}

/// Found by scenario 4 (seed 5): a customer whose node was lost is held away by the node
/// that reaped it, which runs their grace timer but never had their token (Redis holds its
/// digest, recorded by the node that issued it). Redis then came back empty: the nodes
/// recorded again the tokens of the customers they hold, and the reaper had none to record
/// for her, so once the restore had settled her resume within grace was `resume_expired`.
/// Now the reaper records again the key her join's event named (its digest): she resumes
/// into her chat.
#[tokio::test]
async fn a_customer_held_by_their_nodes_reaper_when_redis_comes_back_empty_resumes_within_grace() {
    let (live, ann, mut servers, (chat, token)) = away_on_the_reaper("cluster-reassert-reaped").await;
    let _redis = killed_and_back_empty(&mut servers.redis).await;
    resumes_through_the_restore(live, ann, (&token, &chat)).await;
}

/// A hub process ("doomed") and a node "live" (leases of a second): Carla on doomed chats
/// with Ann on live and says "one"; doomed is killed, and live reaps it: Carla is away, her
/// grace running on live. Live, Ann, the servers, (the chat, Carla's token).
async fn away_on_the_reaper(scratch: &str) -> (crate::common::TestHub, Ws, Servers, (String, String)) {
    use crate::cluster_fixture::{Process, customer_on, process_and_nodes};
    let (mut doomed, bind, [live], servers) =
        process_and_nodes(scratch, Process::named("doomed"), ["live"], lease_of(1_000)).await;
    let mut ann = live.agent("ann", &["general"], 1).await;
    let mut carla = customer_on(&bind, "Carla", "general").await;
    let (chat, token) = one_said(&mut carla, &mut ann).await;
    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    assert_eq!(ann.next_of("peer_away").await["chat_id"], chat.as_str());
    (live, ann, servers, (chat, token))
}

/// Carla and Ann, just paired: both are told, and Carla says "one". The chat, her token.
async fn one_said(carla: &mut Ws, ann: &mut Ws) -> (String, String) {
    let chat = started(carla).await;
    assert_eq!(started(ann).await, chat);
    exchange(carla, ann, &chat, "one", 1).await;
    (chat, carla.token.clone().unwrap())
}

/// Redis came back empty with Carla away from `chat` after "one" (Ann on `live`): she is
/// refused for now on `live` while the nodes restore, then resumes (never
/// `resume_expired`), and the chat goes on both ways.
async fn resumes_through_the_restore(live: crate::common::TestHub, mut ann: Ws, (token, chat): (&str, &str)) {
    healthy(&live, "live").await;
    let (mut back, resumed) = resumed_on(&live, token, 1, Duration::from_secs(30), "carla").await;
    assert_eq!(resumed["chat"]["chat_id"], chat, "{resumed}");
    ann.next_of("peer_back").await;
    exchange(&mut ann, &mut back, chat, "two", 2).await;
    exchange(&mut back, &mut ann, chat, "three", 3).await;
    live.stop().await;
}

/// The same for a node's own customer it took back after a fence: Redis came back with its
/// data after the node's lease ran out, so the node let go of its people (1012) and handed
/// itself its previous incarnation's (their grace timers run here). It had forgotten who
/// they were: their chat came back nameless (the agent's welcome said `"peer_name": ""`)
/// and, once Redis lost its data, nobody recorded their token again (scenario 4, seed 5:
/// `resume_expired` with 47 s of grace left). Now it keeps their names and tokens' keys.
#[tokio::test]
async fn a_customer_their_fenced_node_took_back_resumes_after_redis_comes_back_empty() {
    let ([live], mut servers, data) =
        crate::cluster_fixture::nodes_with_redis_data("cluster-reassert-fenced", ["live"], lease_of(1_000)).await;
    let (mut ann, ann_token) = live.agent_with_token("ann", &["general"], 1).await;
    let mut carla = live.customer("Carla", "general").await;
    let (chat, token) = one_said(&mut carla, &mut ann).await;

    // Away past the lease, back with its data: live is fenced and lets everyone go.
    let port = servers.redis.port;
    servers.redis.kill();
    redis_shows(&live, "down").await;
    refused_for_now(&mut carla, "refused", "x1").await;
    // Past the lease (by Redis's clock, which its data keeps): live is suspended.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut redis = RedisServer::start_with(port, Some(&data)).await;
    assert_eq!(carla.closed().await.map(u16::from), Some(1012));
    assert_eq!(ann.closed().await.map(u16::from), Some(1012));
    healthy(&live, "live").await;
    // Ann back: her welcome follows live's taking back its people in the events stream.
    let (ann, welcome) = Ws::with_bearer(&live, "/ws/agent", &ann_token, "agent_welcome").await;
    let chats = &welcome["chats"];
    assert_eq!(chats[0]["chat_id"], chat.as_str(), "{welcome}");
    assert_eq!(chats[0]["peer_name"], "Carla", "{welcome}");

    let _redis = killed_and_back_empty(&mut redis).await;
    resumes_through_the_restore(live, ann, (&token, &chat)).await;
}

/// Found by scenario 4: after Redis came back empty, a chat's log starts after the seq its
/// nodes claimed — what was said before is in no log any more. A customer who then
/// resumed on a node that had no log of the chat read it from there: that node waited
/// for the lines before (it had none), held every later line unrecorded, and so showed
/// the customer nothing more, acknowledged nothing they sent, and archived nothing —
/// though the agent's lines were acknowledged on the agent's node. Now the node goes on
/// after what no log holds (archived by the chat's archiving node of the time).
#[tokio::test]
async fn a_customer_resuming_on_a_node_without_the_chat_after_a_restore_gets_its_lines_archived() {
    let ([alpha, beta], mut servers) = two_nodes("cluster-reassert-floor").await;
    // Both sides on alpha: beta has no log of the chat.
    let (mut ann, mut carla, chat) = two_lines_said(&alpha, &alpha).await;
    let _redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;
    exchange(&mut carla, &mut ann, &chat, "three", 3).await;
    let token = gone_away(carla, &mut ann, &chat).await;

    let (mut back, resumed) = resumed_on(&beta, &token, 3, Duration::from_secs(30), "carla on beta").await;
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");
    ann.next_of("peer_back").await;
    let four = json!({"type": "message", "chat_id": chat, "text": "four", "client_id": "a4"});
    assert_eq!(until_taken(&mut ann, four, "ack").await["seq"], 4);
    let line = back
        .next_matching_within(Duration::from_secs(10), |f| f["type"] == "message")
        .await;
    assert_eq!(
        (line["seq"].as_u64(), line["text"].as_str()),
        (Some(4), Some("four")),
        "{line}"
    );
    let five = json!({"type": "message", "chat_id": chat, "text": "five", "client_id": "c5"});
    assert_eq!(until_taken(&mut back, five, "ack").await["seq"], 5);
    until_taken(&mut ann, json!({"type": "end_chat", "chat_id": chat}), "chat_ended").await;
    let lines = closed_with_lines(&servers.store, &chat, 5, Duration::from_secs(10)).await;
    assert_eq!(
        u64s_of(&lines),
        [1, 2, 3, 4, 5],
        "archived as closed with seq 1-5 once each"
    );
    alpha.stop().await;
    beta.stop().await;
}

/// Found by scenario 4: after Redis came back empty, a chat's log holds only the lines
/// its nodes wrote back with their claims (the last 16 each recorded: fewer than the
/// chat's seq, or none from a node that did not claim). A customer whose page lacks some
/// of the earlier lines (their own line never acknowledged, so their `last_seq` stays below
/// it; here a page that kept nothing) resumes on a node without the chat: their `resumed`
/// carried only what the log held, and the lines below it were never shown to them,
/// though the archive had every one. Now the node reads what the log lacks from the
/// archive: every line after their `last_seq`, in order, once.
#[tokio::test]
async fn a_customer_resuming_after_an_empty_redis_gets_the_lines_the_chats_log_lost() {
    // Twenty lines, more than a claim writes back.
    let (hubs, _servers, _redis, away) = away_through_an_empty_redis("cluster-reassert-catch-up", 20).await;
    resumes_on_beta_with(hubs, away, 20).await;
}

/// Two nodes; Ann and Carla chatting on alpha (beta has no log of the chat): Carla says
/// "line 1", Ann the lines after up to `lines`; Carla goes away, and Redis comes back
/// EMPTY. The nodes, the servers, the new Redis, and (Ann, Carla's token, the chat).
async fn away_through_an_empty_redis(
    scratch: &str,
    lines: u64,
) -> ([crate::common::TestHub; 2], Servers, RedisServer, (Ws, String, String)) {
    let ([alpha, beta], mut servers) = two_nodes(scratch).await;
    let (mut ann, mut carla, chat) = chatting(&alpha, "ann", &alpha, "Carla").await;
    exchange(&mut carla, &mut ann, &chat, "line 1", 1).await;
    for seq in 2..=lines {
        exchange(&mut ann, &mut carla, &chat, &format!("line {seq}"), seq).await;
    }
    let token = gone_away(carla, &mut ann, &chat).await;
    let redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;
    ([alpha, beta], servers, redis, (ann, token, chat))
}

/// Carla (away) resumes on beta with `last_seq` 0 into her chat with Ann: her `resumed`
/// holds every line of it ("line 1" to "line `lines`"), in order, once, and the chat goes
/// on after them both ways.
async fn resumes_on_beta_with(
    [alpha, beta]: [crate::common::TestHub; 2],
    (mut ann, token, chat): (Ws, String, String),
    lines: u64,
) {
    let (mut back, resumed) = resumed_on(&beta, &token, 0, Duration::from_secs(30), "carla on beta").await;
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");
    let got: Vec<(u64, String)> = (resumed["chat"]["messages"].as_array().unwrap().iter())
        .map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_string()))
        .collect();
    let every: Vec<(u64, String)> = (1..=lines).map(|seq| (seq, format!("line {seq}"))).collect();
    assert_eq!(got, every, "every line after her last_seq, in order, once");
    ann.next_of("peer_back").await;
    exchange(&mut ann, &mut back, &chat, "after", lines + 1).await;
    exchange(&mut back, &mut ann, &chat, "and after", lines + 2).await;
    alpha.stop().await;
    beta.stop().await;
}

/// The keys of `conn`'s Redis named by `pattern`.
async fn keys(conn: &mut redis::aio::ConnectionManager, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS").arg(pattern).query_async(conn).await.unwrap()
}

/// As above, for a chat whose log holds no line at all after the restore (scenario 4: a
/// customer's own line, never acknowledged to them, and the agent's answer; they resumed
/// with `last_seq` 0 and got `"messages": []`). The log is emptied here once the claims
/// are in, standing for a log no claim wrote back: the node that takes the chat on
/// cannot tell from it what it lacks, and takes whatever the archive holds after the
/// customer's `last_seq` as if the log held it.
#[tokio::test]
async fn a_customer_resuming_into_a_chat_whose_log_redis_lost_gets_its_lines_from_the_archive() {
    let (hubs, _servers, redis, away) = away_through_an_empty_redis("cluster-reassert-catch-up-empty", 2).await;
    let mut conn = redis_conn(&redis).await;
    // Once the claims are in (the log written back, no side pending).
    let logs = loop {
        let logs = keys(&mut conn, "{sb}:chat-log:*").await;
        if keys(&mut conn, "{sb}:chat-pending:*").await.is_empty() && !logs.is_empty() {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for log in logs {
        let _: i64 = redis::cmd("DEL").arg(log).query_async(&mut conn).await.unwrap();
    }
    resumes_on_beta_with(hubs, away, 2).await;
}

/// Carla waits on alpha to continue her conversation (two lines) for Ann, who is full on
/// beta, when Redis loses its data. Once Ann is free Carla is paired in that conversation,
/// and its seq goes on after its last line, both ways and in the archive: the restore
/// writes the conversation's one seq counter back from what the nodes hold, as it does a
/// chat's. (Before, the counter was gone with Redis's data: her line drew seq 1 again.)
///
/// Leases of three seconds, not one: the nodes need not be suspended here, and the claim
/// window is a lease period. With one second, a node that a loaded machine (CI's shared
/// phase, four tests at once on two cores) kept from claiming within it had its people
/// handed on, as designed, and the test failed once on a fresh clone for that.
#[tokio::test]
async fn a_conversation_continued_across_an_empty_redis_goes_on_after_its_last_line() {
    use crate::continuing::{VISITOR, continuing, resolved_visit};
    let ([alpha, beta], mut servers) = nodes("cluster-reassert-conversation", ["alpha", "beta"], lease_of(3_000)).await;
    let store = &servers.store;
    let redis = &mut servers.redis;
    let mut ann = beta.agent("ann", &["general"], 1).await;
    let chat = resolved_visit(&alpha, &mut ann, &alpha).await;
    // Ann is full with Dan: Carla's continued conversation waits in line.
    let mut dan = beta.customer("Dan", "general").await;
    let dan_chat = started(&mut dan).await;
    assert_eq!(started(&mut ann).await, dan_chat);
    let mut carla = continuing(&alpha, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    assert_eq!(carla.next_of("queued").await["place"], 1);

    let _redis = killed_and_back_empty(redis).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;

    until_taken(&mut dan, json!({"type": "leave"}), "chat_ended").await;
    carla.chat_continued(&chat).await;
    ann.chat_continued(&chat).await;
    exchange(&mut carla, &mut ann, &chat, "it did not arrive", 3).await;
    exchange(&mut ann, &mut carla, &chat, "sending another", 4).await;
    assert_eq!(
        u64s_of(&archived(store, &chat, 4).await),
        vec![1, 2, 3, 4],
        "one gapless order in the archive"
    );
    alpha.stop().await;
    beta.stop().await;
}

/// Carla waits on the one node "live" to continue her conversation for Ann, who is full
/// with Dan, when Redis comes back with its data after the node's lease ran out: live lets
/// go of its people (1012) and takes them back. Carla's resume there still carries her
/// conversation, and once Ann is free she is paired in it, both told so, its seq going on
/// after its last line. Before, the node forgot which conversation its own customer
/// continued when it let go of her: `resumed` came without it.
#[tokio::test]
async fn a_customer_waiting_to_continue_on_a_fenced_node_still_continues_once_taken_back() {
    use crate::continuing::{VISITOR, continuing, resolved_visit};
    let ([live], mut servers, data) =
        crate::cluster_fixture::nodes_with_redis_data("cluster-reassert-fenced-continuing", ["live"], lease_of(1_000))
            .await;
    let (mut ann, ann_token) = live.agent_with_token("ann", &["general"], 1).await;
    let chat = resolved_visit(&live, &mut ann, &live).await;
    let mut dan = live.customer("Dan", "general").await;
    let dan_chat = started(&mut dan).await;
    assert_eq!(started(&mut ann).await, dan_chat);
    let mut carla = continuing(&live, Some(VISITOR), &chat).await;
    let token = carla.next_of("welcome").await["resume_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(carla.next_of("queued").await["place"], 1);

    // Away past the lease, back with its data: live is fenced and lets everyone go.
    let port = servers.redis.port;
    servers.redis.kill();
    redis_shows(&live, "down").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let _redis = RedisServer::start_with(port, Some(&data)).await;
    assert_eq!(carla.closed().await.map(u16::from), Some(1012));
    assert_eq!(ann.closed().await.map(u16::from), Some(1012));
    healthy(&live, "live").await;

    let (mut ann, _) = Ws::with_bearer(&live, "/ws/agent", &ann_token, "agent_welcome").await;
    let (mut carla, resumed) = resumed_on(&live, &token, 0, Duration::from_secs(30), "carla back").await;
    assert_eq!(resumed["conversation"]["id"], chat.as_str(), "{resumed}");
    assert_eq!(
        u64s_in(&resumed["conversation"]["messages"], "seq"),
        vec![1, 2],
        "{resumed}"
    );
    until_taken(&mut ann, json!({"type": "end_chat", "chat_id": dan_chat}), "chat_ended").await;
    carla.chat_continued(&chat).await;
    ann.chat_continued(&chat).await;
    exchange(&mut carla, &mut ann, &chat, "it did not arrive", 3).await;
    exchange(&mut ann, &mut carla, &chat, "sending another", 4).await;
    live.stop().await;
}

fn u64s_of(lines: &[(u64, String)]) -> Vec<u64> {
    lines.iter().map(|(seq, _)| *seq).collect()
}

/// A customer's line stamped and acknowledged on their node that the agent's node never
/// got before Redis lost its data (its pub/sub message lost with a cut: the agent's node,
/// a real process, drops every line on its chat channel until it subscribes again,
/// `SWITCHBOARD_TEST_DEAF_CHAT_CHANNEL`). Redis comes back EMPTY. The agent still gets it
/// live, in its place: the customer's node wrote it back into the chat's log with its
/// claim, and the agent's node read the log once every claim was in. The customer's next
/// line follows it, with the next seq; nothing twice, no gap. Before, the agent's node
/// went on past the line (the log started after it) and the agent never saw it.
#[tokio::test]
async fn a_customers_line_the_agents_node_missed_before_redis_came_back_empty_reaches_the_agent() {
    let hook = [("SWITCHBOARD_TEST_DEAF_CHAT_CHANNEL", "beta")];
    let (_beta, beta, alpha, mut servers) = beta_process_and_alpha("cluster-reassert-missed-line", &hook).await;
    let token = alpha.agent_account("ann", &["general"], 1).await;
    let mut ann = Ws::agent(&beta, &token).await;
    ann.send(json!({"type": "set_available", "available": true})).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let chat = started(&mut carla).await;
    assert_eq!(started(&mut ann).await, chat);
    // Ann's line is recorded on beta from its stamp's reply (after beta's first read of
    // the chat's log, which its router made before); Carla's answer is published to beta,
    // which drops it.
    exchange(&mut ann, &mut carla, &chat, "hello", 1).await;
    let ack = acked(&mut carla, &chat, "one").await;
    assert_eq!(ack["seq"], 2, "{ack}");

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&alpha, "alpha").await;

    // Carla goes on (her line sent again while the chat is restored): seq 3. Ann gets
    // "one" and then "three", each once, in seq order.
    let ack = acked(&mut carla, &chat, "three").await;
    assert_eq!(ack["seq"], 3, "{ack}");
    let mut seen = vec![];
    while seen.len() < 2 {
        let line = ann.next_of("message").await;
        seen.push((
            line["seq"].as_u64().unwrap_or(0),
            line["text"].as_str().unwrap_or("").to_string(),
        ));
    }
    assert_eq!(
        seen,
        [(2, "one"), (3, "three")].map(|(s, t)| (s, t.to_string())),
        "Ann gets Carla's acknowledged line live, in its place"
    );
    exchange(&mut ann, &mut carla, &chat, "four", 4).await;
}

/// As above, for more chats than the agents' node's queue of calls to Redis holds (a test
/// capacity of 8, `SWITCHBOARD_TEST_ROUTER_BUFFER`, for the 8,192 a node holding 20,000
/// chats would overrun): 20 chats, each with a customer's acknowledged line the agents'
/// node dropped before Redis came back EMPTY. Every agent still gets their customer's line,
/// with nothing sent after it: the node reads every chat's log again once every claim is
/// in, outside that queue. Before, it queued one read per chat there and dropped each read
/// past the queue's capacity: those agents got the line only with their chat's next one.
#[tokio::test]
async fn every_chat_of_a_node_with_more_chats_than_its_queue_holds_gets_its_missed_line_after_an_empty_redis() {
    const CHATS: usize = 20;
    let hook = crate::cluster_fixture::DEAF_BETA_WITH_A_SMALL_QUEUE;
    let (_beta, beta, alpha, mut servers) = beta_process_and_alpha("cluster-reassert-many-missed-lines", &hook).await;
    let mut pairs = vec![];
    for n in 0..CHATS {
        let token = alpha.agent_account(&format!("ann{n}"), &["general"], 1).await;
        let mut agent = Ws::agent(&beta, &token).await;
        until_taken(
            &mut agent,
            json!({"type": "set_available", "available": true}),
            "profile",
        )
        .await;
        let mut customer = alpha.customer(&format!("Carla {n}"), "general").await;
        let chat = started(&mut customer).await;
        assert_eq!(started(&mut agent).await, chat);
        // The agent's line is recorded on beta from its stamp's reply; the customer's
        // answer is published to beta, which drops it.
        exchange(&mut agent, &mut customer, &chat, &format!("hello {n}"), 1).await;
        let one = json!({"type": "message", "chat_id": chat, "text": format!("one {n}"), "client_id": "one"});
        assert_eq!(until_taken(&mut customer, one, "ack").await["seq"], 2);
        pairs.push((agent, customer, chat));
    }

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&alpha, "alpha").await;

    for (n, (agent, _customer, chat)) in pairs.iter_mut().enumerate() {
        let line = agent
            .next_matching_within(Duration::from_secs(30), |f| f["type"] == "message")
            .await;
        assert_eq!(
            (line["chat_id"].as_str(), line["seq"].as_u64(), line["text"].as_str()),
            (Some(chat.as_str()), Some(2), Some(format!("one {n}").as_str())),
            "{line}"
        );
    }
}

/// Found by scenario 4 in a fresh clone's run: a customer's page closes, Redis applies
/// their disconnect, and Redis dies empty before the node's follower has read its event
/// (`SWITCHBOARD_TEST_FOLLOWER_LAG` holds it). The node's replica, written back as the
/// restored domain, still counts them connected, and the node claims them: every resume
/// was refused "still held elsewhere" for good, and their grace period never started.
/// After the restore the node says them away again, and their resume is taken.
#[tokio::test]
async fn a_page_closed_just_before_redis_lost_its_data_resumes_after_the_restore() {
    let hook = [("SWITCHBOARD_TEST_FOLLOWER_LAG", "beta:3000:customer_disconnected")];
    let (_process, beta, mut servers) = process_alone("cluster-reassert-closed-page", "beta", &hook).await;
    let mut carla = Ws::connect(&beta.ws_url("/ws/customer"), &[]).await.unwrap();
    carla
        .send(json!({"type": "join", "name": "Carla", "category": "general"}))
        .await;
    let welcome = carla.next_of("welcome").await;
    let token = welcome["resume_token"].as_str().unwrap().to_string();
    carla.next_of("queued").await;
    drop(carla);
    // Redis applies the disconnect at once; the node's follower holds its event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _redis = killed_and_back_empty(&mut servers.redis).await;

    let (_back, resumed) = resumed_on(&beta, &token, 0, Duration::from_secs(30), "carla").await;
    assert_eq!(resumed["place"], 1, "back in line: {resumed}");
}

/// The same for an agent: their page closes, Redis applies their disconnect and dies empty
/// before the node's follower has read its event, so the restored domain counts them
/// connected with no page. Their sign-in is taken all the same (the router reads the
/// agent's record and holds them, §13 *Sign-ins*), and their desk serves the next
/// customer. (Written to find whether agents needed what customers did above: they did
/// not; it passed on the code before.)
#[tokio::test]
async fn an_agents_page_closed_just_before_redis_lost_its_data_signs_in_again_after_the_restore() {
    let hook = [("SWITCHBOARD_TEST_FOLLOWER_LAG", "beta:3000:agent_disconnected")];
    let (_process, beta, mut servers) = process_alone("cluster-reassert-closed-desk", "beta", &hook).await;
    let token = beta.agent_account("ann", &["general"], 1).await;
    let auth = format!("Bearer {token}");
    let desk = || async {
        let mut ws = Ws::connect(&beta.ws_url("/ws/agent"), &[("authorization", &auth)])
            .await
            .unwrap();
        let welcomed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(f) = ws.recv_within(Duration::from_secs(5)).await {
                if f["type"] == "agent_welcome" {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        welcomed.then_some(ws)
    };
    drop(desk().await.expect("ann signs in"));
    // Redis applies the disconnect at once; the node's follower holds its event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _redis = killed_and_back_empty(&mut servers.redis).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut ann = loop {
        if let Some(ws) = desk().await {
            break ws;
        }
        assert!(tokio::time::Instant::now() < deadline, "ann never signed in again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    ann.send(json!({"type": "set_available", "available": true})).await;
    let mut carla = Ws::connect(&beta.ws_url("/ws/customer"), &[]).await.unwrap();
    carla
        .send(json!({"type": "join", "name": "Carla", "category": "general"}))
        .await;
    let chat = started(&mut carla).await;
    assert_eq!(started(&mut ann).await, chat);
}

/// A chat its fenced node took on again keeps its seq when Redis comes back empty before
/// the node has read its log. The node (a process, stopped past its lease) let go of
/// everyone when it woke; Ann came back there, and it took the chat on again with an
/// empty log, asking Redis for its lines (the hook holds that read 3 s). Redis lost its
/// data meanwhile: the node's claim raised the chat's seq to 0, and Ann's next line was
/// acknowledged as seq 1, a second line 1 the archive (one line per seq) drops. Now the
/// node claims at least what it had recorded when it let go.
#[tokio::test]
async fn a_chat_its_fenced_node_took_on_again_keeps_its_seq_when_redis_comes_back_empty_before_its_log_is_read() {
    use crate::cluster_fixture::{available_agent_at, customer_on};
    let hook = [("SWITCHBOARD_TEST_FILL_DELAY", "live:3000")];
    let (live, endpoint, mut servers) = process_alone("cluster-reassert-fenced-floor", "live", &hook).await;
    let bind = endpoint.addr.to_string();
    let ann_token = endpoint.agent_account("ann", &["general"], 1).await;
    let mut ann = available_agent_at(&bind, &ann_token).await;
    let mut carla = customer_on(&bind, "Carla", "general").await;
    let chat = started(&mut carla).await;
    assert_eq!(started(&mut ann).await, chat);
    exchange(&mut carla, &mut ann, &chat, "one", 1).await;
    exchange(&mut ann, &mut carla, &chat, "two", 2).await;

    // Stopped past its lease: woken, live is fenced and lets everyone go (1012).
    crate::common::signal(&live.0, libc::SIGSTOP);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    crate::common::signal(&live.0, libc::SIGCONT);
    assert_eq!(carla.closed().await.map(u16::from), Some(1012));
    assert_eq!(ann.closed().await.map(u16::from), Some(1012));
    // Ann back: live takes the chat on again, its log's read held by the hook.
    let (mut ann, welcome) = Ws::with_bearer(&endpoint, "/ws/agent", &ann_token, "agent_welcome").await;
    assert_eq!(welcome["chats"][0]["chat_id"], chat.as_str(), "{welcome}");
    // Redis loses its data while that read is out.
    let _redis = killed_and_back_empty(&mut servers.redis).await;

    let three = json!({"type": "message", "chat_id": chat, "text": "three", "client_id": "three"});
    let ack = tokio::time::timeout(Duration::from_secs(30), until_taken(&mut ann, three, "ack"))
        .await
        .expect("the chat goes on after the restore");
    assert_eq!(ack["seq"], 3, "after what was said: {ack}");
    assert_eq!(
        archived(&servers.store, &chat, 3).await,
        [(1, "one"), (2, "two"), (3, "three")].map(|(s, t)| (s, t.to_string())),
        "every acknowledged line archived once"
    );
}
