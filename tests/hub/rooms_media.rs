//! `media` / `peer_media`: a member's microphone and camera state reaches the other
//! member as it changes, on one node and across nodes; the hub keeps none of it and
//! never echoes it.

use serde_json::{Value, json};

use crate::common::*;
use crate::rooms::{PASSWORD, PHONE, agent_in_own_room, call, customer_room, guest_room, member, token};
use crate::rooms_cluster::{Pair, pair};

fn media(mic: bool, camera: bool) -> Value {
    json!({"type": "media", "mic": mic, "camera": camera})
}

fn state(frame: &Value) -> (Value, Value) {
    (frame["mic"].clone(), frame["camera"].clone())
}

#[tokio::test]
async fn each_members_mic_and_camera_reach_the_other_and_never_come_back() {
    let hub = TestHub::start().await;
    let (_, room, mut agent, _) = agent_in_own_room(&hub, "ann", customer_room("Media")).await;
    // Alone in the room: nobody to tell, and no error either.
    agent.send(media(true, true)).await;
    assert!(agent.drain().await.is_empty(), "no echo, no error");

    let carla_token = token(
        &hub,
        &room,
        json!({"phone": PHONE, "password": PASSWORD, "name": "Carla"}),
    )
    .await;
    let (mut carla, _) = member(&hub, &room, &carla_token).await;
    agent.next_of("peer_joined").await;
    // The customer joined with the camera off (a meeting's call starts as she comes in).
    call(&mut agent, &mut carla).await;
    carla.send(media(true, false)).await;
    let got = agent.next_of("peer_media").await;
    assert_eq!(state(&got), (json!(true), json!(false)), "{got}");
    assert_eq!(got.as_object().unwrap().len(), 3, "type, mic, camera only: {got}");
    // In the call: the agent mutes; the customer turns the camera on.
    agent.send(media(false, true)).await;
    assert_eq!(state(&carla.next_of("peer_media").await), (json!(false), json!(true)));
    carla.send(media(true, true)).await;
    assert_eq!(state(&agent.next_of("peer_media").await), (json!(true), json!(true)));
    // Never echoed to the sender.
    assert!(
        agent.drain().await.iter().all(|f| f["type"] != "peer_media"),
        "the agent's own state came back"
    );
    // Both fields are required booleans; nothing else is accepted.
    for bad in [
        "{\"type\":\"media\",\"mic\":\"off\",\"camera\":true}",
        "{\"type\":\"media\",\"mic\":true}",
        "{\"type\":\"media\",\"mic\":true,\"camera\":true,\"screen\":true}",
    ] {
        carla.send_raw(bad).await;
        assert_eq!(carla.next_of("error").await["code"], "bad_frame", "{bad}");
    }
    assert!(agent.drain().await.iter().all(|f| f["type"] != "peer_media"));
    hub.stop().await;
}

#[tokio::test]
async fn mic_and_camera_state_crosses_nodes_both_ways() {
    // Redis is bound and dropped at the end: the server stops when its handle is dropped.
    let Pair { alpha, beta, redis, .. } = pair().await;
    let (_, room, mut agent, _) = agent_in_own_room(&alpha, "ann", guest_room("Across")).await;
    let gus_token = token(
        &beta,
        &room,
        json!({"name": "Gus", "email": "gus@example.org", "password": PASSWORD}),
    )
    .await;
    let (mut gus, _) = member(&beta, &room, &gus_token).await;
    agent.next_of("peer_joined").await;
    gus.send(media(false, false)).await;
    assert_eq!(state(&agent.next_of("peer_media").await), (json!(false), json!(false)));
    agent.send(media(true, false)).await;
    assert_eq!(state(&gus.next_of("peer_media").await), (json!(true), json!(false)));
    alpha.stop().await;
    beta.stop().await;
    drop(redis);
}
