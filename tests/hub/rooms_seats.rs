//! Seats and identities in rooms: every admission is its own opaque person, the
//! visitor seat is held by one admission (reserved by the HTTP join for its token's
//! lifetime, then by its connection and grace period), a second admission is refused
//! instead of taking the seat over, credentials carry no address or phone number, and a
//! customer room checks the identity it names.

use base64::Engine;
use serde_json::{Value, json};

use crate::common::*;
use crate::rooms::*;

const EMAIL: &str = "carla@example.org";

/// The payload of a JWT, decoded (base64url, no padding).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).unwrap()
}

/// Neither an address nor the phone's digits anywhere in `text`.
fn assert_no_personal_data(what: &str, text: &str, phone: &str) {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    assert!(!text.contains('@'), "{what} holds an email address: {text}");
    assert!(!text.contains(&digits), "{what} holds the phone number: {text}");
}

#[tokio::test]
async fn a_second_admission_cannot_take_over_the_customers_seat() {
    let hub = TestHub::start().await;
    let (_ann, room, mut agent, mut carla, welcome) = customer_room_with_carla(&hub, "Contract").await;
    let credentials = json!({"phone": PHONE, "password": PASSWORD});
    agent.next_of("peer_joined").await;

    // Someone else with the same phone and password: refused, Carla stays.
    let (status, answer) = join(&hub, &room, credentials.clone()).await;
    assert_eq!((status, error_code(&answer)), (409, "seat_taken"), "{answer}");
    carla.send(json!({"type": "ping"})).await;
    carla.next_of("pong").await;
    let seen: Vec<Value> = agent.drain().await;
    assert!(
        seen.iter()
            .all(|f| f["type"] != "peer_left" && f["type"] != "peer_joined"),
        "{seen:?}"
    );

    // Carla's connection drops: within the grace period her seat still waits for her.
    drop(carla);
    agent.next_of("peer_away").await;
    refusal(join(&hub, &room, credentials.clone()).await, 409, "seat_taken");
    // Her own admission comes back with the welcome's token: not a takeover.
    let (carla, back) = member(&hub, &room, welcome["token"].as_str().unwrap()).await;
    agent.next_of("peer_back").await;
    assert_eq!(
        claims_of(back["token"].as_str().unwrap())["sub"],
        claims_of(welcome["token"].as_str().unwrap())["sub"],
        "the same admission"
    );

    // Gone past the grace period: the seat changes hands, and the agent is told.
    drop(carla);
    agent.next_of("peer_away").await;
    agent.next_of("peer_left").await;
    let second = token(&hub, &room, credentials).await;
    assert_ne!(
        claims_of(&second)["sub"],
        claims_of(welcome["token"].as_str().unwrap())["sub"],
        "every admission is its own person"
    );
    let (_other, _) = member(&hub, &room, &second).await;
    assert_eq!(agent.next_of("peer_joined").await["peer"]["kind"], "customer");
    hub.stop().await;
}

#[tokio::test]
async fn the_http_join_reserves_the_seat_for_its_token() {
    let hub = TestHub::start().await;
    let (_ann, room) = agent_with_room(&hub, "ann", guest_room("Open house")).await;
    let gus = json!({"name": "Gus", "email": "gus@example.org", "password": PASSWORD});
    let gus_token = token(&hub, &room, gus.clone()).await;
    // Nobody is connected yet, but Gus holds a token: the seat is his.
    let pia = json!({"name": "Pia", "phone": "+441234567890", "password": PASSWORD});
    let (status, answer) = join(&hub, &room, pia).await;
    assert_eq!((status, error_code(&answer)), (409, "room_full"), "{answer}");
    // Gus again (another device): a second admission too.
    let (status, answer) = join(&hub, &room, gus).await;
    assert_eq!((status, error_code(&answer)), (409, "room_full"), "{answer}");
    let _gus = member_as(&hub, &room, &gus_token, "guest").await;
    hub.stop().await;
}

#[tokio::test]
async fn a_customer_seat_reserved_by_a_join_is_refused_to_a_second_join() {
    let hub = TestHub::start().await;
    let (_ann, room) = agent_with_room(&hub, "ann", customer_room("Contract")).await;
    let credentials = json!({"phone": PHONE, "password": PASSWORD});
    let first = token(&hub, &room, credentials.clone()).await;
    let (status, answer) = join(&hub, &room, credentials).await;
    assert_eq!((status, error_code(&answer)), (409, "seat_taken"), "{answer}");
    let (_carla, _) = member(&hub, &room, &first).await;
    hub.stop().await;
}

#[tokio::test]
async fn room_tokens_and_turn_usernames_carry_no_address_or_phone() {
    let hub = TestHub::with(|s| {
        s.ice.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        s.ice.turn_secret = Some(switchboard::config::Secret(b"north-wind-secret".to_vec()));
    })
    .await;
    let (_ann, customer) = agent_with_room(
        &hub,
        "ann",
        json!({"title": "Contract", "audience": "customer", "phone": PHONE, "email": EMAIL, "password": PASSWORD}),
    )
    .await;
    let (_bob, guests) = agent_with_room(&hub, "bob", guest_room("Open house")).await;
    let guest_phone = "+441234567890";
    let joins = [
        (
            customer.clone(),
            json!({"phone": PHONE, "email": EMAIL, "password": PASSWORD}),
            PHONE,
        ),
        (
            guests.clone(),
            json!({"name": "Gus", "email": "gus@example.org", "phone": guest_phone, "password": PASSWORD}),
            guest_phone,
        ),
    ];
    for (room, body, phone) in joins {
        let issued = token(&hub, &room, body).await;
        assert_no_personal_data("the join's token", &claims_of(&issued).to_string(), phone);
        let (_ws, welcome) = member(&hub, &room, &issued).await;
        let fresh = welcome["token"].as_str().unwrap();
        assert_no_personal_data("the welcome's token", &claims_of(fresh).to_string(), phone);
        let username = welcome["ice_servers"][0]["username"].as_str().unwrap();
        assert_no_personal_data("the TURN username", username, phone);
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_customer_room_names_its_customer_and_the_join_checks_it() {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &["general"], 1).await;
    let ann = hub.login("ann", "agent-password").await;
    let (status, answer) = ann
        .post(
            "/api/rooms",
            json!({"title": "Nobody", "audience": "customer", "password": PASSWORD}),
        )
        .await;
    assert_eq!((status, error_code(&answer)), (400, "missing_customer"), "{answer}");
    let answer = ann
        .post_answering(
            201,
            "/api/rooms",
            json!({"title": "By mail", "audience": "customer", "email": EMAIL, "password": PASSWORD}),
        )
        .await;
    let room = answer["id"].as_str().unwrap().to_string();
    let info: Value = get_json(&hub, &format!("/api/join/{room}")).await;
    assert_eq!(info["asks_email"], true, "{info}");
    // The password alone, or with another address, does not admit.
    let (status, answer) = join(&hub, &room, json!({"password": PASSWORD})).await;
    assert_eq!((status, error_code(&answer)), (403, "wrong_email"), "{answer}");
    let (status, answer) = join(
        &hub,
        &room,
        json!({"email": "mallory@example.org", "password": PASSWORD}),
    )
    .await;
    assert_eq!((status, error_code(&answer)), (403, "wrong_email"), "{answer}");
    let (status, answer) = join(&hub, &room, json!({"email": "Carla@Example.org", "password": PASSWORD})).await;
    assert_eq!(status, 200, "the named address, in any case: {answer}");
    hub.stop().await;
}

#[tokio::test]
async fn the_openapi_puts_the_room_token_in_the_first_frame_not_the_url() {
    let hub = TestHub::start().await;
    let doc: Value = get_json(&hub, "/api/openapi.json").await;
    for schema in ["RoomToken", "JoinedRoom"] {
        let description = doc["components"]["schemas"][schema]["properties"]["token"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!description.contains("token=<"), "{schema}: {description}");
        assert!(description.contains("first frame"), "{schema}: {description}");
    }
    hub.stop().await;
}

/// The visitor is told `room_ended` and joins again at once: the answer is the room's end,
/// never its seat (the seat's holder is gone with the room). On MongoDB, whose writes take
/// longer than the frame takes to arrive, so the store lags the live room if it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_sent_as_the_room_ends_is_told_the_room_ended() {
    let store = crate::archive::mongo_store(&crate::archive::mongo_uri()).await;
    let hub = TestHub::with_store(store, |_| {}).await;
    let credentials = json!({"phone": PHONE, "password": PASSWORD});
    for i in 0..5 {
        let (_, room, mut agent, _) =
            agent_in_own_room(&hub, &format!("ann{i}"), customer_room(&format!("Contract {i}"))).await;
        let (mut carla, _) = member(&hub, &room, &token(&hub, &room, credentials.clone()).await).await;
        agent.next_of("peer_joined").await;
        agent.send(json!({"type": "end_room"})).await;
        carla.next_of("room_ended").await;
        let (status, answer) = join(&hub, &room, credentials.clone()).await;
        assert_eq!((status, error_code(&answer)), (410, "room_ended"), "try {i}: {answer}");
    }
    hub.stop().await;
}
