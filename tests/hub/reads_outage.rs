//! HTTP reads while MongoDB is frozen (SIGSTOP: the connection stays open, nothing
//! answers): an agent's list and conversation, search, reports, exports, admin lists, a
//! returning customer's own conversations and a file sent in a chat (its link, its bytes)
//! each answer 503 `unavailable` within the store's read timeout (`STORE_READ_TIMEOUT_MS`)
//! instead of holding the request; once the server runs again (SIGCONT) the same requests
//! answer 200, with no restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::attachments::{Auth, link, png, upload};
use crate::common::*;
use crate::continuing::{VISITOR, first_visit, own_until};

/// The store's read timeout here (`STORE_READ_TIMEOUT_MS`; 5 s by default).
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// The archive's write timeout here (`ARCHIVE_WRITE_TIMEOUT_MS`; 15 s by default).
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the test waits for an answer: well past the read timeout, well short of the
/// request timeout (`HTTP_REQUEST_TIMEOUT_SECS`, 30 s) and of the driver's own giving up.
const WAIT: Duration = Duration::from_secs(6);

/// `GET path` by `api`: its status and body, or `None` when no answer came within [`WAIT`].
async fn get_within(api: &Api, path: &str) -> Option<(u16, Value)> {
    tokio::time::timeout(WAIT, api.get(path)).await.ok()
}

/// `GET path` with no credentials (a file's signed link): its status and body, or `None`
/// when no answer came within [`WAIT`].
async fn fetch_within(hub: &TestHub, path: &str) -> Option<(u16, Value)> {
    let res = tokio::time::timeout(WAIT, reqwest::get(hub.url(path)))
        .await
        .ok()?
        .ok()?;
    Some((res.status().as_u16(), res.json().await.unwrap_or(Value::Null)))
}

/// The visitor's own conversations (no session: the browser's key), within [`WAIT`].
async fn own_within(hub: &TestHub) -> Option<(u16, Value)> {
    let request = reqwest::Client::new()
        .get(hub.url("/api/visitor/conversations"))
        .header("X-Visitor-Key", VISITOR)
        .send();
    let res = tokio::time::timeout(WAIT, request).await.ok()?.ok()?;
    Some((res.status().as_u16(), res.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mongodb_frozen_reads_answer_503_in_time_and_200_once_it_runs_again() {
    let (server, uri) = in_memory_mongod().await;
    let store = switchboard::store::MongoStore::connect(&uri, "reads_outage")
        .await
        .unwrap();
    let spool = crate::archive::TempDir::new("reads-outage-spool");
    let dir = spool.0.clone();
    let hub = TestHub::with_store(std::sync::Arc::new(store), move |s| {
        s.store.data_dir = dir;
        s.archive.write_timeout = WRITE_TIMEOUT;
        s.store.read_timeout = READ_TIMEOUT;
    })
    .await;
    let admin = hub.admin().await;
    let script = Api::bearer(&hub, &admin.api_token_secret("CRM", &["admin"]).await);
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let chat = first_visit(&hub, &mut ann).await;
    own_until(&hub, VISITOR, "resolved").await;
    let ann_api = hub.login("ann", "agent-password").await;
    // A file Dora sends in her chat: kept in MongoDB, which every node serves it from.
    let (mut dora_ws, live) = hub.paired_customer(&mut ann, "Dora", "general").await;
    let token = dora_ws.token.clone().expect("a customer's token");
    let dora = Auth::Customer(&token);
    let (status, uploaded) = upload(&hub, dora, &live, "shot.png", png(40, 30)).await;
    assert_eq!(status, 201, "{uploaded}");
    let file = uploaded["id"].as_str().unwrap().to_string();
    let (status, links) = link(&hub, dora, &file).await;
    assert_eq!(status, 200, "{links}");
    let url = links["url"].as_str().unwrap().to_string();

    // What an agent's page, an admin's page and a script read: each answers now.
    let agent_reads = [
        "/api/conversations".to_string(),
        format!("/api/conversations/{chat}"),
        "/api/conversations?q=parcel".to_string(),
        format!("/api/conversations/{chat}/customer"),
        "/api/inbox".to_string(),
        "/api/labels".to_string(),
    ];
    let token_reads = [
        "/api/conversations".to_string(),
        format!("/api/conversations/{chat}"),
        "/api/conversations/export?format=json".to_string(),
        "/api/reports?from=2026-01-01&to=2026-01-02".to_string(),
        "/api/admin/agents".to_string(),
        "/api/admin/webhooks".to_string(),
    ];
    for path in &agent_reads {
        let (status, body) = ann_api.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // The token is looked up now, so the frozen store meets the handlers' own reads.
    for path in &token_reads {
        let (status, body) = script.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    signal(&server.0, libc::SIGSTOP);

    // All at once: each must answer within its own read timeout, and one after another
    // they would wait out a read timeout each.
    let reads: Vec<_> = agent_reads
        .iter()
        .map(|p| ("ann", &ann_api, p))
        .chain(token_reads.iter().map(|p| ("the token", &script, p)))
        .collect();
    let started = Instant::now();
    let answers = futures_util::future::join_all(reads.iter().map(|(_, api, path)| get_within(api, path))).await;
    for ((who, _, path), answer) in reads.iter().zip(answers) {
        assert_eq!(
            answer.as_ref().map(|(status, body)| (*status, error_code(body))),
            Some((503, "unavailable")),
            "{who} GET {path} with MongoDB frozen, after {:?}: {answer:?}",
            started.elapsed()
        );
        let message = answer.as_ref().map(|(_, body)| body["error"]["message"].to_string());
        assert!(
            !message.as_deref().unwrap_or_default().contains("mongodb"),
            "no internals: {message:?}"
        );
    }
    let answer = own_within(&hub).await;
    assert_eq!(
        answer.as_ref().map(|(status, body)| (*status, error_code(body))),
        Some((503, "unavailable")),
        "the visitor's own conversations with MongoDB frozen: {answer:?}"
    );
    let answer = tokio::time::timeout(WAIT, link(&hub, dora, &file)).await.ok();
    assert_eq!(
        answer.as_ref().map(|(status, body)| (*status, error_code(body))),
        Some((503, "unavailable")),
        "a file's link with MongoDB frozen: {answer:?}"
    );
    let answer = fetch_within(&hub, &url).await;
    assert_eq!(
        answer.as_ref().map(|(status, body)| (*status, error_code(body))),
        Some((503, "unavailable")),
        "a file with MongoDB frozen: {answer:?}"
    );
    // A frame that reads the store answers with an error frame too: the chat goes on.
    dora_ws
        .send(json!({"type": "transcript", "email": "dora@example.com"}))
        .await;
    let answer = dora_ws
        .next_matching_within(WAIT, |f| f["type"] == "error" || f["type"] == "transcript_requested")
        .await;
    assert_eq!(answer["code"], "archive_unavailable", "{answer}");

    signal(&server.0, libc::SIGCONT);

    // The same reads answer again, with no restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (api, path) in agent_reads
        .iter()
        .map(|p| (&ann_api, p))
        .chain(token_reads.iter().map(|p| (&script, p)))
    {
        loop {
            let (status, body) = api.get(path).await;
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "GET {path} after the thaw: {status} {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (status, detail) = ann_api.get(&format!("/api/conversations/{chat}")).await;
    assert_eq!(
        (status, detail["messages"][0]["text"].as_str()),
        (200, Some("my parcel is late")),
        "{detail}"
    );
    assert_eq!(
        own_within(&hub).await.map(|(status, _)| status),
        Some(200),
        "the visitor's own"
    );
    assert_eq!(link(&hub, dora, &file).await.0, 200, "a file's link");
    let res = reqwest::get(hub.url(&url)).await.unwrap();
    assert_eq!(res.status(), 200, "a file");
    assert_eq!(
        res.bytes().await.unwrap().len() as u64,
        uploaded["size"].as_u64().unwrap()
    );
    hub.stop().await;
    drop(server);
}
