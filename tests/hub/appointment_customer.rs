//! A customer's booking over real HTTP: the topics and who serves each, the month's free
//! days and the desk that nobody serves yet, slots of a day in the customer's zone, what the appointment's page shows,
//! moving a booking (the old slot freed and the new one held at once; of two moves to one
//! slot exactly one wins), cancelling with a reason, the error codes of a bad token and
//! of an oversized body, and the call logs' CSV export with agents' names.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::common::*;
use switchboard::store::{CallLog, CallPeer, MemoryStore, SharedStore};

/// A hub with Ann, of no category, the one representative whose hours make the slots.
async fn hub_with_a_representative() -> TestHub {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &[], 1).await;
    hub
}

async fn book(hub: &TestHub, start: &str, name: &str, zone: Option<&str>) -> Value {
    let mut body = json!({"start": start, "name": name, "email": format!("{}@example.com", name.to_lowercase()),
        "comment": "about my order, \"the blue one\""});
    if let Some(zone) = zone {
        body["zone"] = json!(zone);
    }
    let (status, booked) = post(hub, "/api/appointments", body).await;
    assert_eq!(status, 201, "{booked}");
    booked
}

async fn free_at(hub: &TestHub, days: i64) -> Vec<String> {
    let (status, day) = get(hub, &format!("/api/appointments/slots?date={}", day_in(days))).await;
    assert_eq!(status, 200, "{day}");
    free_starts(&day)
}

#[tokio::test]
async fn a_desk_nobody_serves_says_so_and_a_month_marks_its_free_days() {
    let hub = TestHub::start().await;
    let month = &day_in(2)[..7];
    let (status, days) = get(&hub, &format!("/api/appointments/days?month={month}")).await;
    assert_eq!(status, 200, "{days}");
    assert_eq!(days["representatives"], 0, "a fresh desk has nobody: {days}");
    assert_eq!(days["free_days"], json!([]));
    let (_, slots) = get(&hub, &format!("/api/appointments/slots?date={}", day_in(2))).await;
    assert_eq!(slots["representatives"], 0, "{slots}");
    assert_eq!(slots["slot_minutes"], 60);

    hub.agent_account("ann", &[], 1).await;
    let (_, days) = get(&hub, &format!("/api/appointments/days?month={month}")).await;
    assert_eq!(days["representatives"], 1);
    let free = strs(&days["free_days"]);
    assert!(free.contains(&day_in(2).as_str()), "{days}");
    assert!(!free.iter().any(|d| *d < day_in(0).as_str()), "no past day: {days}");

    // A New York customer's day holds the slots that start on it there: the UTC desk's
    // 10:00–16:00 starts are 05:00/06:00–11:00/12:00 in New York, the same day.
    let (status, ny) = get(
        &hub,
        &format!("/api/appointments/slots?date={}&zone=America/New_York", day_in(2)),
    )
    .await;
    assert_eq!(status, 200, "{ny}");
    assert_eq!(ny["day_zone"], "America/New_York");
    assert_eq!(ny["slots"].as_array().unwrap().len(), 7);
    assert_eq!(ny["slots"][0]["start"], at(2, 10));
    // Kiritimati (UTC+14): the desk's day falls on the customer's next day.
    let (_, far) = get(
        &hub,
        &format!("/api/appointments/slots?date={}&zone=Pacific/Kiritimati", day_in(2)),
    )
    .await;
    assert_eq!(far["slots"].as_array().unwrap().len(), 7, "{far}");
    assert_eq!(far["slots"][0]["start"], at(1, 10));

    for path in [
        format!("/api/appointments/days?month={month}&zone=Mars/Olympus"),
        format!("/api/appointments/slots?date={}&zone=Not/AZone", day_in(2)),
    ] {
        let (status, body) = get(&hub, &path).await;
        assert_eq!((status, error_code(&body)), (400, "unknown_zone"), "{path}: {body}");
    }
    let (status, body) = get(&hub, "/api/appointments/days?month=2026-13").await;
    assert_eq!((status, error_code(&body)), (400, "bad_month"), "{body}");
    let body = json!({"start": at(2, 10), "name": "Zed", "email": "zed@example.com", "zone": "Nowhere/Else"});
    refusal(post(&hub, "/api/appointments", body).await, 400, "unknown_zone");
    hub.stop().await;
}

/// The booking page's topics in one read: every category, in the desk's order, with how
/// many representatives serve it, as the month's days count them for that category.
#[tokio::test]
async fn the_booking_topics_say_in_one_read_who_serves_each() {
    let hub = TestHub::start().await;
    let (status, categories) = get(&hub, "/api/categories").await;
    assert_eq!(status, 200, "{categories}");
    let ids: Vec<&str> = categories
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.len() >= 2, "{categories}");
    let (status, topics) = get(&hub, "/api/appointments/topics").await;
    assert_eq!(status, 200, "{topics}");
    let listed: Vec<(&str, &str, u64)> = topics
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap(),
                t["name"].as_str().unwrap(),
                t["representatives"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str, u64)> = categories
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["name"].as_str().unwrap(), 0))
        .collect();
    assert_eq!(listed, expected, "nobody serves anything yet");

    // One agent of the first category: it has one, the others none, as their months say.
    hub.agent_account("tess", &[ids[0]], 1).await;
    let (_, topics) = get(&hub, "/api/appointments/topics").await;
    let month = &day_in(2)[..7];
    for (topic, id) in topics.as_array().unwrap().iter().zip(&ids) {
        let (_, days) = get(&hub, &format!("/api/appointments/days?month={month}&category={id}")).await;
        assert_eq!(
            topic["representatives"], days["representatives"],
            "{id}: {topic} / {days}"
        );
        assert_eq!(topic["representatives"], u64::from(*id == ids[0]), "{id}: {topic}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn the_appointments_page_shows_what_was_booked_in_the_customers_zone() {
    let hub = hub_with_a_representative().await;
    let booked = book(&hub, &at(2, 14), "Carla", Some("America/New_York")).await;
    assert_eq!(booked["customer_zone"], "America/New_York");
    assert_eq!(booked["email"], "carla@example.com", "where the confirmation went");
    assert_eq!(booked["mailed"], false, "no SMTP_URL: its mail is only logged");
    assert_eq!(booked["summary"], "Video call with ANN");
    let token = booked["cancel_token"].as_str().unwrap();
    let links = &booked["links"];
    assert_eq!(links["manage"], format!("/manage.html?token={token}"));
    assert_eq!(links["reschedule"], format!("/book.html?reschedule={token}"));
    assert!(
        links["calendar"]["google"]
            .as_str()
            .unwrap()
            .starts_with("https://calendar.google.com/calendar/render?action=TEMPLATE&text=Video+call+with+ANN")
    );
    assert!(
        links["calendar"]["outlook"]
            .as_str()
            .unwrap()
            .starts_with("https://outlook.live.com/calendar/0/deeplink/compose?")
    );

    let (status, shown) = get(&hub, &format!("/api/appointments/booking?token={token}")).await;
    assert_eq!(status, 200, "{shown}");
    // 14:00 UTC is 09:00 or 10:00 in New York, by the season.
    let expected = at(2, 14)
        .parse::<Timestamp>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap())
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    assert_eq!(shown["customer_local_start"], expected, "{shown}");
    assert_eq!(shown["local_start"], format!("{} 14:00", day_in(2)));
    assert_eq!(shown["zone"], "UTC");
    assert_eq!(shown["name"], "Carla");
    assert_eq!(shown["email"], "carla@example.com");
    assert_eq!(shown["comment"], "about my order, \"the blue one\"");
    assert_eq!(shown["minutes"], 60);
    assert_eq!(shown["status"], "booked");

    // The ICS download.
    let res = reqwest::get(hub.url(&format!("/api/appointments/ics?token={token}")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/calendar; charset=utf-8; method=PUBLISH"
    );
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"appointment.ics\""
    );
    let ics = res.text().await.unwrap().replace("\r\n ", "");
    assert!(
        ics.contains("METHOD:PUBLISH") && ics.contains("SUMMARY:Video call with ANN"),
        "{ics}"
    );
    assert!(
        ics.contains(&format!("LOCATION:{}", hub.url(&format!("/manage.html?token={token}")))),
        "{ics}"
    );
    assert!(
        ics.contains(&format!("URL:{}", hub.url(&format!("/manage.html?token={token}")))),
        "{ics}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_bad_token_is_unknown_token_everywhere() {
    let hub = hub_with_a_representative().await;
    for (status, body) in [
        post(&hub, "/api/appointments/join", json!({"token": "not-a-token"})).await,
        post(&hub, "/api/appointments/cancel", json!({"token": "not-a-token"})).await,
        post(
            &hub,
            "/api/appointments/reschedule",
            json!({"token": "not-a-token", "start": at(2, 10)}),
        )
        .await,
        get(&hub, "/api/appointments/booking?token=not-a-token").await,
        get(&hub, "/api/appointments/cancel?token=not-a-token").await,
        get(&hub, "/api/appointments/ics?token=not-a-token").await,
    ] {
        assert_eq!((status, error_code(&body)), (404, "unknown_token"), "{body}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn an_oversized_json_body_is_413_in_the_apis_own_shape() {
    let hub = TestHub::start().await;
    let big = "x".repeat(3 * 1024 * 1024);
    for path in ["/api/appointments", "/api/appointments/cancel", "/api/login"] {
        let res = reqwest::Client::new()
            .post(hub.url(path))
            .header("content-type", "application/json")
            .body(format!("{{\"name\":\"{big}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 413, "{path}");
        let body: Value = res.json().await.expect("a JSON error body");
        assert_eq!(error_code(&body), "body_too_large", "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("2 MiB"), "{body}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_reschedule_frees_the_old_slot_and_holds_the_new_one() {
    let hub = hub_with_a_representative().await;
    let booked = book(&hub, &at(2, 10), "Carla", Some("Europe/Berlin")).await;
    let token = booked["cancel_token"].as_str().unwrap();
    let body = json!({"token": token, "start": at(2, 12)});
    let (status, moved) = post(&hub, "/api/appointments/reschedule", body).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["outcome"], "rescheduled");
    assert_eq!(moved["mailed"], false, "no SMTP_URL: the move is not mailed");
    assert_eq!(moved["appointment"]["start"], at(2, 12));
    assert_eq!(moved["appointment"]["id"], booked["id"], "the same appointment");
    assert_eq!(moved["appointment"]["customer_zone"], "Europe/Berlin");
    let free = free_at(&hub, 2).await;
    assert!(free.contains(&at(2, 10)), "the old slot is free: {free:?}");
    assert!(!free.contains(&at(2, 12)), "the new slot is held: {free:?}");
    let (_, shown) = get(&hub, &format!("/api/appointments/booking?token={token}")).await;
    assert_eq!(shown["start"], at(2, 12), "the same token names it");

    for (start, expected) in [
        (at(2, 12), (422, "same_slot")),
        (format!("{}T12:30:00Z", day_in(2)), (422, "not_a_slot")),
        (at(-1, 12), (422, "slot_in_past")),
        ("soon".to_string(), (400, "bad_start")),
    ] {
        let body = json!({"token": token, "start": start});
        let (status, body) = post(&hub, "/api/appointments/reschedule", body).await;
        assert_eq!((status, error_code(&body)), expected, "{start}: {body}");
    }

    // Two appointments moved to one free slot at once: exactly one wins.
    let one = book(&hub, &at(3, 10), "Dora", None).await;
    let two = book(&hub, &at(3, 11), "Erik", None).await;
    let target = at(3, 15);
    let (a, b) = tokio::join!(
        post(
            &hub,
            "/api/appointments/reschedule",
            json!({"token": one["cancel_token"], "start": target})
        ),
        post(
            &hub,
            "/api/appointments/reschedule",
            json!({"token": two["cancel_token"], "start": target})
        ),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let loser = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(error_code(loser), "slot_taken");
    let free = free_at(&hub, 3).await;
    assert!(!free.contains(&target));
    // The winner's old slot is free; the loser's is still held.
    let (winner_old, loser_old) = if a.0 == 200 {
        (at(3, 10), at(3, 11))
    } else {
        (at(3, 11), at(3, 10))
    };
    assert!(free.contains(&winner_old), "{free:?}");
    assert!(!free.contains(&loser_old), "{free:?}");

    // A cancelled appointment is not moved.
    let (status, _) = post(&hub, "/api/appointments/cancel", json!({"token": token})).await;
    assert_eq!(status, 200);
    let body = json!({"token": token, "start": at(2, 13)});
    let (status, body) = post(&hub, "/api/appointments/reschedule", body).await;
    assert_eq!((status, error_code(&body)), (409, "appointment_cancelled"), "{body}");
    hub.stop().await;
}

#[tokio::test]
async fn a_cancellation_keeps_the_customers_reason_for_them_and_the_staff() {
    let hub = hub_with_a_representative().await;
    let booked = book(&hub, &at(2, 10), "Carla", None).await;
    let token = booked["cancel_token"].as_str().unwrap();
    let body = json!({"token": token, "reason": "x".repeat(501)});
    let (status, body) = post(&hub, "/api/appointments/cancel", body).await;
    assert_eq!((status, error_code(&body)), (400, "reason_too_long"), "{body}");
    let body = json!({"token": token, "reason": "  I found the answer myself  "});
    let (status, done) = post(&hub, "/api/appointments/cancel", body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["outcome"], "cancelled");
    assert_eq!(done["appointment"]["cancel_reason"], "I found the answer myself");
    assert!(free_at(&hub, 2).await.contains(&at(2, 10)));
    let (_, list) = hub
        .admin()
        .await
        .get(&format!("/api/admin/appointments?from={}&to={}", day_in(2), day_in(2)))
        .await;
    assert_eq!(
        list["appointments"][0]["cancel_reason"], "I found the answer myself",
        "{list}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn call_logs_name_their_agents_and_export_as_csv() {
    let store: SharedStore = std::sync::Arc::new(MemoryStore::new());
    let hub = TestHub::with_store(store.clone(), |_| {}).await;
    hub.agent_account("ann", &[], 1).await;
    let admin = hub.admin().await;
    let ann_id = admin.agent_id("ann").await;
    for (i, peer_name) in ["Carla", "Berg, \"Dora\"\nSecond line"].iter().enumerate() {
        store
            .save_call_log(CallLog {
                id: format!("call-{i}"),
                room_id: format!("room-{i}"),
                agent_id: ann_id.clone(),
                peer: CallPeer::Guest,
                peer_name: peer_name.to_string(),
                guest_id: None,
                conversation_id: None,
                started_at: 1_700_000_000_000 + i as i64 * 60_000,
                length_secs: 90,
                connected_secs: 80,
                camera_secs: 70,
            })
            .await
            .unwrap();
    }
    let (status, page) = admin.get("/api/calls").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["agent_name"], "ANN", "{page}");
    assert_eq!(page["items"][0]["agent_id"], ann_id.as_str());

    let res = admin.get_response("/api/calls/export").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"call-logs.csv\""
    );
    let text = res.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "started_at,agent_id,agent_name,peer,peer_name,length_secs,connected_secs,camera_secs,room_id,conversation_id,id"
    );
    // Newest first; the name with a comma, quotes and a line break is quoted and escaped.
    assert!(
        text.contains(&format!(
            "2023-11-14T22:14:20Z,{ann_id},ANN,guest,\"Berg, \"\"Dora\"\"\nSecond line\",90,80,70,room-1,,call-1\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{ann_id},ANN,guest,Carla,90,80,70,room-0,,call-0")),
        "{text}"
    );
    // Without a session: 401.
    let res = reqwest::get(hub.url("/api/calls/export")).await.unwrap();
    assert_eq!(res.status(), 401);
    hub.stop().await;
}
