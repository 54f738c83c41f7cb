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

#[tokio::test]
async fn admins_set_the_hours_and_a_categorys_own_and_go_back_to_the_settings() {
    let hub = TestHub::start().await;
    let agent = hub.agent_account("ann", &["general"], 1).await;
    let admin = hub.admin().await;
    let (status, shown) = admin.get("/api/admin/appointment-hours").await;
    assert_eq!(status, 200);
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

    let res = admin
        .client
        .delete(hub.url("/api/admin/appointment-hours"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["source"], "settings");
    assert_eq!(starts(&hub, Some("general")).await.len(), 7);
    hub.stop().await;
}
