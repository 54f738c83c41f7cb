//! A returning customer continues an earlier conversation: their browser's visitor key lists
//! their own conversations (`GET /api/visitor/conversations`), a `join` naming one opens it
//! again with the same id and its `seq` going on, back to the agent who had it when they can
//! take it, into the line when they are full; a key that did not start it learns nothing.

use serde_json::{Value, json};

use crate::common::*;

pub(crate) const VISITOR: &str = "carlas-browser-key-0001";
const STRANGER: &str = "someone-elses-key-0002";

/// The conversations `key` lists: the status and the answer.
async fn own(hub: &TestHub, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(hub.url("/api/visitor/conversations"));
    if let Some(key) = key {
        request = request.header("X-Visitor-Key", key);
    }
    let res = request.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// Waits until the first conversation `key` lists has `status`; returns the list.
pub(crate) async fn own_until(hub: &TestHub, key: &str, status: &str) -> Value {
    for _ in 0..100 {
        let (code, list) = own(hub, Some(key)).await;
        assert_eq!(code, 200, "{list}");
        if list["conversations"][0]["status"] == status {
            return list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{key}'s first conversation never became {status}: {:?}",
        own(hub, Some(key)).await
    );
}

/// Carla, from the browser whose key is [`VISITOR`], joined on `hub` and paired with
/// `agent`: her socket and the chat id.
pub(crate) async fn carla_visiting(hub: &TestHub, agent: &mut Ws) -> (Ws, String) {
    hub.paired_customer_with(agent, "Carla", json!({"visitor": VISITOR}))
        .await
}

/// Carla's first visit with `agent`: she says "my parcel is late", the agent answers, and
/// ends the chat (which resolves it). The conversation id.
pub(crate) async fn first_visit(hub: &TestHub, agent: &mut Ws) -> String {
    let (mut carla, chat) = carla_visiting(hub, agent).await;
    carla.say("my parcel is late", "c1").await;
    agent.next_of("message").await;
    agent.say_in(&chat, "it leaves today", "a1").await;
    carla.next_of("message").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    chat
}

/// Carla's [`first_visit`] with `agent` on `hub`, until [`VISITOR`]'s list on `listed_on`
/// shows it resolved. The conversation id.
pub(crate) async fn resolved_visit(hub: &TestHub, agent: &mut Ws, listed_on: &TestHub) -> String {
    let chat = first_visit(hub, agent).await;
    own_until(listed_on, VISITOR, "resolved").await;
    chat
}

/// Carla's [`resolved_visit`] with `ann` on `hub`, listed on `back`, and Carla back to it on
/// `back` ([`back_with_her_lines`]), which Ann is told is a reopen: the conversation id,
/// Carla's socket and Ann's `chat_started`.
pub(crate) async fn reopened(hub: &TestHub, ann: &mut Ws, back: &TestHub) -> (String, Ws, Value) {
    let chat = resolved_visit(hub, ann, back).await;
    let mut carla = continuing(back, Some(VISITOR), &chat).await;
    let to_ann = back_with_her_lines(&mut carla, ann, &chat).await;
    assert_reopen_told(&to_ann);
    (chat, carla, to_ann)
}

/// A customer page joining to continue `conversation` with `visitor`.
pub(crate) async fn continuing(hub: &TestHub, visitor: Option<&str>, conversation: &str) -> Ws {
    continuing_giving(hub, visitor, conversation, None).await
}

/// As [`continuing`], giving `email` on the join when there is one.
pub(crate) async fn continuing_giving(
    hub: &TestHub,
    visitor: Option<&str>,
    conversation: &str,
    email: Option<&str>,
) -> Ws {
    let mut ws = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    let mut join = json!({"type": "join", "name": "Carla", "category": "general", "conversation": conversation});
    if let Some(visitor) = visitor {
        join["visitor"] = json!(visitor);
    }
    if let Some(email) = email {
        join["email"] = json!(email);
    }
    ws.send(join).await;
    ws
}

/// Waits (up to 10 s) until conversation `chat`, as `admin` reads it, keeps `email` as its
/// customer's (kept off the hub's task, once the archive has the conversation).
pub(crate) async fn email_kept(admin: &Api, chat: &str, email: &str) {
    let what = format!("conversation {chat} never kept {email}");
    until_ok(std::time::Duration::from_secs(10), &what, async || {
        let (status, conversation) = admin.get(&format!("/api/conversations/{chat}")).await;
        assert_eq!(status, 200, "{conversation}");
        let kept = &conversation["customer"]["email"];
        if kept == email { Ok(()) } else { Err(kept.clone()) }
    })
    .await;
}

/// Carla comes back to her conversation and Ann is told it is a continued reopen; Ann hands
/// it to billing's line, where Dee takes it. Dee's page reloading gets it as her
/// `chat_started` told it, a hand-over: no `continued`, `reopened` or `queued_at` of Ann's
/// turn. Before, the log the chat waited with kept Ann's turn's flags, and the reload
/// showed Dee a continued reopen.
#[tokio::test]
async fn a_continued_conversation_handed_to_a_line_reaches_its_next_agent_as_handed_on_after_a_reload() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let chat = resolved_visit(&hub, &mut ann, &hub).await;
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    carla.chat_continued(&chat).await;
    assert_eq!(ann.chat_continued(&chat).await["reopened"], true);
    let (mut dee, dee_token) = hub.agent_with_token("dee", &["billing"], 1).await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "note": "refund"}))
        .await;
    let started = dee.next_of("chat_started").await;
    assert_eq!(started["transfer"]["note"], "refund", "{started}");
    assert!(started["continued"] != true, "{started}");

    drop(dee);
    let (_dee, welcome) = Ws::with_bearer(&hub, "/ws/agent", &dee_token, "agent_welcome").await;
    let snapshot = &welcome["chats"][0];
    assert_eq!(snapshot["chat_id"], chat.as_str(), "{welcome}");
    assert_eq!(snapshot["transfer"]["note"], "refund", "{snapshot}");
    assert!(
        snapshot["continued"] != true && snapshot["reopened"] != true && snapshot["queued_at"].is_null(),
        "a hand-over, not Ann's continued reopen: {snapshot}"
    );
}

/// Carla gave no email on her first visit; coming back to continue it she gives one: the
/// conversation keeps it (the customer panel shows it, follow-up mails go to it). Before,
/// only a first opening's details were kept, and the address given on coming back was
/// lost: no follow-up mail, and the after-chat transcript asked for it again.
#[tokio::test]
async fn an_email_given_on_coming_back_is_kept_with_the_conversation() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let chat = resolved_visit(&hub, &mut ann, &hub).await;
    let admin = hub.admin().await;
    let (status, first) = admin.get(&format!("/api/conversations/{chat}")).await;
    assert_eq!((status, &first["customer"]["email"]), (200, &Value::Null), "{first}");

    let mut carla = continuing_giving(&hub, Some(VISITOR), &chat, Some("carla@example.com")).await;
    carla.chat_continued(&chat).await;
    ann.chat_continued(&chat).await;
    email_kept(&admin, &chat, "carla@example.com").await;
}

#[tokio::test]
async fn a_returning_customer_continues_their_conversation_with_the_same_agent_and_the_seq_going_on() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let chat = first_visit(&hub, &mut ann).await;

    // Her browser lists it, resolved, with its last line; another key lists nothing.
    let list = own_until(&hub, VISITOR, "resolved").await;
    let row = &list["conversations"][0];
    assert_eq!(
        (
            row["id"].as_str(),
            row["last_message"]["text"].as_str(),
            row["agent_name"].as_str()
        ),
        (Some(chat.as_str()), Some("it leaves today"), Some("ANN")),
        "{list}"
    );
    assert_eq!(list["can_continue"], true);
    assert_eq!(
        own(&hub, Some(STRANGER)).await,
        (200, json!({"conversations": [], "can_continue": true}))
    );
    for bad in [None, Some("short"), Some("not a key at all, spaces")] {
        let (code, body) = own(&hub, bad).await;
        assert_eq!((code, error_code(&body)), (400, "invalid_visitor"), "{bad:?}: {body}");
    }

    // She continues it: the same id, its lines, back to Ann.
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    let to_ann = back_with_her_lines(&mut carla, &mut ann, &chat).await;
    assert_eq!(seqs_and_texts(&to_ann["messages"]).len(), 2);
    assert!(
        to_ann["transfer"].is_null(),
        "her own conversation: no hand-over note: {to_ann}"
    );
    // It was resolved: Ann is told it is a reopen, and when Carla joined the line this time.
    assert_reopen_told(&to_ann);

    // The seq goes on; the conversation is open again (a reopen), still Ann's.
    her_third_line(&mut carla, &mut ann, &chat).await;
    own_until(&hub, VISITOR, "open").await;
    let ann_api = hub.login("ann", "agent-password").await;
    let (_, inbox) = ann_api.get("/api/inbox").await;
    assert_eq!(
        (inbox["items"][0]["id"].as_str(), inbox["items"][0]["reopens"].as_u64()),
        (Some(chat.as_str()), Some(1)),
        "{inbox}"
    );

    // A second window cannot continue it while it is live.
    let mut again = continuing(&hub, Some(VISITOR), &chat).await;
    assert_eq!(again.next_of("error").await["code"], "already_live");

    // Ended again: the archive has one conversation, its three lines in order.
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    let archived = wait_archived(&ann_api, &chat, 3).await;
    assert_eq!(u64s_in(&archived["messages"], "seq"), vec![1, 2, 3]);
    // The latest close wins: it ended after its last line, not when it first ended.
    assert!(
        archived["ended_at"].as_i64() >= archived["messages"][2]["at"].as_i64(),
        "{archived}"
    );
}

/// A second tab (or a reload) of the agent's console: its welcome's snapshot of a reopened
/// conversation says so as `chat_started` did (`continued`, `reopened`, this turn's
/// `queued_at`), so the page shows this turn's wait and the reopen again.
#[tokio::test]
async fn a_reload_after_a_reopen_gets_the_reopen_and_this_turns_wait_in_its_welcome() {
    let hub = TestHub::start().await;
    let (mut ann, token) = hub.agent_with_token("ann", &["general"], 2).await;
    let (_chat, _carla, to_ann) = reopened(&hub, &mut ann, &hub).await;

    let (_again, welcome) = Ws::with_bearer(&hub, "/ws/agent", &token, "agent_welcome").await;
    assert_snapshot_tells_the_reopen(&welcome, &to_ann);
}

/// A reopened conversation its agent then hands to a colleague on the same node: the
/// colleague's `chat_started` is a transfer (no `continued`), and so must be their
/// snapshot after a reload (`docs/protocol.md`: "A chat handed on since is told as a
/// transfer: no `continued`"), not the reopen and wait of the first agent's turn.
#[tokio::test]
async fn a_reopened_conversation_handed_to_a_colleague_is_no_reopen_in_the_colleagues_snapshot() {
    let hub = TestHub::start().await;
    let (mut ann, _) = hub.agent_with_token("ann", &["general"], 2).await;
    let (chat, _carla, _) = reopened(&hub, &mut ann, &hub).await;

    let (mut bob, bob_token) = hub.agent_with_token("bob", &["general"], 2).await;
    let bob_id = hub.admin().await.agent_id("bob").await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id, "note": ""}))
        .await;
    let to_bob = bob.next_of("chat_started").await;
    assert!(to_bob["transfer"].is_object(), "{to_bob}");
    assert!(
        to_bob.get("continued").is_none() && to_bob.get("reopened").is_none(),
        "{to_bob}"
    );

    let (_again, welcome) = Ws::with_bearer(&hub, "/ws/agent", &bob_token, "agent_welcome").await;
    let snap = &welcome["chats"][0];
    assert_eq!(snap["chat_id"], json!(chat), "{welcome}");
    assert_eq!(
        (snap.get("continued"), snap.get("reopened"), snap.get("queued_at")),
        (None, None, None),
        "Bob's snapshot says what his chat_started said (a transfer), not Ann's reopen: {welcome}"
    );
}

/// `welcome`'s one chat is the reopened conversation `started` opened, told as it told it.
pub(crate) fn assert_snapshot_tells_the_reopen(welcome: &Value, started: &Value) {
    let snap = &welcome["chats"][0];
    assert_eq!(snap["chat_id"], started["chat_id"], "{welcome}");
    assert_eq!(
        (&snap["continued"], &snap["reopened"], &snap["queued_at"]),
        (&json!(true), &json!(true), &started["queued_at"]),
        "the snapshot keeps what chat_started said: {welcome}"
    );
}

/// An agent's `chat_started` of a resolved conversation its customer came back to: marked
/// `reopened`, with this turn's `queued_at` (at or before its `started_at`).
pub(crate) fn assert_reopen_told(started: &Value) {
    assert_eq!(started["reopened"], true, "{started}");
    let (queued, paired) = (started["queued_at"].as_i64(), started["started_at"].as_i64());
    assert!(
        matches!((queued, paired), (Some(q), Some(p)) if q > 0 && q <= p),
        "this turn's wait: {started}"
    );
}

/// Carla continuing her [`first_visit`]'s conversation `chat` (welcomed): she gets its two
/// lines back, and `ann` gets it as that conversation. Ann's `chat_started`.
pub(crate) async fn back_with_her_lines(carla: &mut Ws, ann: &mut Ws, chat: &str) -> Value {
    carla.next_of("welcome").await;
    let started = carla.chat_continued(chat).await;
    assert_eq!(
        seqs_and_texts(&started["messages"]),
        vec![(1, "my parcel is late"), (2, "it leaves today")]
    );
    assert!(started.get("reopened").is_none(), "the agent's word only: {started}");
    ann.chat_continued(chat).await
}

/// The seq of a continued [`first_visit`] goes on: Carla's next line is its third, for
/// `ann` too.
pub(crate) async fn her_third_line(carla: &mut Ws, ann: &mut Ws, chat: &str) {
    assert_eq!(carla.say("it did not arrive", "c2").await["seq"], 3);
    let line = ann.next_of("message").await;
    assert_eq!((line["chat_id"].as_str(), line["seq"].as_u64()), (Some(chat), Some(3)));
}

/// A refused continuation leaves the socket open: a join on it is answered (here refused,
/// for an unknown category), not cut.
pub(crate) async fn still_open(ws: &mut Ws) {
    ws.send(json!({"type": "join", "name": "Eve", "category": "nonexistent"}))
        .await;
    assert_eq!(
        ws.next_of("error").await["code"],
        "unknown_category",
        "the connection lives on"
    );
}

/// Conversation `id` as Ann, its agent, reads it through `hub` once it holds `n` messages.
pub(crate) async fn archived_as_ann(hub: &Endpoint, id: &str, n: usize) -> Value {
    wait_archived(&hub.login("ann", "agent-password").await, id, n).await
}

/// Conversation `id` as `api` reads it once it holds `n` messages.
pub(crate) async fn wait_archived(api: &Api, id: &str, n: usize) -> Value {
    polled(std::time::Duration::from_secs(10), async || {
        let (status, c) = api.get(&format!("/api/conversations/{id}")).await;
        (status == 200 && c["messages"].as_array().is_some_and(|m| m.len() == n)).then_some(c)
    })
    .await
    .unwrap_or_else(|| panic!("conversation {id} never had {n} messages"))
}

/// `archived`, the conversation `chat` as the archive has it, is Bob's now, and the archive
/// lists it alone: the customer went on in it, not in a second one.
pub(crate) async fn only_bobs_in_the_archive(admin: &Api, archived: &Value, chat: &str) {
    assert_eq!(archived["agent_name"].as_str(), Some("BOB"), "{archived}");
    let (_, listing) = admin.get("/api/conversations").await;
    assert_eq!(
        (listing["total"].as_u64(), listing["items"][0]["id"].as_str()),
        (Some(1), Some(chat)),
        "one conversation, not two: {listing}"
    );
}

#[tokio::test]
async fn a_continued_conversation_waits_in_line_while_its_agent_is_full_and_a_stranger_learns_nothing() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let chat = resolved_visit(&hub, &mut ann, &hub).await;

    // Someone else's key, no key, or no such conversation: one answer, and the socket lives.
    let mut refusals = Vec::new();
    for (visitor, id) in [
        (Some(STRANGER), chat.as_str()),
        (None, chat.as_str()),
        (Some(VISITOR), "no-such-conversation"),
    ] {
        let mut ws = continuing(&hub, visitor, id).await;
        let error = ws.next_of("error").await;
        refusals.push((error["code"].clone(), error["message"].clone()));
        still_open(&mut ws).await;
    }
    assert_eq!(refusals[0].0, "unknown_conversation");
    assert!(refusals.iter().all(|r| *r == refusals[0]), "{refusals:?}");

    // Ann is full with Dora: Carla's continued conversation waits in line.
    let (_dora, dora_chat) = hub.paired_customer(&mut ann, "Dora", "general").await;
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    assert_eq!(carla.next_of("queued").await["place"], 1);
    // Dora's chat ends: Ann takes Carla's conversation, as itself.
    ann.send(json!({"type": "end_chat", "chat_id": dora_chat})).await;
    carla.chat_continued(&chat).await;
    let to_ann = ann.next_matching(|f| f["type"] == "chat_started").await;
    assert_eq!(to_ann["chat_id"].as_str(), Some(chat.as_str()));
}

/// Carla's [`first_visit`] with Ann, resolved; Ann is gone for the day and Bob is on the
/// desk when Carla continues it (welcomed): the hub, Bob's socket, Carla's and its id.
async fn back_while_ann_is_gone() -> (TestHub, Ws, Ws, String) {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let chat = resolved_visit(&hub, &mut ann, &hub).await;
    drop(ann);
    let bob = hub.agent("bob", &["general"], 1).await;
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    (hub, bob, carla, chat)
}

#[tokio::test]
async fn a_conversation_continued_by_another_agent_reaches_them_as_handed_on() {
    let (hub, mut bob, mut carla, chat) = back_while_ann_is_gone().await;
    assert_eq!(
        carla.next_of("chat_started").await["chat_id"].as_str(),
        Some(chat.as_str())
    );
    let to_bob = bob.next_of("chat_started").await;
    assert_eq!(
        (to_bob["continued"].as_bool(), to_bob["transfer"]["from_name"].as_str()),
        (Some(true), Some("ANN")),
        "{to_bob}"
    );
    assert_eq!(to_bob["transfer"]["earlier_agents"][0]["through_seq"], 2);
    // The archive says Bob has it now.
    let admin = hub.admin().await;
    let archived = wait_archived(&admin, &chat, 2).await;
    assert_eq!(archived["agent_name"].as_str(), Some("BOB"), "{archived}");
}

/// Bob takes Carla's conversation while Ann is gone, then hands it on to Cy: Cy reads
/// Ann's line hers and Bob's his (before, the continued chat kept no earlier agent of its
/// own, and Cy read Ann's line as Bob's).
#[tokio::test]
async fn a_continued_conversation_handed_on_again_names_each_earlier_agents_lines() {
    let (hub, mut bob, mut carla, chat) = back_while_ann_is_gone().await;
    carla.chat_continued(&chat).await;
    bob.chat_continued(&chat).await;
    assert_eq!(bob.say_in(&chat, "Bob here", "b1").await["seq"], 3);

    let mut cy = hub.agent("cyd", &["general"], 1).await;
    let cy_id = hub.admin().await.agent_id("cyd").await;
    bob.send(json!({"type": "transfer", "chat_id": chat, "to_agent": cy_id, "note": ""}))
        .await;
    let started = cy.next_of("chat_started").await;
    let named = |name: &str| Some(name.to_string());
    assert_eq!(
        crate::transfers::named_lines(&started),
        [(1, None), (2, named("ANN")), (3, named("BOB"))],
        "{started}"
    );
    assert_eq!(
        started["transfer"]["earlier_agents"],
        json!([{"name": "ANN", "through_seq": 2}, {"name": "BOB", "through_seq": 3}]),
        "{started}"
    );
}

#[tokio::test]
async fn a_conversation_continued_the_moment_it_ended_goes_on_after_its_last_line() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let (mut carla, chat) = carla_visiting(&hub, &mut ann).await;
    // Lines acknowledged (durable) but perhaps not yet readable from the store, then the end.
    for n in 1..=30 {
        carla
            .send(json!({"type": "message", "text": format!("line {n}"), "client_id": format!("c{n}")}))
            .await;
    }
    for _ in 1..=30 {
        carla.next_of("ack").await;
    }
    carla.send(json!({"type": "leave"})).await;
    carla.next_of("chat_ended").await;
    // Back at once: the next line is 31, and none of the 30 is overwritten.
    let mut again = continuing(&hub, Some(VISITOR), &chat).await;
    again.next_of("welcome").await;
    let started = again.next_of("chat_started").await;
    assert_eq!(
        started["messages"].as_array().unwrap().last().unwrap()["seq"],
        30,
        "{started}"
    );
    assert_eq!(again.say("one more", "c31").await["seq"], 31);
    let archived = archived_as_ann(&hub, &chat, 31).await;
    assert_eq!(archived["messages"][30]["text"], "one more");
}

#[tokio::test]
async fn what_the_agent_writes_while_the_customer_is_away_reaches_them_when_they_continue() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let chat = resolved_visit(&hub, &mut ann, &hub).await;

    // Ann writes into it with nobody there: stamped after its last line, acknowledged.
    assert_eq!(ann.say_in(&chat, "we found your parcel", "f1").await["seq"], 3);
    // Bob, whose list it is not in, learns nothing.
    let mut bob = hub.agent("bob", &["general"], 1).await;
    bob.send(json!({"type": "message", "chat_id": chat, "text": "hello?", "client_id": "b1"}))
        .await;
    assert_eq!(bob.next_of("error").await["code"], "unknown_chat");

    // More lines, and Carla continuing it at the same moment: nothing collides.
    for n in 2..=6 {
        ann.send(
            json!({"type": "message", "chat_id": chat, "text": format!("follow-up {n}"), "client_id": format!("f{n}")}),
        )
        .await;
    }
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    let started = carla.next_of("chat_started").await;
    let mut acked = Vec::new();
    while acked.len() < 5 {
        let f = ann.next_matching(|f| f["type"] == "ack" || f["type"] == "error").await;
        assert_eq!(f["type"], "ack", "{f}");
        acked.push(f["seq"].as_u64().unwrap());
    }
    acked.sort();
    assert_eq!(acked, vec![4, 5, 6, 7, 8], "one count for all of them");
    // She sees what was written while she was away (in chat_started, or as it came).
    let mut seen: Vec<u64> = started["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    while seen.last() != Some(&8) {
        seen.push(carla.next_of("message").await["seq"].as_u64().unwrap());
    }
    assert!(seen.contains(&3), "{started}");
    assert_eq!(carla.say("thank you!", "c9").await["seq"], 9);
    let archived = archived_as_ann(&hub, &chat, 9).await;
    let stored = seqs_and_texts(&archived["messages"]);
    assert_eq!(
        stored.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    assert_eq!(stored[2].1, "we found your parcel");
    assert_eq!(stored[8].1, "thank you!");
}

#[tokio::test]
async fn reports_count_a_reopened_conversation_its_time_to_resolution_and_its_labels() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let admin = hub.admin().await;
    admin
        .post_answering(201, "/api/admin/labels", json!({"name": "Parcel", "colour": "#1f6feb"}))
        .await;
    // Resolved once, labelled, continued (a reopen) and resolved again.
    let chat = resolved_visit(&hub, &mut ann, &hub).await;
    admin
        .put_answering(200, &format!("/api/conversations/{chat}/labels/parcel"), json!({}))
        .await;
    let mut back = continuing(&hub, Some(VISITOR), &chat).await;
    back.next_of("chat_started").await;
    ann.next_of("chat_started").await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    back.next_of("chat_ended").await;
    // A second conversation, resolved and never reopened, without a label.
    let (mut dora, other) = hub
        .paired_customer_with(&mut ann, "Dora", json!({"visitor": STRANGER}))
        .await;
    ann.send(json!({"type": "end_chat", "chat_id": other})).await;
    dora.next_of("chat_ended").await;
    own_until(&hub, STRANGER, "resolved").await;
    own_until(&hub, VISITOR, "resolved").await;

    // Yesterday and today in the report's zone (the test desk's, UTC): everything above
    // happened in them, even around midnight.
    let (yesterday, today) = (day_in(-1), day_in(0));
    let (status, report) = admin.get(&format!("/api/reports?from={yesterday}&to={today}")).await;
    assert_eq!(status, 200, "{report}");
    let totals = &report["totals"];
    assert_eq!(
        (
            totals["resolved"].as_u64(),
            totals["reopened"].as_u64(),
            totals["reopen_rate"].as_f64()
        ),
        (Some(2), Some(1), Some(0.5)),
        "{totals}"
    );
    assert!(totals["resolution_median_ms"].as_i64().is_some(), "{totals}");
    assert_eq!(report["labels"].as_array().unwrap().len(), 1, "{report}");
    let parcel = &report["labels"][0];
    assert_eq!(
        (
            parcel["label"].as_str(),
            parcel["label_name"].as_str(),
            parcel["conversations"].as_u64()
        ),
        (Some("parcel"), Some("Parcel"), Some(1)),
        "{parcel}"
    );
    // Only the labelled one.
    let (_, only) = admin
        .get(&format!("/api/reports?from={yesterday}&to={today}&label=parcel"))
        .await;
    assert_eq!(
        (
            only["totals"]["conversations"].as_u64(),
            only["totals"]["reopened"].as_u64()
        ),
        (Some(1), Some(1)),
        "{only}"
    );
}

#[tokio::test]
async fn a_customer_whose_agent_vanished_goes_on_in_the_same_conversation_with_the_next_agent() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let (mut carla, chat) = hub.customer_in_chat("Carla", "general").await;
    let chat = chat.as_str().unwrap().to_string();
    ann.next_of("chat_started").await;
    carla
        .send(json!({"type": "message", "text": "my parcel is late", "client_id": "c1"}))
        .await;
    carla.next_of("ack").await;
    ann.next_of("message").await;
    ann.send(json!({"type": "message", "chat_id": chat, "text": "let me look", "client_id": "a1"}))
        .await;
    ann.next_of("ack").await;
    carla.next_of("message").await;

    // Ann's laptop dies; after her grace period Carla is back at the front of the line.
    drop(ann);
    assert_eq!(carla.next_of("chat_ended").await["reason"], "agent_gone");
    assert_eq!(carla.next_of("queued").await["requeued"], true);

    // Bob takes her: the same conversation, its lines, handed on from Ann.
    let mut bob = hub.agent("bob", &["general"], 1).await;
    let started = carla.next_of("chat_started").await;
    assert_eq!(
        (started["chat_id"].as_str(), started["continued"].as_bool()),
        (Some(chat.as_str()), Some(true)),
        "{started}"
    );
    assert_eq!(
        seqs_and_texts(&started["messages"]),
        vec![(1, "my parcel is late"), (2, "let me look")]
    );
    let to_bob = bob.next_of("chat_started").await;
    assert_eq!(
        (to_bob["chat_id"].as_str(), to_bob["transfer"]["from_name"].as_str()),
        (Some(chat.as_str()), Some("ANN")),
        "{to_bob}"
    );
    assert_eq!(seqs_and_texts(&to_bob["messages"]).len(), 2);
    assert!(
        to_bob.get("reopened").is_none(),
        "never resolved, not a reopen: {to_bob}"
    );
    assert_eq!(
        to_bob["transfer"]["note"],
        "ANN went offline; the customer waited for the next agent."
    );

    // The seq goes on; the archive has one conversation, now Bob's.
    carla
        .send(json!({"type": "message", "text": "still nothing", "client_id": "c2"}))
        .await;
    assert_eq!(carla.next_of("ack").await["seq"], 3);
    assert_eq!(bob.next_of("message").await["chat_id"].as_str(), Some(chat.as_str()));
    let admin = hub.admin().await;
    let archived = wait_archived(&admin, &chat, 3).await;
    only_bobs_in_the_archive(&admin, &archived, &chat).await;
    let bob_api = hub.login("bob", "agent-password").await;
    let (_, inbox) = bob_api.get("/api/inbox").await;
    assert_eq!(inbox["items"][0]["id"].as_str(), Some(chat.as_str()), "{inbox}");
}

#[tokio::test]
async fn a_conversation_archived_before_statuses_is_resolved_and_its_visitor_continues_it() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 2).await;
    let ann_id = hub.store.account_by_username("ann").await.unwrap().id;
    // As the archive was written before conversations had records: opened, two lines,
    // closed, and no record.
    let id = "0190aaaa-0000-7000-8000-000000000049";
    let opened: switchboard::store::ConversationOpened = serde_json::from_value(json!({
        "id": id, "kind": "service", "category": "general", "customer_name": "Carla",
        "agent_id": ann_id, "agent_name": "ANN", "queued_at": 1_000, "paired_at": 2_000,
        "customer": {"visitor": VISITOR}
    }))
    .unwrap();
    let line = |seq: u64, from: switchboard::store::Side, text: &str| switchboard::store::ArchiveEvent::Message {
        conversation_id: id.into(),
        message: switchboard::store::ArchivedMessage::plain(format!("{id}-{seq}"), seq, from, text, 2_000 + seq as i64),
    };
    let closed: switchboard::store::ConversationClosed = serde_json::from_value(json!({
        "id": id, "ended_at": 9_000, "ended_by": "customer", "reason": "ended"
    }))
    .unwrap();
    hub.store
        .archive(&[
            switchboard::store::ArchiveEvent::Opened(opened),
            line(1, switchboard::store::Side::Customer, "my parcel is late"),
            line(2, switchboard::store::Side::Agent, "it leaves today"),
            switchboard::store::ArchiveEvent::Closed(closed),
        ])
        .await
        .unwrap();
    let list = own_until(&hub, VISITOR, "resolved").await;
    assert_eq!(list["conversations"][0]["id"], id, "{list}");

    // She continues it: the same id, back to Ann, its seq going on after the archive's.
    let mut carla = continuing(&hub, Some(VISITOR), id).await;
    let started = carla.next_of("chat_started").await;
    assert_eq!(started["chat_id"], id, "{started}");
    let theirs = ann.next_of("chat_started").await;
    assert_eq!(theirs["chat_id"], id, "{theirs}");
    carla.say("still nothing", "c2").await;
    let line = ann.next_of("message").await;
    assert_eq!(line["seq"], 3, "{line}");
    // Open again in Ann's list: a reopen of a resolved conversation.
    let ann_api = hub.login("ann", "agent-password").await;
    for _ in 0..100 {
        let (_, mine) = ann_api.get("/api/inbox").await;
        if item_ids(&mine) == vec![id] {
            assert_eq!(mine["items"][0]["status"], "open", "{mine}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let record = hub.store.conversation_record(id).await.unwrap();
    assert_eq!(
        (record.status, record.resolutions, record.reopens),
        (switchboard::store::ConversationStatus::Open, 1, 1)
    );
    hub.stop().await;
}
