//! Rooms and 1-to-1 video end to end: rooms over HTTP, joining with its
//! ordered checks, invitations through a real SMTP sink (aiosmtpd) and a real HTTP
//! webhook, room tokens, and the room websocket's signalling and call control.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard::config::Settings;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::archive::free_port;
use crate::common::*;
use crate::rooms_invites::code_and_link;

pub(crate) const PHONE: &str = "+4915112345678";
pub(crate) const PASSWORD: &str = "tulip-42";

/// A signed-in agent and their open customer room.
pub(crate) async fn agent_with_room(hub: &TestHub, username: &str, room: Value) -> (Api, String) {
    hub.agent_account(username, &["general"], 1).await;
    let api = hub.login(username, "agent-password").await;
    let body = api.post_answering(201, "/api/rooms", room).await;
    (api, body["id"].as_str().unwrap().to_string())
}

pub(crate) fn customer_room(title: &str) -> Value {
    json!({"title": title, "audience": "customer", "phone": PHONE, "password": PASSWORD})
}

pub(crate) fn guest_room(title: &str) -> Value {
    json!({"title": title, "audience": "guest", "password": PASSWORD})
}

/// `POST /api/join/{room}` from `from` (an X-Forwarded-For address; the hub must trust
/// 127.0.0.1 for it to count) or from the loopback itself.
pub(crate) async fn join_from(hub: &TestHub, room: &str, body: Value, from: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(hub.url(&format!("/api/join/{room}")))
        .json(&body);
    if let Some(address) = from {
        request = request.header("x-forwarded-for", address);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn join(hub: &TestHub, room: &str, body: Value) -> (u16, Value) {
    join_from(hub, room, body, None).await
}

/// The room token of a join that must succeed.
pub(crate) async fn token(hub: &TestHub, room: &str, body: Value) -> String {
    let (status, answer) = join(hub, room, body).await;
    assert_eq!(status, 200, "{answer}");
    answer["token"].as_str().unwrap().to_string()
}

/// The room socket's URL: the room only; the token goes in the first frame.
pub(crate) fn room_url(hub: &TestHub, room: &str) -> String {
    hub.ws_url(&format!("/ws/room?room={room}"))
}

/// A room socket that has sent its token (`auth`, the first frame).
pub(crate) async fn open(hub: &TestHub, room: &str, token: &str) -> Ws {
    let mut ws = Ws::connect(&room_url(hub, room), &[]).await.unwrap();
    ws.send(json!({"type": "auth", "token": token})).await;
    ws
}

/// A member connected to the room, their welcome read.
pub(crate) async fn member(hub: &TestHub, room: &str, token: &str) -> (Ws, Value) {
    let mut ws = open(hub, room, token).await;
    let welcome = ws.next_of("room_welcome").await;
    (ws, welcome)
}

/// The room's agent, connected.
pub(crate) async fn agent_member(hub: &TestHub, api: &Api, room: &str) -> (Ws, Value) {
    let answer = api
        .post_answering(200, &format!("/api/rooms/{room}/token"), json!({}))
        .await;
    member(hub, room, answer["token"].as_str().unwrap()).await
}

/// As [`member`], the welcome asserted to admit them as `kind` (agent, customer, guest).
pub(crate) async fn member_as(hub: &TestHub, room: &str, token: &str, kind: &str) -> Ws {
    let (ws, welcome) = member(hub, room, token).await;
    assert_eq!(welcome["kind"], kind, "{welcome}");
    ws
}

/// `username`'s `room` (made through the API) with them in it: their API client, the room's
/// id, their socket in it and its welcome.
pub(crate) async fn agent_in_own_room(hub: &TestHub, username: &str, room: Value) -> (Api, String, Ws, Value) {
    let (api, room) = agent_with_room(hub, username, room).await;
    let (ws, welcome) = agent_member(hub, &api, &room).await;
    (api, room, ws, welcome)
}

/// A meeting's call, which the hub starts once both are in (or back after a leave):
/// both get `call_started`, with their roles.
pub(crate) async fn call(agent: &mut Ws, customer: &mut Ws) {
    assert_eq!(agent.next_of("call_started").await["polite"], false);
    assert_eq!(customer.next_of("call_started").await["polite"], true);
}

/// A customer room titled `title` with its agent Ann and its customer (by phone and
/// password) in it, the call started: Ann's API client, the room, Ann's room socket, the
/// customer's and the customer's welcome.
pub(crate) async fn customer_room_in_a_call(hub: &TestHub, title: &str) -> (Api, String, Ws, Ws, Value) {
    let (ann, room, mut agent, mut carla, welcome) = customer_room_with_carla(hub, title).await;
    agent.next_of("peer_joined").await;
    call(&mut agent, &mut carla).await;
    (ann, room, agent, carla, welcome)
}

/// A customer room titled `title` with Ann and the customer (by phone and password) in
/// it, no call yet: Ann's API client, the room, Ann's room socket (its `peer_joined` for
/// the customer not read), the customer's and the customer's welcome.
pub(crate) async fn customer_room_with_carla(hub: &TestHub, title: &str) -> (Api, String, Ws, Ws, Value) {
    let (ann, room, agent, _) = agent_in_own_room(hub, "ann", customer_room(title)).await;
    let credentials = json!({"phone": PHONE, "password": PASSWORD});
    let (carla, welcome) = member(hub, &room, &token(hub, &room, credentials).await).await;
    (ann, room, agent, carla, welcome)
}

/// A room opened from a chat rings: the agent rings, the customer accepts; both get
/// `call_started`.
pub(crate) async fn ring_and_accept(agent: &mut Ws, customer: &mut Ws) {
    agent.send(json!({"type": "start_call"})).await;
    agent.next_of("call_ringing").await;
    customer.next_of("call_incoming").await;
    customer.send(json!({"type": "accept_call"})).await;
    assert_eq!(agent.next_of("call_started").await["polite"], false);
    assert_eq!(customer.next_of("call_started").await["polite"], true);
}

/// A room opened from one of `username`'s chats (`POST /api/chats/{id}/video`): the
/// signed-in agent, the room, the customer's token from the chat's invitation, and the
/// agent's desk and the customer's chat sockets (kept open: the chat goes on).
pub(crate) async fn chat_room(hub: &TestHub, username: &str, customer: &str) -> (Api, String, String, Ws, Ws) {
    let mut desk = hub.agent(username, &["general"], 1).await;
    let api = hub.login(username, "agent-password").await;
    let (mut chat, chat_id) = hub.paired_customer(&mut desk, customer, "general").await;
    let room = api
        .post_answering(201, &format!("/api/chats/{chat_id}/video"), json!({}))
        .await;
    let link = chat.next_of("video_invite").await["link"].as_str().unwrap().to_string();
    let token = link.split("#token=").nth(1).unwrap().to_string();
    (api, room["id"].as_str().unwrap().to_string(), token, desk, chat)
}

/// A lobby's `peek`: the `room_inside` answer, and the Close after it.
pub(crate) async fn peek(hub: &TestHub, room: &str, token: &str) -> (Value, Option<CloseCode>) {
    let mut ws = Ws::connect(&room_url(hub, room), &[]).await.unwrap();
    ws.send(json!({"type": "peek", "token": token})).await;
    let frame = ws.recv_within(Duration::from_secs(5)).await.expect("an answer to peek");
    (frame, ws.closed().await)
}

/// An error frame with `code`, then a Close with `close`.
pub(crate) async fn refused(ws: &mut Ws, code: &str, close: u16) {
    let error = ws.next_of("error").await;
    assert_eq!(error["code"], code, "{error}");
    assert_eq!(ws.closed().await, Some(CloseCode::from(close)));
}

#[tokio::test]
async fn two_rooms_side_by_side_never_cross_and_never_echo() {
    let hub = TestHub::start().await;
    let (ann, room_a) = agent_with_room(&hub, "ann", customer_room("A")).await;
    let (bob, room_b) = agent_with_room(&hub, "bob", customer_room("B")).await;
    let (mut agent_a, welcome) = agent_member(&hub, &ann, &room_a).await;
    assert_eq!(
        (welcome["polite"].clone(), welcome["peer"].clone()),
        (json!(false), Value::Null)
    );
    let (mut agent_b, _) = agent_member(&hub, &bob, &room_b).await;
    // Signalling with no call (nobody else is in yet) is refused, and goes nowhere.
    agent_a.send(json!({"type": "signal", "data": {"early": true}})).await;
    assert_eq!(agent_a.next_of("error").await["code"], "no_call");
    let credentials = json!({"phone": PHONE, "password": PASSWORD});
    let (mut carla, welcome) = member(&hub, &room_a, &token(&hub, &room_a, credentials.clone()).await).await;
    assert_eq!(welcome["polite"], true);
    assert_eq!(welcome["peer"]["kind"], "agent");
    assert_eq!(agent_a.next_of("peer_joined").await["peer"]["kind"], "customer");
    let (mut dora, _) = member(&hub, &room_b, &token(&hub, &room_b, credentials).await).await;
    agent_b.next_of("peer_joined").await;

    call(&mut agent_a, &mut carla).await;
    call(&mut agent_b, &mut dora).await;
    let offer = json!({"description": {"type": "offer", "sdp": "v=0 room A"}});
    relays_signal(&mut agent_a, &mut carla, offer).await;
    let candidate = json!({"candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}});
    relays_signal(&mut dora, &mut agent_b, candidate).await;
    // Nothing crossed to the other room, nothing came back to a sender.
    for (who, ws) in [
        ("agent A", &mut agent_a),
        ("agent B", &mut agent_b),
        ("Carla", &mut carla),
        ("Dora", &mut dora),
    ] {
        let stray: Vec<Value> = ws.drain().await.into_iter().filter(|f| f["type"] == "signal").collect();
        assert!(stray.is_empty(), "{who} got {stray:?}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_third_joiner_is_refused_with_its_own_message() {
    let hub = TestHub::start().await;
    let (_, room, _agent, _) = agent_in_own_room(&hub, "ann", guest_room("Open house")).await;
    let gus = json!({"name": "Gus", "email": "gus@example.org", "password": PASSWORD});
    let (status, answer) = join(&hub, &room, gus.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let gus_token = answer["token"].as_str().unwrap().to_string();
    let _gus = member_as(&hub, &room, &gus_token, "guest").await;
    // Someone else, with the right password: two people are in already.
    let pia = json!({"name": "Pia", "phone": "+441234567890", "password": PASSWORD});
    let answer = refusal(join(&hub, &room, pia).await, 409, "room_full");
    assert_eq!(answer["error"]["message"], "already two people");
    // The same guest again (another device) is a second admission: the seat is held by
    // the first (it reconnects with its welcome's token instead).
    refusal(join(&hub, &room, gus).await, 409, "room_full");
    hub.stop().await;
}

#[tokio::test]
async fn join_checks_come_in_order_with_their_own_messages() {
    let hub = TestHub::start().await;
    let (ann, room) = agent_with_room(&hub, "ann", customer_room("Contract")).await;
    let (status, answer) = ann.post("/api/rooms", customer_room("Second")).await;
    assert_eq!(
        (status, answer["error"]["message"].as_str()),
        (409, Some("you already have an open room"))
    );
    let refusal = |status: u16, answer: &Value| {
        (
            status,
            answer["error"]["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    let (s, a) = join(&hub, &room, json!({"phone": "+4915100000000", "password": PASSWORD})).await;
    assert_eq!(refusal(s, &a), (403, "phone number is incorrect".into()));
    let (s, a) = join(&hub, &room, json!({"phone": "+49 151 1234 5678", "password": "wrong"})).await;
    assert_eq!(refusal(s, &a), (403, "password is incorrect".into()));
    let (s, a) = join(&hub, &room, json!({"phone": "0151 1234", "password": PASSWORD})).await;
    assert_eq!((s, a["error"]["code"].as_str()), (400, Some("invalid_phone")));
    // The room page learns what to ask for.
    let info: Value = get_json(&hub, &format!("/api/join/{room}")).await;
    assert_eq!(
        (info["audience"].as_str(), info["asks_phone"].as_bool()),
        (Some("customer"), Some(true))
    );
    // Ended: the meeting has ended, for a join and for a token issued before.
    let early = token(&hub, &room, json!({"phone": PHONE, "password": PASSWORD})).await;
    let (status, ended) = ann.delete(&format!("/api/rooms/{room}")).await;
    assert_eq!((status, ended["state"].as_str()), (200, Some("ended")));
    let (s, a) = join(&hub, &room, json!({"phone": PHONE, "password": PASSWORD})).await;
    assert_eq!(refusal(s, &a), (410, "the meeting has ended".into()));
    let mut late = open(&hub, &room, &early).await;
    refused(&mut late, "room_ended", 4410).await;
    let (s, a) = join(&hub, "no-such-room", json!({"password": PASSWORD})).await;
    assert_eq!(refusal(s, &a), (410, "the meeting has ended".into()));
    // Ended for good: a new room is possible now, the old one never reopens.
    assert_eq!(ann.post("/api/rooms", customer_room("Next")).await.0, 201);
    hub.stop().await;
}

#[tokio::test]
async fn expired_and_other_rooms_tokens_are_refused() {
    let hub = TestHub::with(|s| s.rooms.token_ttl = Duration::from_secs(1)).await;
    let (ann, room_a) = agent_with_room(&hub, "ann", customer_room("A")).await;
    let (_bob, room_b) = agent_with_room(&hub, "bob", customer_room("B")).await;
    let for_a = token(&hub, &room_a, json!({"phone": PHONE, "password": PASSWORD})).await;
    let mut wrong_room = open(&hub, &room_b, &for_a).await;
    refused(&mut wrong_room, "wrong_room", 4403).await;
    let mut forged = open(&hub, &room_a, "not.a.token").await;
    refused(&mut forged, "bad_token", 4400).await;
    // exp is in whole seconds: past 2 s a 1 s token has expired wherever the second began.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let mut expired = open(&hub, &room_a, &for_a).await;
    refused(&mut expired, "token_expired", 4401).await;
    // The agent's token is refused alike once expired; a fresh one works.
    let (_agent, welcome) = agent_member(&hub, &ann, &room_a).await;
    assert_eq!(welcome["kind"], "agent");
    hub.stop().await;
}

/// The room token never needs the URL (where access logs keep it): it comes in the
/// first frame. A token in the query is refused, so no client keeps leaking it; so is a
/// socket whose first frame is not `auth`.
#[tokio::test]
async fn the_room_token_comes_in_the_first_frame_not_the_url() {
    let hub = TestHub::start().await;
    let (_ann, room) = agent_with_room(&hub, "ann", customer_room("A")).await;
    let carla = token(&hub, &room, json!({"phone": PHONE, "password": PASSWORD})).await;
    let _carla = member_as(&hub, &room, &carla, "customer").await;
    let mut in_url = Ws::connect(&hub.ws_url(&format!("/ws/room?room={room}&token={carla}")), &[])
        .await
        .unwrap();
    refused(&mut in_url, "token_in_url", 4400).await;
    let mut no_auth = Ws::connect(&room_url(&hub, &room), &[]).await.unwrap();
    no_auth.send(json!({"type": "ping"})).await;
    refused(&mut no_auth, "bad_token", 4400).await;
    hub.stop().await;
}

/// Even a client that puts a token in a URL does not get it into the hub's log: the
/// request log names the path, never the query (run as a process, logging at debug).
#[tokio::test]
async fn a_token_in_a_url_stays_out_of_the_log() {
    let scratch = crate::archive::TempDir::new("room-log");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let log = scratch.0.join("hub.log");
    let mut command = crate::storeops::hub_command(
        &scratch.0,
        &[("BIND_ADDR", bind.as_str()), ("STORE", "memory"), ("RUST_LOG", "debug")],
        &["serve"],
    );
    command
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("the hub binary starts");
    crate::archive::wait_for_port(port).await;
    let marker = "eyJhbGciOiJIUzI1NiJ9.secret-marker-in-the-url";
    let url = format!("ws://{bind}/ws/room?room=r1&token={marker}");
    let mut ws = Ws::connect(&url, &[]).await.unwrap();
    assert_eq!(ws.next_of("error").await["code"], "token_in_url");
    let page = reqwest::get(format!("http://{bind}/room.html?room=r1&token={marker}"))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("/ws/room"), "the request was logged at debug: {said}");
    assert!(!said.contains("secret-marker"), "the token reached the log:\n{said}");
}

#[tokio::test]
async fn reconnecting_within_the_grace_period_needs_no_new_code() {
    let hub = TestHub::start().await;
    let (_, room, mut agent, _) = agent_in_own_room(&hub, "ann", customer_room("A")).await;
    let first = token(&hub, &room, json!({"phone": PHONE, "password": PASSWORD})).await;
    let (carla, welcome) = member(&hub, &room, &first).await;
    agent.next_of("peer_joined").await;
    drop(carla);
    agent.next_of("peer_away").await;
    // The welcome's fresh token opens the room again.
    let (_carla, _) = member(&hub, &room, welcome["token"].as_str().unwrap()).await;
    agent.next_of("peer_back").await;
    hub.stop().await;
}

/// `from` sends `data` as a signal, and `to` receives it as sent.
pub(crate) async fn relays_signal(from: &mut Ws, to: &mut Ws, data: Value) {
    from.send(json!({"type": "signal", "data": data})).await;
    assert_eq!(to.next_of("signal").await["data"], data);
}

/// The call log's only entry, waited for (a call is logged after its members are told it
/// ended); `Null` when none came within two seconds.
async fn the_one_call_logged(ann: &Api) -> Value {
    for _ in 0..100 {
        let (_, page) = ann.get("/api/calls").await;
        if page["total"] == 1 {
            return page["items"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Value::Null
}

/// The host ends the room: both members are told and closed (1000), and the store has
/// it ended (waited for: the state is written after the members are told).
pub(crate) async fn host_ends_the_room(ann: &Api, room: &str, host: &mut Ws, other: &mut Ws) {
    host.send(json!({"type": "end_room"})).await;
    for ws in [host, other] {
        assert_eq!(ws.next_of("room_ended").await["by"], "agent");
        assert_eq!(ws.closed().await, Some(CloseCode::Normal));
    }
    let mut state = Value::Null;
    for _ in 0..100 {
        state = ann.get(&format!("/api/rooms/{room}")).await.1["state"].clone();
        if state == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "ended");
}

/// A room opened from a chat rings: nothing starts when both are in; one side rings,
/// the other accepts or declines.
#[tokio::test]
async fn call_control_and_the_call_log() {
    let hub = TestHub::start().await;
    let (ann, room, carla_token, _desk, _chat) = chat_room(&hub, "ann", "Carla").await;
    let (mut agent, welcome) = agent_member(&hub, &ann, &room).await;
    assert_eq!(
        (welcome["call_mode"].as_str(), welcome["call"].as_str()),
        (Some("ring"), Some("idle"))
    );
    let (mut carla, welcome) = member(&hub, &room, &carla_token).await;
    assert_eq!(
        (welcome["call_mode"].as_str(), welcome["call"].as_str()),
        (Some("ring"), Some("idle"))
    );
    agent.next_of("peer_joined").await;
    // Both are in, and no call starts by itself.
    for ws in [&mut agent, &mut carla] {
        let frames = ws.drain().await;
        assert!(frames.iter().all(|f| f["type"] != "call_started"), "{frames:?}");
    }
    // Rejected: media not ready. Both get the end.
    carla.send(json!({"type": "start_call"})).await;
    agent.next_of("call_incoming").await;
    agent
        .send(json!({"type": "reject_call", "reason": "media_not_ready"}))
        .await;
    for ws in [&mut agent, &mut carla] {
        let end = ws.next_of("call_ended").await;
        assert_eq!(
            (end["reason"].as_str(), end["detail"].as_str()),
            (Some("rejected"), Some("media_not_ready"))
        );
    }
    // Accepted, reported, hung up: both get the end, and the call is logged.
    ring_and_accept(&mut agent, &mut carla).await;
    agent
        .send(json!({"type": "report", "connected": true, "camera": true}))
        .await;
    carla
        .send(json!({"type": "report", "connected": true, "camera": true}))
        .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    carla.send(json!({"type": "hang_up"})).await;
    for ws in [&mut agent, &mut carla] {
        let end = ws.next_of("call_ended").await;
        assert_eq!(
            (end["by"].as_str(), end["reason"].as_str()),
            (Some("customer"), Some("hung_up"))
        );
    }
    let logged = the_one_call_logged(&ann).await;
    assert_eq!(
        (logged["peer"].as_str(), logged["peer_name"].as_str()),
        (Some("customer"), Some("Carla"))
    );
    let length = logged["length_secs"].as_u64().unwrap();
    assert!(length >= 1, "{logged}");
    assert!(logged["connected_secs"].as_u64().unwrap() <= length);
    assert!(logged["camera_secs"].as_u64().unwrap() <= length);
    // Admins see every call; another agent none of ann's.
    assert_eq!(hub.admin().await.get("/api/calls").await.1["total"], 1);
    // The host ends the room for both (closed 1000) and in the store.
    host_ends_the_room(&ann, &room, &mut agent, &mut carla).await;
    hub.stop().await;
}

#[tokio::test]
async fn signalling_frames_are_size_limited_and_bad_ones_leave_the_call_up() {
    let hub = TestHub::start().await;
    let (_ann, _room, mut agent, mut carla, _) = customer_room_in_a_call(&hub, "A").await;
    let huge = json!({"type": "signal", "data": {"sdp": "x".repeat(70_000)}});
    agent.send(huge).await;
    assert_eq!(agent.next_of("error").await["code"], "frame_too_large");
    for bad in [
        "{\"type\":\"hang_up\",\"extra\":1}",
        "{\"type\":\"report\",\"connected\":\"yes\",\"camera\":true}",
        "{\"type\":\"dance\"}",
        "not json",
    ] {
        agent.send_raw(bad).await;
        assert_eq!(agent.next_of("error").await["code"], "bad_frame", "{bad}");
    }
    agent.send(json!({"type": "signal", "data": {"ok": 1}})).await;
    assert_eq!(carla.next_of("signal").await["data"], json!({"ok": 1}));
    hub.stop().await;
}

/// A hub that takes the joiner's address from `X-Forwarded-For` sent from loopback (so that
/// one test can join from many addresses), set up further by `tweak`, with ann's `room`.
async fn room_behind_a_proxy(tweak: impl FnOnce(&mut Settings), room: Value) -> (TestHub, Api, String) {
    let hub = TestHub::with(|s| {
        s.access.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        tweak(s);
    })
    .await;
    let (ann, room) = agent_with_room(&hub, "ann", room).await;
    (hub, ann, room)
}

#[tokio::test]
async fn wrong_attempts_lock_the_room_for_that_address_only() {
    let (hub, ann, room) = room_behind_a_proxy(|s| s.rooms.max_attempts = 3, customer_room("A")).await;
    let wrong = json!({"phone": PHONE, "password": "guess"});
    let right = json!({"phone": PHONE, "password": PASSWORD});
    for _ in 0..3 {
        assert_eq!(join_from(&hub, &room, wrong.clone(), Some("198.51.100.7")).await.0, 403);
    }
    let (status, answer) = join_from(&hub, &room, right.clone(), Some("198.51.100.7")).await;
    assert_eq!((status, error_code(&answer)), (429, "room_locked"), "{answer}");
    // Another address is not locked (a wrong password is answered as such; a right one
    // would take the seat, which the last join below needs).
    refusal(
        join_from(&hub, &room, wrong.clone(), Some("198.51.100.8")).await,
        403,
        "wrong_password",
    );
    // A new invitation clears the lock.
    assert_eq!(
        ann.post(&format!("/api/rooms/{room}/invite"), json!({"phone": PHONE}))
            .await
            .0,
        200
    );
    assert_eq!(join_from(&hub, &room, right, Some("198.51.100.7")).await.0, 200);
    hub.stop().await;
}

/// A botnet guessing from many addresses: each stays below the per-address lock, but the
/// room takes only `ROOM_MAX_FAILED_JOINS` wrong attempts in all, then refuses everyone
/// (the right code too) until the host invites again.
#[tokio::test]
async fn wrong_attempts_from_many_addresses_lock_the_room_for_everyone() {
    let sink = SmtpSink::start(free_port()).await;
    let tweak = |s: &mut Settings| {
        s.rooms.max_attempts = 3;
        s.rooms.max_failed_joins = 5;
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{}", sink.port));
    };
    let (hub, ann, room) = room_behind_a_proxy(tweak, guest_room("Guessed")).await;
    let invite = json!({"email": "gus@example.org"});
    assert_eq!(
        ann.post(&format!("/api/rooms/{room}/invite"), invite.clone()).await.0,
        200
    );
    let (code, _) = code_and_link(&sink.unquoted_mails()[0]);
    let guess = |n: u32| json!({"code": format!("{:05}", (code.parse::<u32>().unwrap() + n) % 100_000), "name": "Bot", "email": "bot@example.org"});
    for i in 1..=5u32 {
        let (status, answer) = join_from(&hub, &room, guess(i), Some(&format!("203.0.113.{i}"))).await;
        assert_eq!((status, error_code(&answer)), (403, "wrong_code"), "{answer}");
    }
    let right = json!({"code": code, "name": "Gus", "email": "gus@example.org"});
    let (status, answer) = join_from(&hub, &room, right, Some("198.51.100.20")).await;
    assert_eq!(
        (status, error_code(&answer)),
        (429, "room_locked"),
        "a fresh address with the right code is refused too: {answer}"
    );
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("new invitation"),
        "{answer}"
    );
    // The host invites again: a new code works, from any address.
    assert_eq!(ann.post(&format!("/api/rooms/{room}/invite"), invite).await.0, 200);
    let (code, _) = code_and_link(&sink.unquoted_mails()[1]);
    let right = json!({"code": code, "name": "Gus", "email": "gus@example.org"});
    let (status, answer) = join_from(&hub, &room, right, Some("203.0.113.1")).await;
    assert_eq!(status, 200, "{answer}");
    hub.stop().await;
}

/// Guesses sent all at once from many addresses cannot overrun the room's lock: each
/// attempt is counted before it is checked, so at most `ROOM_MAX_FAILED_JOINS` of them
/// are ever checked (the others are refused as locked, or as busy while they race).
#[tokio::test]
async fn parallel_guesses_cannot_overrun_the_room_lock() {
    let (hub, _ann, room) = room_behind_a_proxy(|s| s.rooms.max_failed_joins = 5, customer_room("Burst")).await;
    let guesses = (0..40).map(|i| {
        let (hub, room) = (&hub, &room);
        async move {
            let guess = json!({"phone": PHONE, "password": format!("guess-{i}")});
            join_from(hub, room, guess, Some(&format!("203.0.113.{i}"))).await
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|(status, _)| *status == 403).count();
    assert!(checked <= 5, "{checked} guesses were checked: {answers:?}");
    for (status, answer) in &answers {
        assert!([403, 429, 503].contains(status), "{answer}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_chat_turns_into_a_video_call_and_its_log_links_the_conversation() {
    let (hub, mut desk) = TestHub::with_agent("ann", &["general"], 1).await;
    let ann = hub.login("ann", "agent-password").await;
    let (mut carla, chat) = hub.paired_customer(&mut desk, "Carla", "general").await;
    // Not a chat of this agent: refused, nothing sent.
    assert_eq!(ann.post("/api/chats/no-such-chat/video", json!({})).await.0, 404);
    let room = ann
        .post_answering(201, &format!("/api/chats/{chat}/video"), json!({}))
        .await;
    let room_id = room["id"].as_str().unwrap();
    let invite = carla.next_of("video_invite").await;
    assert_eq!(
        (invite["chat_id"].as_str(), invite["room_id"].as_str()),
        (Some(chat.as_str()), Some(room_id))
    );
    // One click: the link carries the token, no code.
    let link = invite["link"].as_str().unwrap();
    assert!(link.starts_with(&format!("/room.html?room={room_id}#token=")), "{link}");
    let token = link.split("#token=").nth(1).unwrap();
    let (mut video, welcome) = member(&hub, room_id, token).await;
    assert_eq!(
        (welcome["name"].as_str(), welcome["kind"].as_str()),
        (Some("Carla"), Some("customer"))
    );
    let (mut agent, _) = agent_member(&hub, &ann, room_id).await;
    ring_and_accept(&mut agent, &mut video).await;
    agent.send(json!({"type": "hang_up"})).await;
    video.next_of("call_ended").await;
    let logged = the_one_call_logged(&ann).await;
    assert_eq!(logged["conversation_id"].as_str(), Some(chat.as_str()), "{logged}");
    hub.stop().await;
}

#[tokio::test]
async fn a_call_request_waits_in_the_same_queue_and_tells_the_agent() {
    let hub = TestHub::start().await;
    let token = hub.agent_account("ann", &["general"], 2).await;
    let mut desk = Ws::agent(&hub, &token).await;
    // Queued like anyone while no agent is available, paired by the same rules after.
    let mut vic = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    vic.send(json!({"type": "join", "name": "Vic", "category": "general", "video": true}))
        .await;
    assert_eq!(vic.next_of("queued").await["place"], 1);
    let _tex = hub.customer_queued("Tex", "general", 2).await;
    desk.send(json!({"type": "set_available", "available": true})).await;
    let first = desk.next_of("chat_started").await;
    assert_eq!(
        (first["peer_name"].as_str(), first["video_request"].as_bool()),
        (Some("Vic"), Some(true))
    );
    let second = desk.next_of("chat_started").await;
    assert_eq!(second["peer_name"], "Tex");
    assert!(
        second.get("video_request").is_none(),
        "a text chat says nothing: {second}"
    );
    // The agent answers the request with a room; Vic gets the invitation in the chat.
    let ann = hub.login("ann", "agent-password").await;
    let chat = first["chat_id"].as_str().unwrap();
    assert_eq!(ann.post(&format!("/api/chats/{chat}/video"), json!({})).await.0, 201);
    assert_eq!(vic.next_of("video_invite").await["chat_id"], chat);
    hub.stop().await;
}

#[tokio::test]
async fn the_welcome_hands_out_ice_servers_with_turn_rest_credentials() {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let hub = TestHub::with(|s| {
        s.ice.stun_urls = vec!["stun:127.0.0.1:3478".into()];
        s.ice.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        s.ice.turn_secret = Some(switchboard::config::Secret(b"north-wind-secret".to_vec()));
    })
    .await;
    let (_ann, room) = agent_with_room(&hub, "ann", customer_room("A")).await;
    let (_carla, welcome) = member(
        &hub,
        &room,
        &token(&hub, &room, json!({"phone": PHONE, "password": PASSWORD})).await,
    )
    .await;
    let servers = welcome["ice_servers"].as_array().unwrap();
    assert_eq!(servers[0], json!({"urls": ["stun:127.0.0.1:3478"]}));
    assert_eq!(servers[1]["urls"], json!(["turn:127.0.0.1:3478?transport=udp"]));
    let username = servers[1]["username"].as_str().unwrap();
    let (expiry, person) = username.split_once(':').unwrap();
    assert!(
        person.starts_with("customer-") && person.len() > "customer-".len(),
        "an opaque admission id: {username}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(expiry > now && expiry <= now + 3_600 + 5, "time-limited: {username}");
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(b"north-wind-secret").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(servers[1]["credential"], expected);
    hub.stop().await;
}

#[tokio::test]
async fn signalling_floods_are_rate_limited_and_the_connection_lives_on() {
    let hub = TestHub::start().await;
    let (_ann, _room, mut agent, mut carla, _) = customer_room_in_a_call(&hub, "A").await;
    for i in 0..150 {
        agent.send(json!({"type": "signal", "data": {"candidate": i}})).await;
    }
    let frames = agent.drain().await;
    let limited = frames.iter().filter(|f| f["code"] == "rate_limited").count();
    assert!(limited > 0, "a burst of 150 is over the limit");
    let relayed = carla.drain().await.iter().filter(|f| f["type"] == "signal").count();
    assert_eq!(relayed + limited, 150, "every frame was either relayed or refused");
    // Still open: a ping is answered.
    agent.send(json!({"type": "ping"})).await;
    agent.next_of("pong").await;
    hub.stop().await;
}

/// The lobby asks who is inside with its room token (`peek` as the first frame): the
/// other seat's holder, by name, and whether the asker is in already elsewhere; then a
/// Close 1000. No seat is taken and no one in the room hears of it; a socket without a
/// valid token for the room learns nothing.
#[tokio::test]
async fn the_lobby_learns_who_is_inside_without_taking_a_seat() {
    let hub = TestHub::start().await;
    let (ann, room) = agent_with_room(&hub, "ann", customer_room("Contract")).await;
    let answer = ann
        .post_answering(200, &format!("/api/rooms/{room}/token"), json!({}))
        .await;
    let agent_token = answer["token"].as_str().unwrap().to_string();
    let carla_token = token(
        &hub,
        &room,
        json!({"phone": PHONE, "password": PASSWORD, "name": "Carla"}),
    )
    .await;
    // Nobody in yet.
    let (inside, close) = peek(&hub, &room, &carla_token).await;
    assert_eq!(inside, json!({"type": "room_inside", "peer": null, "elsewhere": false}));
    assert_eq!(close, Some(CloseCode::Normal));
    // The agent is in: the customer's lobby names them.
    let (mut agent, _) = member(&hub, &room, &agent_token).await;
    let (inside, _) = peek(&hub, &room, &carla_token).await;
    assert_eq!(inside["peer"], json!({"name": "ANN", "present": true}), "{inside}");
    assert_eq!(inside["elsewhere"], false);
    // The agent's own second lobby (another tab): they are in already, nobody else is.
    let (inside, _) = peek(&hub, &room, &agent_token).await;
    assert_eq!(
        (inside["peer"].clone(), inside["elsewhere"].clone()),
        (Value::Null, json!(true))
    );
    // Peeking took no seat and told no one: the agent heard nothing, and the customer
    // still comes in with the same token.
    assert!(agent.drain().await.is_empty(), "the agent heard of a peek");
    let _carla = member_as(&hub, &room, &carla_token, "customer").await;
    agent.next_of("peer_joined").await;
    let (inside, _) = peek(&hub, &room, &agent_token).await;
    assert_eq!(inside["peer"], json!({"name": "Carla", "present": true}), "{inside}");
    // No valid token for this room, no names.
    let mut forged = Ws::connect(&room_url(&hub, &room), &[]).await.unwrap();
    forged.send(json!({"type": "peek", "token": "not.a.token"})).await;
    refused(&mut forged, "bad_token", 4400).await;
    let (_bob, other_room) = agent_with_room(&hub, "bob", customer_room("Other")).await;
    let mut wrong = Ws::connect(&room_url(&hub, &other_room), &[]).await.unwrap();
    wrong.send(json!({"type": "peek", "token": carla_token})).await;
    refused(&mut wrong, "wrong_room", 4403).await;
    // Ended: the lobby is told so.
    assert_eq!(ann.delete(&format!("/api/rooms/{room}")).await.0, 200);
    let mut late = Ws::connect(&room_url(&hub, &room), &[]).await.unwrap();
    late.send(json!({"type": "peek", "token": carla_token})).await;
    refused(&mut late, "room_ended", 4410).await;
    hub.stop().await;
}
