//! The desk's appointment hours through the admin API: replacing the settings'
//! hours, a category's own hours on the slot grid, the refusals, and back to the settings.

use serde_json::{Value, json};

use crate::common::*;

/// The local starts (`HH:MM`) of a day's slots, for a category when given.
async fn starts(hub: &TestHub, category: Option<&str>) -> Vec<String> {
    let mut url = hub.url(&format!("/api/appointments/slots?date={}", day_in(2)));
    if let Some(c) = category {
        url.push_str(&format!("&category={c}"));
    }
    let day: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    day["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["local_start"].as_str().unwrap()[11..].to_string())
        .collect()
}

/// A hub where Ann (in General) takes appointments, and its admin: Ann's account id, the
/// admin's API and the hours as the admin page first shows them (read with a 200).
async fn hub_with_ann_and_the_hours_shown() -> (TestHub, String, Api, Value) {
    let hub = TestHub::start().await;
    let agent = hub.agent_account("ann", &["general"], 1).await;
    let admin = hub.admin().await;
    let (status, shown) = admin.get("/api/admin/appointment-hours").await;
    assert_eq!(status, 200);
    (hub, agent, admin, shown)
}

/// The admin takes the desk's hours back to the settings (a DELETE with their session):
/// the status and the hours shown then.
async fn hours_reset(hub: &TestHub, admin: &Api) -> (u16, Value) {
    let res = admin
        .client
        .delete(hub.url("/api/admin/appointment-hours"))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn admins_set_the_hours_and_a_categorys_own_and_go_back_to_the_settings() {
    let (hub, agent, admin, shown) = hub_with_ann_and_the_hours_shown().await;
    assert_eq!(
        (shown["source"].as_str(), shown["open"].as_str()),
        (Some("settings"), Some("10:00"))
    );
    assert_eq!(starts(&hub, None).await.len(), 7);

    for (body, expected) in [
        (json!({"open": "9", "close": "12:00"}), "invalid_hours"),
        (json!({"open": "12:00", "close": "09:00"}), "invalid_hours"),
        (
            json!({"open": "09:00", "close": "12:00",
                "categories": [{"category": "nope", "open": "10:00", "close": "11:00"}]}),
            "unknown_category",
        ),
        (
            json!({"open": "09:00", "close": "12:00",
                "categories": [{"category": "general", "open": "10:30", "close": "11:30"}]}),
            "invalid_hours",
        ),
    ] {
        let (status, refused) = admin.put("/api/admin/appointment-hours", body.clone()).await;
        assert_eq!((status, error_code(&refused)), (400, expected), "{body}: {refused}");
    }
    let (status, set) = admin
        .put(
            "/api/admin/appointment-hours",
            json!({"open": "9:00", "close": "12:00",
                   "categories": [{"category": "general", "open": "10:00", "close": "11:00"}]}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        (set["source"].as_str(), set["open"].as_str()),
        (Some("admin"), Some("09:00"))
    );
    assert_eq!(starts(&hub, None).await, ["09:00", "10:00", "11:00"]);
    assert_eq!(starts(&hub, Some("general")).await, ["10:00"]);
    // A category's booking keeps to its own hours; one without a category to the desk's.
    let nine = format!("{}T09:00:00Z", day_in(2));
    let url = hub.url("/api/appointments");
    let book = |body: Value| {
        let url = url.clone();
        async move {
            let res = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, refused) = book(json!({"start": nine, "name": "Carla", "email": "carla@example.com",
                                        "category": "general"}))
    .await;
    assert_eq!((status, error_code(&refused)), (422, "not_a_slot"), "{refused}");
    let (status, made) = book(json!({"start": nine, "name": "Carla", "email": "carla@example.com"})).await;
    assert_eq!(status, 201, "{made}");

    // Agents may not change hours.
    let res = reqwest::Client::new()
        .get(hub.url("/api/admin/appointment-hours"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let (status, reset) = hours_reset(&hub, &admin).await;
    assert_eq!(status, 200);
    assert_eq!(reset["source"], "settings");
    assert_eq!(starts(&hub, Some("general")).await.len(), 7);
    hub.stop().await;
}

/// The first date at least two days from today (UTC) that falls on `weekday`, and the
/// day before it.
fn next(weekday: jiff::civil::Weekday) -> (String, String) {
    let mut offset = 2;
    loop {
        let day: jiff::civil::Date = day_in(offset).parse().unwrap();
        if day.weekday() == weekday {
            return (day.to_string(), day_in(offset - 1));
        }
        offset += 1;
    }
}

async fn slot_count(hub: &TestHub, date: &str) -> usize {
    let url = hub.url(&format!("/api/appointments/slots?date={date}"));
    let day: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    day["slots"].as_array().unwrap().len()
}

#[tokio::test]
async fn admins_close_weekdays_and_a_closed_day_has_no_slot_and_takes_no_booking() {
    let (hub, _agent, admin, shown) = hub_with_ann_and_the_hours_shown().await;
    assert_eq!(
        shown["days"],
        json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
        "every day unless set: {shown}"
    );
    let (sunday, saturday) = next(jiff::civil::Weekday::Sunday);
    assert_eq!(slot_count(&hub, &sunday).await, 7);

    for (days, expected) in [
        (json!([]), "invalid_days"),
        (json!(["mon", "funday"]), "invalid_days"),
        (json!(["mon-fri"]), "invalid_days"),
        (json!("mon-fri"), "bad_json"),
    ] {
        let body = json!({"open": "10:00", "close": "17:00", "days": days});
        let (status, refused) = admin.put("/api/admin/appointment-hours", body.clone()).await;
        assert_eq!((status, error_code(&refused)), (400, expected), "{body}: {refused}");
    }
    let (status, refused) = admin
        .put(
            "/api/admin/appointment-hours",
            json!({"open": "10:00", "close": "17:00", "days": ["mon", "funday"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"funday\" is not a weekday"),
        "{refused}"
    );

    let (status, set) = admin
        .put(
            "/api/admin/appointment-hours",
            json!({"open": "10:00", "close": "17:00", "days": ["Fri", "mon", "tue", "wed", "thu"]}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        set["days"],
        json!(["mon", "tue", "wed", "thu", "fri"]),
        "canonical: {set}"
    );
    assert_eq!(admin.get("/api/admin/appointment-hours").await.1["days"], set["days"]);
    assert_eq!(slot_count(&hub, &sunday).await, 0);
    assert_eq!(slot_count(&hub, &saturday).await, 0);
    let (monday, _) = next(jiff::civil::Weekday::Monday);
    assert_eq!(slot_count(&hub, &monday).await, 7);

    // The month marks no weekend day.
    let month = &sunday[..7];
    let days: Value = reqwest::get(hub.url(&format!("/api/appointments/days?month={month}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let free: Vec<&str> = days["free_days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(!free.contains(&sunday.as_str()), "{days}");

    let booking = |start: String| {
        let url = hub.url("/api/appointments");
        async move {
            let body = json!({"start": start, "name": "Carla", "email": "carla@example.com"});
            let res = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, refused) = booking(format!("{sunday}T10:00:00Z")).await;
    assert_eq!((status, error_code(&refused)), (422, "not_a_slot"), "{refused}");
    let (status, made) = booking(format!("{monday}T10:00:00Z")).await;
    assert_eq!(status, 201, "{made}");

    // Hours set without days keep the settings' days; back to the settings, every day.
    let (_, set) = admin
        .put(
            "/api/admin/appointment-hours",
            json!({"open": "09:00", "close": "17:00"}),
        )
        .await;
    assert_eq!(set["days"].as_array().unwrap().len(), 7, "{set}");
    assert_eq!(hours_reset(&hub, &admin).await.1["days"].as_array().unwrap().len(), 7);
    assert_eq!(slot_count(&hub, &sunday).await, 7);
    hub.stop().await;
}
