//! Rooms across nodes: two hubs in this process on one
//! shared store and a real `redis-server`, the two members of a room on different nodes.
//! Signalling, call control, "room full" and the call log behave as on one node; a node
//! that dies or stops gives the other member a clear message.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::config::Secret;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::archive::TempDir;
use crate::cluster_fixture::nodes;
use crate::common::*;
use crate::redis_server::RedisServer;
use crate::rooms::{
    PASSWORD, PHONE, agent_in_own_room, agent_member, call, customer_room, guest_room, host_ends_the_room, join,
    member, relays_signal, token,
};

/// How long a test waits for something the cluster must do (several leases' worth).
const WAIT: Duration = Duration::from_secs(20);

/// Two nodes of one cluster, each a hub in this process.
pub(crate) struct Pair {
    pub(crate) alpha: TestHub,
    pub(crate) beta: TestHub,
    pub(crate) redis: RedisServer,
    _scratch: TempDir,
}

/// Alpha and beta, each registered in the cluster.
pub(crate) async fn pair() -> Pair {
    let ([alpha, beta], servers) = nodes("rooms-cluster", ["alpha", "beta"], |s| {
        // Every node of a cluster shares the secret, so a token from one opens a socket on another.
        s.rooms.token_secret = Secret(b"one secret for the whole cluster, 32+ bytes".to_vec());
    })
    .await;
    Pair {
        alpha,
        beta,
        redis: servers.redis,
        _scratch: servers.scratch,
    }
}

/// The calls listed by `GET /api/calls` for `api`, once `total` reaches `want`.
async fn calls_reach(api: &Api, want: u64) -> Value {
    until_ok(WAIT, &format!("the call log never reached {want}"), async || {
        let (_, page) = api.get("/api/calls").await;
        accepted(page, |page| page["total"] == want)
    })
    .await
}

/// Takes `node` out of the cluster's registry as the lease reaper does with a node killed or
/// stalled past its lease: no longer alive.
async fn reaped(redis: &RedisServer, node: &str) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::pipe()
        .cmd("HDEL")
        .arg("{sb}:nodes")
        .arg(node)
        .cmd("ZREM")
        .arg("{sb}:leases")
        .arg(node)
        .exec_async(&mut conn)
        .await
        .unwrap();
}

/// Asserts Redis names `node` as the home of `room` (its record: the node, then the rest).
async fn homed_on(redis: &RedisServer, room: &str, node: &str) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let home: String = redis::cmd("GET")
        .arg(format!("{{sb}}:room-home:{room}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(home.starts_with(&format!("{node} ")), "{home}");
}

/// Frames of these types among `frames`.
fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

/// Ann's customer room `title` homed on `alpha` (her socket there), and Carla admitted to it
/// through `beta` (as [`carla_through`]) and in a call with her: Ann's client, the room, Ann's
/// socket, Carla's socket and welcome, and the `peer_joined` Ann was told.
async fn in_a_call_across(alpha: &TestHub, beta: &TestHub, title: &str) -> (Api, String, Ws, Ws, Value, Value) {
    let (ann, room, mut agent, _) = agent_in_own_room(alpha, "ann", customer_room(title)).await;
    let (mut carla, welcome) = carla_through(beta, &room).await;
    let joined = agent.next_of("peer_joined").await;
    call(&mut agent, &mut carla).await;
    (ann, room, agent, carla, welcome, joined)
}

/// Carla (the room's phone and password) admitted to `room` through `node` and connected
/// there: her socket and welcome.
async fn carla_through(node: &TestHub, room: &str) -> (Ws, Value) {
    let credentials = json!({"phone": PHONE, "password": PASSWORD, "name": "Carla"});
    member(node, room, &token(node, room, credentials).await).await
}

#[tokio::test]
async fn members_on_two_nodes_signal_call_and_log_as_on_one() {
    let Pair { alpha, beta, redis, .. } = pair().await;
    // The agent's room and socket on alpha: alpha becomes the room's home.
    let (_, room, mut agent, welcome) = agent_in_own_room(&alpha, "ann", guest_room("Across")).await;
    assert_eq!(welcome["polite"], false);
    homed_on(&redis, &room, "alpha").await;

    // Gus joins through beta: the seat is his from his token on, on every node (the
    // reservation is in the shared store), before he connects.
    let gus_token = token(
        &beta,
        &room,
        json!({"name": "Gus", "email": "gus@example.org", "password": PASSWORD}),
    )
    .await;
    let pia = json!({"name": "Pia", "phone": "+441234567890", "password": PASSWORD});
    for node in [&alpha, &beta] {
        let (status, answer) = join(node, &room, pia.clone()).await;
        assert_eq!((status, error_code(&answer)), (409, "room_full"), "{answer}");
    }
    let (mut gus, welcome) = member(&beta, &room, &gus_token).await;
    assert_eq!(
        (welcome["polite"].clone(), welcome["kind"].clone()),
        (json!(true), json!("guest"))
    );
    let welcome_token = welcome["token"].as_str().unwrap().to_string();
    assert_eq!(welcome["peer"]["kind"], "agent", "{welcome}");
    assert_eq!(agent.next_of("peer_joined").await["peer"]["name"], "Gus");

    // A third person is refused across nodes: at the join (beta asks alpha).
    let (status, answer) = join(&beta, &room, pia).await;
    assert_eq!((status, error_code(&answer)), (409, "room_full"), "{answer}");

    // A meeting: the call started as Gus came in, across nodes as on one; nothing rings
    // or hangs up there, for the remote member either.
    call(&mut agent, &mut gus).await;
    for frame in ["start_call", "hang_up"] {
        gus.send(json!({"type": frame})).await;
        assert_eq!(gus.next_of("error").await["code"], "automatic_call", "{frame}");
    }

    // Offer, answer and candidates go to the other member only, never back.
    let offer = json!({"description": {"type": "offer", "sdp": "v=0 across"}});
    relays_signal(&mut agent, &mut gus, offer).await;
    let answer = json!({"description": {"type": "answer", "sdp": "v=0 back"}});
    relays_signal(&mut gus, &mut agent, answer).await;
    for i in 0..5 {
        let candidate = json!({"candidate": {"candidate": format!("candidate:{i} 1 udp 1 127.0.0.1 9 typ host")}});
        gus.send(json!({"type": "signal", "data": candidate})).await;
        assert_eq!(agent.next_of("signal").await["data"], candidate, "in order");
    }
    // A figure, not an assertion (a shared, noisy machine): how long a signal takes from
    // one member to the other across the two nodes (socket → node → Redis → node → socket).
    let mut took = Vec::new();
    for i in 0..50 {
        let data = json!({"candidate": {"candidate": format!("candidate:{i} 1 udp 1 127.0.0.1 9 typ host")}});
        let sent = Instant::now();
        gus.send(json!({"type": "signal", "data": data})).await;
        assert_eq!(agent.next_of("signal").await["data"], data);
        took.push(sent.elapsed());
    }
    took.sort();
    eprintln!(
        "signal across nodes: median {:?}, max {:?} (50 in a row)",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    for (who, ws) in [("agent", &mut agent), ("Gus", &mut gus)] {
        let stray = ws.drain().await;
        assert!(of_type(&stray, "signal").is_empty(), "{who} got {stray:?}");
    }

    // Reports, a second of call, then the remote member leaves: the agent's call ends.
    for ws in [&mut agent, &mut gus] {
        ws.send(json!({"type": "report", "connected": true, "camera": true}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    gus.send(json!({"type": "leave"})).await;
    gus.next_of("left").await;
    let end = agent.next_of("call_ended").await;
    assert_eq!(
        (end["by"].as_str(), end["reason"].as_str()),
        (Some("guest"), Some("peer_left"))
    );
    agent.next_of("peer_left").await;
    // The call log, written once (by the home), seen from both nodes.
    let page = calls_reach(&beta.admin().await, 1).await;
    let logged = &page["items"][0];
    assert_eq!(
        (logged["peer"].as_str(), logged["peer_name"].as_str()),
        (Some("guest"), Some("Gus"))
    );
    assert!(logged["length_secs"].as_u64().unwrap() >= 1, "{logged}");
    assert!(logged["connected_secs"].as_u64() <= logged["length_secs"].as_u64());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alpha.admin().await.get("/api/calls").await.1["total"], 1, "logged once");
    // Back through beta with his welcome's token: straight into a new call.
    let (mut gus, _) = member(&beta, &room, welcome_token.as_str()).await;
    agent.next_of("peer_joined").await;
    call(&mut agent, &mut gus).await;

    // The member's node stops: the agent on the home sees them away, then gone.
    beta.stop().await;
    agent.next_of("peer_away").await;
    assert_eq!(agent.next_of("call_ended").await["reason"], "peer_gone");
    agent.next_of("peer_left").await;
    alpha.stop().await;
}

#[tokio::test]
async fn a_dead_home_ends_the_call_clearly_and_the_room_moves_on_reconnect() {
    let Pair { alpha, beta, redis, .. } = pair().await;
    let (ann, room, mut agent, mut carla, welcome, _) = in_a_call_across(&alpha, &beta, "Home lost").await;

    // Alpha, the home, is reaped as dead (what the lease reaper does to a node killed or
    // stalled past its lease): it is no longer alive in the registry.
    reaped(&redis, "alpha").await;
    // The member on the other node is told, clearly, and closed.
    assert_eq!(carla.next_of("error").await["code"], "home_lost");
    assert_eq!(carla.closed().await, Some(CloseCode::from(4503)));
    // Alpha comes back under a new incarnation, finds its claim gone and ends its copy:
    // the call ends for the agent with the same reason, logged once by the old home.
    let end = agent.next_of("call_ended").await;
    assert_eq!(end["reason"], "home_lost", "{end}");
    assert_eq!(agent.next_of("error").await["code"], "home_lost");
    assert_eq!(agent.closed().await, Some(CloseCode::from(4503)));
    calls_reach(&ann, 1).await;

    // The room is still open: both reconnect (no new code) and it lives on a live node.
    let (mut carla, _) = member(&beta, &room, welcome["token"].as_str().unwrap()).await;
    let (mut agent, welcome) = agent_member(&alpha, &ann, &room).await;
    assert_eq!(welcome["peer"]["name"], "Carla", "{welcome}");
    carla.next_of("peer_joined").await;
    call(&mut agent, &mut carla).await;
    carla.send(json!({"type": "signal", "data": {"again": 1}})).await;
    assert_eq!(agent.next_of("signal").await["data"], json!({"again": 1}));
    // The agent ends the room through alpha, which is no longer its home (Carla came
    // back first, on beta): the home hears of it and ends it for both nodes' members.
    homed_on(&redis, &room, "beta").await;
    let (status, ended) = ann.delete(&format!("/api/rooms/{room}")).await;
    assert_eq!((status, ended["state"].as_str()), (200, Some("ended")), "{ended}");
    for ws in [&mut agent, &mut carla] {
        assert_eq!(ws.next_of("room_ended").await["by"], "agent");
        assert_eq!(ws.closed().await, Some(CloseCode::Normal));
    }
    calls_reach(&ann, 2).await;
    beta.stop().await;
    alpha.stop().await;
}

/// Several nodes with a random room-token secret each would refuse every member who lands
/// on another node than the one that made their token: `REDIS_URL` without
/// `ROOM_TOKEN_SECRET` stops start-up with a message naming it.
#[test]
fn a_cluster_without_a_shared_room_token_secret_does_not_start() {
    let scratch = TempDir::new("rooms-cluster-settings");
    let envs = [
        ("REDIS_URL", "redis://127.0.0.1:6379/"),
        ("STORE", "mongodb"),
        ("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
    ];
    for args in [&["check-config"][..], &["serve"]] {
        let mut command = crate::storeops::hub_command(&scratch.0, &envs, args);
        command.env_remove("ROOM_TOKEN_SECRET");
        crate::storeops::refuses(
            command,
            "ROOM_TOKEN_SECRET",
            &format!("{args:?} without ROOM_TOKEN_SECRET"),
        );
    }
    // With it, the same settings pass the check.
    let output = crate::storeops::hub_command(&scratch.0, &envs, &["check-config"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// The member's node is reaped as dead while its member is still connected to it (it
/// stalled past its lease): the home sees the member away; the member's node, back under
/// a new incarnation, tells its member clearly (`home_lost`, 4503) instead of leaving a
/// socket that reaches no seat; reconnecting brings them back (`peer_back`).
#[tokio::test]
async fn a_reaped_member_node_is_noticed_on_both_sides() {
    let Pair { alpha, beta, redis, .. } = pair().await;
    let (_, room, mut agent, _) = agent_in_own_room(&alpha, "ann", customer_room("Member lost")).await;
    let credentials = json!({"phone": PHONE, "password": PASSWORD});
    let (mut carla, welcome) = member(&beta, &room, &token(&beta, &room, credentials).await).await;
    agent.next_of("peer_joined").await;
    reaped(&redis, "beta").await;
    agent.next_of("peer_away").await;
    assert_eq!(carla.next_of("error").await["code"], "home_lost");
    assert_eq!(carla.closed().await, Some(CloseCode::from(4503)));
    let (_carla, _) = member(&beta, &room, welcome["token"].as_str().unwrap()).await;
    // Back within the grace period, or seated afresh after it (a loaded machine).
    loop {
        let frame = agent.recv_within(WAIT).await.expect("the agent sees Carla again");
        if frame["type"] == "peer_back" || frame["type"] == "peer_joined" {
            break;
        }
    }
    beta.stop().await;
    alpha.stop().await;
}

/// Leaving is not ending across nodes too: the customer on beta leaves a room homed on
/// alpha and comes back; a new admission through beta is a change of hands the agent on
/// alpha is told of; the customer cannot end the room, the agent ends it from its socket
/// for the members of both nodes.
#[tokio::test]
async fn leave_rejoin_and_end_work_across_nodes() {
    // Redis is bound and dropped at the end: the server stops when its handle is dropped.
    let Pair { alpha, beta, redis, .. } = pair().await;
    let (ann, room, mut agent, mut carla, welcome, joined) = in_a_call_across(&alpha, &beta, "Across").await;
    let first = joined["peer"]["admission"].clone();

    carla.send(json!({"type": "leave"})).await;
    carla.next_of("left").await;
    assert_eq!(carla.closed().await, Some(CloseCode::Normal));
    assert_eq!(agent.next_of("call_ended").await["reason"], "peer_left");
    agent.next_of("peer_left").await;
    // Back through beta with her own token: the same admission.
    let (mut carla, _) = member(&beta, &room, welcome["token"].as_str().unwrap()).await;
    let back = agent.next_of("peer_joined").await;
    assert_eq!(
        (back["peer"]["admission"].clone(), back["changed_hands"].clone()),
        (first.clone(), json!(false))
    );
    call(&mut agent, &mut carla).await;

    // She leaves again; someone joining through beta takes the seat: a change of hands.
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("left").await;
    agent.next_of("peer_left").await;
    let (mut other, _) = carla_through(&beta, &room).await;
    let joined = agent.next_of("peer_joined").await;
    assert_eq!(joined["changed_hands"], true, "{joined}");
    assert_ne!(joined["peer"]["admission"], first);

    other.send(json!({"type": "end_room"})).await;
    assert_eq!(other.next_of("error").await["code"], "not_host");
    host_ends_the_room(&ann, &room, &mut agent, &mut other).await;
    beta.stop().await;
    alpha.stop().await;
    drop(redis);
}
