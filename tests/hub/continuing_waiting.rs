//! A customer waiting in line to continue their conversation reads it and writes into it:
//! the `queued` they get carries its latest lines, and each line they send meanwhile is one
//! of the conversation's (its next `seq`, archived, acknowledged once durable), which its
//! holder sees as it comes and the agent who takes it finds in `chat_started`. On one node
//! and across nodes.

use serde_json::{Value, json};

use crate::common::*;
use crate::continuing::{
    VISITOR, archived_as_ann, assert_reopen_told, continuing, continuing_giving, email_kept, first_visit, own_until,
};

fn seqs(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("lines: {messages}"))
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

/// Each line's seq, and for an agent's line the author it names.
fn authors(lines: &Value) -> Vec<(u64, Option<String>)> {
    lines
        .as_array()
        .unwrap_or_else(|| panic!("lines: {lines}"))
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["agent_name"].as_str().map(String::from)))
        .collect()
}

/// Ann stops taking chats (away): whoever comes now waits.
async fn away(ann: &mut Ws, available: bool) {
    ann.send(json!({"type": "set_available", "available": available})).await;
    ann.next_of("profile").await;
}

#[tokio::test]
async fn a_customer_waiting_to_continue_reads_and_writes_into_their_conversation_and_the_agent_gets_it_all() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let chat = first_visit(&hub, &mut ann).await;
    own_until(&hub, VISITOR, "resolved").await;
    away(&mut ann, false).await;

    // Nobody can take her: she waits, and sees where the conversation stood.
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    let queued = carla.next_of("queued").await;
    assert_eq!(queued["conversation"]["id"].as_str(), Some(chat.as_str()), "{queued}");
    assert_eq!(seqs(&queued["conversation"]["messages"]), vec![1, 2], "{queued}");

    // She writes while she waits: lines of the conversation, acknowledged in order.
    let first = carla.say("are you there?", "w1").await;
    assert_eq!(
        (first["chat_id"].as_str(), first["seq"].as_u64()),
        (Some(chat.as_str()), Some(3)),
        "{first}"
    );
    assert_eq!(carla.say("it is urgent", "w2").await["seq"], 4);
    // A line into a resolved conversation opens it again.
    own_until(&hub, VISITOR, "open").await;
    // Files wait for the chat; the socket lives.
    carla
        .send(json!({"type": "message", "text": "a photo", "client_id": "w3", "attachments": ["some-upload"]}))
        .await;
    assert_eq!(carla.next_of("error").await["client_id"], "w3");

    // Ann is back: she takes it with every line, Carla's two among them, as Carla's.
    away(&mut ann, true).await;
    // (Pairing may beat the `profile` that answers her being back.)
    let to_ann = ann.seen_or_next_matching(|f| f["type"] == "chat_started").await;
    assert_eq!(to_ann["chat_id"].as_str(), Some(chat.as_str()));
    assert_eq!(seqs(&to_ann["messages"]), vec![1, 2, 3, 4], "{to_ann}");
    assert_eq!(
        (
            to_ann["messages"][2]["text"].as_str(),
            to_ann["messages"][2]["from"].as_str()
        ),
        (Some("are you there?"), Some("customer"))
    );
    let to_carla = carla.next_of("chat_started").await;
    assert_eq!(seqs(&to_carla["messages"]).last(), Some(&4), "{to_carla}");
    // The chat goes on after them: one gapless count.
    assert_eq!(carla.say("thank you", "c5").await["seq"], 5);
    assert_eq!(ann.next_of("message").await["seq"], 5);
    let archived = archived_as_ann(&hub, &chat, 5).await;
    let stored = seqs_and_texts(&archived["messages"]);
    assert_eq!(stored.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert_eq!(stored[2].1, "are you there?");
}

#[tokio::test]
async fn its_holder_sees_a_waiting_customers_line_as_it_comes_and_a_new_customer_still_waits_silent() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let chat = first_visit(&hub, &mut ann).await;
    own_until(&hub, VISITOR, "resolved").await;
    // Ann is full with Dora: Carla's conversation waits for her.
    let (_dora, _) = hub.paired_customer(&mut ann, "Dora", "general").await;
    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    carla.next_of("queued").await;
    assert_eq!(carla.say("I can wait", "w1").await["seq"], 3);
    let seen = ann
        .next_matching(|f| f["type"] == "message" && f["chat_id"] == json!(chat))
        .await;
    assert_eq!(
        (seen["seq"].as_u64(), seen["from"].as_str()),
        (Some(3), Some("customer"))
    );

    // Someone new in line has no conversation yet: nothing to write into.
    let mut eve = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    eve.send(json!({"type": "join", "name": "Eve", "category": "general"}))
        .await;
    eve.next_of("welcome").await;
    let queued = eve.next_of("queued").await;
    assert!(queued.get("conversation").is_none(), "{queued}");
    eve.send(json!({"type": "message", "text": "hello?", "client_id": "e1"}))
        .await;
    assert_eq!(eve.next_of("error").await["code"], "not_in_chat");
}

/// Two nodes: Carla's first visit on alpha with Ann on beta, resolved; Ann away; Carla
/// back on alpha to continue it, waiting (welcomed, and her first `queued` read).
struct WaitingAcrossNodes {
    _cluster: Cluster,
    alpha: TestHub,
    beta: TestHub,
    ann: Ws,
    carla: Ws,
    /// Carla's resume token.
    token: String,
    queued: Value,
    /// The conversation's id.
    chat: String,
}

/// Carla's first visit on `hub` with Ann, resolved; Ann away; Carla back on `hub` to continue
/// it, waiting. The conversation's id, Carla's socket (welcomed, her first `queued` read),
/// her resume token and that `queued`.
async fn back_while_ann_is_away(hub: &TestHub, ann: &mut Ws) -> (String, Ws, String, Value) {
    let chat = first_visit(hub, ann).await;
    own_until(hub, VISITOR, "resolved").await;
    away(ann, false).await;
    let mut carla = continuing(hub, Some(VISITOR), &chat).await;
    let token = carla.next_of("welcome").await["resume_token"]
        .as_str()
        .unwrap()
        .to_string();
    let queued = carla.next_of("queued").await;
    (chat, carla, token, queued)
}

async fn waiting_across_nodes(name: &str) -> WaitingAcrossNodes {
    waiting_across_nodes_with(name, |_| {}).await
}

/// As [`waiting_across_nodes`], both nodes' settings changed by `tweak`.
async fn waiting_across_nodes_with(
    name: &str,
    tweak: impl Fn(&mut switchboard::config::Settings) + Copy,
) -> WaitingAcrossNodes {
    let cluster = Cluster::start(name).await;
    let (alpha, beta) = cluster.two_nodes(tweak).await;
    let mut ann = beta.agent("ann", &["general"], 1).await;
    let (chat, carla, token, queued) = back_while_ann_is_away(&alpha, &mut ann).await;
    WaitingAcrossNodes {
        _cluster: cluster,
        alpha,
        beta,
        ann,
        carla,
        token,
        queued,
        chat,
    }
}

#[tokio::test]
async fn across_nodes_a_customer_writes_while_waiting_on_one_node_and_their_agent_takes_it_on_another() {
    // Carla waits on alpha, Ann is away on beta.
    let WaitingAcrossNodes {
        _cluster,
        alpha: _alpha,
        beta,
        mut ann,
        mut carla,
        queued,
        chat,
        ..
    } = waiting_across_nodes("continuing-waiting").await;
    assert_eq!(seqs(&queued["conversation"]["messages"]), vec![1, 2], "{queued}");
    assert_eq!(carla.say("still waiting for my parcel", "w1").await["seq"], 3);
    assert_eq!(carla.say("any news?", "w2").await["seq"], 4);

    // Ann takes it on beta: the chat goes on after Carla's lines, with no gap.
    away(&mut ann, true).await;
    // (Pairing may beat the `profile` that answers her being back.)
    let to_ann = ann.seen_or_next_matching(|f| f["type"] == "chat_started").await;
    assert_eq!(to_ann["chat_id"].as_str(), Some(chat.as_str()), "{to_ann}");
    let to_carla = carla.next_of("chat_started").await;
    assert_eq!(seqs(&to_carla["messages"]).last(), Some(&4), "{to_carla}");
    assert_eq!(ann.say_in(&chat, "it arrives today", "a1").await["seq"], 5);
    assert_eq!(carla.next_of("message").await["seq"], 5);
    let archived = archived_as_ann(&beta, &chat, 5).await;
    let stored = seqs_and_texts(&archived["messages"]);
    assert_eq!(stored.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert_eq!((stored[2].1, stored[3].1), ("still waiting for my parcel", "any news?"));
}

/// Across nodes, Carla comes back on alpha to her conversation (with Ann, who is away on
/// beta) and gives an email on that join; she leaves before anyone takes her. The
/// conversation keeps the address all the same (follow-ups by mail go to it): it is kept
/// from the join on, not from a pairing. Before, only a pairing on her node kept it.
#[tokio::test]
async fn across_nodes_an_email_given_on_coming_back_is_kept_though_she_leaves_before_being_taken() {
    let cluster = Cluster::start("continuing-waiting-email").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    let mut ann = beta.agent("ann", &["general"], 1).await;
    let chat = first_visit(&alpha, &mut ann).await;
    own_until(&alpha, VISITOR, "resolved").await;
    away(&mut ann, false).await;
    let mut carla = continuing_giving(&alpha, Some(VISITOR), &chat, Some("carla@example.com")).await;
    carla.next_of("queued").await;
    carla.send(json!({"type": "leave"})).await;
    email_kept(&beta.admin().await, &chat, "carla@example.com").await;
}

/// Carla's page drops while she waits in her conversation; she resumes on `back_on` (the
/// same node, or another) having kept nothing (`last_seq` 0): `resumed` carries the
/// conversation, its lines and hers among them, named by its agent now. The resumed
/// socket, and that `resumed`.
async fn reload_while_waiting(carla: Ws, token: &str, back_on: &TestHub, chat: &str, lines: &[u64]) -> (Ws, Value) {
    drop(carla);
    // Give her node a moment to see the drop before she is back.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut back = Ws::connect(&back_on.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": token, "last_seq": 0}))
        .await;
    let resumed = back.next_of("resumed").await;
    assert_eq!(resumed["place"], 1, "{resumed}");
    assert!(resumed["chat"].is_null(), "{resumed}");
    let conversation = &resumed["conversation"];
    assert_eq!(conversation["id"].as_str(), Some(chat), "{resumed}");
    assert_eq!(seqs(&conversation["messages"]), lines, "{resumed}");
    // The conversation names its agent now (whose list it is in).
    assert_eq!(conversation["agent_name"].as_str(), Some("ANN"), "{resumed}");
    (back, resumed)
}

#[tokio::test]
async fn a_reload_while_waiting_to_continue_gives_the_conversation_back_with_the_lines_written_meanwhile() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let (chat, mut carla, token, queued) = back_while_ann_is_away(&hub, &mut ann).await;
    assert_eq!(queued["conversation"]["agent_name"].as_str(), Some("ANN"), "{queued}");
    assert_eq!(carla.say("are you there?", "w1").await["seq"], 3);

    let (mut back, _) = reload_while_waiting(carla, &token, &hub, &chat, &[1, 2, 3]).await;
    // She goes on writing into it, and Ann takes it with everything.
    assert_eq!(back.say("hello again", "w2").await["seq"], 4);
    away(&mut ann, true).await;
    let to_ann = ann.seen_or_next_matching(|f| f["type"] == "chat_started").await;
    assert_eq!(seqs(&to_ann["messages"]), vec![1, 2, 3, 4], "{to_ann}");
    let to_carla = back.next_of("chat_started").await;
    assert_eq!(seqs(&to_carla["messages"]), vec![1, 2, 3, 4], "{to_carla}");
}

#[tokio::test]
async fn across_nodes_a_reload_while_waiting_to_continue_gives_the_conversation_back_on_the_other_node() {
    // Carla waits on alpha and writes; her page reloads onto beta.
    let mut waiting = waiting_across_nodes("continuing-waiting-reload").await;
    let (beta, chat) = (&waiting.beta, waiting.chat.as_str());
    assert_eq!(waiting.carla.say("still waiting for my parcel", "w1").await["seq"], 3);
    let (mut back, _) = reload_while_waiting(waiting.carla, &waiting.token, beta, chat, &[1, 2, 3]).await;

    // On beta she goes on writing into it, and Ann takes it with no gap.
    assert_eq!(back.say("any news?", "w2").await["seq"], 4);
    let ann = &mut waiting.ann;
    away(ann, true).await;
    let to_carla = back.next_of("chat_started").await;
    assert_eq!(to_carla["chat_id"].as_str(), Some(chat), "{to_carla}");
    assert_eq!(seqs(&to_carla["messages"]).last(), Some(&4), "{to_carla}");
    // Her line while waiting opened it already; beta, reading it anew for her reload, still
    // tells Ann it is a reopen (her join said so).
    // (Going available may have brought it before the profile frame `away` waits for.)
    let continued = |f: &&Value| f["type"] == "chat_started" && f["continued"] == true;
    let to_ann = match ann.seen.iter().rev().find(continued).cloned() {
        Some(started) => started,
        None => ann.next_of("chat_started").await,
    };
    assert_reopen_told(&to_ann);
    assert_eq!(ann.say_in(chat, "it arrives today", "a1").await["seq"], 5);
    assert_eq!(back.next_of("message").await["seq"], 5);
    let archived = archived_as_ann(beta, chat, 5).await;
    assert_eq!(
        seqs_and_texts(&archived["messages"])
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
}

/// Carla waits on alpha to continue her conversation; her page reloads onto beta, then
/// back onto alpha, the node she joined on, which let go of her when she went: alpha still
/// knows the conversation she continues, so its `resumed` carries it (her line written on
/// beta too), her next line goes on after its last, and Ann, back, takes it on beta as the same chat,
/// told it is a reopen. Before, alpha forgot it when it let go of her (only other nodes'
/// customers kept it): `resumed` came without the conversation.
#[tokio::test]
async fn across_nodes_a_reload_back_onto_her_first_node_still_continues_the_conversation() {
    // Two reloads within one grace period (the tests' default is under a second).
    let grace = std::time::Duration::from_secs(20);
    let mut waiting = waiting_across_nodes_with("continuing-waiting-back", |s| s.resume_grace = grace).await;
    let chat = waiting.chat.clone();
    let (mut on_beta, _) = reload_while_waiting(waiting.carla, &waiting.token, &waiting.beta, &chat, &[1, 2]).await;
    assert_eq!(on_beta.say("still waiting", "w1").await["seq"], 3);
    let (mut back, _) = reload_while_waiting(on_beta, &waiting.token, &waiting.alpha, &chat, &[1, 2, 3]).await;

    assert_eq!(back.say("any news?", "w2").await["seq"], 4);
    let ann = &mut waiting.ann;
    away(ann, true).await;
    let to_carla = back.next_of("chat_started").await;
    assert_eq!(to_carla["chat_id"].as_str(), Some(chat.as_str()), "{to_carla}");
    assert_eq!(seqs(&to_carla["messages"]).last(), Some(&4), "{to_carla}");
    let continued = |f: &&Value| f["type"] == "chat_started" && f["continued"] == true;
    let to_ann = match ann.seen.iter().rev().find(continued).cloned() {
        Some(started) => started,
        None => ann.next_of("chat_started").await,
    };
    assert_eq!(to_ann["chat_id"].as_str(), Some(chat.as_str()), "{to_ann}");
    assert_reopen_told(&to_ann);
    assert_eq!(ann.say_in(&chat, "it arrives today", "a1").await["seq"], 5);
    assert_eq!(back.next_of("message").await["seq"], 5);
}

/// Carla's conversation went from Ann to Bob in a live transfer (each wrote a line), then
/// back into Ann's list from the inbox: waiting to continue it, Carla sees each agent line
/// named by its author, and the conversation by its agent now (Ann), on `queued` and again
/// on `resumed` after a reload.
#[tokio::test]
async fn a_transferred_conversation_continued_names_each_line_s_author_and_its_agent_now() {
    let (hub, mut ann) = TestHub::with_agent("ann", &["general"], 1).await;
    let (mut carla, chat) = crate::continuing::carla_visiting(&hub, &mut ann).await;
    carla.say("my parcel is late", "c1").await;
    ann.next_of("message").await;
    ann.say_in(&chat, "let me ask the warehouse", "a1").await;
    carla.next_of("message").await;
    let mut bob = hub.agent("bob", &["general"], 1).await;
    let admin = hub.admin().await;
    let bob_id = admin.agent_id("bob").await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id}))
        .await;
    bob.next_of("chat_started").await;
    carla.next_of("transferred").await;
    bob.say_in(&chat, "it leaves today", "b1").await;
    carla.next_of("message").await;
    bob.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    own_until(&hub, VISITOR, "resolved").await;
    // Back into Ann's list from the inbox (no chat: the archive still names Bob).
    let ann_id = admin.agent_id("ann").await;
    let (status, body) = admin
        .post(
            &format!("/api/conversations/{chat}/assign"),
            json!({"agent_id": ann_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    away(&mut ann, false).await;
    away(&mut bob, false).await;

    let mut carla = continuing(&hub, Some(VISITOR), &chat).await;
    let token = carla.next_of("welcome").await["resume_token"]
        .as_str()
        .unwrap()
        .to_string();
    let queued = carla.next_of("queued").await;
    let authors = |conversation: &Value| authors(&conversation["messages"]);
    let expected = vec![(1, None), (2, Some("ANN".to_string())), (3, Some("BOB".to_string()))];
    assert_eq!(authors(&queued["conversation"]), expected, "{queued}");
    assert_eq!(queued["conversation"]["agent_name"].as_str(), Some("ANN"), "{queued}");

    let (_, resumed) = reload_while_waiting(carla, &token, &hub, &chat, &[1, 2, 3]).await;
    assert_eq!(authors(&resumed["conversation"]), expected, "{resumed}");
}

/// Carla's conversation with Ann (Ann wrote line 2) is put in Bob's list from the inbox
/// through `http`'s API, twice (a retry); Bob writes into it while she is away (line 3,
/// on `bobs`); she comes back on `hers`. The archive keeps the reassignment once, as a
/// hand-over after line 2, so it names Bob as its agent and each line its author: in the
/// conversation she reads waiting, and in Bob's `chat_started` (`earlier_agents`).
async fn reassigned_then_continued(first: &TestHub, http: &TestHub, bobs: &TestHub, hers: &TestHub) {
    let mut ann = first.agent("ann", &["general"], 1).await;
    let chat = first_visit(first, &mut ann).await;
    own_until(http, VISITOR, "resolved").await;
    let mut bob = bobs.agent("bob", &["general"], 1).await;
    let admin = http.admin().await;
    let bob_id = admin.agent_id("bob").await;
    for changed in [true, false] {
        let (status, body) = admin
            .post(
                &format!("/api/conversations/{chat}/assign"),
                json!({"agent_id": bob_id}),
            )
            .await;
        assert_eq!((status, body["changed"].as_bool()), (200, Some(changed)), "{body}");
    }
    let (_, archived) = admin.get(&format!("/api/conversations/{chat}")).await;
    assert_eq!(archived["agent_name"].as_str(), Some("BOB"), "{archived}");
    let hand_overs: Vec<(&str, Option<&str>, u64)> = archived["transfers"]
        .as_array()
        .unwrap_or_else(|| panic!("transfers: {archived}"))
        .iter()
        .map(|t| {
            (
                t["from_agent_name"].as_str().unwrap(),
                t["to_agent_name"].as_str(),
                t["after_seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(hand_overs, vec![("ANN", Some("BOB"), 2)], "kept once: {archived}");
    // Her list names the agent it is with now, and the last line by its author.
    let list = own_until(hers, VISITOR, "resolved").await;
    let row = &list["conversations"][0];
    assert_eq!(
        (row["agent_name"].as_str(), row["last_message_by"].as_str()),
        (Some("BOB"), Some("ANN")),
        "{list}"
    );
    assert_eq!(bob.say_in(&chat, "I have your case now", "b1").await["seq"], 3);
    away(&mut ann, false).await;
    away(&mut bob, false).await;

    let mut carla = continuing(hers, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    let queued = carla.next_of("queued").await;
    let named = vec![(1, None), (2, Some("ANN".to_string())), (3, Some("BOB".to_string()))];
    assert_eq!(authors(&queued["conversation"]["messages"]), named, "{queued}");
    assert_eq!(queued["conversation"]["agent_name"].as_str(), Some("BOB"), "{queued}");

    // Back to Bob, whose console names Ann's line hers (his own, past it, are his).
    away(&mut bob, true).await;
    let to_bob = bob.seen_or_next_matching(|f| f["type"] == "chat_started").await;
    assert_eq!(to_bob["chat_id"].as_str(), Some(chat.as_str()), "{to_bob}");
    // Hers names them too, as her page shows them.
    let to_carla = carla.next_of("chat_started").await;
    assert_eq!(authors(&to_carla["messages"]), named, "{to_carla}");
    assert_eq!(
        to_bob["transfer"]["earlier_agents"],
        json!([{"name": "ANN", "through_seq": 2}]),
        "{to_bob}"
    );
}

#[tokio::test]
async fn a_conversation_reassigned_from_the_inbox_names_each_line_s_author_when_continued() {
    let hub = TestHub::start().await;
    reassigned_then_continued(&hub, &hub, &hub, &hub).await;
}

#[tokio::test]
async fn across_nodes_a_conversation_reassigned_from_the_inbox_names_each_line_s_author_when_continued() {
    let cluster = Cluster::start("reassigned-authors").await;
    let (alpha, beta, gamma) = cluster.three_nodes(|_| {}).await;
    // Ann and Carla first on alpha, the reassignment on beta, Bob on gamma, Carla back there.
    reassigned_then_continued(&alpha, &beta, &gamma, &gamma).await;
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}
