//! An appointment's room (issue 17): the representative starts it within the window, the
//! customer joins it with the appointment link's token, and both reach the room and a call.

use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::common::*;

fn day_in(days: i64) -> String {
    (Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date() + days.days()).to_string()
}

async fn post(hub: &TestHub, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(hub.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Books the first free slot `days` from today for `name`; the answer.
async fn book_first_slot(hub: &TestHub, days: i64, name: &str) -> Value {
    let day: Value = reqwest::get(hub.url(&format!("/api/appointments/slots?date={}", day_in(days))))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let start = day["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["free"] == true)
        .expect("a free slot")["start"]
        .clone();
    let (status, booked) = post(
        hub,
        "/api/appointments",
        json!({"start": start, "name": name, "email": format!("{}@example.com", name.to_lowercase())}),
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    booked
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no code)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_representative_starts_and_both_sides_reach_the_room() {
    let hub = TestHub::with(|s| {
        s.appointment_min_notice = Duration::ZERO;
        // Tomorrow's slots are inside the window, those of a week ahead are not.
        s.appointment_start_window = Duration::from_secs(2 * 86_400);
    })
    .await;
    let ann = hub.agent_account("ann", &[], 1).await;
    let ann = Api {
        client: reqwest::Client::new(),
        base: hub.url(""),
        token: ann,
    };
    let bearer = |api: &Api, path: &str| {
        api.client
            .post(format!("{}{path}", api.base))
            .bearer_auth(&api.token)
            .json(&json!({}))
            .send()
    };
    // Booked while ann is the only representative, so all three are hers.
    let booked = book_first_slot(&hub, 1, "Carla").await;
    let later = book_first_slot(&hub, 7, "Dora").await;
    let gone = book_first_slot(&hub, 1, "Erik").await;
    let (id, token) = (booked["id"].as_str().unwrap(), booked["cancel_token"].as_str().unwrap());

    // Before the start: the customer waits.
    let (status, early) = post(&hub, "/api/appointments/join", json!({"token": token})).await;
    assert_eq!((status, code(&early)), (409, "not_started"), "{early}");
    let (status, bad) = post(&hub, "/api/appointments/join", json!({"token": "nope"})).await;
    assert_eq!((status, code(&bad)), (404, "unknown_token"), "{bad}");

    // Another agent cannot start it; its representative can, twice to the same room.
    let bob = hub.agent_account("bob", &[], 1).await;
    let bob = Api {
        client: reqwest::Client::new(),
        base: hub.url(""),
        token: bob,
    };
    let res = bearer(&bob, &format!("/api/agent/appointments/{id}/start"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = bearer(&ann, &format!("/api/agent/appointments/{id}/start"))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    let room = started["room_id"].as_str().unwrap().to_string();
    let res = bearer(&ann, &format!("/api/agent/appointments/{id}/start"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["room_id"], room.as_str());

    // The customer joins with the link's token; the agent with a room token of their own.
    let (status, joined) = post(&hub, "/api/appointments/join", json!({"token": token})).await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["room_id"], room.as_str());
    assert!(
        joined["link"]
            .as_str()
            .unwrap()
            .starts_with(&format!("/room.html?room={room}#token="))
    );
    let res = bearer(&ann, &format!("/api/rooms/{room}/token")).await.unwrap();
    assert_eq!(res.status(), 200);
    let agent_token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The room socket takes its token in the first frame (URLs are logged).
    let mut agent = crate::rooms::open(&hub, &room, &agent_token).await;
    agent.next_of("room_welcome").await;
    let mut customer = crate::rooms::open(&hub, &room, joined["token"].as_str().unwrap()).await;
    customer.next_of("room_welcome").await;
    agent.send(json!({"type": "start_call"})).await;
    customer.next_of("call_incoming").await;
    customer.send(json!({"type": "accept_call"})).await;
    agent.next_of("call_started").await;
    customer.next_of("call_started").await;

    // Out of the window, and cancelled, it cannot be started.
    let res = bearer(
        &ann,
        &format!("/api/agent/appointments/{}/start", later["id"].as_str().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(code(&res.json().await.unwrap()), "not_startable");
    let (status, _) = post(&hub, "/api/appointments/cancel", json!({"token": gone["cancel_token"]})).await;
    assert_eq!(status, 200);
    let res = bearer(
        &ann,
        &format!("/api/agent/appointments/{}/start", gone["id"].as_str().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(code(&res.json().await.unwrap()), "appointment_cancelled");
    hub.stop().await;
}
