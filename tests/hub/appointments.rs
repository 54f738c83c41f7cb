//! Appointments over real HTTP: the day's slots, booking and its refusals,
//! 20 simultaneous bookings of one slot (memory, embedded and MongoDB stores), the cancel
//! link, the choice between two representatives, and the staff views.

use std::time::Duration;

use serde_json::{Value, json};

use crate::archive::{TempDir, embedded_store, mongo_store, mongo_uri};
use crate::common::*;

fn booking(start: &str, name: &str) -> Value {
    json!({"start": start, "name": name, "email": format!("{}@example.com", name.to_lowercase()),
           "comment": "about my order"})
}

#[tokio::test]
async fn a_day_lists_seven_slots_and_a_booked_one_is_no_longer_free() {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &["general"], 1).await;
    let (status, day) = get(&hub, &format!("/api/appointments/slots?date={}", day_in(2))).await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["zone"], "UTC");
    let slots = day["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 7, "10:00 to 17:00 in hours: {day}");
    assert_eq!(slots[0]["start"], at(2, 10));
    assert_eq!(slots[0]["end"], at(2, 11));
    assert_eq!(slots[0]["local_start"], format!("{} 10:00", day_in(2)));
    assert_eq!(free_starts(&day).len(), 7);

    let (status, booked) = post(&hub, "/api/appointments", booking(&at(2, 10), "Carla")).await;
    assert_eq!(status, 201, "{booked}");
    assert_eq!(booked["start"], at(2, 10));
    assert_eq!(booked["representative"], "ANN");
    assert!(booked["cancel_token"].as_str().unwrap().len() >= 40, "{booked}");
    let (_, day) = get(&hub, &format!("/api/appointments/slots?date={}", day_in(2))).await;
    assert_eq!(free_starts(&day).len(), 6);
    assert!(!free_starts(&day).contains(&at(2, 10)));
    assert!(!day.to_string().contains("Carla"), "nothing about who booked: {day}");

    // Yesterday's slots exist but are not free; a bad date is a clear error.
    let (_, past) = get(&hub, &format!("/api/appointments/slots?date={}", day_in(-1))).await;
    assert_eq!(past["slots"].as_array().unwrap().len(), 7);
    assert!(free_starts(&past).is_empty());
    let (status, body) = get(&hub, "/api/appointments/slots?date=tomorrow").await;
    assert_eq!((status, error_code(&body)), (400, "bad_date"));
    hub.stop().await;
}

#[tokio::test]
async fn bookings_are_refused_with_clear_codes() {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &["general"], 1).await;
    let (status, _) = post(&hub, "/api/appointments", booking(&at(2, 11), "Carla")).await;
    assert_eq!(status, 201);
    for (body, expected) in [
        (booking(&at(2, 11), "Dora"), (409, "slot_taken")),
        (
            booking(&format!("{}T10:30:00Z", day_in(2)), "Dora"),
            (422, "not_a_slot"),
        ),
        (booking(&at(2, 9), "Dora"), (422, "not_a_slot")),
        (booking(&at(2, 17), "Dora"), (422, "not_a_slot")),
        (booking(&at(-1, 10), "Dora"), (422, "slot_in_past")),
        (booking("next tuesday", "Dora"), (400, "bad_start")),
        (
            json!({"start": at(2, 12), "name": "Dora", "email": "not-an-address"}),
            (400, "invalid_email"),
        ),
        (
            json!({"start": at(2, 12), "name": "  ", "email": "dora@example.com"}),
            (400, "invalid_name"),
        ),
        (
            json!({"start": at(2, 12), "name": "Dora", "email": "dora@example.com", "category": "nope"}),
            (400, "unknown_category"),
        ),
        (json!({"start": at(2, 12)}), (400, "bad_json")),
    ] {
        let (status, answer) = post(&hub, "/api/appointments", body.clone()).await;
        assert_eq!((status, error_code(&answer)), expected, "{body} → {answer}");
    }
    // The refusals left the slot list as it was: one booking.
    let (_, day) = get(&hub, &format!("/api/appointments/slots?date={}", day_in(2))).await;
    assert_eq!(free_starts(&day).len(), 6);
    hub.stop().await;

    // A week's notice: the day after tomorrow is too soon.
    let hub = TestHub::with(|s| s.appointments.min_notice = Duration::from_secs(7 * 24 * 3600)).await;
    hub.agent_account("ann", &[], 1).await;
    let (status, answer) = post(&hub, "/api/appointments", booking(&at(2, 10), "Dora")).await;
    assert_eq!((status, error_code(&answer)), (422, "too_short_notice"));
    hub.stop().await;

    // No agent at all: a clear refusal, not a booking with nobody.
    let hub = TestHub::start().await;
    let (status, answer) = post(&hub, "/api/appointments", booking(&at(2, 10), "Dora")).await;
    assert_eq!((status, error_code(&answer)), (422, "no_representative"), "{answer}");
    hub.stop().await;
}

/// 20 customers post the same slot at once with one agent: exactly one 201, nineteen 409.
async fn twenty_at_once(hub: &TestHub) {
    hub.agent_account("ann", &["general"], 1).await;
    let client = reqwest::Client::new();
    let start = at(3, 14);
    let attempts = (0..20).map(|i| {
        let (client, url, body) = (
            client.clone(),
            hub.url("/api/appointments"),
            booking(&start, &format!("Customer{i}")),
        );
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status().as_u16() })
    });
    let mut statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    statuses.sort();
    let mut expected = vec![201];
    expected.extend([409; 19]);
    assert_eq!(statuses, expected);
    let admin = hub.admin().await;
    let (_, list) = admin
        .get(&format!("/api/admin/appointments?from={0}&to={0}", day_in(3)))
        .await;
    assert_eq!(list["appointments"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_bookings_of_one_slot_have_one_winner_in_memory() {
    let hub = TestHub::start().await;
    twenty_at_once(&hub).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_bookings_of_one_slot_have_one_winner_on_the_embedded_store() {
    let dir = TempDir::new("appointments");
    let store = embedded_store(&dir).await;
    let hub = TestHub::with_store(store, |_| {}).await;
    twenty_at_once(&hub).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_bookings_of_one_slot_have_one_winner_on_mongodb() {
    let store = mongo_store(&mongo_uri()).await;
    let hub = TestHub::with_store(store, |_| {}).await;
    twenty_at_once(&hub).await;
    hub.stop().await;
}

#[tokio::test]
async fn the_cancel_link_shows_then_cancels_once_and_frees_the_slot() {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &[], 1).await;
    let (_, booked) = post(&hub, "/api/appointments", booking(&at(2, 15), "Carla")).await;
    let token = booked["cancel_token"].as_str().unwrap().to_string();
    assert_eq!(
        booked["cancel_url"].as_str().unwrap(),
        format!("/manage.html?token={token}")
    );

    // Opening the link (what a mail scanner does too) shows the appointment and changes nothing.
    for _ in 0..2 {
        let (status, shown) = get(&hub, &format!("/api/appointments/cancel?token={token}")).await;
        assert_eq!(status, 200, "{shown}");
        assert_eq!(shown["status"], "booked");
        assert_eq!(shown["start"], at(2, 15));
        assert_eq!(shown["name"], "Carla");
    }
    let (status, done) = post(&hub, "/api/appointments/cancel", json!({"token": token})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["outcome"], "cancelled");
    assert_eq!(done["appointment"]["status"], "cancelled");
    let (status, again) = post(&hub, "/api/appointments/cancel", json!({"token": token})).await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (200, Some("already_cancelled")),
        "{again}"
    );
    for (status, body) in [
        post(&hub, "/api/appointments/cancel", json!({"token": "not-a-token"})).await,
        get(&hub, "/api/appointments/cancel?token=not-a-token").await,
    ] {
        assert_eq!((status, error_code(&body)), (404, "unknown_token"), "{body}");
    }
    // The slot is free again and can be booked anew.
    let (_, day) = get(&hub, &format!("/api/appointments/slots?date={}", day_in(2))).await;
    assert!(free_starts(&day).contains(&at(2, 15)));
    let (status, _) = post(&hub, "/api/appointments", booking(&at(2, 15), "Dora")).await;
    assert_eq!(status, 201);
    hub.stop().await;
}

#[tokio::test]
async fn two_representatives_share_the_day_and_a_slot_holds_one_each() {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &["sales"], 1).await;
    hub.agent_account("bob", &["sales", "general"], 1).await;
    let admin = hub.admin().await;
    let (ann, bob) = (admin.agent_id("ann").await, admin.agent_id("bob").await);
    let first_by_id = if ann < bob { "ANN" } else { "BOB" };
    let second_by_id = if ann < bob { "BOB" } else { "ANN" };
    let in_sales = |start: &str, name: &str| {
        let mut b = booking(start, name);
        b["category"] = json!("sales");
        b
    };
    // Both free with no appointments: the smaller id; then the other, who has fewer that day.
    let (_, one) = post(&hub, "/api/appointments", in_sales(&at(2, 10), "Carla")).await;
    assert_eq!(one["representative"], first_by_id, "{one}");
    let (_, two) = post(&hub, "/api/appointments", in_sales(&at(2, 12), "Dora")).await;
    assert_eq!(two["representative"], second_by_id, "{two}");
    // The 10:00 slot still has one representative free: listed free, and bookable once more.
    let (_, day) = get(
        &hub,
        &format!("/api/appointments/slots?date={}&category=sales", day_in(2)),
    )
    .await;
    assert!(free_starts(&day).contains(&at(2, 10)), "{day}");
    let (_, three) = post(&hub, "/api/appointments", in_sales(&at(2, 10), "Erin")).await;
    assert_eq!(three["representative"], second_by_id, "{three}");
    let (status, four) = post(&hub, "/api/appointments", in_sales(&at(2, 10), "Fay")).await;
    assert_eq!((status, error_code(&four)), (409, "slot_taken"));
    let (_, day) = get(
        &hub,
        &format!("/api/appointments/slots?date={}&category=sales", day_in(2)),
    )
    .await;
    assert!(!free_starts(&day).contains(&at(2, 10)));
    // General is only bob's: both take 10:00, so general's 10:00 is not free.
    let (_, support) = get(
        &hub,
        &format!("/api/appointments/slots?date={}&category=general", day_in(2)),
    )
    .await;
    assert!(!free_starts(&support).contains(&at(2, 10)), "{support}");
    assert!(free_starts(&support).contains(&at(2, 11)), "{support}");
    // Naming a representative books that one.
    let mut named = booking(&at(2, 13), "Gil");
    named["representative"] = json!(ann);
    let (_, five) = post(&hub, "/api/appointments", named).await;
    assert_eq!(five["representative"], "ANN");
    hub.stop().await;
}

#[tokio::test]
async fn agents_see_their_day_and_cancel_their_own_admins_any() {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &[], 1).await;
    let ann = hub.login("ann", "agent-password").await;
    let admin = hub.admin().await;
    let ann_id = admin.agent_id("ann").await;
    let mut named = booking(&at(2, 11), "Carla");
    named["representative"] = json!(ann_id);
    named["comment"] = json!("the blue one");
    let (_, booked) = post(&hub, "/api/appointments", named).await;
    let id = booked["id"].as_str().unwrap().to_string();

    let (status, day) = ann.get(&format!("/api/agent/appointments?date={}", day_in(2))).await;
    assert_eq!(status, 200, "{day}");
    let list = day["appointments"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "Carla");
    assert_eq!(list[0]["email"], "carla@example.com");
    assert_eq!(list[0]["comment"], "the blue one");
    assert_eq!(list[0]["startable"], false, "two days ahead");
    let (_, other_day) = ann.get(&format!("/api/agent/appointments?date={}", day_in(3))).await;
    assert!(other_day["appointments"].as_array().unwrap().is_empty());

    // Another agent neither sees nor cancels it.
    hub.agent_account("bob", &[], 1).await;
    let bob = hub.login("bob", "agent-password").await;
    let (_, bobs) = bob.get(&format!("/api/agent/appointments?date={}", day_in(2))).await;
    assert!(bobs["appointments"].as_array().unwrap().is_empty());
    let (status, _) = bob
        .post(&format!("/api/agent/appointments/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 404);
    // Not without a session.
    let (status, _) = get(&hub, "/api/agent/appointments").await;
    assert_eq!(status, 401);

    let (status, done) = ann
        .post(&format!("/api/agent/appointments/{id}/cancel"), json!({}))
        .await;
    assert_eq!((status, done["outcome"].as_str()), (200, Some("cancelled")), "{done}");
    let (status, again) = admin
        .post(&format!("/api/admin/appointments/{id}/cancel"), json!({}))
        .await;
    assert_eq!((status, again["outcome"].as_str()), (200, Some("already_cancelled")));
    let (status, _) = ann
        .post(&format!("/api/admin/appointments/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 403, "agents do not use the admin route");
    let (status, range) = admin
        .get(&format!("/api/admin/appointments?from={}&to={}", day_in(0), day_in(5)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(range["appointments"][0]["status"], "cancelled");
    let (status, bad) = admin
        .get(&format!("/api/admin/appointments?from={}&to={}", day_in(5), day_in(0)))
        .await;
    assert_eq!((status, error_code(&bad)), (400, "bad_range"));
    hub.stop().await;
}

/// Outside the whitelist, an address may book five times, then gets 429 with
/// `Retry-After`; refused bookings do not count, and another address is not held back.
#[tokio::test]
async fn bookings_are_throttled_per_address_outside_the_whitelist() {
    let hub = TestHub::with(|s| s.access.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    hub.agent_account("ann", &[], 1).await;
    let client = reqwest::Client::new();
    let from = |ip: &'static str, body: Value| {
        client
            .post(hub.url("/api/appointments"))
            .header("x-forwarded-for", ip)
            .json(&body)
            .send()
    };
    for _ in 0..8 {
        let refused = from("203.0.113.9", json!({"start": at(2, 10), "name": "X", "email": "bad"}))
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "a refused booking is not counted");
    }
    for hour in 10..15 {
        let res = from("203.0.113.9", booking(&at(2, hour), "Carla")).await.unwrap();
        assert_eq!(res.status(), 201);
    }
    let res = from("203.0.113.9", booking(&at(2, 15), "Carla")).await.unwrap();
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "too_many_bookings");
    let res = from("198.51.100.7", booking(&at(2, 15), "Dora")).await.unwrap();
    assert_eq!(res.status(), 201, "another address books on");
    // The agent's day is staff-only: outside the whitelist it is refused before anything else.
    let res = get_with_header(
        &client,
        &hub.url("/api/agent/appointments"),
        ("x-forwarded-for", "203.0.113.9"),
    )
    .await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "not_whitelisted");
    hub.stop().await;
}

/// The agent's list marks an appointment `startable` within the start window of its start.
#[tokio::test]
async fn the_next_appointment_is_startable_within_the_window() {
    let hub = TestHub::with(|s| {
        s.appointments.min_notice = Duration::ZERO;
        s.appointments.start_window = Duration::from_secs(24 * 3600);
    })
    .await;
    hub.agent_account("ann", &[], 1).await;
    let ann = hub.login("ann", "agent-password").await;
    // With slots every day from 10:00 to 17:00, the next free one is under 24 h away.
    let mut next = None;
    for days in 0..2 {
        let (_, day) = get(&hub, &format!("/api/appointments/slots?date={}", day_in(days))).await;
        if let Some(start) = free_starts(&day).into_iter().next() {
            next = Some((days, start));
            break;
        }
    }
    let (days, start) = next.expect("a free slot today or tomorrow");
    let (status, _) = post(&hub, "/api/appointments", booking(&start, "Carla")).await;
    assert_eq!(status, 201);
    let (_, list) = ann.get(&format!("/api/agent/appointments?date={}", day_in(days))).await;
    assert_eq!(list["appointments"][0]["startable"], true, "{list}");
    hub.stop().await;
}

/// The throttle's limits are settings: with a burst of 2, the third booking from one
/// address is refused.
#[tokio::test]
async fn the_booking_throttle_takes_its_limits_from_the_settings() {
    let hub = TestHub::with(|s| {
        s.access.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.appointments.booking_burst = 2;
    })
    .await;
    hub.agent_account("ann", &[], 1).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for hour in 10..13 {
        let res = client
            .post(hub.url("/api/appointments"))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&booking(&at(2, hour), "Carla"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
    hub.stop().await;
}
