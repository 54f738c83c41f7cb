//! An appointment's room: the representative starts it within the window, the
//! customer joins it with the appointment link's token, and both reach the room and a call.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::common::*;

/// Books the first free slot `days` from today for `name`; the answer.
async fn book_first_slot(hub: &TestHub, days: i64, name: &str) -> Value {
    let (_, day) = get(hub, &format!("/api/appointments/slots?date={}", day_in(days))).await;
    let start = free_starts(&day).into_iter().next().expect("a free slot");
    let (status, booked) = post(
        hub,
        "/api/appointments",
        json!({"start": start, "name": name, "email": format!("{}@example.com", name.to_lowercase())}),
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    booked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_representative_starts_and_both_sides_reach_the_room() {
    let hub = TestHub::with(|s| {
        s.appointments.min_notice = Duration::ZERO;
        // Tomorrow's slots are inside the window, those of a week ahead are not.
        s.appointments.start_window = Duration::from_secs(2 * 86_400);
    })
    .await;
    let ann = hub.agent_account("ann", &[], 1).await;
    let ann = Api::bearer(&hub, &ann);
    // Booked while ann is the only representative, so all three are hers.
    let booked = book_first_slot(&hub, 1, "Carla").await;
    let later = book_first_slot(&hub, 7, "Dora").await;
    let gone = book_first_slot(&hub, 1, "Erik").await;
    let (id, token) = (booked["id"].as_str().unwrap(), booked["cancel_token"].as_str().unwrap());

    // Before the start: the customer waits.
    let (status, early) = post(&hub, "/api/appointments/join", json!({"token": token})).await;
    assert_eq!((status, error_code(&early)), (409, "not_started"), "{early}");
    let (status, bad) = post(&hub, "/api/appointments/join", json!({"token": "nope"})).await;
    assert_eq!((status, error_code(&bad)), (404, "unknown_token"), "{bad}");

    // Another agent cannot start it; its representative can, twice to the same room.
    let bob = hub.agent_account("bob", &[], 1).await;
    let bob = Api::bearer(&hub, &bob);
    let start = |id: &str| format!("/api/agent/appointments/{id}/start");
    let (status, _) = bob.post(&start(id), json!({})).await;
    assert_eq!(status, 404);
    let started = ann.post_answering(201, &start(id), json!({})).await;
    let room = started["room_id"].as_str().unwrap().to_string();
    let again = ann.post_answering(200, &start(id), json!({})).await;
    assert_eq!(again["room_id"], room.as_str());

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
    let agent_token = ann
        .post_answering(200, &format!("/api/rooms/{room}/token"), json!({}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The room socket takes its token in the first frame (URLs are logged).
    let mut agent = crate::rooms::open(&hub, &room, &agent_token).await;
    agent.next_of("room_welcome").await;
    let mut customer = crate::rooms::open(&hub, &room, joined["token"].as_str().unwrap()).await;
    customer.next_of("room_welcome").await;
    // A meeting: in the room is in the call, nothing rings.
    agent.next_of("call_started").await;
    customer.next_of("call_started").await;

    // Out of the window, and cancelled, it cannot be started.
    let refused = ann
        .post_answering(409, &start(later["id"].as_str().unwrap()), json!({}))
        .await;
    assert_eq!(error_code(&refused), "not_startable");
    let (status, _) = post(&hub, "/api/appointments/cancel", json!({"token": gone["cancel_token"]})).await;
    assert_eq!(status, 200);
    let refused = ann
        .post_answering(409, &start(gone["id"].as_str().unwrap()), json!({}))
        .await;
    assert_eq!(error_code(&refused), "appointment_cancelled");
    hub.stop().await;
}

/// A hub whose appointments may be started from `start_window` before their start, their
/// rooms kept 15 minutes past their end, and Ann, a representative: the hub, Ann signed in
/// and her account id.
async fn ann_representing(start_window: Duration) -> (TestHub, Api, String) {
    let hub = TestHub::with(|s| {
        s.appointments.start_window = start_window;
        s.appointments.room_grace = Duration::from_secs(15 * 60);
    })
    .await;
    hub.agent_account("ann", &[], 1).await;
    let ann = hub.login("ann", "agent-password").await;
    let rep = hub.admin().await.agent_id("ann").await;
    (hub, ann, rep)
}

/// An appointment of `rep`'s stored directly, from `start_min` to `end_min` minutes from
/// now (past ones too, which booking refuses); its link's token.
async fn stored_appointment(hub: &TestHub, rep: &str, id: &str, start_min: i64, end_min: i64) -> String {
    let now = switchboard::clock::now_ms();
    let token = format!("token-of-{id}");
    hub.store
        .book_appointment(switchboard::store::Appointment {
            id: id.into(),
            start: now + start_min * 60_000,
            end: now + end_min * 60_000,
            representative_id: rep.into(),
            category: None,
            name: "Carla".into(),
            email: "carla@example.com".into(),
            comment: String::new(),
            status: switchboard::store::AppointmentStatus::Booked,
            cancel_token_hash: switchboard::auth::session_id(&token),
            created_at: now,
            cancelled_at: None,
            sequence: 0,
            customer_zone: None,
            customer_hour12: false,
            cancel_reason: None,
        })
        .await
        .unwrap();
    token
}

/// The waiting room, then a room that outlives a leave: a customer who comes early is
/// told whom they wait for and shows as waiting; once started, a leave does not end the
/// room, "Start" and "Join" work again; only the host's end does. A slot that is over
/// still takes joins for the grace; past it, the room closes by itself and does not stand
/// in the way of the representative's next room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_customer_waits_and_the_room_outlives_a_leave_until_its_slot_and_grace() {
    let (hub, ann, rep) = ann_representing(Duration::from_secs(2 * 3_600)).await;
    let soon = stored_appointment(&hub, &rep, "soon", 30, 90).await;
    let status_of = |token: &str| {
        let url = hub.url(&format!("/api/appointments/room?token={token}"));
        async move { reqwest::get(url).await.unwrap().json::<Value>().await.unwrap() }
    };

    // Early: waiting, told whom for; the representative sees them waiting. The answer
    // carries the server's clock, which a page compares `joinable_from` with.
    let asked = switchboard::clock::now_ms();
    let waiting = status_of(&soon).await;
    let now = waiting["now"].as_i64().unwrap_or_else(|| panic!("{waiting}"));
    assert!(
        (asked..=switchboard::clock::now_ms()).contains(&now),
        "{now} not within the ask"
    );
    assert_eq!(
        (waiting["state"].as_str(), waiting["representative"].as_str()),
        (Some("waiting"), Some("ANN"))
    );
    let (status, early) = post(&hub, "/api/appointments/join", json!({"token": soon})).await;
    assert_eq!((status, error_code(&early)), (409, "not_started"), "{early}");
    let message = early["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("your call with ANN starts at") && message.contains("let in when ANN joins"),
        "{message}"
    );
    let day = |list: Value| {
        list["appointments"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .find(|a| a["id"] == "soon")
            .cloned()
    };
    let soon_day = Timestamp::from_millisecond(waiting["start"].as_i64().unwrap())
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let (_, list) = ann.get(&format!("/api/agent/appointments?date={soon_day}")).await;
    let listed = day(list.clone()).unwrap_or_else(|| panic!("{list}"));
    assert!(listed["waiting_since"].as_i64().is_some(), "{listed}");

    // Started: open; the customer is let in and off the waiting list.
    let start = |id: &'static str| {
        let api = &ann;
        async move {
            api.post(&format!("/api/agent/appointments/{id}/start"), json!({}))
                .await
        }
    };
    assert_eq!(start("soon").await.0, 201);
    assert_eq!(status_of(&soon).await["state"], "open");
    let (status, joined) = post(&hub, "/api/appointments/join", json!({"token": soon})).await;
    assert_eq!(status, 200, "{joined}");
    let listed = day(ann.get(&format!("/api/agent/appointments?date={soon_day}")).await.1).unwrap();
    assert!(listed["waiting_since"].is_null(), "{listed}");
    let room = joined["room_id"].as_str().unwrap().to_string();
    let (mut customer, _) = crate::rooms::member(&hub, &room, joined["token"].as_str().unwrap()).await;
    let (mut agent, _) = crate::rooms::agent_member(&hub, &ann, &room).await;

    // Both leave: the room stays open; "Start" and "Join" work again.
    customer.send(json!({"type": "leave"})).await;
    customer.next_of("left").await;
    agent.send(json!({"type": "leave"})).await;
    agent.next_of("left").await;
    assert_eq!(start("soon").await.0, 200);
    let (status, again) = post(&hub, "/api/appointments/join", json!({"token": soon})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["room_id"], room.as_str());

    // The host ends it: over for good.
    let (mut agent, _) = crate::rooms::agent_member(&hub, &ann, &room).await;
    agent.send(json!({"type": "end_room"})).await;
    agent.next_of("room_ended").await;
    let mut ended = (0, Value::Null);
    for _ in 0..100 {
        ended = start("soon").await;
        if error_code(&ended.1) == "room_ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((ended.0, error_code(&ended.1)), (409, "room_ended"), "{}", ended.1);

    // A slot over five minutes ago: still open for the grace, to start and to join.
    let late = stored_appointment(&hub, &rep, "late", -50, -5).await;
    let (status, started) = start("late").await;
    assert_eq!(status, 201, "{started}");
    let (status, joined) = post(&hub, "/api/appointments/join", json!({"token": late})).await;
    assert_eq!(status, 200, "{joined}");
    // Its grace runs out (moved into the past here): no more joins, and the room, closed
    // by itself, lets the representative open another.
    let late_room = joined["room_id"].as_str().unwrap().to_string();
    let mut stored = hub.store.room(&late_room).await.unwrap();
    stored.open_until = Some(switchboard::clock::now_ms() - 1);
    hub.store.update_room(stored).await.unwrap();
    let (status, refused) = post(&hub, "/api/appointments/join", json!({"token": late})).await;
    assert_eq!((status, error_code(&refused)), (409, "room_ended"), "{refused}");
    ann.post_answering(201, "/api/rooms", crate::rooms::customer_room("Next"))
        .await;

    // A slot whose grace is over before anyone started it: it cannot be started.
    let over = stored_appointment(&hub, &rep, "over", -140, -80).await;
    let (status, refused) = start("over").await;
    assert_eq!((status, error_code(&refused)), (409, "room_ended"), "{refused}");
    assert_eq!(status_of(&over).await["state"], "ended");
    hub.stop().await;
}

/// One rule for `startable` and for starting: an appointment its representative is late
/// for (past the start window, still within its slot and the room's grace) is listed
/// `startable` and starts; one too early is neither.
#[tokio::test]
async fn an_appointment_listed_startable_can_be_started() {
    let (hub, ann, rep) = ann_representing(Duration::from_secs(10 * 60)).await;
    // Began 40 minutes ago, ends in 20: late, past the 10-minute window, never started.
    stored_appointment(&hub, &rep, "late", -40, 20).await;
    stored_appointment(&hub, &rep, "early", 30, 90).await;
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let mut listed = std::collections::HashMap::new();
    // Yesterday too: within 40 minutes after midnight (UTC) "late" began yesterday.
    for day in [today.yesterday().unwrap(), today, today.tomorrow().unwrap()] {
        let (_, list) = ann.get(&format!("/api/agent/appointments?date={day}")).await;
        for a in list["appointments"].as_array().unwrap_or_else(|| panic!("{list}")) {
            listed.insert(a["id"].as_str().unwrap().to_string(), a["startable"].as_bool().unwrap());
        }
    }
    assert_eq!(
        (listed.get("late"), listed.get("early")),
        (Some(&true), Some(&false)),
        "{listed:?}"
    );
    ann.post_answering(201, "/api/agent/appointments/late/start", json!({}))
        .await;
    let (status, refused) = ann.post("/api/agent/appointments/early/start", json!({})).await;
    assert_eq!((status, error_code(&refused)), (409, "not_startable"), "{refused}");
    hub.stop().await;
}
