//! Leaving is not ending: a member who leaves frees their seat and may come back while
//! the room is open; only the host (the agent) ends the room for everyone. A new
//! admission taking the customer's seat after the first left is a change of hands the
//! agent is told of, by an opaque admission id. Being in a meeting is being in its call:
//! it starts when both are in and again after a leave, with nothing to ring or accept.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;
use crate::rooms::*;

/// The stored room's state (`open` or `ended`) once it is `want`, or the last one seen.
async fn room_state(api: &Api, room: &str, want: &str) -> Value {
    let mut state = Value::Null;
    for _ in 0..100 {
        state = api.get(&format!("/api/rooms/{room}")).await.1["state"].clone();
        if state == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state
}

#[tokio::test]
async fn a_member_who_leaves_can_come_back_and_the_room_stays_open() {
    let hub = TestHub::start().await;
    let (ann, room, mut agent, _) = agent_in_own_room(&hub, "ann", customer_room("Contract")).await;
    let credentials = json!({"phone": PHONE, "password": PASSWORD, "name": "Carla"});
    let (mut carla, welcome) = member(&hub, &room, &token(&hub, &room, credentials).await).await;
    let joined = agent.next_of("peer_joined").await;
    let admission = joined["peer"]["admission"].as_str().unwrap().to_string();
    assert!(admission.starts_with("customer:"), "{joined}");
    assert_eq!(joined["changed_hands"], false);
    call(&mut agent, &mut carla).await;

    // Carla leaves: she is told and closed (1000); the agent's call ends and her seat is
    // free; the room is not ended.
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("left").await;
    assert_eq!(carla.closed().await, Some(CloseCode::Normal));
    let end = agent.next_of("call_ended").await;
    assert_eq!(
        (end["by"].as_str(), end["reason"].as_str()),
        (Some("customer"), Some("peer_left"))
    );
    agent.next_of("peer_left").await;
    assert_eq!(room_state(&ann, &room, "open").await, "open");
    agent.send(json!({"type": "ping"})).await;
    agent.next_of("pong").await;

    // She comes back with her welcome's token: the same admission, no change of hands,
    // and a call works again.
    let (mut carla, _) = member(&hub, &room, welcome["token"].as_str().unwrap()).await;
    let back = agent.next_of("peer_joined").await;
    assert_eq!(back["peer"]["admission"], admission.as_str());
    assert_eq!(back["changed_hands"], false);
    call(&mut agent, &mut carla).await;
    hub.stop().await;
}

#[tokio::test]
async fn only_the_host_ends_the_room_for_everyone() {
    let hub = TestHub::start().await;
    let (ann, room, mut agent, mut carla, welcome) = customer_room_in_a_call(&hub, "Contract").await;

    // The customer cannot end it: refused, nothing changes.
    carla.send(json!({"type": "end_room"})).await;
    assert_eq!(carla.next_of("error").await["code"], "not_host");
    carla.send(json!({"type": "signal", "data": {"probe": 1}})).await;
    assert_eq!(agent.next_of("signal").await["data"]["probe"], 1);
    assert_eq!(room_state(&ann, &room, "open").await, "open");

    // The host ends it: both get the call's end and `room_ended`, then a Close 1000; the
    // stored room is ended, and a token for it is refused.
    agent.send(json!({"type": "end_room"})).await;
    for ws in [&mut agent, &mut carla] {
        let end = ws.next_of("call_ended").await;
        assert_eq!(end["reason"], "room_ended");
        assert_eq!(ws.next_of("room_ended").await["by"], "agent");
        assert_eq!(ws.closed().await, Some(CloseCode::Normal));
    }
    assert_eq!(room_state(&ann, &room, "ended").await, "ended");
    let mut late = open(&hub, &room, welcome["token"].as_str().unwrap()).await;
    refused(&mut late, "room_ended", 4410).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_new_admission_after_a_leave_takes_the_seat_and_the_agent_is_told() {
    let hub = TestHub::start().await;
    let (_ann, room, mut agent, mut carla, _) = customer_room_with_carla(&hub, "Contract").await;
    let credentials = json!({"phone": PHONE, "password": PASSWORD});
    let first = agent.next_of("peer_joined").await["peer"]["admission"].clone();

    // While she is in, a second join is refused; once she left, it is let in at once.
    refusal(join(&hub, &room, credentials.clone()).await, 409, "seat_taken");
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("left").await;
    agent.next_of("peer_left").await;
    let (_other, _) = member(&hub, &room, &token(&hub, &room, credentials).await).await;
    let joined = agent.next_of("peer_joined").await;
    assert_eq!(joined["changed_hands"], true, "{joined}");
    let second = joined["peer"]["admission"].as_str().unwrap();
    assert_ne!(second, first.as_str().unwrap());
    assert!(!second.contains('@') && !second.contains("4915"), "opaque: {second}");
    hub.stop().await;
}

#[tokio::test]
async fn the_agent_leaves_and_comes_back_to_the_open_room() {
    let hub = TestHub::start().await;
    let (ann, room, mut agent, _) = agent_in_own_room(&hub, "ann", guest_room("Open house")).await;
    let (mut gus, _) = member(
        &hub,
        &room,
        &token(
            &hub,
            &room,
            json!({"name": "Gus", "email": "gus@example.org", "password": PASSWORD}),
        )
        .await,
    )
    .await;
    agent.next_of("peer_joined").await;
    agent.send(json!({"type": "leave"})).await;
    agent.next_of("left").await;
    assert_eq!(agent.closed().await, Some(CloseCode::Normal));
    gus.next_of("peer_left").await;
    assert_eq!(room_state(&ann, &room, "open").await, "open");
    let (mut agent, welcome) = agent_member(&hub, &ann, &room).await;
    assert_eq!(welcome["peer"]["name"], "Gus");
    assert_eq!(gus.next_of("peer_joined").await["peer"]["kind"], "agent");
    call(&mut agent, &mut gus).await;
    hub.stop().await;
}

/// A reload or a dropped connection within the grace period keeps the call: the
/// welcome says `active`, the other side hears `peer_back` (also when the new connection
/// comes before the old one is known closed, as a fast reload does) and signalling flows
/// again at once, with no new `start_call` or `accept_call`.
#[tokio::test]
async fn a_reconnect_keeps_the_call_and_tells_the_other_side_even_before_the_old_socket_closes() {
    let hub = TestHub::start().await;
    let (_ann, room, mut agent, carla, welcome) = customer_room_in_a_call(&hub, "Contract").await;

    // A dropped connection: away, then back into the same call.
    drop(carla);
    agent.next_of("peer_away").await;
    let (mut carla, back) = member(&hub, &room, welcome["token"].as_str().unwrap()).await;
    assert_eq!(back["call"], "active", "{back}");
    agent.next_of("peer_back").await;
    carla.send(json!({"type": "signal", "data": {"offer": 1}})).await;
    assert_eq!(agent.next_of("signal").await["data"]["offer"], 1);

    // A fast reload: the new socket comes while the old one is still open. The old one is
    // replaced (4000), the agent still hears `peer_back`, and the call goes on.
    let (mut reloaded, again) = member(&hub, &room, back["token"].as_str().unwrap()).await;
    assert_eq!(again["call"], "active");
    assert_eq!(carla.closed().await, Some(CloseCode::from(4000)));
    agent.next_of("peer_back").await;
    agent.send(json!({"type": "signal", "data": {"answer": 1}})).await;
    assert_eq!(reloaded.next_of("signal").await["data"]["answer"], 1);
    hub.stop().await;
}

/// A meeting (a room not opened from a chat) starts its call by itself once both are in,
/// and again each time one comes back after leaving, with no `start_call` or
/// `accept_call`; ringing, accepting, declining and hanging up are refused there
/// (`automatic_call`). Each stretch with both in is a call in the log.
#[tokio::test]
async fn a_meeting_is_in_its_call_as_soon_as_both_are_in_and_again_after_a_leave() {
    let hub = TestHub::start().await;
    let (ann, room, mut agent, welcome) = agent_in_own_room(&hub, "ann", customer_room("Contract")).await;
    assert_eq!(
        (welcome["call_mode"].as_str(), welcome["call"].as_str()),
        (Some("auto"), Some("idle"))
    );
    // Alone, nothing starts.
    assert!(agent.drain().await.iter().all(|f| f["type"] != "call_started"));
    let credentials = json!({"phone": PHONE, "password": PASSWORD, "name": "Carla"});
    let mut carla = open(&hub, &room, &token(&hub, &room, credentials).await).await;
    // Carla finds no call in her welcome, and the call starts right after it.
    let welcome = carla.recv_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (welcome["type"].as_str(), welcome["call"].as_str()),
        (Some("room_welcome"), Some("idle"))
    );
    assert_eq!(welcome["call_mode"], "auto");
    let next = carla.recv_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (next["type"].as_str(), next["polite"].as_bool()),
        (Some("call_started"), Some(true)),
        "{next}"
    );
    // The agent hears who came, then the call.
    let joined = agent.recv_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(joined["type"], "peer_joined");
    let started = agent.recv_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (started["type"].as_str(), started["polite"].as_bool()),
        (Some("call_started"), Some(false))
    );
    // Signalling flows at once; nothing here rings or hangs up.
    agent.send(json!({"type": "signal", "data": {"offer": 1}})).await;
    assert_eq!(carla.next_of("signal").await["data"]["offer"], 1);
    for frame in ["start_call", "accept_call", "reject_call", "hang_up"] {
        carla.send(json!({"type": frame})).await;
        assert_eq!(carla.next_of("error").await["code"], "automatic_call", "{frame}");
    }
    agent.send(json!({"type": "hang_up"})).await;
    assert_eq!(agent.next_of("error").await["code"], "automatic_call");
    for ws in [&mut agent, &mut carla] {
        ws.send(json!({"type": "report", "connected": true, "camera": true}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    // Carla leaves: the agent's call ends, and comes back with her, unasked.
    carla.send(json!({"type": "leave"})).await;
    let welcome_token = welcome["token"].as_str().unwrap().to_string();
    carla.next_of("left").await;
    assert_eq!(agent.next_of("call_ended").await["reason"], "peer_left");
    agent.next_of("peer_left").await;
    let (mut carla, _) = member(&hub, &room, &welcome_token).await;
    agent.next_of("peer_joined").await;
    call(&mut agent, &mut carla).await;
    carla.send(json!({"type": "signal", "data": {"answer": 1}})).await;
    assert_eq!(agent.next_of("signal").await["data"]["answer"], 1);

    // The agent leaves and comes back: the same.
    agent.send(json!({"type": "leave"})).await;
    agent.next_of("left").await;
    assert_eq!(carla.next_of("call_ended").await["reason"], "peer_left");
    carla.next_of("peer_left").await;
    let (mut agent, welcome) = agent_member(&hub, &ann, &room).await;
    assert_eq!(welcome["call"], "idle");
    carla.next_of("peer_joined").await;
    call(&mut agent, &mut carla).await;

    // Two calls ended (one at each leave) are in the log, the first one reported.
    let mut page = Value::Null;
    for _ in 0..100 {
        page = ann.get("/api/calls").await.1;
        if page["total"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(page["total"], 2, "{page}");
    let first = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["length_secs"].as_u64() >= Some(1));
    assert!(first.is_some(), "{page}");
    hub.stop().await;
}
