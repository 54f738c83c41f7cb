//! Conversations' statuses over the websocket and the inbox API: a paired chat is open in
//! its agent's list; the agent parks it (pending, snoozed until a time, which then opens
//! it again) or resolves it (which ends a live chat); a customer who ends their chat
//! resolves it, one who merely leaves leaves it open in the agent's list. Another agent
//! learns nothing of a conversation not theirs; bad changes are refused and the
//! connection lives on. A customer's line (text or files) into a parked live chat opens
//! it again, on one node and across nodes.

use serde_json::{Value, json};

use crate::common::*;

/// Asks for a status and waits for the answer to this `client_id` (the new status, or an error).
async fn set_status(agent: &mut Ws, conversation: &Value, status: &str, until: Option<i64>, client_id: &str) -> Value {
    let mut frame = json!({"type": "set_conversation_status", "conversation_id": conversation,
        "status": status, "client_id": client_id});
    if let Some(until) = until {
        frame["until"] = json!(until);
    }
    agent.send(frame).await;
    agent
        .next_matching(|f| (f["type"] == "conversation_status" || f["type"] == "error") && f["client_id"] == client_id)
        .await
}

/// The next status this agent hears of `conversation`.
async fn status_of(agent: &mut Ws, conversation: &Value) -> Value {
    agent
        .next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == *conversation)
        .await
}

/// A customer `name` who joined General on `hub` and was paired with `ann`, who has read
/// the chat's `chat_started` and its conversation's first status: the customer's socket
/// and the chat's id.
async fn chat_heard_open(hub: &TestHub, ann: &mut Ws, name: &str) -> (Ws, Value) {
    let (customer, chat) = hub.customer_in_chat(name, "general").await;
    ann.next_of("chat_started").await;
    status_of(ann, &chat).await;
    (customer, chat)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn an_agent_parks_snoozes_and_resolves_a_conversation_and_another_learns_nothing_of_it() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let (mut carla, chat) = hub.customer_in_chat("Carla", "general").await;
    ann.next_of("chat_started").await;
    // Paired: open, in Ann's list.
    let opened = status_of(&mut ann, &chat).await;
    assert_eq!(opened["status"], "open", "{opened}");
    carla
        .send(json!({"type": "message", "text": "my parcel is late", "client_id": "m1"}))
        .await;
    ann.next_of("message").await;

    let ann_api = hub.login("ann", "agent-password").await;
    let (status, mine) = ann_api.get("/api/inbox").await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(item_ids(&mine), vec![chat.as_str().unwrap()]);
    let row = &mine["items"][0];
    assert_eq!(
        (
            row["status"].as_str(),
            row["holder"].is_string(),
            row["customer_name"].as_str(),
            row["last_message"]["text"].as_str()
        ),
        (Some("open"), true, Some("Carla"), Some("my parcel is late")),
        "{row}"
    );

    // Waiting on the customer.
    let pending = set_status(&mut ann, &chat, "pending", None, "s1").await;
    assert_eq!(
        (pending["type"].as_str(), pending["status"].as_str()),
        (Some("conversation_status"), Some("pending")),
        "{pending}"
    );

    // Bad changes: refused with a clear code, nothing changed, the connection lives on.
    let now = now_ms();
    for (status, until, code) in [
        ("snoozed", Some(now - 1000), "snooze_in_past"),
        ("snoozed", Some(now + 400 * 24 * 3600 * 1000), "snooze_too_far"),
        ("snoozed", None, "bad_frame"),
        ("pending", Some(now + 1000), "bad_frame"),
        ("closed", None, "invalid_status"),
    ] {
        let refused = set_status(&mut ann, &chat, status, until, code).await;
        assert_eq!(
            (refused["type"].as_str(), refused["code"].as_str()),
            (Some("error"), Some(code)),
            "{status} {until:?}: {refused}"
        );
    }
    let unknown = set_status(&mut ann, &json!("no-such-conversation"), "pending", None, "s2").await;
    assert_eq!(unknown["code"], "unknown_conversation");

    // Bob's answer for Ann's conversation is the answer for none at all.
    let mut bob = hub.agent("bob", &["general"], 1).await;
    for status in ["pending", "resolved", "open"] {
        let refused = set_status(&mut bob, &chat, status, None, status).await;
        assert_eq!(
            (refused["code"].as_str(), refused["message"].as_str()),
            (unknown["code"].as_str(), unknown["message"].as_str()),
            "{refused}"
        );
    }
    let bob_api = hub.login("bob", "agent-password").await;
    assert_eq!(item_ids(&bob_api.get("/api/inbox").await.1), Vec::<&str>::new());
    // He serves General too: he sees it in everyone's list (read-only, as above), and it
    // is not unassigned.
    let chat_id = chat.as_str().unwrap();
    let everyones = bob_api.get("/api/inbox?view=all").await.1;
    assert_eq!(item_ids(&everyones), vec![chat_id]);
    // Named by whose list it is in.
    assert_eq!(everyones["items"][0]["holder_name"], "ANN", "{everyones}");
    assert_eq!(
        item_ids(&bob_api.get("/api/inbox?view=unassigned").await.1),
        Vec::<&str>::new()
    );
    let (status, body) = ann_api.get("/api/inbox?status=waiting").await;
    assert_eq!((status, error_code(&body)), (400, "bad_query"), "{body}");

    // Snoozed a moment: it opens again by itself, to Ann's attention.
    let snoozed = set_status(&mut ann, &chat, "snoozed", Some(now_ms() + 700), "s3").await;
    assert_eq!(snoozed["status"], "snoozed", "{snoozed}");
    assert!(snoozed["snoozed_until"].is_i64(), "{snoozed}");
    let (_, parked) = ann_api.get("/api/inbox?status=snoozed").await;
    assert_eq!(item_ids(&parked), vec![chat.as_str().unwrap()]);
    let woken = status_of(&mut ann, &chat).await;
    assert_eq!(woken["status"], "open", "{woken}");

    // Resolving the live chat ends it: the customer is told and may rate it.
    let ended = resolved(&mut ann, &mut carla, &chat).await;
    assert_eq!(
        (ended["ended_by"].as_str(), ended["reason"].as_str()),
        (Some("agent"), Some("ended")),
        "{ended}"
    );
    assert!(ended["rating"]["token"].is_string(), "{ended}");
    assert_eq!(status_of(&mut ann, &chat).await["status"], "resolved");
    assert_eq!(item_ids(&ann_api.get("/api/inbox").await.1), Vec::<&str>::new());
    let (_, done) = ann_api.get("/api/inbox?status=resolved").await;
    assert_eq!(item_ids(&done), vec![chat.as_str().unwrap()]);
    // An admin sees everyone's.
    let admin = hub.admin().await;
    let (status, all) = admin
        .get("/api/inbox?view=all&status=open,pending,snoozed,resolved")
        .await;
    assert_eq!(status, 200);
    assert_eq!(item_ids(&all), vec![chat.as_str().unwrap()]);
    hub.stop().await;
}

#[tokio::test]
async fn a_customer_who_ends_resolves_and_one_who_leaves_stays_open_in_the_agents_list() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let ann_api = hub.login("ann", "agent-password").await;

    let (mut carla, ended_chat) = hub.customer_in_chat("Carla", "general").await;
    assert_eq!(status_of(&mut ann, &ended_chat).await["status"], "open");
    carla.send(json!({"type": "leave"})).await;
    assert_eq!(status_of(&mut ann, &ended_chat).await["status"], "resolved");

    let (dora, left_chat) = hub.customer_in_chat("Dora", "general").await;
    assert_eq!(status_of(&mut ann, &left_chat).await["status"], "open");
    // Her page closes and she is gone past the grace period: the chat ends, the
    // conversation stays in Ann's list, open.
    drop(dora);
    let gone = ann
        .next_matching(|f| f["type"] == "chat_ended" && f["chat_id"] == left_chat)
        .await;
    assert_eq!(gone["reason"], "customer_gone", "{gone}");
    let (_, mine) = ann_api.get("/api/inbox").await;
    assert_eq!(item_ids(&mine), vec![left_chat.as_str().unwrap()], "{mine}");
    assert_eq!(mine["items"][0]["status"], "open");
    let (_, resolved) = ann_api.get("/api/inbox?status=resolved").await;
    assert_eq!(item_ids(&resolved), vec![ended_chat.as_str().unwrap()]);
    // The archive says the same, listed and whole.
    let (_, archived) = ann_api.get("/api/conversations").await;
    let status_in_archive = |id: &Value| find_by(&archived["items"], "id", id).map(|c| c["status"].clone());
    assert_eq!(status_in_archive(&ended_chat), Some(json!("resolved")), "{archived}");
    assert_eq!(status_in_archive(&left_chat), Some(json!("open")), "{archived}");

    // Ann parks the one Dora left, then resolves it: no live chat to end any more.
    let parked = set_status(&mut ann, &left_chat, "pending", None, "p").await;
    assert_eq!(parked["status"], "pending", "{parked}");
    let (_, whole) = ann_api
        .get(&format!("/api/conversations/{}", left_chat.as_str().unwrap()))
        .await;
    assert_eq!(whole["status"], "pending", "{whole}");
    let done = set_status(&mut ann, &left_chat, "resolved", None, "r").await;
    assert_eq!(done["status"], "resolved", "{done}");
    assert_eq!(item_ids(&ann_api.get("/api/inbox").await.1), Vec::<&str>::new());
    hub.stop().await;
}

#[tokio::test]
async fn across_nodes_the_holder_hears_what_the_customers_node_changes() {
    // Carla is on beta, which archives her chat and records its conversation.
    let (_cluster, [alpha, beta], mut ann, mut carla, chat) =
        Cluster::ann_chatting_with_carla_open("cluster-conversations", 1).await;
    // Ann parks it from alpha: one store for both nodes.
    let parked = set_status(&mut ann, &chat, "pending", None, "p").await;
    assert_eq!(parked["status"], "pending", "{parked}");
    carla.send(json!({"type": "leave"})).await;
    assert_eq!(status_of(&mut ann, &chat).await["status"], "resolved");
    let (_, done) = alpha
        .login("ann", "agent-password")
        .await
        .get("/api/inbox?status=resolved")
        .await;
    assert_eq!(item_ids(&done), vec![chat.as_str().unwrap()]);
    alpha.stop().await;
    beta.stop().await;
}

/// The row of `/api/inbox` (all statuses) for conversation `id`.
async fn inbox_row(api: &Api, id: &Value) -> Value {
    let (status, page) = api.get("/api/inbox?status=open,pending,snoozed,resolved").await;
    assert_eq!(status, 200, "{page}");
    find_by(&page["items"], "id", id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not in the inbox: {page}"))
}

#[tokio::test]
async fn a_customers_line_into_a_parked_live_chat_opens_it_again_for_its_agent() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let ann_api = hub.login("ann", "agent-password").await;
    let (mut carla, chat) = hub.customer_in_chat("Carla", "general").await;
    ann.next_of("chat_started").await;
    assert_eq!(status_of(&mut ann, &chat).await["status"], "open");

    // Waiting on Carla: her next line opens it again, and Ann hears so.
    let parked = set_status(&mut ann, &chat, "pending", None, "p").await;
    assert_eq!(parked["status"], "pending", "{parked}");
    let parked_since = parked["since"].as_i64().unwrap();
    carla
        .send(json!({"type": "message", "text": "here is the order number", "client_id": "m1"}))
        .await;
    assert_eq!(carla.next_of("ack").await["client_id"], "m1");
    ann.next_of("message").await;
    let reopened = status_of(&mut ann, &chat).await;
    assert_eq!(reopened["status"], "open", "{reopened}");
    let row = inbox_row(&ann_api, &chat).await;
    assert_eq!(row["status"], "open", "{row}");
    assert!(row["status_since"].as_i64().unwrap() >= parked_since, "{row}");

    // Snoozed for an hour: a line with a file opens it too.
    let until = now_ms() + 3_600_000;
    let snoozed = set_status(&mut ann, &chat, "snoozed", Some(until), "s").await;
    assert_eq!(snoozed["status"], "snoozed", "{snoozed}");
    let token = carla.token.clone().unwrap();
    let (status, file) = crate::attachments::upload(
        &hub,
        crate::attachments::Auth::Customer(&token),
        chat.as_str().unwrap(),
        "receipt.png",
        crate::attachments::png(20, 20),
    )
    .await;
    assert_eq!(status, 201, "{file}");
    carla
        .send(json!({"type": "message", "text": "", "attachments": [file["id"]], "client_id": "m2"}))
        .await;
    assert_eq!(carla.next_of("ack").await["client_id"], "m2");
    let reopened = status_of(&mut ann, &chat).await;
    assert_eq!(reopened["status"], "open", "{reopened}");
    let row = inbox_row(&ann_api, &chat).await;
    assert_eq!(
        (row["status"].as_str(), &row["snoozed_until"]),
        (Some("open"), &Value::Null),
        "{row}"
    );

    // Open already: her lines change nothing; the next status Ann hears is her own.
    carla
        .send(json!({"type": "message", "text": "thanks", "client_id": "m3"}))
        .await;
    carla.next_of("ack").await;
    let again = set_status(&mut ann, &chat, "pending", None, "p2").await;
    assert_eq!(again["status"], "pending", "{again}");
    hub.stop().await;
}

#[tokio::test]
async fn across_nodes_a_customers_line_opens_what_her_agent_parked_on_another_node() {
    // Ann on alpha, Carla on beta: the status is set on alpha, the line comes in on beta.
    let (_cluster, [alpha, beta], mut ann, mut carla, chat) =
        Cluster::ann_chatting_with_carla_open("cluster-conversations-reopen", 1).await;
    let ann_api = alpha.login("ann", "agent-password").await;
    for (i, status) in ["pending", "snoozed"].into_iter().enumerate() {
        let until = (status == "snoozed").then(|| now_ms() + 3_600_000);
        let parked = set_status(&mut ann, &chat, status, until, status).await;
        assert_eq!(parked["status"], status, "{parked}");
        // Her line, sent on beta, reaches the store's record through whichever node
        // records it knowing the status (alpha knew before Ann heard; beta by the bus).
        let client_id = format!("m{i}");
        carla
            .send(json!({"type": "message", "text": format!("line {i}"), "client_id": client_id}))
            .await;
        assert_eq!(carla.next_of("ack").await["client_id"], client_id.as_str());
        let reopened = status_of(&mut ann, &chat).await;
        assert_eq!(reopened["status"], "open", "{reopened}");
        assert_eq!(inbox_row(&ann_api, &chat).await["status"], "open");
    }
    alpha.stop().await;
    beta.stop().await;
}

#[tokio::test]
async fn across_nodes_a_parked_chat_whose_sides_both_came_back_on_a_third_node_opens_on_her_line() {
    // Ann on alpha, Carla on beta; Ann parks the chat, then both reload onto gamma, which
    // never held the chat: its log there is made anew and must know the chat is parked.
    let cluster = Cluster::start("cluster-conversations-moved").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    let gamma = cluster.node("gamma", |_| {}).await;
    let (mut ann, ann_session) = alpha.agent_with_token("ann", &["general"], 1).await;
    let (carla, chat) = beta.customer_in_chat("Carla", "general").await;
    ann.next_of("chat_started").await;
    let parked = set_status(&mut ann, &chat, "pending", None, "p").await;
    assert_eq!(parked["status"], "pending", "{parked}");
    let resume_token = carla.token.clone().unwrap();
    drop(ann);
    drop(carla);
    let mut ann = Ws::agent(&gamma, &ann_session).await;
    let mut carla = Ws::connect(&gamma.ws_url("/ws/customer"), &[]).await.unwrap();
    carla
        .send(json!({"type": "resume", "token": resume_token, "last_seq": 0}))
        .await;
    assert_eq!(carla.next_of("resumed").await["chat"]["chat_id"], chat);
    carla
        .send(json!({"type": "message", "text": "back again", "client_id": "m1"}))
        .await;
    assert_eq!(carla.next_of("ack").await["client_id"], "m1");
    let reopened = status_of(&mut ann, &chat).await;
    assert_eq!(reopened["status"], "open", "{reopened}");
    alpha.stop().await;
    beta.stop().await;
    gamma.stop().await;
}

/// Ann on alpha, Carla on beta, the chat open on both nodes. A change made on another node
/// parks it: stored, its news still on the bus (published after the store took it, it can
/// reach a node after a line that node stamped since). Carla writes after the park and
/// before either node hears of it: when they do, her line opens it again, once.
#[tokio::test]
async fn across_nodes_a_line_written_after_a_park_its_nodes_hear_of_late_opens_it() {
    use switchboard::cluster::bus::{ADMIN_CHANNEL, AdminChange};
    use switchboard::store::ConversationStatus;
    let (cluster, [alpha, beta], mut ann, mut carla, chat) =
        Cluster::ann_chatting_with_carla_open("cluster-conversations-late-news", 1).await;
    let id = chat.as_str().unwrap();
    let mut parked = cluster.store.conversation_record(id).await.unwrap();
    parked.status = ConversationStatus::Pending;
    parked.status_since = now_ms();
    parked.version += 1;
    cluster.store.put_conversation_record(&parked).await.unwrap();
    carla
        .send(json!({"type": "message", "text": "still there?", "client_id": "m1"}))
        .await;
    assert_eq!(carla.next_of("ack").await["client_id"], "m1");
    ann.next_of("message").await;
    // The news, as the node that made the change publishes it (from a node of its own).
    let news = json!({"from": "delta", "change": AdminChange::Conversation { record: parked.clone(), woken: false }});
    let mut redis = crate::cluster_fixture::redis_conn(&cluster.redis).await;
    redis::cmd("PUBLISH")
        .arg(ADMIN_CHANNEL)
        .arg(news.to_string())
        .query_async::<i64>(&mut redis)
        .await
        .unwrap();
    let reopened = ann
        .next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == chat && f["status"] == "open")
        .await;
    assert!(reopened["since"].as_i64().unwrap() >= parked.status_since, "{reopened}");
    // Opened once, whichever nodes handed the writer her line.
    let stored = cluster.store.conversation_record(id).await.unwrap();
    assert_eq!(
        (stored.status, stored.version),
        (ConversationStatus::Open, parked.version + 1)
    );
    alpha.stop().await;
    beta.stop().await;
}

#[tokio::test]
async fn the_archive_listing_and_its_export_filter_by_status_and_refuse_an_unknown_one() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let (_carla, carla_chat) = chat_heard_open(&hub, &mut ann, "Carla").await;
    let (_dora, dora_chat) = chat_heard_open(&hub, &mut ann, "Dora").await;
    let pending = set_status(&mut ann, &carla_chat, "pending", None, "s1").await;
    assert_eq!(pending["status"], "pending", "{pending}");

    let ann_api = hub.login("ann", "agent-password").await;
    let (status, page) = ann_api.get("/api/conversations?status=pending").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(item_ids(&page), [carla_chat.as_str().unwrap()], "{page}");
    assert_eq!(page["items"][0]["status"], "pending", "{page}");
    let (_, either) = ann_api.get("/api/conversations?status=open,resolved").await;
    assert_eq!(item_ids(&either), [dora_chat.as_str().unwrap()], "{either}");
    let (_, any) = ann_api.get("/api/conversations?status=").await;
    assert_eq!(any["total"], 2, "empty: any status: {any}");

    let (status, refused) = ann_api.get("/api/conversations?status=closed").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "bad_query", "{refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("\"closed\""),
        "{refused}"
    );
    let (status, refused) = ann_api.get("/api/conversations/export?format=csv&status=closed").await;
    assert_eq!(status, 400, "the export refuses it too: {refused}");

    let csv = ann_api
        .client
        .get(format!(
            "{}/api/conversations/export?format=json&status=pending",
            ann_api.base
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let exported: Vec<&str> = ids_in(&csv["conversations"]);
    assert_eq!(exported, [carla_chat.as_str().unwrap()], "{csv}");
}

#[tokio::test]
async fn a_snooze_that_ran_out_is_told_to_its_agent_as_no_answer_since_its_end() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let (_carla, chat) = chat_heard_open(&hub, &mut ann, "Carla").await;
    let until = now_ms() + 1_500;
    let snoozed = set_status(&mut ann, &chat, "snoozed", Some(until), "s1").await;
    assert_eq!(snoozed["status"], "snoozed", "{snoozed}");
    // Open again by itself: no client id, since at or after the snooze's end (what tells
    // a snooze that ran out from a reopening, for the console's attention).
    let woken = ann
        .next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == chat && f["status"] == "open")
        .await;
    assert!(woken.get("client_id").is_none_or(Value::is_null), "{woken}");
    assert!(woken["since"].as_i64().unwrap() >= until, "{woken}");

    // Its inbox marks it so (the store's, not a console's memory) until Ann opens it:
    // someone else's opening leaves the mark, hers clears it.
    let ann_api = hub.login("ann", "agent-password").await;
    let mark = |inbox: &Value| {
        let item = inbox["items"].as_array().unwrap().iter().find(|i| i["id"] == chat);
        item.map(|i| i["snooze_ended_at"].clone())
    };
    let (_, inbox) = ann_api.get("/api/inbox").await;
    let ended_at = mark(&inbox).and_then(|m| m.as_i64());
    assert!(ended_at.is_some_and(|at| at >= until), "{inbox}");
    let opened = format!("/api/conversations/{}/opened", chat.as_str().unwrap());
    let admin = hub.admin().await;
    let (status, _) = admin.post(&opened, json!({})).await;
    assert_eq!(status, 204);
    let (_, inbox) = ann_api.get("/api/inbox").await;
    assert_eq!(mark(&inbox).and_then(|m| m.as_i64()), ended_at, "not hers: {inbox}");
    let (status, _) = ann_api.post(&opened, json!({})).await;
    assert_eq!(status, 204);
    let (_, inbox) = ann_api.get("/api/inbox").await;
    assert_eq!(mark(&inbox), Some(Value::Null), "opened: {inbox}");
    let (status, _) = ann_api.post(&opened, json!({})).await;
    assert_eq!(status, 204, "safe to repeat");
}

#[tokio::test]
async fn the_archive_listing_answers_a_status_with_a_category_and_dates_exactly_however_common_the_status() {
    use switchboard::store::ConversationStatus::{Pending, Resolved};
    use switchboard::store::{ArchiveEvent, ConversationKind, ConversationOpened, ConversationRecord};
    let hub = TestHub::start().await;
    // More resolved conversations than any one listing should have to hold in memory (the
    // archive once refused a status matching over 100,000, whatever the other filters)...
    for i in 0..100_001 {
        hub.store
            .put_conversation_record(&ConversationRecord::first(
                &format!("long-ago-{i}"),
                "general",
                Resolved,
                1,
            ))
            .await
            .unwrap();
    }
    // ...and a few in the window asked for: sales, paired from 500 to 5,000.
    let opening = |id: &str, category: &str, paired_at: i64| {
        ArchiveEvent::Opened(ConversationOpened {
            id: id.into(),
            kind: ConversationKind::Service,
            category: Some(category.into()),
            customer_name: format!("customer of {id}"),
            agent_id: "a1".into(),
            agent_name: "A One".into(),
            queued_at: paired_at - 5,
            paired_at,
            customer: Default::default(),
        })
    };
    hub.store
        .archive(&[
            opening("w1", "sales", 1_000),
            opening("w2", "sales", 2_000),
            opening("w3", "support", 2_000),
            opening("w4", "sales", 9_000),
        ])
        .await
        .unwrap();
    for (id, status) in [("w1", Resolved), ("w2", Pending), ("w3", Resolved), ("w4", Resolved)] {
        hub.store
            .put_conversation_record(&ConversationRecord::first(id, "general", status, 1))
            .await
            .unwrap();
    }
    let admin = hub.admin().await;
    // The ids listed for `query`, and the total.
    let listed = |query: &'static str| {
        let admin = &admin;
        async move {
            let (status, page) = admin.get(&format!("/api/conversations?{query}")).await;
            assert_eq!(status, 200, "{page}");
            let ids: Vec<String> = item_ids(&page).into_iter().map(String::from).collect();
            (ids, page["total"].as_u64().unwrap())
        }
    };
    assert_eq!(
        listed("status=resolved&category=sales&from=500&to=5000").await,
        (vec!["w1".to_string()], 1)
    );
    assert_eq!(
        listed("status=resolved,pending&category=sales&from=500&to=5000&offset=1&limit=1").await,
        (vec!["w1".to_string()], 2)
    );
    // The search and the export filter the same way.
    assert_eq!(
        listed("status=resolved&category=sales&from=500&to=5000&q=customer").await,
        (vec!["w1".to_string()], 1)
    );
    let (status, exported) = admin
        .get("/api/conversations/export?format=json&status=resolved&category=sales&from=500&to=5000")
        .await;
    assert_eq!(status, 200, "{exported}");
    assert_eq!(ids_in(&exported["conversations"]), ["w1"], "{exported}");
    hub.stop().await;
}

/// Waits a moment and says whether `ws` heard a `snooze_ended` meanwhile.
async fn heard_snooze_ended(ws: &mut Ws) -> bool {
    while let Some(frame) = ws.recv_within(std::time::Duration::from_millis(500)).await {
        if frame["type"] == "snooze_ended" {
            return true;
        }
    }
    false
}

/// `holder` snoozes `chat` for a moment; `lister` hears `snooze_ended` of it once it ran
/// out: that frame, and the snooze's end.
async fn snoozed_until_told(holder: &mut Ws, lister: &mut Ws, chat: &Value) -> (Value, i64) {
    let until = now_ms() + 1_500;
    let snoozed = set_status(holder, chat, "snoozed", Some(until), "s1").await;
    assert_eq!(snoozed["status"], "snoozed", "{snoozed}");
    let told = lister
        .next_matching(|f| f["type"] == "snooze_ended" && f["conversation_id"] == *chat)
        .await;
    assert!(told["since"].as_i64().unwrap() >= until, "{told}");
    (told, until)
}

#[tokio::test]
async fn a_snooze_that_ran_out_is_told_at_once_to_every_agent_who_may_list_it() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let (_carla, chat) = chat_heard_open(&hub, &mut ann, "Carla").await;
    // Bea serves the same category (her "all" and "unassigned" views list it); Otto does not.
    let mut bea = hub.agent("bea", &["general"], 1).await;
    let mut otto = hub.agent("otto", &["billing"], 1).await;
    let (told, until) = snoozed_until_told(&mut ann, &mut bea, &chat).await;
    assert_eq!(told["category"], "general", "{told}");
    assert!(told["holder"].is_string(), "Ann's: {told}");
    // Its holder hears its status, as before, and not this as well.
    let woken = ann
        .next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == chat && f["status"] == "open")
        .await;
    assert!(woken["since"].as_i64().unwrap() >= until, "{woken}");
    assert!(!heard_snooze_ended(&mut ann).await);
    assert!(!heard_snooze_ended(&mut otto).await, "not a conversation Otto may list");
    hub.stop().await;
}

#[tokio::test]
async fn across_nodes_a_snooze_that_ran_out_is_told_at_once_to_every_agent_who_may_list_it() {
    // Ann is on alpha, Carla (whose node archives the chat) on beta, and so is Bea.
    let (_cluster, [alpha, beta], mut ann, _carla, chat) =
        Cluster::ann_chatting_with_carla("cluster-conversations-snooze-ended", 1).await;
    ann.seen_or_next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == chat)
        .await;
    let mut bea = beta.agent("bea", &["general"], 1).await;
    snoozed_until_told(&mut ann, &mut bea, &chat).await;
    alpha.stop().await;
    beta.stop().await;
}

/// Statuses over HTTP (`PUT /api/conversations/{id}/status`): an admin parks, snoozes and
/// resolves any conversation, its holder their own; another agent learns nothing of it;
/// a live chat is not resolved there; bad changes are refused by name. The holder's
/// console hears each change.
#[tokio::test]
async fn an_admin_and_the_holder_set_a_status_over_http_and_nobody_else_does() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let admin = hub.admin().await;
    let (dora, chat) = hub.customer_in_chat("Dora", "general").await;
    assert_eq!(status_of(&mut ann, &chat).await["status"], "open");
    let path = format!("/api/conversations/{}/status", chat.as_str().unwrap());

    // Live: resolving it there is refused, to the admin as to its agent.
    let ann_api = hub.login("ann", "agent-password").await;
    for api in [&admin, &ann_api] {
        let (status, body) = api.put(&path, json!({"status": "resolved"})).await;
        assert_eq!((status, error_code(&body)), (409, "conversation_live"), "{body}");
    }
    // Another agent learns nothing of it, live or not.
    hub.agent_account("bob", &["general"], 1).await;
    let bob_api = hub.login("bob", "agent-password").await;
    let (status, body) = bob_api.put(&path, json!({"status": "resolved"})).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    drop(dora);
    ann.next_matching(|f| f["type"] == "chat_ended" && f["chat_id"] == chat)
        .await;

    // The admin parks it: Ann's console hears it.
    let (status, body) = admin.put(&path, json!({"status": "pending"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("pending")), "{body}");
    assert_eq!(status_of(&mut ann, &chat).await["status"], "pending");
    let until = now_ms() + 3_600_000;
    let (status, body) = admin.put(&path, json!({"status": "snoozed", "until": until})).await;
    assert_eq!((status, body["snoozed_until"].as_i64()), (200, Some(until)), "{body}");
    assert_eq!(status_of(&mut ann, &chat).await["status"], "snoozed");

    // Refused by name, nothing changed.
    for (change, code) in [
        (json!({"status": "done"}), "invalid_status"),
        (json!({"status": "snoozed"}), "invalid_status"),
        (json!({"status": "pending", "until": until}), "invalid_status"),
        (
            json!({"status": "snoozed", "until": now_ms() - 60_000}),
            "snooze_in_past",
        ),
        (json!({"status": "pending", "by": "me"}), "bad_json"),
    ] {
        let (status, body) = admin.put(&path, change.clone()).await;
        assert_eq!((status, error_code(&body)), (400, code), "{change}: {body}");
    }

    // Another agent: as if there were none.
    let (status, body) = bob_api.put(&path, json!({"status": "open"})).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    let (status, body) = admin
        .put("/api/conversations/no-such-one/status", json!({"status": "open"}))
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");

    // Its holder resolves it.
    let (status, body) = ann_api.put(&path, json!({"status": "resolved"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("resolved")), "{body}");
    assert_eq!(status_of(&mut ann, &chat).await["status"], "resolved");
    hub.stop().await;
}
