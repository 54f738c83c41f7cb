//! Archive search and export over HTTP: `q` finds conversations by a word of their names
//! or of one message, with the listing's filters and an agent's limits; exports (CSV and
//! JSON) of a search or of one conversation hold what they should, escaped, never agents'
//! notes; hostile queries are refused by name; an erased conversation is found no more.

use serde_json::Value;
use switchboard::store::{ArchiveEvent, ArchivedMessage, ConversationKind, ConversationOpened, Side};

use crate::common::*;

fn opened(id: &str, agent_id: &str, agent_name: &str, customer: &str, paired_at: i64) -> ArchiveEvent {
    ArchiveEvent::Opened(ConversationOpened {
        id: id.into(),
        kind: ConversationKind::Service,
        category: Some("general".into()),
        customer_name: customer.into(),
        agent_id: agent_id.into(),
        agent_name: agent_name.into(),
        queued_at: paired_at - 10,
        paired_at,
        customer: Default::default(),
    })
}

fn said(id: &str, seq: u64, text: &str) -> ArchiveEvent {
    ArchiveEvent::Message {
        conversation_id: id.into(),
        message: ArchivedMessage::plain(
            format!("{id}-m{seq}"),
            seq,
            if seq % 2 == 1 { Side::Customer } else { Side::Agent },
            text,
            1_700_000_000_000 + seq as i64,
        ),
    }
}

const HOSTILE_CELL: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";
const AWKWARD: &str = "hello there, \"quoted\"; commas,\nand a newline";

/// Ann served c1 and c3, Bo c2. Returns (admin, ann's api, ann's id).
async fn archive(hub: &TestHub) -> (Api, Api, String) {
    let admin = hub.admin().await;
    hub.agent_account("ann", &["general"], 2).await;
    hub.agent_account("bob", &["general"], 2).await;
    let ann = admin.agent_id("ann").await;
    let bo = admin.agent_id("bob").await;
    hub.store
        .archive(&[
            opened("c1", &ann, "ANN", "Zoë Müller", 1_700_000_001_000),
            said("c1", 1, "I need a refund for order 1234"),
            said("c1", 2, HOSTILE_CELL),
            opened("c2", &bo, "BO", "Bob", 1_700_000_002_000),
            said("c2", 1, "Refund please!"),
            opened("c3", &ann, "ANN", "Carla", 1_700_000_003_000),
            said("c3", 1, AWKWARD),
            ArchiveEvent::Note(switchboard::store::ConversationNote {
                conversation_id: "c3".into(),
                id: "n1".into(),
                at: 1_700_000_003_500,
                agent_id: ann.clone(),
                agent_name: "ANN".into(),
                text: "internal: VIP customer".into(),
            }),
        ])
        .await
        .unwrap();
    let ann_api = hub.login("ann", "agent-password").await;
    (admin, ann_api, ann)
}

fn ids(page: &Value) -> Vec<&str> {
    ids_in(&page["items"])
}

/// GET `path` as `api`: (status, content type, content disposition, body).
async fn download(api: &Api, path: &str) -> (u16, String, String, String) {
    let res = api.get_response(path).await;
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, kind, disposition) = (
        res.status().as_u16(),
        header("content-type"),
        header("content-disposition"),
    );
    (status, kind, disposition, res.text().await.unwrap())
}

fn csv_rows(body: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn search_finds_by_words_of_messages_and_names_within_filters_and_access() {
    let hub = TestHub::start().await;
    let (admin, ann_api, ann) = archive(&hub).await;

    let (status, page) = admin.get("/api/conversations?q=refund").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((ids(&page), page["total"].as_u64()), (vec!["c2", "c1"], Some(2)));
    assert_eq!(page["items"][1]["hit"]["text"], "I need a refund for order 1234");
    assert_eq!(page["items"][1]["hit"]["seq"], 1);
    // By names, accents and case ignored: no message to show.
    let (_, page) = admin.get("/api/conversations?q=ZOE%20muller").await;
    assert_eq!(ids(&page), vec!["c1"]);
    assert_eq!(page["items"][0]["hit"], Value::Null);
    // With the other filters and paging.
    let (_, page) = admin.get(&format!("/api/conversations?q=refund&agent_id={ann}")).await;
    assert_eq!(ids(&page), vec!["c1"]);
    let (_, page) = admin
        .get("/api/conversations?q=refund&from=1700000001500&to=1700000009000")
        .await;
    assert_eq!(ids(&page), vec!["c2"]);
    let (_, page) = admin.get("/api/conversations?q=refund&offset=1&limit=1").await;
    assert_eq!((ids(&page), page["total"].as_u64()), (vec!["c1"], Some(2)));
    let (_, page) = admin.get("/api/conversations?q=refund&category=other").await;
    assert_eq!(page["total"], 0);
    // An empty q is no search.
    let (_, page) = admin.get("/api/conversations?q=").await;
    assert_eq!(page["total"], 3);

    // An agent finds only the conversations they served, whatever agent_id they ask for.
    let (_, page) = ann_api.get("/api/conversations?q=refund").await;
    assert_eq!(ids(&page), vec!["c1"]);
    let bo = admin.agent_id("bob").await;
    let (_, page) = ann_api.get(&format!("/api/conversations?q=refund&agent_id={bo}")).await;
    assert_eq!(ids(&page), vec!["c1"]);
    let (_, page) = ann_api.get("/api/conversations?q=bob").await;
    assert_eq!(page["total"], 0, "Bob's conversation is Bo's");
    hub.stop().await;
}

#[tokio::test]
async fn hostile_queries_are_refused_by_name() {
    let hub = TestHub::start().await;
    let (admin, _, _) = archive(&hub).await;
    let long = "a".repeat(201);
    let many = "a b c d e f g h i";
    for q in [long.as_str(), "%21%21%21%20---%20...", many, "%20%20%2C"] {
        for path in ["/api/conversations", "/api/conversations/export"] {
            let (status, body) = admin.get(&format!("{path}?q={q}")).await;
            assert_eq!((status, error_code(&body)), (400, "bad_query"), "{path} {q}: {body}");
        }
    }
    // Unicode and metacharacters are words or nothing, never a pattern.
    for q in ["%E4%B8%96%E7%95%8C", ".%2A", "%24where", "%5E(x%2B)%2B%24%20refund"] {
        let (status, body) = admin.get(&format!("/api/conversations?q={q}")).await;
        assert!(status == 200 || status == 400, "{q}: {status} {body}");
    }
    let (status, page) = admin.get("/api/conversations?q=%5E(x%2B)%2B%24%20refund").await;
    assert_eq!((status, page["total"].as_u64()), (200, Some(0)), "{page}");
    for path in [
        "/api/conversations/export?format=xlsx",
        "/api/conversations/c1/export?format=CSV%00",
    ] {
        let (status, body) = admin.get(path).await;
        assert_eq!((status, error_code(&body)), (400, "bad_query"), "{path}: {body}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_search_exports_as_csv_and_json_escaped_without_notes() {
    let hub = TestHub::start().await;
    let (admin, ann_api, _) = archive(&hub).await;

    let (status, kind, disposition, body) = download(&admin, "/api/conversations/export?q=refund&format=csv").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind, "text/csv; charset=utf-8");
    assert_eq!(disposition, "attachment; filename=\"conversations.csv\"");
    let rows = csv_rows(&body);
    assert_eq!(rows[0][0], "conversation_id");
    // The message's author is the last column, after its files.
    assert_eq!(rows[0][rows[0].len() - 2..], ["attachments", "message_agent_name"]);
    let text = rows[0].iter().position(|c| c == "text").unwrap();
    let seq = rows[0].iter().position(|c| c == "seq").unwrap();
    // One row per message, newest conversation first, in seq order.
    let found: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0].as_str(), r[seq].as_str())).collect();
    assert_eq!(found, [("c2", "1"), ("c1", "1"), ("c1", "2")]);
    assert_eq!(rows[2][3], "Zoë Müller");
    assert_eq!(rows[3][text], format!("'{HOSTILE_CELL}"), "a formula is defused");

    // One conversation: quoting, commas and newlines survive; the note is not there.
    let (status, _, disposition, body) = download(&admin, "/api/conversations/c3/export").await;
    assert_eq!(status, 200);
    assert_eq!(disposition, "attachment; filename=\"conversation-c3.csv\"");
    let rows = csv_rows(&body);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][text], AWKWARD);
    assert!(!body.contains("VIP"), "{body}");
    let (status, kind, disposition, body) = download(&admin, "/api/conversations/c3/export?format=json").await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(disposition, "attachment; filename=\"conversation-c3.json\"");
    let json: Value = serde_json::from_str(&body).unwrap();
    let c3 = &json["conversations"][0];
    assert_eq!(
        (c3["id"].as_str(), c3["messages"][0]["text"].as_str()),
        (Some("c3"), Some(AWKWARD))
    );
    assert!(c3.get("notes").is_none() && !body.contains("VIP"), "{body}");

    let (_, _, _, body) = download(&admin, "/api/conversations/export?q=refund&format=json").await;
    let json: Value = serde_json::from_str(&body).unwrap();
    let exported: Vec<&str> = strs_in(&json["conversations"], "id");
    assert_eq!(exported, ["c2", "c1"]);
    assert_eq!(
        json["conversations"][1]["messages"][1]["text"], HOSTILE_CELL,
        "JSON keeps the text as it is"
    );

    // An agent exports only their own: a search of theirs, and not Bo's conversation.
    let (_, _, _, body) = download(&ann_api, "/api/conversations/export?q=refund").await;
    let rows = csv_rows(&body);
    assert!(rows[1..].iter().all(|r| r[0] == "c1"), "{body}");
    assert_eq!(download(&ann_api, "/api/conversations/c2/export").await.0, 404);
    assert_eq!(
        download(&ann_api, "/api/conversations/c2/export?format=json").await.0,
        404
    );
    assert_eq!(download(&ann_api, "/api/conversations/c1/export").await.0, 200);
    // Signed out: refused.
    let res = reqwest::get(hub.url("/api/conversations/export?q=refund"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    hub.stop().await;
}

#[tokio::test]
async fn an_export_past_the_cap_is_refused_whole() {
    let (hub, admin) = TestHub::with_admin().await;
    let events: Vec<ArchiveEvent> = (0..1_001)
        .flat_map(|i| {
            let id = format!("bulk-{i}");
            [
                opened(&id, "x", "X", "Customer", 1_700_000_000_000 + i),
                said(&id, 1, if i == 7 { "bulk seven" } else { "bulk" }),
            ]
        })
        .collect();
    hub.store.archive(&events).await.unwrap();
    let (status, body) = admin.get("/api/conversations/export?q=bulk").await;
    assert_eq!((status, error_code(&body)), (400, "export_too_large"), "{body}");
    let (status, _, _, body) = download(&admin, "/api/conversations/export?q=bulk%20seven").await;
    assert_eq!(status, 200);
    assert_eq!(csv_rows(&body).len(), 2);
    hub.stop().await;
}

#[tokio::test]
async fn an_erased_conversation_is_found_and_exported_no_more() {
    let hub = TestHub::start().await;
    let (admin, _, _) = archive(&hub).await;
    let (status, done) = admin
        .post("/api/admin/erasures", serde_json::json!({"conversation_id": "c1"}))
        .await;
    assert_eq!(status, 200, "{done}");
    let (_, page) = admin.get("/api/conversations?q=refund").await;
    assert_eq!(ids(&page), vec!["c2"]);
    for q in ["zoe", "1234", "hyperlink"] {
        let (_, page) = admin.get(&format!("/api/conversations?q={q}")).await;
        assert_eq!(page["total"], 0, "{q}");
    }
    let (_, _, _, body) = download(&admin, "/api/conversations/export?q=zoe").await;
    assert_eq!(csv_rows(&body).len(), 1, "the header only: {body}");
    hub.stop().await;
}
