//! Canned replies over HTTP: admins keep the desk's list, agents their own; an agent reads
//! the desk's replies that apply to their categories and their own, never another's; the
//! rules of a reply (shortcut, title, text, categories) and a shortcut taken are refused
//! with their codes.

use serde_json::{Value, json};

use crate::common::*;

fn shortcuts(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["shortcut"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn admins_keep_the_desks_list_and_agents_see_what_applies_to_them() {
    let (hub, admin) = TestHub::with_admin().await;
    let hello = admin
        .post_answering(
            201,
            "/api/admin/canned-replies",
            json!({"shortcut": "hello", "title": "Greeting", "text": "Hello {customer}, I am {agent}."}),
        )
        .await;
    assert_eq!(hello["scope"], "desk");
    assert_eq!(hello["categories"], json!([]));
    let refund = admin.post_answering(201, "/api/admin/canned-replies", json!({"shortcut": "refund", "title": "Refunds", "text": "Refunds take 5 days.", "categories": ["billing"]})).await;
    let (status, _) = admin
        .post(
            "/api/admin/canned-replies",
            json!({"shortcut": "pricing", "title": "Prices", "text": "See our prices.", "categories": ["sales"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, list) = admin.get("/api/admin/canned-replies").await;
    assert_eq!(status, 200);
    assert_eq!(shortcuts(&list), ["hello", "pricing", "refund"]);

    // An agent of sales: the desk's for all and for sales, then their own.
    let sam = hub.agent_account("sam", &["sales"], 1).await;
    let sam = Api::bearer(&hub, &sam);
    let (status, mine) = sam
        .post(
            "/api/canned-replies",
            json!({"shortcut": "hello", "title": "My hello", "text": "Hi {customer}!"}),
        )
        .await;
    assert_eq!(status, 201, "an agent's shortcut may repeat the desk's: {mine}");
    assert_eq!(mine["scope"], "own");
    let (status, list) = sam.get("/api/canned-replies").await;
    assert_eq!(status, 200);
    assert_eq!(shortcuts(&list), ["hello", "pricing", "hello"]);
    assert_eq!(list[2]["scope"], "own");

    // Another agent (billing) sees the desk's for billing, not Sam's own.
    let bea = hub.agent_account("bea", &["billing"], 1).await;
    let bea = Api::bearer(&hub, &bea);
    let (_, list) = bea.get("/api/canned-replies").await;
    assert_eq!(shortcuts(&list), ["hello", "refund"]);
    // … and cannot change or delete Sam's, nor the desk's.
    let sams = mine["id"].as_str().unwrap();
    let body = json!({"shortcut": "x", "title": "x", "text": "x"});
    assert_eq!(
        bea.put(&format!("/api/canned-replies/{sams}"), body.clone()).await.0,
        404
    );
    assert_eq!(bea.delete(&format!("/api/canned-replies/{sams}")).await.0, 404);
    let desks = hello["id"].as_str().unwrap();
    assert_eq!(
        bea.put(&format!("/api/canned-replies/{desks}"), body.clone()).await.0,
        404
    );
    assert_eq!(bea.delete(&format!("/api/canned-replies/{desks}")).await.0, 404);
    // An agent may not use the admin API; an admin's route does not reach an agent's reply.
    assert_eq!(bea.get("/api/admin/canned-replies").await.0, 403);
    assert_eq!(
        admin
            .put(&format!("/api/admin/canned-replies/{sams}"), body.clone())
            .await
            .0,
        404
    );

    // Sam edits and deletes their own.
    let edited = sam
        .put_answering(
            200,
            &format!("/api/canned-replies/{sams}"),
            json!({"shortcut": "hi", "title": "Hi", "text": "Hi {customer}, {agent} here.", "categories": ["sales"]}),
        )
        .await;
    assert_eq!(edited["shortcut"], "hi");
    assert_eq!(edited["created_at"], mine["created_at"]);
    assert_eq!(sam.delete(&format!("/api/canned-replies/{sams}")).await.0, 204);
    assert_eq!(sam.delete(&format!("/api/canned-replies/{sams}")).await.0, 404);
    let (_, list) = sam.get("/api/canned-replies").await;
    assert_eq!(shortcuts(&list), ["hello", "pricing"]);

    // Admins edit and delete the desk's.
    let refund_id = refund["id"].as_str().unwrap();
    admin.put_answering(200, &format!("/api/admin/canned-replies/{refund_id}"), json!({"shortcut": "refund", "title": "Refunds", "text": "Refunds take 3 days.", "categories": ["billing", "sales"]})).await;
    let (_, list) = sam.get("/api/canned-replies").await;
    assert_eq!(shortcuts(&list), ["hello", "pricing", "refund"]);
    assert_eq!(
        admin.delete(&format!("/api/admin/canned-replies/{refund_id}")).await.0,
        204
    );
    let (_, list) = admin.get("/api/admin/canned-replies").await;
    assert_eq!(shortcuts(&list), ["hello", "pricing"]);

    // Nobody signed in gets nothing.
    let anonymous = reqwest::get(hub.url("/api/canned-replies")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    hub.stop().await;
}

#[tokio::test]
async fn replies_that_break_a_rule_are_refused_with_its_code() {
    let hub = TestHub::with(|s| s.max_message_len = 50).await;
    let admin = hub.admin().await;
    let ok = json!({"shortcut": "ok_1-x", "title": "Fine", "text": "Fine."});
    assert_eq!(admin.post("/api/admin/canned-replies", ok.clone()).await.0, 201);
    // Each refused body differs from a valid reply by the one field its code names.
    let reply = |shortcut: &str, title: &str, text: &str| json!({"shortcut": shortcut, "title": title, "text": text});
    let long = |n: usize| "x".repeat(n);
    let refused = [
        (reply("ok_1-x", "Again", "Again."), 409, "shortcut_taken"),
        (reply("Hello", "t", "t"), 400, "invalid_shortcut"),
        (reply("", "t", "t"), 400, "invalid_shortcut"),
        (reply("a b", "t", "t"), 400, "invalid_shortcut"),
        (reply(&long(33), "t", "t"), 400, "invalid_shortcut"),
        (reply("t1", "", "t"), 400, "invalid_title"),
        (reply("t2", &long(101), "t"), 400, "invalid_title"),
        (reply("t3", "t", "  "), 400, "invalid_text"),
        (reply("t4", "t", &long(51)), 400, "invalid_text"),
        (
            json!({"shortcut": "t5", "title": "t", "text": "t", "categories": ["nope"]}),
            400,
            "unknown_category",
        ),
        (json!({"shortcut": "t6", "title": "t"}), 400, "bad_json"),
    ];
    let agent = hub.agent_account("ann", &["sales"], 1).await;
    let agent = Api::bearer(&hub, &agent);
    assert_eq!(agent.post("/api/canned-replies", ok.clone()).await.0, 201);
    for (path, who) in [("/api/admin/canned-replies", &admin), ("/api/canned-replies", &agent)] {
        for (body, status, code) in &refused {
            let (got, answer) = who.post(path, body.clone()).await;
            assert_eq!(
                (got, answer["error"]["code"].as_str()),
                (*status, Some(*code)),
                "{path} {body}: {answer}"
            );
        }
    }
    // Exactly 32 characters and 50 (the longest message) are fine.
    let edge = json!({"shortcut": "x".repeat(32), "title": "x".repeat(100), "text": "é".repeat(50)});
    assert_eq!(agent.post("/api/canned-replies", edge).await.0, 201);
    // An edit to a shortcut taken is refused too.
    let (_, other) = agent
        .post(
            "/api/canned-replies",
            json!({"shortcut": "other", "title": "t", "text": "t"}),
        )
        .await;
    refusal(
        agent
            .put(&format!("/api/canned-replies/{}", other["id"].as_str().unwrap()), ok)
            .await,
        409,
        "shortcut_taken",
    );
    hub.stop().await;
}
