//! Labels: admins define them; a conversation's holder (or an admin) puts them on and takes
//! them off; the inbox filters by them and the archive's listing and CSV show them. Another
//! agent learns nothing of a conversation not theirs; bad labels are refused; two changes
//! at once both land.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn labels_are_defined_by_admins_put_on_by_the_holder_and_filter_the_inbox() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let admin = hub.admin().await;

    // Defining: the id is made from the name; bad names, colours and ids are refused.
    let (status, billing) = admin
        .post(
            "/api/admin/labels",
            json!({"name": "Billing & refunds", "colour": "#1F6FEB"}),
        )
        .await;
    assert_eq!(status, 201, "{billing}");
    assert_eq!(
        (billing["id"].as_str(), billing["colour"].as_str()),
        (Some("billing-refunds"), Some("#1f6feb"))
    );
    let vip = json!({"name": "VIP", "colour": "#d29922", "id": "vip"});
    admin.post_answering(201, "/api/admin/labels", vip).await;
    for (body, code) in [
        (json!({"name": "", "colour": "#000000"}), "invalid_name"),
        (json!({"name": "Red", "colour": "red"}), "invalid_colour"),
        (
            json!({"name": "Red", "colour": "#ff0000", "id": "Has Space"}),
            "invalid_id",
        ),
        (json!({"name": "🙂", "colour": "#ff0000"}), "invalid_id"),
    ] {
        let (status, refused) = admin.post("/api/admin/labels", body.clone()).await;
        assert_eq!((status, error_code(&refused)), (400, code), "{body}: {refused}");
    }
    let (status, _) = admin
        .post("/api/admin/labels", json!({"name": "vip", "colour": "#000000"}))
        .await;
    assert_eq!(status, 409, "an id taken");

    // An agent reads the list, by name, but cannot change it.
    let ann_api = hub.login("ann", "agent-password").await;
    let (status, list) = ann_api.get("/api/labels").await;
    assert_eq!(status, 200);
    assert_eq!(strs_in(&list, "name"), ["Billing & refunds", "VIP"]);
    let (status, _) = ann_api
        .post("/api/admin/labels", json!({"name": "Mine", "colour": "#000000"}))
        .await;
    assert_eq!(status, 403);

    // Two conversations in Ann's list.
    let (_carla, first) = hub.customer_in_chat("Carla", "general").await;
    ann.next_of("chat_started").await;
    let (_dora, second) = hub.customer_in_chat("Dora", "general").await;
    ann.next_of("chat_started").await;
    let (first, second) = (first.as_str().unwrap(), second.as_str().unwrap());
    // The conversations' records are written by the hub's ordered writer: wait for both.
    let mut tries = 0;
    while item_ids(&ann_api.get("/api/inbox").await.1).len() < 2 {
        tries += 1;
        assert!(tries < 100, "both conversations reach Ann's inbox");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The holder labels one; a retried click changes nothing; her console hears it.
    let (status, labelled) = ann_api
        .put(&format!("/api/conversations/{first}/labels/vip"), json!({}))
        .await;
    assert_eq!(
        (status, labelled["labels"].clone()),
        (200, json!(["vip"])),
        "{labelled}"
    );
    let heard = ann
        .next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == first)
        .await;
    assert_eq!(heard["labels"], json!(["vip"]), "{heard}");
    let (status, again) = ann_api
        .put(&format!("/api/conversations/{first}/labels/vip"), json!({}))
        .await;
    assert_eq!((status, again["labels"].clone()), (200, json!(["vip"])));
    let (status, refused) = ann_api
        .put(&format!("/api/conversations/{first}/labels/nope"), json!({}))
        .await;
    assert_eq!((status, error_code(&refused)), (400, "unknown_label"), "{refused}");

    // Another agent: Ann's conversation answers as a missing one.
    let _bob = hub.agent("bob", &["general"], 1).await;
    let bob_api = hub.login("bob", "agent-password").await;
    let (status, theirs) = bob_api
        .put(&format!("/api/conversations/{first}/labels/vip"), json!({}))
        .await;
    let (status_none, none) = bob_api.put("/api/conversations/no-such/labels/vip", json!({})).await;
    assert_eq!(
        (status, error_code(&theirs)),
        (status_none, error_code(&none)),
        "{theirs} {none}"
    );
    assert_eq!(status, 404);

    // Two changes at once (Ann and an admin) both land.
    let (path_billing, path_vip) = (
        format!("/api/conversations/{second}/labels/billing-refunds"),
        format!("/api/conversations/{second}/labels/vip"),
    );
    let (a, b) = tokio::join!(ann_api.put(&path_billing, json!({})), admin.put(&path_vip, json!({})));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let (_, both) = admin
        .put(&format!("/api/conversations/{second}/labels/vip"), json!({}))
        .await;
    let mut labels = strs(&both["labels"]);
    labels.sort();
    assert_eq!(labels, ["billing-refunds", "vip"]);

    // The inbox filters by label and shows each row's labels.
    let (_, vips) = ann_api.get("/api/inbox?label=vip").await;
    let mut vip_ids = item_ids(&vips);
    vip_ids.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(vip_ids, expected);
    let (_, billing_only) = ann_api.get("/api/inbox?label=billing-refunds").await;
    assert_eq!(item_ids(&billing_only), [second]);
    assert_eq!(billing_only["items"][0]["labels"].as_array().unwrap().len(), 2);

    // Taken off; a deleted label disappears from views but can still be taken off.
    let (status, off) = ann_api.delete(&format!("/api/conversations/{first}/labels/vip")).await;
    assert_eq!((status, off["labels"].clone()), (200, json!([])));
    let (status, _) = admin.delete("/api/admin/labels/billing-refunds").await;
    assert_eq!(status, 204);
    let (_, row) = ann_api.get("/api/inbox?label=vip").await;
    assert_eq!(
        row["items"][0]["labels"],
        json!(["vip"]),
        "the deleted label is not shown: {row}"
    );
    let (status, _) = admin.delete("/api/admin/labels/billing-refunds").await;
    assert_eq!(status, 404);

    // A rename keeps the id, and the conversations carrying it.
    let (status, renamed) = admin
        .patch("/api/admin/labels/vip", json!({"name": "Key account"}))
        .await;
    assert_eq!(
        (status, renamed["id"].as_str(), renamed["name"].as_str()),
        (200, Some("vip"), Some("Key account"))
    );
    assert_eq!(item_ids(&ann_api.get("/api/inbox?label=vip").await.1), [second]);
}

#[tokio::test]
async fn the_archive_listing_and_csv_show_a_conversations_labels() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let admin = hub.admin().await;
    admin
        .post("/api/admin/labels", json!({"name": "Bug", "colour": "#cf222e"}))
        .await;
    let (_carla, chat) = hub.carla_said_to(&mut ann, "it crashes").await;
    let chat = chat.as_str().unwrap();
    let ann_api = hub.login("ann", "agent-password").await;
    let bug = format!("/api/conversations/{chat}/labels/bug");
    let written = "the conversation's record is written";
    ann_api
        .put_until_200(&bug, json!({}), std::time::Duration::from_secs(5), written)
        .await;
    // A second conversation without the label.
    let (_dora, _other) = hub.customer_in_chat("Dora", "general").await;
    ann.next_of("chat_started").await;
    let (status, page) = ann_api.get("/api/conversations?label=bug").await;
    assert_eq!((status, page["total"].as_u64()), (200, Some(1)), "{page}");
    assert_eq!(page["items"][0]["labels"], json!(["bug"]), "{page}");
    let (_, words) = ann_api.get("/api/conversations?label=bug&q=crashes").await;
    assert_eq!(words["total"], 1, "{words}");
    let (_, none) = ann_api.get("/api/conversations?label=nothing-carries-it").await;
    assert_eq!(none["total"], 0, "{none}");
    let csv = ann_api
        .client
        .get(format!(
            "{}/api/conversations/export?format=csv&label=bug",
            ann_api.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|c| *c == "labels").expect("a labels column");
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row[column], "bug", "{csv}");
    assert_eq!(lines.count(), 0, "only the labelled conversation's one message: {csv}");
}

#[tokio::test]
async fn across_nodes_a_label_put_on_one_node_reaches_the_holder_on_another() {
    // Ann is on alpha; Carla on beta, which records her conversation. One store for both.
    let (_cluster, [alpha, beta], mut ann, _carla, chat) = Cluster::ann_chatting_with_carla("cluster-labels", 1).await;
    let chat = chat.as_str().unwrap().to_string();
    // Its opening status may have come before Ann's `chat_started`.
    ann.seen_or_next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == chat.as_str())
        .await;
    let beta_admin = beta.admin().await;
    let (status, _) = beta_admin
        .post("/api/admin/labels", json!({"name": "Urgent", "colour": "#cf222e"}))
        .await;
    assert_eq!(status, 201);
    // An admin on beta puts it on: Ann, on alpha, hears it; her inbox on alpha filters by it.
    let (status, put) = beta_admin
        .put(&format!("/api/conversations/{chat}/labels/urgent"), json!({}))
        .await;
    assert_eq!(status, 200, "{put}");
    let heard = ann
        .next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == chat.as_str())
        .await;
    assert_eq!(heard["labels"], json!(["urgent"]), "{heard}");
    let ann_on_alpha = alpha.login("ann", "agent-password").await;
    assert_eq!(
        item_ids(&ann_on_alpha.get("/api/inbox?label=urgent").await.1),
        [chat.as_str()]
    );
    // Ann takes it off from alpha.
    let (status, off) = ann_on_alpha
        .delete(&format!("/api/conversations/{chat}/labels/urgent"))
        .await;
    assert_eq!((status, off["labels"].clone()), (200, json!([])));
    alpha.stop().await;
    beta.stop().await;
}
