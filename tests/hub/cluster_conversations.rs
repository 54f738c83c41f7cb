//! Conversations across three REAL node processes (one Redis, the MongoDB-wire store): a
//! customer continues on one node a conversation resolved on another while its agent, on
//! a third, writes into it (lines in flight as she comes back); and a snooze runs out
//! while the node that set it is dead (`kill -9`). What was acknowledged is counted
//! against what the archive holds: every line, one gapless seq.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster_scenarios::{Cluster, ONE_SCENARIO_AT_A_TIME};
use crate::common::{ADMIN_PASSWORD, Api, Ws};

/// How long the cluster may take for anything it must do (start, pair, archive, wake).
const WAIT: Duration = Duration::from_secs(60);
const VISITOR: &str = "carla-on-three-nodes-0001";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A customer page on node `i` that sent `join` (with Carla's visitor key, and the
/// conversation to continue when given).
async fn carla_on(cluster: &Cluster, i: usize, conversation: Option<&str>) -> Ws {
    let mut ws = Ws::connect(&cluster.ws_url(i, "/ws/customer"), &[]).await.unwrap();
    let mut join = json!({"type": "join", "name": "Carla", "category": "general", "visitor": VISITOR});
    if let Some(id) = conversation {
        join["conversation"] = json!(id);
    }
    ws.send(join).await;
    ws
}

/// The next frame of `kind` about conversation `id`.
async fn next_about(ws: &mut Ws, kind: &str, id: &str) -> Value {
    ws.next_matching_within(WAIT, |f| {
        f["type"] == kind && (f["chat_id"] == id || f["conversation_id"] == id)
    })
    .await
}

/// The `ack` of `line` (with its `client_id`), sent again while it is refused
/// `cluster_unavailable` (not applied: docs/protocol.md), as a client does.
async fn acked_line(ws: &mut Ws, line: Value) -> Value {
    let client_id = line["client_id"].clone();
    loop {
        ws.send(line.clone()).await;
        let answer = ws
            .next_matching_within(WAIT, |f| {
                ["ack", "error"].contains(&f["type"].as_str().unwrap_or("")) && f["client_id"] == client_id
            })
            .await;
        if answer["type"] == "ack" {
            return answer;
        }
        assert_eq!(answer["code"], "cluster_unavailable", "{line} refused: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Conversation `id` as `api` reads it once it holds `n` lines.
async fn archived_with(api: &Api, id: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, c) = api.get(&format!("/api/conversations/{id}")).await;
        if status == 200 && c["messages"].as_array().is_some_and(|m| m.len() >= n) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "conversation {id} never had {n} lines: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until Carla's browser lists conversation `id` as `status`, asking node `i`.
async fn listed_as(cluster: &Cluster, i: usize, id: &str, status: &str) {
    let url = cluster.endpoint(i).url("/api/visitor/conversations");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let res = reqwest::Client::new()
            .get(&url)
            .header("X-Visitor-Key", VISITOR)
            .send()
            .await
            .unwrap();
        let list: Value = res.json().await.unwrap();
        let row = &list["conversations"][0];
        if row["id"] == id && row["status"] == status {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {status}: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three nodes, the agent Ann on node 2 (available, two chats), and Carla's first visit on
/// node 0: one line each, then Ann ends it (resolved). The conversation's id.
async fn first_visit(cluster: &Cluster, admin: &Api) -> (Ws, String) {
    let token = cluster.agent_token(admin, "ann", &["general"], 2).await;
    let mut ann = cluster.agent_on(2, &token).await;
    ann.send(json!({"type": "set_available", "available": true})).await;
    let mut carla = carla_on(cluster, 0, None).await;
    let started = carla.next_matching_within(WAIT, |f| f["type"] == "chat_started").await;
    let id = started["chat_id"].as_str().unwrap().to_string();
    next_about(&mut ann, "chat_started", &id).await;
    let line = json!({"type": "message", "text": "my parcel is late", "client_id": "c1"});
    assert_eq!(acked_line(&mut carla, line).await["seq"], 1);
    let line = json!({"type": "message", "chat_id": id, "text": "it leaves today", "client_id": "a1"});
    assert_eq!(acked_line(&mut ann, line).await["seq"], 2);
    ann.send(json!({"type": "end_chat", "chat_id": id})).await;
    carla.next_matching_within(WAIT, |f| f["type"] == "chat_ended").await;
    (ann, id)
}

#[tokio::test]
async fn three_processes_a_conversation_resolved_on_one_node_goes_on_on_another_with_lines_in_flight() {
    let _alone = ONE_SCENARIO_AT_A_TIME.write().await;
    let cluster = Cluster::start_env("conversations-three", 3, 5_000, &[]).await;
    let admin = cluster.login("admin", ADMIN_PASSWORD).await;
    let (mut ann, id) = first_visit(&cluster, &admin).await;
    listed_as(&cluster, 1, &id, "resolved").await;

    // In flight: Ann writes five lines without waiting, and Carla comes back on node 1 at
    // the same moment. Each line is acknowledged (before she is back, or in her chat) or
    // refused `conversation_live` and written again into her chat, as the protocol says.
    for n in 1..=5 {
        ann.send(json!({"type": "message", "chat_id": id, "text": format!("line {n}"), "client_id": format!("f{n}")}))
            .await;
    }
    let mut carla = carla_on(&cluster, 1, Some(&id)).await;
    let started = carla
        .next_matching_within(WAIT, |f| f["type"] == "chat_started" || f["type"] == "error")
        .await;
    assert_eq!(
        (
            started["type"].as_str(),
            started["chat_id"].as_str(),
            started["continued"].as_bool()
        ),
        (Some("chat_started"), Some(id.as_str()), Some(true)),
        "{started}"
    );
    let mut acked: BTreeMap<u64, String> =
        BTreeMap::from([(1, "my parcel is late".into()), (2, "it leaves today".into())]);
    let mut refused = vec![];
    let mut live = false;
    let mut answers = 0;
    while answers < 5 || !live {
        let f = ann
            .next_matching_within(WAIT, |f| {
                (f["type"] == "chat_started" && f["chat_id"] == id.as_str())
                    || (["ack", "error"].contains(&f["type"].as_str().unwrap_or("")) && f["client_id"].is_string())
            })
            .await;
        match f["type"].as_str() {
            Some("chat_started") => {
                assert_eq!(f["continued"], true, "{f}");
                live = true;
            }
            Some("ack") => {
                let n: usize = f["client_id"].as_str().unwrap()[1..].parse().unwrap();
                let seq = f["seq"].as_u64().unwrap();
                assert!(
                    acked.insert(seq, format!("line {n}")).is_none(),
                    "seq {seq} given twice"
                );
                answers += 1;
            }
            _ if f["code"] == "cluster_unavailable" => {
                // Not applied (docs/protocol.md, on a loaded machine): sent again.
                let client_id = f["client_id"].as_str().unwrap();
                let n: usize = client_id[1..].parse().unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
                ann.send(
                    json!({"type": "message", "chat_id": id, "text": format!("line {n}"), "client_id": client_id}),
                )
                .await;
            }
            _ => {
                assert_eq!(f["code"], "conversation_live", "{f}");
                refused.push(f["client_id"].as_str().unwrap()[1..].parse::<usize>().unwrap());
                answers += 1;
            }
        }
    }
    for n in refused {
        let line = json!({"type": "message", "chat_id": id, "text": format!("line {n}"), "client_id": format!("r{n}")});
        let ack = acked_line(&mut ann, line).await;
        assert!(
            acked
                .insert(ack["seq"].as_u64().unwrap(), format!("line {n}"))
                .is_none()
        );
    }
    let ack = acked_line(
        &mut carla,
        json!({"type": "message", "text": "thank you!", "client_id": "c2"}),
    )
    .await;
    let last = ack["seq"].as_u64().unwrap();
    assert!(acked.insert(last, "thank you!".into()).is_none());
    assert_eq!(last, 8, "two lines, five of Ann's, then hers: {acked:?}");

    // Carla saw every line of Ann's: in chat_started, or as it came (late ones included).
    let mut seen: Vec<u64> = started["messages"]
        .as_array()
        .unwrap()
        .iter()
        .chain(carla.seen.iter().filter(|f| f["type"] == "message"))
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    while (3..=7).any(|seq| !seen.contains(&seq)) {
        let f = carla
            .next_matching_within(WAIT, |f| {
                f["type"] == "message" && !seen.contains(&f["seq"].as_u64().unwrap_or(0))
            })
            .await;
        seen.push(f["seq"].as_u64().unwrap());
    }

    // The archive: every acknowledged line, seqs 1 to 8 without a gap.
    ann.send(json!({"type": "end_chat", "chat_id": id})).await;
    carla.next_matching_within(WAIT, |f| f["type"] == "chat_ended").await;
    let stored = archived_with(&admin, &id, 8).await;
    let stored: BTreeMap<u64, String> = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(stored, acked, "what was acknowledged is what was stored");
}

#[tokio::test]
async fn three_processes_a_snooze_runs_out_while_the_node_that_set_it_is_dead() {
    let _alone = ONE_SCENARIO_AT_A_TIME.write().await;
    let mut cluster = Cluster::start_env("conversations-snooze", 3, 5_000, &[]).await;
    let admin = cluster.login("admin", ADMIN_PASSWORD).await;
    let (mut ann, id) = first_visit(&cluster, &admin).await;
    // Its end resolved it (node 0 records that, as the customer's node, a moment later:
    // a snooze set before would be followed by that older resolve, as in the desk). Ann
    // hears it once the record is stored: the visitor's list says "resolved" sooner, from
    // the archive's closing, and a snooze asked then finds no record in her list yet.
    listed_as(&cluster, 1, &id, "resolved").await;
    ann.next_matching_within(WAIT, |f| {
        f["type"] == "conversation_status" && f["conversation_id"] == id.as_str() && f["status"] == "resolved"
    })
    .await;
    // Ann, on node 2, snoozes it for a few seconds; then node 2 dies.
    let until = now_ms() + 3_000;
    ann.send(json!({"type": "set_conversation_status", "conversation_id": id, "status": "snoozed", "until": until, "client_id": "s1"}))
        .await;
    let answer = ann
        .next_matching_within(WAIT, |f| f["type"] == "conversation_status" && f["client_id"] == "s1")
        .await;
    assert_eq!(answer["status"], "snoozed", "{answer}");
    cluster.kill(2);
    // Another node wakes it: open again, in Ann's list, as her inbox on node 0 says.
    let token = cluster.login("ann", "agent-password").await.token;
    let ann_api = Api::bearer(&cluster.endpoint(0), &token);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, inbox) = ann_api.get("/api/inbox?status=open").await;
        let woken = inbox["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["id"] == id.as_str()).cloned());
        if let Some(woken) = woken {
            // Marked "snooze ended" in the record, so on every node.
            assert!(
                woken["snooze_ended_at"].as_i64().is_some_and(|at| at >= until),
                "{woken}"
            );
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let (_, all) = admin
                .get("/api/inbox?view=all&status=open,pending,snoozed,resolved")
                .await;
            panic!("the snooze never ran out: {inbox}; all: {all}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    listed_as(&cluster, 1, &id, "open").await;
    // Opened on node 1: node 0's inbox no longer marks it.
    let (status, _) = Api::bearer(&cluster.endpoint(1), &token)
        .post(&format!("/api/conversations/{id}/opened"), json!({}))
        .await;
    assert_eq!(status, 204);
    let (_, inbox) = ann_api.get("/api/inbox?status=open").await;
    let item = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str());
    assert_eq!(item.map(|i| &i["snooze_ended_at"]), Some(&Value::Null), "{inbox}");
}
