//! Agents' statuses and categories' chat hours over the websocket and the admin API:
//! busy until my chats end, away with a reason, a closed category, and waiting customers
//! told when nobody is left to answer.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_busy_agent_keeps_their_chat_takes_no_new_one_and_is_available_when_it_ends() {
    let (hub, mut agent) = TestHub::with_agent("ann", &["general"], 3).await;
    let (_first, chat) = hub.paired_customer(&mut agent, "First", "general").await;
    agent.send(json!({"type": "set_status", "status": "busy"})).await;
    let profile = agent.next_of("profile").await;
    assert_eq!(
        (profile["status"].as_str(), profile["available"].as_bool()),
        (Some("busy"), Some(false))
    );
    let figures = hub.admin().await.get("/api/admin/stats").await.1;
    assert_eq!(figures["agents"][0]["state"], "busy", "{figures}");
    assert_eq!(figures["agents_available"], 0, "{figures}");

    let mut second = hub.customer("Second", "general").await;
    assert_eq!(
        second.next_of("queued").await["place"],
        1,
        "a busy agent took a new chat"
    );

    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let profile = agent.next_of("profile").await;
    assert_eq!(
        profile["status"], "available",
        "not available again once their chats ended"
    );
    second.next_of("chat_started").await;
    hub.stop().await;
}

/// A hub with the agent "ann" (general, one chat), who has just asked to be away for `reason`.
async fn ann_sets_away(reason: &str) -> (TestHub, Ws) {
    let (hub, mut agent) = TestHub::with_agent("ann", &["general"], 1).await;
    agent
        .send(json!({"type": "set_status", "status": "away", "reason": reason}))
        .await;
    (hub, agent)
}

#[tokio::test]
async fn away_with_a_reason_is_shown_to_the_admin_and_a_bad_status_is_refused() {
    let (hub, mut agent) = ann_sets_away("  lunch  ").await;
    let profile = agent.next_of("profile").await;
    assert_eq!(
        (profile["status"].as_str(), profile["away_reason"].as_str()),
        (Some("away"), Some("lunch"))
    );
    let figures = hub.admin().await.get("/api/admin/stats").await.1;
    assert_eq!(
        (
            figures["agents"][0]["state"].as_str(),
            figures["agents"][0]["away_reason"].as_str()
        ),
        (Some("away"), Some("lunch")),
        "{figures}"
    );
    agent.send(json!({"type": "set_status", "status": "sleeping"})).await;
    assert_eq!(agent.next_of("error").await["code"], "invalid_status");
    agent
        .send(json!({"type": "set_status", "status": "away", "reason": "x".repeat(81)}))
        .await;
    assert_eq!(agent.next_of("error").await["code"], "reason_too_long");
    // The connection lives on.
    agent.send(json!({"type": "set_status", "status": "available"})).await;
    let profile = agent.next_of("profile").await;
    assert_eq!(
        (profile["status"].as_str(), profile["away_reason"].as_str()),
        (Some("available"), None)
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_closed_category_refuses_a_join_keeps_those_waiting_told_and_unpaired_until_it_opens() {
    let (hub, admin) = TestHub::with_admin().await;
    let mut waiting = hub.customer("Early", "general").await;
    waiting.next_of("queued").await;
    // Hours with no day at all: closed now, whatever the day.
    close_chat_hours(&hub, "general").await;
    let told = waiting.next_of("desk_status").await;
    assert_eq!(
        (told["open"].as_bool(), told["category"].as_str()),
        (Some(false), Some("general"))
    );
    let categories: serde_json::Value = get_json(&hub, "/api/categories").await;
    let general = with_id(&categories, "general");
    assert_eq!(
        (general["open"].as_bool(), general["agents_online"].as_bool()),
        (Some(false), Some(false))
    );

    let mut agent = hub.agent("ann", &["general"], 2).await;
    let mut late = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    late.send(json!({"type": "join", "name": "Late", "category": "general"}))
        .await;
    assert_eq!(late.next_of("error").await["code"], "category_closed");
    assert!(
        waiting.drain().await.iter().all(|f| f["type"] != "chat_started"),
        "paired in a closed category"
    );

    let (status, body) = admin.delete("/api/admin/chat-hours/general").await;
    assert_eq!(status, 200, "{body}");
    waiting.next_of("chat_started").await;
    agent.next_of("chat_started").await;
    // The refused page may join now, on the same connection.
    late.send(json!({"type": "join", "name": "Late", "category": "general"}))
        .await;
    late.next_of("welcome").await;
    hub.stop().await;
}

#[tokio::test]
async fn hours_are_checked_and_stored_in_canonical_form() {
    let (hub, admin) = TestHub::with_admin().await;
    let put = |body: serde_json::Value| {
        let admin = &admin;
        async move { admin.put("/api/admin/chat-hours/general", body).await }
    };
    let (status, body) =
        put(json!({"category": "general", "week": {"mon": [{"open": "17:00", "close": "09:00"}]}})).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_hours"), "{body}");
    let (status, body) = put(json!({"category": "general", "week": {"funday": []}})).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_hours"), "{body}");
    let (status, body) = put(json!({"category": "general", "week": {}, "holidays": ["Christmas"]})).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_hours"), "{body}");
    let (status, body) = admin
        .put("/api/admin/chat-hours/nope", json!({"category": "nope", "week": {}}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "unknown_category"), "{body}");
    let (status, body) = put(json!({"category": "general",
        "week": {"tue": [{"open": "13:00", "close": "24:00"}, {"open": "9:00", "close": "12:30"}]},
        "holidays": ["2026-12-25", "2026-12-24"]}))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["categories"][0],
        json!({"category": "general",
            "week": {"tue": [{"open": "09:00", "close": "12:30"}, {"open": "13:00", "close": "24:00"}]},
            "holidays": ["2026-12-24", "2026-12-25"]})
    );
    assert_eq!(body["time_zone"], "UTC");
    hub.stop().await;
}

#[tokio::test]
async fn waiting_customers_are_told_when_nobody_is_left_to_answer_and_when_someone_is() {
    let (hub, mut agent) = TestHub::with_agent("ann", &["general"], 1).await;
    let (_first, _) = hub.customer_in_chat("First", "general").await;
    let mut second = hub.customer("Second", "general").await;
    second.next_of("queued").await;
    // The only agent, full, goes away: nobody will answer the second.
    agent.send(json!({"type": "set_status", "status": "away"})).await;
    let told = second.next_of("desk_status").await;
    assert_eq!(
        (told["open"].as_bool(), told["agents_online"].as_bool()),
        (Some(true), Some(false))
    );
    // Busy (finishing their chat) counts as someone who will answer.
    agent.send(json!({"type": "set_status", "status": "busy"})).await;
    let told = second.next_of("desk_status").await;
    assert_eq!(told["agents_online"], true);
    hub.stop().await;
}

#[tokio::test]
async fn the_estimate_is_unknown_without_history_and_a_range_with_it() {
    let (hub, mut agent) = TestHub::with_agent("ann", &["general"], 1).await;
    let (mut serving, _) = hub.customer_in_chat("C0", "general").await;
    let mut waiting = hub.customer("Waiting", "general").await;
    let queued = waiting.next_of("queued").await;
    assert!(queued["estimate"].is_null(), "an estimate without history: {queued}");
    // Agents and admins see how long the longest has waited.
    let stats = agent
        .next_matching(|f| f["type"] == "queue_stats" && f["longest_wait_secs"]["general"].is_number())
        .await;
    assert!(stats["longest_wait_secs"]["general"].as_f64().unwrap() >= 0.0);
    let figures = hub.admin().await.get("/api/admin/stats").await.1;
    assert!(figures["longest_wait_by_category"]["general"].is_number(), "{figures}");
    waiting.send(json!({"type": "leave"})).await;
    // Three chats end: a history.
    for i in 1..=3 {
        serving.send(json!({"type": "leave"})).await;
        serving = hub.customer(&format!("C{i}"), "general").await;
        serving.next_of("chat_started").await;
    }
    let mut later = hub.customer("Later", "general").await;
    let queued = later.next_of("queued").await;
    assert_eq!(queued["estimate"], json!({"low_mins": 0, "high_mins": 1}), "{queued}");
    hub.stop().await;
}

#[tokio::test]
async fn a_waiting_customer_back_after_a_reload_is_told_their_category_closed_meanwhile() {
    let hub = TestHub::start().await;
    let mut waiting = hub.customer("Early", "general").await;
    waiting.next_of("queued").await;
    let token = waiting.token.clone().expect("a resume token");
    drop(waiting);
    close_chat_hours(&hub, "general").await;
    // The close came while they were away; back, they are told at once, with their place.
    let mut back = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": token})).await;
    let resumed = back.next_of("resumed").await;
    assert_eq!(resumed["place"], 1, "{resumed}");
    let told = back.next_of("desk_status").await;
    assert_eq!(
        (told["open"].as_bool(), told["agents_online"].as_bool()),
        (Some(false), Some(false))
    );
    hub.stop().await;
}

#[tokio::test]
async fn an_away_reason_on_several_lines_is_refused() {
    let (hub, mut agent) = ann_sets_away("lunch\nthen gym").await;
    assert_eq!(agent.next_of("error").await["code"], "invalid_reason");
    hub.stop().await;
}
