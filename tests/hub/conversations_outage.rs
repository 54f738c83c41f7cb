//! Conversations while MongoDB is frozen (SIGSTOP): a customer continuing one, its agent
//! setting its status or a label, each get a clear answer within the archive's write
//! timeout and change nothing; the connection lives on, and once the server runs again the
//! same requests go through with the `seq` going on from the last acknowledged line.
//!
//! And while MongoDB holds the hub's writes but answers its reads (a stalled journal; the
//! server's `failCommand` failpoint sleeps on each write, then carries it out): an agent
//! putting a label on or taking a conversation over HTTP is answered 503 within the write
//! timeout, not held; the write lands once the server gets to it, and the same request
//! sent again is answered 200 with nothing done twice. So is an answer by mail named by
//! its `client_id`: one reply archived, one mail in the outbox; and a note named by its
//! `client_id`: one note stored.
//!
//! And while MongoDB refuses the writes after a conversation's record changed: a
//! reassignment that took effect is answered 200, and its hand-over reaches the archive
//! once the server takes writes again.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::continuing::{VISITOR, continuing, first_visit, own_until};

/// The archive's write timeout here (`ARCHIVE_WRITE_TIMEOUT_MS`; 15 s by default).
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// `admin` defines the label VIP (id `vip`).
pub(crate) async fn defines_vip(admin: &Api) {
    admin
        .post_answering(
            201,
            "/api/admin/labels",
            json!({"name": "VIP", "colour": "#d29922", "id": "vip"}),
        )
        .await;
}

/// The next frame of `ws` that is not a `place`/`queued`/`desk_status` notice, within `wait`.
async fn answer_within(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let frame = ws.recv_within(left).await?;
        if !matches!(frame["type"].as_str(), Some("welcome" | "desk_status")) {
            return Some(frame);
        }
    }
    None
}

/// The answer to `ws`'s frame `client_id` (an error, or the change it asked for), within `wait`.
async fn answer_to(ws: &mut Ws, client_id: &str, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let frame = ws.recv_within(left).await?;
        if frame["type"] == "error" || frame["client_id"] == client_id {
            return Some(frame);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mongodb_frozen_continuing_a_status_and_a_label_are_refused_clearly_and_go_through_after() {
    let (server, uri) = in_memory_mongod().await;
    let (hub, _spool_dir) = crate::archive_once::hub_on_mongo(&uri, "conv_outage", WRITE_TIMEOUT).await;
    let admin = hub.admin().await;
    defines_vip(&admin).await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let chat = first_visit(&hub, &mut ann).await;
    own_until(&hub, VISITOR, "resolved").await;
    let ann_api = hub.login("ann", "agent-password").await;

    signal(&server.0, libc::SIGSTOP);

    // Carla comes back: told to try again shortly, not left waiting, nothing opened.
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    let answer = answer_within(&mut carla, 4 * WRITE_TIMEOUT).await;
    assert_eq!(
        answer.as_ref().map(|f| (f["type"].clone(), f["code"].clone())),
        Some((json!("error"), json!("archive_unavailable"))),
        "{answer:?}"
    );
    // Ann parks it: refused as the store's fault, nothing changed.
    ann.send(
        json!({"type": "set_conversation_status", "conversation_id": chat, "status": "pending", "client_id": "p1"}),
    )
    .await;
    let refused = answer_to(&mut ann, "p1", 4 * WRITE_TIMEOUT).await;
    assert_eq!(
        refused.as_ref().map(|f| (f["type"].clone(), f["code"].clone())),
        Some((json!("error"), json!("store_unavailable"))),
        "{refused:?}"
    );
    let started = Instant::now();
    let (status, body) = ann_api
        .put(&format!("/api/conversations/{chat}/labels/vip"), json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (503, "unavailable"), "{body}");
    assert!(started.elapsed() < 4 * WRITE_TIMEOUT, "answered within the timeout");

    signal(&server.0, libc::SIGCONT);

    // The same requests go through once it runs again, on the same connections.
    // One minute for the label and the join below together.
    let deadline = Instant::now() + Duration::from_secs(60);
    let vip = format!("/api/conversations/{chat}/labels/vip");
    let within = Duration::from_secs(60);
    ann_api
        .put_until_200(&vip, json!({}), within, "the label never went on")
        .await;
    let started = loop {
        carla
            .send(json!({"type": "join", "name": "Carla", "category": "general", "conversation": chat, "visitor": VISITOR}))
            .await;
        let answer = answer_within(&mut carla, 4 * WRITE_TIMEOUT).await.expect("an answer");
        match answer["type"].as_str() {
            Some("chat_started") => break answer,
            _ if answer["code"] == "archive_unavailable" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => panic!("continuing after the outage: {answer}"),
        }
    };
    assert_eq!(started["chat_id"].as_str(), Some(chat.as_str()), "{started}");
    ann.next_of("chat_started").await;
    carla
        .send(json!({"type": "message", "text": "back again", "client_id": "c9"}))
        .await;
    assert_eq!(carla.next_of("ack").await["seq"], 3);
    ann.send(
        json!({"type": "set_conversation_status", "conversation_id": chat, "status": "pending", "client_id": "p2"}),
    )
    .await;
    let changed = answer_to(&mut ann, "p2", Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(
        (changed["status"].as_str(), changed["labels"][0].as_str()),
        (Some("pending"), Some("vip")),
        "{changed}"
    );
    hub.stop().await;
    drop(server);
}

/// How long the server holds each write before carrying it out: past [`HELD_WAIT`], so a
/// request that waits for its write is seen waiting. Each held write is waited out until
/// it lands, so no longer than that.
const HOLD: Duration = Duration::from_millis(7_500);
/// How long the test waits for an answer while writes are held: past the write timeout.
const HELD_WAIT: Duration = Duration::from_secs(7);

/// Makes the server at `uri` hold every write it is sent for [`HOLD`] before carrying it
/// out (`hold`), or stop holding new ones.
async fn hold_writes(uri: &str, hold: bool) {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    let command = if hold {
        bson::doc! {"configureFailPoint": "failCommand", "mode": "alwaysOn", "data": {
            "failCommands": ["insert", "update", "delete", "findAndModify"],
            "blockConnection": true, "blockTimeMS": HOLD.as_millis() as i64,
        }}
    } else {
        bson::doc! {"configureFailPoint": "failCommand", "mode": "off"}
    };
    client.database("admin").run_command(command).await.unwrap();
}

/// Makes the server at `uri` refuse every `update` after the next one (an error that is
/// not worth retrying: the driver answers it as it is), or take them again (`refuse`
/// false).
async fn refuse_updates_after_one(uri: &str, refuse: bool) {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    let command = if refuse {
        bson::doc! {"configureFailPoint": "failCommand", "mode": {"skip": 1},
        "data": {"failCommands": ["update"], "errorCode": 2}}
    } else {
        bson::doc! {"configureFailPoint": "failCommand", "mode": "off"}
    };
    client.database("admin").run_command(command).await.unwrap();
}

/// A hub on a MongoDB server of its own that holds writes when told to
/// ([`hold_writes`]), in database `db`: the server (stopped when dropped), its URI, the
/// hub and the hub's spool directory (bind each to a name until the end of the test).
async fn hub_holding_writes_on_demand(db: &str) -> (Running, String, TestHub, crate::archive::TempDir) {
    let (child, port) = crate::mongod::start_in_memory_with_failpoints().await;
    let server = Running(child);
    let uri = format!("mongodb://127.0.0.1:{port}");
    let (hub, spool_dir) = crate::archive_once::hub_on_mongo(&uri, db, WRITE_TIMEOUT).await;
    (server, uri, hub, spool_dir)
}

/// `request`'s status and error code, or `None` when it got no answer within [`HELD_WAIT`].
async fn answer_while_held(request: impl std::future::Future<Output = (u16, Value)>) -> Option<(u16, String)> {
    let (status, body) = tokio::time::timeout(HELD_WAIT, request).await.ok()?;
    Some((status, error_code(&body).to_string()))
}

/// Carla leaves an offline message in `general` on `hub`; its id.
async fn carla_leaves_a_message(hub: &TestHub) -> String {
    let message =
        json!({"category": "general", "name": "Carla", "email": "carla@example.com", "text": "Where is my order?"});
    let (status, left) = post(hub, "/api/offline-messages", message).await;
    assert_eq!(status, 201, "{left}");
    left["id"].as_str().unwrap().to_string()
}

/// Polls `api`'s `path` until `landed` says yes of its answer (a held write carried out).
async fn until_landed(api: &Api, path: &str, landed: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + HOLD * 6;
    loop {
        let (status, body) = api.get(path).await;
        if status == 200 && landed(&body) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the held write never landed: {path} {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_writes_held_a_label_and_a_take_answer_503_in_time_land_later_and_are_safe_to_send_again() {
    let (server, uri, hub, _spool_dir) = hub_holding_writes_on_demand("conv_writes_held").await;
    let admin = hub.admin().await;
    defines_vip(&admin).await;
    hub.agent_account("ann", &["general"], 2).await;
    let ann = hub.login("ann", "agent-password").await;
    let id = carla_leaves_a_message(&hub).await;
    let listed = |page: &Value| item_ids(page).contains(&id.as_str());
    until_landed(&admin, "/api/inbox?view=unassigned", listed).await;
    let label_path = format!("/api/conversations/{id}/labels/vip");
    let take_path = format!("/api/offline-messages/{id}/take");

    // A label: refused in time as the store's fault; it lands once the server gets to it.
    hold_writes(&uri, true).await;
    let answer = answer_while_held(admin.put(&label_path, json!({}))).await;
    assert_eq!(answer, Some((503, "unavailable".to_string())), "a held label");
    hold_writes(&uri, false).await;
    let labelled = |page: &Value| {
        page["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["id"] == id && i["labels"] == json!(["vip"])))
    };
    until_landed(&admin, "/api/inbox?view=all", labelled).await;
    // Sent again: the same answer, the label on once.
    let again = admin.put_answering(200, &label_path, json!({})).await;
    assert_eq!(again["labels"], json!(["vip"]), "{again}");

    // A take: refused in time, not held; it lands, and the conversation becomes Ann's.
    hold_writes(&uri, true).await;
    let answer = answer_while_held(ann.post(&take_path, json!({}))).await;
    assert_eq!(answer, Some((503, "unavailable".to_string())), "a held take");
    hold_writes(&uri, false).await;
    until_landed(&ann, "/api/inbox", listed).await;
    // Sent again: Ann's already, so 200 with the message as taken, not `already_taken`.
    let again = ann.post_answering(200, &take_path, json!({})).await;
    assert_eq!(
        (again["state"].as_str(), again["id"].as_str()),
        (Some("taken"), Some(id.as_str())),
        "{again}"
    );
    let (_, mine) = ann.get("/api/inbox").await;
    assert_eq!(item_ids(&mine), [id.as_str()], "{mine}");
    hub.stop().await;
    drop(server);
}

/// The outbox's mails of replies to message `id` in database `db` at `uri`.
async fn reply_mails(uri: &str, db: &str, id: &str) -> u64 {
    let filter = bson::doc! {"_id": {"$regex": format!("^offline-{id}\\.reply-")}};
    documents(uri, db, "outbox", filter).await
}

/// How many documents of `collection` in database `db` at `uri` match `filter`.
async fn documents(uri: &str, db: &str, collection: &str, filter: bson::Document) -> u64 {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    let collection = client.database(db).collection::<bson::Document>(collection);
    collection.count_documents(filter).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_writes_held_a_reply_answers_503_in_time_lands_later_and_sent_again_is_one_mail() {
    let db = "conv_reply_held";
    let (server, uri, hub, _spool_dir) = hub_holding_writes_on_demand(db).await;
    hub.agent_account("ann", &["general"], 2).await;
    let ann = hub.login("ann", "agent-password").await;
    let id = carla_leaves_a_message(&hub).await;
    let reply_path = format!("/api/offline-messages/{id}/reply");
    let reply = json!({"text": "It left today.", "client_id": "r-1"});
    let (status, body) = ann
        .post(&reply_path, json!({"text": "It left today.", "client_id": "r 1"}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_client_id"), "{body}");

    // Refused in time as the store's fault, not held; it lands once the server gets to it.
    hold_writes(&uri, true).await;
    let answer = answer_while_held(ann.post(&reply_path, reply.clone())).await;
    assert_eq!(answer, Some((503, "unavailable".to_string())), "a held reply");
    hold_writes(&uri, false).await;
    let replied = |page: &Value| {
        page["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|m| m["id"] == id && m["replies"].as_array().is_some_and(|r| r.len() == 1))
        })
    };
    until_landed(&ann, "/api/offline-messages", replied).await;
    // Sent again with its client id: the reply archived, answered 200, not a second one.
    let again = ann.post_answering(200, &reply_path, reply.clone()).await;
    let replies = again["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 1, "{again}");
    assert_eq!(replies[0]["text"], "It left today.", "{again}");
    assert_eq!(reply_mails(&uri, db, &id).await, 1, "one mail to the customer");
    // The same client id with another text is not taken for it.
    let (status, body) = ann
        .post(&reply_path, json!({"text": "Something else.", "client_id": "r-1"}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "client_id_reused"), "{body}");
    // Another client id is another reply, and another mail.
    let other = ann
        .post_answering(200, &reply_path, json!({"text": "And a coupon.", "client_id": "r-2"}))
        .await;
    assert_eq!(other["replies"].as_array().map(Vec::len), Some(2), "{other}");
    assert_eq!(reply_mails(&uri, db, &id).await, 2);
    hub.stop().await;
    drop(server);
}

/// The notes stored of conversation `id` in database `db` at `uri`.
async fn notes_stored(uri: &str, db: &str, id: &str) -> u64 {
    documents(uri, db, "conversation_notes", bson::doc! {"conversation_id": id}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_writes_held_a_note_answers_503_in_time_lands_later_and_sent_again_is_one_note() {
    let db = "conv_note_held";
    let (server, uri, hub, _spool_dir) = hub_holding_writes_on_demand(db).await;
    let admin = hub.admin().await;
    let id = carla_leaves_a_message(&hub).await;
    // Its conversation follows the message.
    let listed = |page: &Value| {
        page["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|c| c["id"] == id))
    };
    until_landed(&admin, "/api/inbox?view=all", listed).await;
    let path = format!("/api/conversations/{id}/notes");
    let note = json!({"text": "Called her back.", "client_id": "n-1"});

    // Refused in time as the store's fault, not held; it lands once the server gets to it.
    hold_writes(&uri, true).await;
    let answer = answer_while_held(admin.post(&path, note.clone())).await;
    assert_eq!(answer, Some((503, "unavailable".to_string())), "a held note");
    hold_writes(&uri, false).await;
    let deadline = Instant::now() + HOLD * 6;
    while notes_stored(&uri, db, &id).await == 0 {
        assert!(Instant::now() < deadline, "the held note never landed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Sent again with its client id: that note, not a second one.
    let again = admin.post_answering(201, &path, note.clone()).await;
    assert_eq!(again["text"], "Called her back.", "{again}");
    assert_eq!(notes_stored(&uri, db, &id).await, 1, "one note");
    let (status, body) = admin
        .post(&path, json!({"text": "Something else.", "client_id": "n-1"}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "client_id_reused"), "{body}");
    hub.stop().await;
    drop(server);
}

/// The agent an archived conversation (as `GET /api/conversations/{id}` answers) names.
fn archived_agent(conversation: &Value) -> Option<&str> {
    conversation["agent_name"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_whose_hand_over_the_store_refuses_is_answered_200_and_archived_once_it_takes_writes() {
    let (server, uri, hub, _spool_dir) = hub_holding_writes_on_demand("conv_assign_refused").await;
    let admin = hub.admin().await;
    hub.agent_account("ann", &["general"], 2).await;
    hub.agent_account("bob", &["general"], 2).await;
    let ann = hub.login("ann", "agent-password").await;
    let bob_id = admin.agent_id("bob").await;
    let id = carla_leaves_a_message(&hub).await;
    let listed = |page: &Value| item_ids(page).contains(&id.as_str());
    until_landed(&admin, "/api/inbox?view=unassigned", listed).await;
    ann.post_answering(200, &format!("/api/offline-messages/{id}/take"), json!({}))
        .await;
    let archive_path = format!("/api/conversations/{id}");
    until_landed(&admin, &archive_path, |c| archived_agent(c) == Some("ANN")).await;

    // The record's change is stored; the archive's hand-over after it is refused.
    refuse_updates_after_one(&uri, true).await;
    let (status, body) = admin
        .post(&format!("/api/conversations/{id}/assign"), json!({"agent_id": bob_id}))
        .await;
    assert_eq!(
        (status, body["holder"].as_str()),
        (200, Some(bob_id.as_str())),
        "{body}"
    );
    let (_, bobs) = hub.login("bob", "agent-password").await.get("/api/inbox").await;
    assert_eq!(item_ids(&bobs), [id.as_str()], "in Bob's list: {bobs}");
    refuse_updates_after_one(&uri, false).await;

    // Nobody sends it again: the hand-over lands by itself, once.
    until_landed(&admin, &archive_path, |c| archived_agent(c) == Some("BOB")).await;
    let (_, archived) = admin.get(&archive_path).await;
    let hand_overs: Vec<(&str, Option<&str>)> = archived["transfers"]
        .as_array()
        .unwrap_or_else(|| panic!("transfers: {archived}"))
        .iter()
        .filter(|t| t["to_agent_name"] == "BOB")
        .map(|t| (t["from_agent_name"].as_str().unwrap(), t["to_agent_name"].as_str()))
        .collect();
    assert_eq!(hand_overs, vec![("ANN", Some("BOB"))], "kept once: {archived}");
    hub.stop().await;
    drop(server);
}
