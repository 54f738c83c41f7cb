//! The admin API: each endpoint, its validation, and its effect on routing at once.

use serde_json::json;

use crate::common::*;

/// The status of the admin's setting agent `id`'s limit of chats at once to `max_chats`.
async fn max_chats_set(admin: &Api, id: &str, max_chats: u8) -> u16 {
    admin
        .patch(&format!("/api/admin/agents/{id}"), json!({ "max_chats": max_chats }))
        .await
        .0
}

#[tokio::test]
async fn agents_are_created_listed_read_and_validated() {
    let (hub, admin) = TestHub::with_admin().await;
    let (status, created) = admin
        .post("/api/admin/agents", json!({"username": "ann", "display_name": "Ann", "password": "long-enough", "categories": ["sales"], "max_chats": 2}))
        .await;
    assert_eq!(status, 201);
    assert!(created.get("password_hash").is_none());
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        admin.get(&format!("/api/admin/agents/{id}")).await.1["display_name"],
        "Ann"
    );
    let (_, list) = admin.get("/api/admin/agents").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "the admin and ann");

    for (body, code) in [
        (
            json!({"username": "bo", "display_name": "Bo", "password": "long-enough"}),
            "invalid_username",
        ),
        (
            json!({"username": "bob", "display_name": "", "password": "long-enough"}),
            "invalid_name",
        ),
        (
            json!({"username": "bob", "display_name": "Bob", "password": "short"}),
            "weak_password",
        ),
        (
            json!({"username": "bob", "display_name": "Bob", "password": "long-enough", "max_chats": 5}),
            "invalid_limit",
        ),
        (
            json!({"username": "bob", "display_name": "Bob", "password": "long-enough", "max_chats": 0}),
            "invalid_limit",
        ),
        (
            json!({"username": "bob", "display_name": "Bob", "password": "long-enough", "categories": ["nope"]}),
            "unknown_category",
        ),
        (json!({"username": "bob"}), "bad_json"),
    ] {
        let (status, err) = admin.post("/api/admin/agents", body.clone()).await;
        assert_eq!((status, err["error"]["code"].as_str()), (400, Some(code)), "{body}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    refusal(
        admin
            .post(
                "/api/admin/agents",
                json!({"username": "ann", "display_name": "Ann 2", "password": "long-enough"}),
            )
            .await,
        409,
        "conflict",
    );
    assert_eq!(admin.get("/api/admin/agents/nobody").await.0, 404);
    assert_eq!(
        admin.patch("/api/admin/agents/nobody", json!({"max_chats": 2})).await.0,
        404
    );
    assert_eq!(max_chats_set(&admin, id, 9).await, 400);
    hub.stop().await;
}

#[tokio::test]
async fn only_admins_reach_the_admin_api() {
    let hub = TestHub::start().await;
    let res = reqwest::get(hub.url("/api/admin/agents")).await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    hub.agent_account("ann", &["general"], 1).await;
    let agent = hub.login("ann", "agent-password").await;
    assert_eq!(agent.get("/api/admin/agents").await.0, 403);
    assert_eq!(agent.get("/api/me").await.1["username"], "ann");
    let (status, err) = reqwest::Client::new()
        .post(hub.url("/api/login"))
        .json(&json!({"username": "ann", "password": "wrong-password"}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map(|s| (s, ()))
        .unwrap();
    assert_eq!((status, err), (400, ()));
    hub.stop().await;
}

#[tokio::test]
async fn raising_a_limit_or_adding_a_category_routes_at_once() {
    let (hub, admin) = TestHub::with_admin().await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let id = admin.agent_id("ann").await;
    let (_c1, _) = hub.customer_in_chat("One", "general").await;
    let mut c2 = hub.customer("Two", "general").await;
    c2.next_of("queued").await;
    let mut s = hub.customer("Sally", "sales").await;
    s.next_of("queued").await;

    assert_eq!(max_chats_set(&admin, &id, 3).await, 200);
    c2.next_of("chat_started").await;
    let profile = agent.next_of("profile").await;
    assert_eq!(profile["max_chats"], 3);
    assert_eq!(
        admin
            .patch(
                &format!("/api/admin/agents/{id}"),
                json!({"categories": ["general", "sales"]})
            )
            .await
            .0,
        200
    );
    s.next_of("chat_started").await;
    hub.stop().await;
}

#[tokio::test]
async fn disabling_an_agent_closes_them_and_requeues_their_customers() {
    let (hub, admin) = TestHub::with_admin().await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    let (mut c, _) = hub.customer_in_chat("Carla", "general").await;
    admin.disable_agent("ann").await;
    assert_eq!(ann.closed().await.map(u16::from), Some(4003));
    assert_eq!(c.next_of("chat_ended").await["reason"], "agent_gone");
    assert_eq!(c.next_of("queued").await["place"], 1);
    let (status, _) = reqwest::Client::new()
        .post(hub.url("/api/login"))
        .json(&json!({"username": "ann", "password": "agent-password"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 403, "a disabled agent cannot sign in");
    hub.stop().await;
}

#[tokio::test]
async fn categories_are_added_renamed_and_removed() {
    let (hub, admin) = TestHub::with_admin().await;
    let (status, cat) = admin
        .post("/api/admin/categories", json!({"name": "Returns & Refunds"}))
        .await;
    assert_eq!((status, cat["id"].as_str()), (201, Some("returns-refunds")));
    assert_eq!(
        admin
            .post("/api/admin/categories", json!({"name": "Returns & Refunds"}))
            .await
            .0,
        409
    );
    assert_eq!(
        admin.post("/api/admin/categories", json!({"name": ""})).await.1["error"]["code"],
        "invalid_name"
    );
    assert_eq!(
        admin
            .post("/api/admin/categories", json!({"id": "Bad Id", "name": "x"}))
            .await
            .1["error"]["code"],
        "invalid_id"
    );
    assert_eq!(
        admin
            .patch("/api/admin/categories/returns-refunds", json!({"name": "Returns"}))
            .await
            .1["name"],
        "Returns"
    );
    assert_eq!(
        admin.patch("/api/admin/categories/nope", json!({"name": "x"})).await.0,
        404
    );
    let list = get_json(&hub, "/api/categories").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "returns-refunds" && c["name"] == "Returns")
    );

    // A new category is joinable at once; removing it tells its waiting customers and closes them.
    let mut waiting = hub.customer("Walt", "returns-refunds").await;
    waiting.next_of("queued").await;
    assert_eq!(admin.delete("/api/admin/categories/returns-refunds").await.0, 204);
    assert_eq!(waiting.next_of("removed").await["reason"], "category_removed");
    assert_eq!(waiting.closed().await.map(u16::from), Some(1000));
    assert_eq!(admin.delete("/api/admin/categories/returns-refunds").await.0, 404);
    hub.stop().await;
}

#[tokio::test]
async fn live_figures_count_agents_customers_and_chats() {
    let (hub, admin) = TestHub::with_admin().await;
    let _ann = hub.agent("ann", &["general"], 1).await;
    let (_c1, _) = hub.customer_in_chat("One", "general").await;
    let mut c2 = hub.customer("Two", "general").await;
    c2.next_of("queued").await;
    let (_, f) = admin.get("/api/admin/stats").await;
    assert_eq!(f["agents_online"], 1);
    // Ann is at her limit of one while a customer waits: online, but not available.
    assert_eq!(f["agents_available"], 0, "{f}");
    assert_eq!(f["agents_full"], 1, "{f}");
    assert_eq!(f["agents"][0]["state"], "full", "{f}");
    assert_eq!(
        (f["agents"][0]["chats"].as_u64(), f["agents"][0]["limit"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(f["customers_connected"], 2);
    assert_eq!(f["customers_waiting"]["general"], 1);
    assert_eq!(f["chats_active"], 1);
    assert!(f["longest_wait_secs"].as_f64().unwrap() >= 0.0);
    hub.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let hub = TestHub::start().await;
    let doc: serde_json::Value = get_json(&hub, "/api/openapi.json").await;
    for path in [
        "/api/login",
        "/api/admin/agents",
        "/api/admin/agents/{id}",
        "/api/admin/categories/{id}",
        "/api/admin/stats",
        "/api/categories",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    hub.stop().await;
}
