//! Continuing a conversation across nodes (one Redis, one store): a customer comes back
//! on another node than the one they left from, their agent on a third; what the agent
//! wrote meanwhile, on their node, comes first and the seq goes on without a gap; one
//! customer continues a conversation at a time, whatever the node, also while it is live
//! in its first chat; each agent line is named by who wrote it, whichever nodes the
//! customer, the earlier agent and the next one are on.

use serde_json::{Value, json};

use crate::common::*;
use crate::continuing::{
    VISITOR, archived_as_ann, assert_snapshot_tells_the_reopen, continuing, her_third_line, only_bobs_in_the_archive,
    own_until, reopened, resolved_visit, wait_archived,
};

#[tokio::test]
async fn across_nodes_a_customer_continues_on_another_node_with_their_agent_on_a_third() {
    let (_cluster, [alpha, beta, gamma], [mut ann]) =
        Desk::across("continuing-cluster").on(2, "ann", &["general"], 2).await;
    // Carla's first visit is on alpha; she comes back on beta. Ann, on gamma, gets it back as
    // that conversation; its lines are the archive's. It was resolved: gamma tells her it is
    // a reopen (the word rode in Carla's join from beta).
    let (chat, mut carla, _) = reopened(&alpha, &mut ann, &beta).await;

    // The seq goes on, both ways, across the nodes.
    her_third_line(&mut carla, &mut ann, &chat).await;
    assert_eq!(ann.say_in(&chat, "sending another", "a2").await["seq"], 4);
    assert_eq!(carla.next_of("message").await["seq"], 4);

    // A second window, on alpha, cannot continue it while it is live on beta.
    let mut again = continuing(&alpha, Some(VISITOR), &chat).await;
    assert_eq!(again.next_of("error").await["code"], "already_live");

    // Ended again: one conversation in the archive, four lines in order.
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    archived_in_order_as_ann(&gamma, &chat, 4).await;
    // Over, it may be continued again, from any node.
    own_until(&alpha, VISITOR, "resolved").await;
    let mut third = continuing(&alpha, Some(VISITOR), &chat).await;
    third.next_of("welcome").await;
    let started = third.next_of("chat_started").await;
    assert_eq!(started["chat_id"].as_str(), Some(chat.as_str()), "{started}");
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}

/// Ann's console reloaded after a reopen, on her node, on a node that kept no log of the
/// chat and on her customer's node: each welcome's snapshot tells the reopen and this
/// turn's wait, the same wait.
#[tokio::test]
async fn across_nodes_a_reload_after_a_reopen_gets_the_reopen_and_this_turns_wait() {
    let cluster = Cluster::start("continuing-reload").await;
    let (alpha, beta, gamma) = cluster.three_nodes(|_| {}).await;
    let (mut ann, token) = gamma.agent_with_token("ann", &["general"], 2).await;
    let (chat, mut carla, to_ann) = reopened(&alpha, &mut ann, &beta).await;

    let (second, welcome) = Ws::with_bearer(&gamma, "/ws/agent", &token, "agent_welcome").await;
    assert_snapshot_tells_the_reopen(&welcome, &to_ann);
    drop((ann, second));
    assert_eq!(carla.next_of("peer_away").await["chat_id"], chat.as_str());
    let (on_alpha, welcome) = Ws::with_bearer(&alpha, "/ws/agent", &token, "agent_welcome").await;
    assert_snapshot_tells_the_reopen(&welcome, &to_ann);
    // On Carla's node too, whose own log of the chat timed her wait: by the events
    // stream's clock, as the other nodes did, not by its own.
    assert_eq!(carla.next_of("peer_back").await["chat_id"], chat.as_str());
    drop(on_alpha);
    assert_eq!(carla.next_of("peer_away").await["chat_id"], chat.as_str());
    let (_on_beta, welcome) = Ws::with_bearer(&beta, "/ws/agent", &token, "agent_welcome").await;
    assert_snapshot_tells_the_reopen(&welcome, &to_ann);
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}

#[tokio::test]
async fn across_nodes_what_the_agent_writes_while_the_customer_is_away_comes_first_when_they_continue() {
    let (_cluster, [alpha, beta], [mut ann]) = Desk::across("follow-up-cluster").on(1, "ann", &["general"], 2).await;
    let chat = resolved_visit(&alpha, &mut ann, &beta).await;

    // Ann writes into it from beta with nobody there: stamped after its last line.
    for n in 1..=3 {
        ann.send(
            json!({"type": "message", "chat_id": chat, "text": format!("follow-up {n}"), "client_id": format!("f{n}")}),
        )
        .await;
        let f = ann.next_matching(|f| f["type"] == "ack" || f["type"] == "error").await;
        assert_eq!(
            (f["type"].as_str(), f["seq"].as_u64()),
            (Some("ack"), Some(2 + n)),
            "{f}"
        );
    }

    // Carla continues on alpha: those lines first, her own after them.
    let mut carla = continuing(&alpha, Some(VISITOR), &chat).await;
    carla.next_of("welcome").await;
    let started = carla.next_of("chat_started").await;
    assert_eq!(
        seqs_and_texts(&started["messages"]).last(),
        Some(&(5, "follow-up 3")),
        "{started}"
    );
    ann.next_of("chat_started").await;
    assert_eq!(carla.say("thank you!", "c9").await["seq"], 6);
    assert_eq!(ann.next_of("message").await["seq"], 6);

    // While she is there, a line for the away conversation is her chat's: Ann's page sends
    // it into the chat (the same id), not as a follow-up.
    assert_eq!(ann.say_in(&chat, "glad to help", "a9").await["seq"], 7);
    assert_eq!(carla.next_of("message").await["seq"], 7);
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    archived_in_order_as_ann(&beta, &chat, 7).await;
    alpha.stop().await;
    beta.stop().await;
}

/// Carla on alpha with Ann on beta; Ann's laptop dies. Past the grace period Carla goes back
/// to the front of the line, and Bob, on gamma, takes her: the same conversation (its id on
/// every node, its lines, the seq going on), handed on from Ann, one record in the archive.
#[tokio::test]
async fn across_nodes_a_customer_whose_agent_vanished_goes_on_in_the_same_conversation() {
    let (_cluster, [alpha, beta, gamma], [mut ann]) =
        Desk::across("agent-gone-cluster").on(1, "ann", &["general"], 1).await;
    let mut carla = alpha.customer("Carla", "general").await;
    let chat = carla.chat_started().await;
    ann.next_of("chat_started").await;
    assert_eq!(carla.say("my parcel is late", "c1").await["seq"], 1);
    ann.next_of("message").await;
    assert_eq!(ann.say_in(&chat, "let me look", "a1").await["seq"], 2);
    carla.next_of("message").await;

    // Ann's laptop dies; after her grace period Carla is back at the front of the line.
    drop(ann);
    let ended = carla.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].as_str(), ended["reason"].as_str()),
        (Some(chat.as_str()), Some("agent_gone")),
        "{ended}"
    );
    assert_eq!(carla.next_of("queued").await["requeued"], true);

    // Bob, on gamma, takes her: the same conversation, handed on from Ann.
    let mut bob = gamma.agent("bob", &["general"], 1).await;
    let started = carla.next_of("chat_started").await;
    assert_eq!(started["chat_id"].as_str(), Some(chat.as_str()), "{started}");
    // Signing in, he may have been paired before his page settled (`agent` waits for that).
    let to_bob = bob.seen_or_next_matching(|f| f["type"] == "chat_started").await;
    assert_eq!(
        (to_bob["chat_id"].as_str(), to_bob["transfer"]["from_name"].as_str()),
        (Some(chat.as_str()), Some("ANN")),
        "{to_bob}"
    );
    // Her lines reach him, with the chat or right after it.
    let mut lines = seqs_and_texts(&to_bob["messages"])
        .into_iter()
        .map(|(seq, text)| (seq, text.to_string()))
        .collect::<Vec<_>>();
    while lines.len() < 2 {
        let m = bob.seen_or_next_matching(|f| f["type"] == "message").await;
        lines.push((m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_string()));
    }
    assert_eq!(
        lines,
        vec![(1, "my parcel is late".to_string()), (2, "let me look".to_string())]
    );

    // The seq goes on, both ways; the archive has one conversation, now Bob's.
    assert_eq!(carla.say("still nothing", "c2").await["seq"], 3);
    let line = bob
        .seen_or_next_matching(|f| f["type"] == "message" && f["seq"] == 3)
        .await;
    assert_eq!(line["chat_id"].as_str(), Some(chat.as_str()), "{line}");
    assert_eq!(bob.say_in(&chat, "found it", "b1").await["seq"], 4);
    assert_eq!(carla.next_of("message").await["seq"], 4);
    let admin = alpha.admin().await;
    let archived = wait_archived(&admin, &chat, 4).await;
    assert_eq!(u64s_in(&archived["messages"], "seq"), vec![1, 2, 3, 4]);
    only_bobs_in_the_archive(&admin, &archived, &chat).await;
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}

/// On several nodes a line to an away customer takes its seq from the conversation's
/// counter in Redis: room in the archive is taken before, so a line refused for want of
/// it leaves no gap. Ann's node (beta) archives one event at a time; the store is frozen
/// (SIGSTOP) while her second line waits for the read of its conversation, and meanwhile
/// Dora, on beta, is paired with her: beta archives that chat, whose closing keeps the one
/// slot for as long as it runs. Once the store runs again the line is refused
/// `archive_unavailable`; after Dora's chat ends the next line is seq 4, and the archive
/// has 1 to 4. Before, the refused line had drawn seq 4 from Redis first: the next was 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_a_line_to_an_away_customer_refused_for_want_of_archive_room_leaves_no_gap() {
    let (mongo, uri) = in_memory_mongod().await;
    let cluster = Cluster::on("follow-up-room", crate::archive::mongo_store(&uri).await).await;
    let alpha = cluster.node("alpha", |_| {}).await;
    let beta = cluster.node("beta", |s| s.archive.buffer = 1).await;
    let mut ann = beta.agent("ann", &["general"], 2).await;
    let chat = resolved_visit(&alpha, &mut ann, &beta).await;
    let follow_up = |n: u32| json!({"type": "message", "chat_id": chat, "text": format!("follow-up {n}"), "client_id": format!("f{n}")});
    // Sent until taken: beta's one archive slot may still hold the first visit's closing
    // (refused before any seq is drawn).
    async fn acked(ann: &mut Ws, line: serde_json::Value, client_id: &str) -> serde_json::Value {
        loop {
            ann.send(line.clone()).await;
            let answer = ann.next_matching(|f| f["client_id"] == client_id).await;
            if answer["type"] == "ack" {
                return answer;
            }
            assert_eq!(answer["code"], "archive_unavailable", "{answer}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    assert_eq!(acked(&mut ann, follow_up(1), "f1").await["seq"], 3);

    signal(&mongo.0, libc::SIGSTOP);
    ann.send(follow_up(2)).await;
    let mut dora = beta.customer("Dora", "general").await;
    dora.next_of("chat_started").await;
    ann.next_of("chat_started").await;
    signal(&mongo.0, libc::SIGCONT);
    let refused = ann.next_matching(|f| f["client_id"] == "f2").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("archive_unavailable")),
        "{refused}"
    );

    dora.send(json!({"type": "leave"})).await;
    dora.next_of("chat_ended").await;
    // Sent again while the closing is still being written.
    let ack = acked(&mut ann, follow_up(3), "f3").await;
    assert_eq!(ack["seq"], 4, "the refused line left no gap: {ack}");
    archived_in_order_as_ann(&beta, &chat, 4).await;
    alpha.stop().await;
    beta.stop().await;
}

/// Carla's first visit runs on alpha with Ann on beta; a second page of hers, on gamma
/// (which holds neither side of the chat), asks to continue that conversation: refused
/// `already_live`, as the nodes of the chat refuse it, for its first chat holds the
/// conversation in the routing as a continued one does. (Before, gamma let her in: the
/// routing knew that chat by its number only, and two customers were live in it.) Once
/// the chat ended, it may be continued from gamma, the seq going on.
#[tokio::test]
async fn across_nodes_a_conversation_live_in_its_first_chat_is_continued_on_no_other_page() {
    let (_cluster, [alpha, beta, gamma], [mut ann]) =
        Desk::across("first-chat-live").on(1, "ann", &["general"], 2).await;
    let (mut carla, chat) = crate::continuing::carla_visiting(&alpha, &mut ann).await;
    own_until(&gamma, VISITOR, "open").await;

    for node in [&gamma, &beta] {
        let mut again = continuing(node, Some(VISITOR), &chat).await;
        let answer = again
            .next_matching(|f| f["type"] == "error" || f["type"] == "welcome")
            .await;
        assert_eq!(answer["code"], "already_live", "{answer}");
    }

    assert_eq!(carla.say("my parcel is late", "c1").await["seq"], 1);
    ann.next_of("message").await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    own_until(&gamma, VISITOR, "resolved").await;
    let (mut later, _) = continued_to(&gamma, &chat, &mut ann).await;
    assert_eq!(later.say("it did not arrive", "c2").await["seq"], 2);
    assert_eq!(ann.next_of("message").await["seq"], 2);
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}

/// `lines` as (seq, agent name) pairs with owned names, to compare with what a frame names.
fn owned(lines: &[(u64, Option<&str>)]) -> Vec<(u64, Option<String>)> {
    lines
        .iter()
        .map(|(seq, name)| (*seq, name.map(str::to_string)))
        .collect()
}

/// Carla, back on `carla_on` to continue `chat` (her [`first_visit`] with Ann, resolved),
/// is taken by `taker`, the agent `username` signed in on `taker_on` with `token`: she says
/// a line (seq 3), they answer (seq 4), and their page reloads. Their `chat_started` names
/// the earlier lines it carries as `started` says, the welcome's snapshot its lines as
/// `snapshot` says, and the archive, as they read it, names Ann's line 2 hers and their
/// line 4 theirs.
async fn continued_and_named(
    carla_on: &TestHub,
    mut taker: Ws,
    (taker_on, username, token): (&TestHub, &str, &str),
    chat: &str,
    started: &[(u64, Option<&str>)],
    snapshot: &[(u64, Option<&str>)],
) {
    let mut carla = continuing(carla_on, Some(VISITOR), chat).await;
    carla.next_of("welcome").await;
    carla.chat_continued(chat).await;
    let to_taker = taker.chat_continued(chat).await;
    let carried = match to_taker.get("messages") {
        Some(_) => crate::transfers::named_lines(&to_taker),
        None => vec![],
    };
    assert_eq!(carried, owned(started), "{to_taker}");
    assert_eq!(carla.say("it did not arrive", "c2").await["seq"], 3);
    taker
        .seen_or_next_matching(|f| f["type"] == "message" && f["seq"] == 3)
        .await;
    assert_eq!(taker.say_in(chat, "sending another", "t1").await["seq"], 4);
    assert_eq!(carla.next_of("message").await["seq"], 4);

    drop(taker);
    let (_taker, welcome) = Ws::with_bearer(taker_on, "/ws/agent", token, "agent_welcome").await;
    let reloaded = &welcome["chats"][0];
    assert_eq!(reloaded["chat_id"].as_str(), Some(chat), "{welcome}");
    assert_eq!(crate::transfers::named_lines(reloaded), owned(snapshot), "{welcome}");

    let archived = wait_archived(&taker_on.login(username, "agent-password").await, chat, 4).await;
    let named: Vec<(u64, Option<String>)> = archived["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["agent_name"].as_str().map(str::to_string)))
        .collect();
    let taker_name = username.to_uppercase();
    assert_eq!(
        named,
        owned(&[(1, None), (2, Some("ANN")), (3, None), (4, Some(&taker_name))]),
        "{archived}"
    );
}

/// Asserts that Ann reads conversation `id` archived on `hub` with its lines 1 to `n`, in
/// order.
async fn archived_in_order_as_ann(hub: &TestHub, id: &str, n: u64) {
    let archived = archived_as_ann(hub, id, n as usize).await;
    assert_eq!(u64s_in(&archived["messages"], "seq"), (1..=n).collect::<Vec<_>>());
}

/// Carla (the visitor) continues conversation `chat` on `node`, and `agent` gets it: her
/// socket, and the agent's `chat_started`.
async fn continued_to(node: &TestHub, chat: &str, agent: &mut Ws) -> (Ws, Value) {
    let mut carla = continuing(node, Some(VISITOR), chat).await;
    carla.next_of("welcome").await;
    carla.chat_continued(chat).await;
    (carla, agent.chat_continued(chat).await)
}

/// Two nodes (the cluster kept with them); Carla's first visit is on alpha with Ann, on
/// alpha too, resolved, and Ann is then unavailable (still signed in: her socket): the
/// conversation's id last.
async fn ann_served_and_away(tag: &str) -> (Option<Cluster>, TestHub, TestHub, Ws, String) {
    let (cluster, [alpha, beta], [mut ann]) = Desk::across(tag).agent("ann", &["general"], 2).await;
    let chat = resolved_visit(&alpha, &mut ann, &alpha).await;
    ann.send(json!({"type": "set_available", "available": false})).await;
    ann.next_of("profile").await;
    (cluster, alpha, beta, ann, chat)
}

/// Two nodes; Carla's first visit is on alpha with Ann, on alpha too, and Ann is
/// unavailable (still signed in) when Carla comes back on node `carla_on` (0: alpha, 1:
/// beta), so the conversation goes to the line and Bob, signed in on node `bob_on`, takes
/// it: named as [`continued_and_named`] checks, `started` and `snapshot` his view.
async fn ann_away_and_bob_takes_it(
    tag: &str,
    (carla_on, bob_on): (usize, usize),
    started: &[(u64, Option<&str>)],
    snapshot: &[(u64, Option<&str>)],
) {
    let (_cluster, alpha, beta, _ann, chat) = ann_served_and_away(tag).await;
    let nodes = [&alpha, &beta];
    let (bob, token) = nodes[bob_on].agent_with_token("bob", &["general"], 1).await;
    continued_and_named(
        nodes[carla_on],
        bob,
        (nodes[bob_on], "bob", &token),
        &chat,
        started,
        snapshot,
    )
    .await;
    alpha.stop().await;
    beta.stop().await;
}

/// Carla comes back on alpha, Ann's node, and Bob takes it on beta. His node has none of its
/// earlier lines (his page reads them from the archive, where Ann's line is hers); his
/// snapshot names his own line by nobody.
#[tokio::test]
async fn across_nodes_a_conversation_continued_while_its_agent_is_away_reaches_the_next_agent_with_her_lines_hers() {
    ann_away_and_bob_takes_it("continued-authors-1", (0, 1), &[], &[(3, None), (4, None)]).await;
}

/// As above with the nodes swapped for Carla and Bob: she comes back on beta, and Bob
/// takes it on alpha, Ann's node.
#[tokio::test]
async fn across_nodes_a_conversation_continued_on_another_node_reaches_an_agent_on_its_first_node_with_her_lines_hers()
{
    ann_away_and_bob_takes_it("continued-authors-2", (1, 0), &[], &[(3, None), (4, None)]).await;
}

/// Carla comes back on beta and Bob takes it on beta: his node reads the conversation
/// itself, so his `chat_started` and snapshot carry Ann's line, hers.
#[tokio::test]
async fn across_nodes_a_conversation_continued_where_the_next_agent_is_names_the_earlier_agents_lines() {
    let started = [(1, None), (2, Some("ANN"))];
    let snapshot = [(1, None), (2, Some("ANN")), (3, None), (4, None)];
    ann_away_and_bob_takes_it("continued-authors-3", (1, 1), &started, &snapshot).await;
}

/// The sticky return across nodes: Ann, on beta, served Carla's first visit on alpha; Carla
/// comes back on alpha and Ann gets it again. Her lines are her own in her snapshot (named
/// by nobody) and hers in the archive.
#[tokio::test]
async fn across_nodes_a_conversation_back_with_its_agent_names_her_lines_hers() {
    let cluster = Cluster::start("continued-authors-4").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    let (mut ann, token) = beta.agent_with_token("ann", &["general"], 2).await;
    let chat = resolved_visit(&alpha, &mut ann, &alpha).await;
    let (started, snapshot) = ([], [(3, None), (4, None)]);
    continued_and_named(&alpha, ann, (&beta, "ann", &token), &chat, &started, &snapshot).await;
    alpha.stop().await;
    beta.stop().await;
}

/// Carla's conversation had two agents in turn: Ann (her first visit, on alpha), then Bob,
/// on alpha, who took it while Ann was away (his line 3) and ended it. Both away, Carla
/// comes back on alpha and Cy takes it on beta, which read none of its earlier turns: his
/// hand-over note names Ann's turn and then Bob's, as on one node (it named Bob alone,
/// through every line, Ann's too).
#[tokio::test]
async fn across_nodes_a_conversation_two_agents_had_in_turn_reaches_the_next_agent_with_each_turn_named() {
    let (_cluster, alpha, beta, _ann, chat) = ann_served_and_away("continued-turns").await;
    let mut bob = alpha.agent("bob", &["general"], 1).await;
    let (mut carla, _) = continued_to(&alpha, &chat, &mut bob).await;
    assert_eq!(bob.say_in(&chat, "Bob here", "b1").await["seq"], 3);
    bob.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    bob.send(json!({"type": "set_available", "available": false})).await;
    bob.next_of("profile").await;
    own_until(&alpha, VISITOR, "resolved").await;

    let mut cy = beta.agent("cyd", &["general"], 1).await;
    let (_again, to_cy) = continued_to(&alpha, &chat, &mut cy).await;
    assert_eq!(to_cy["transfer"]["from_name"].as_str(), Some("BOB"), "{to_cy}");
    assert_eq!(
        to_cy["transfer"]["earlier_agents"],
        json!([{"name": "ANN", "through_seq": 2}, {"name": "BOB", "through_seq": 3}]),
        "{to_cy}"
    );
    alpha.stop().await;
    beta.stop().await;
}

/// Carla's conversation with Ann (on alpha), resolved, continued on node `carla_on` while
/// Ann is away and taken by Bob on node `bob_on`: as on one node, Bob's `chat_started` is
/// handed on from Ann (`transfer`: her name, her lines through 2), and the archive records
/// the hand-over once, from Ann to Bob after line 2.
async fn taken_by_another_agent_across_nodes(tag: &str, (carla_on, bob_on): (usize, usize)) {
    let (_cluster, alpha, beta, _ann, chat) = ann_served_and_away(tag).await;
    let nodes = [&alpha, &beta];
    let mut bob = nodes[bob_on].agent("bob", &["general"], 1).await;
    let (_carla, to_bob) = continued_to(nodes[carla_on], &chat, &mut bob).await;
    assert_eq!(to_bob["transfer"]["from_name"].as_str(), Some("ANN"), "{to_bob}");
    assert_eq!(
        to_bob["transfer"]["earlier_agents"],
        json!([{"name": "ANN", "through_seq": 2}]),
        "{to_bob}"
    );
    let admin = alpha.admin().await;
    let archived = polled(std::time::Duration::from_secs(10), async || {
        let (status, c) = admin.get(&format!("/api/conversations/{chat}")).await;
        (status == 200 && c["transfers"].as_array().is_some_and(|t| !t.is_empty())).then_some(c)
    })
    .await
    .unwrap_or_else(|| panic!("no hand-over archived for {chat}"));
    let hand_overs: Vec<(Option<&str>, Option<&str>, Option<u64>)> = archived["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from_agent_name"].as_str(),
                t["to_agent_name"].as_str(),
                t["after_seq"].as_u64(),
            )
        })
        .collect();
    assert_eq!(hand_overs, vec![(Some("ANN"), Some("BOB"), Some(2))], "{archived}");
    assert_eq!(archived["agent_name"].as_str(), Some("BOB"), "{archived}");
    alpha.stop().await;
    beta.stop().await;
}

/// Carla comes back on alpha (Ann's node); Bob takes it on beta, which has no record of
/// the conversation but what rode in her join.
#[tokio::test]
async fn across_nodes_a_conversation_continued_by_another_agent_reaches_them_as_handed_on() {
    taken_by_another_agent_across_nodes("continued-handed-on-1", (0, 1)).await;
}

/// As above with Carla on beta and Bob on alpha.
#[tokio::test]
async fn across_nodes_a_conversation_continued_elsewhere_reaches_an_agent_on_its_first_node_as_handed_on() {
    taken_by_another_agent_across_nodes("continued-handed-on-2", (1, 0)).await;
}

/// Carla continues her conversation on alpha, where Bob takes it; he hands it to the line
/// with a note and Dan, on beta (which kept no log of the chat: neither side was there),
/// takes it. Dan is told a hand-over from Bob with his note, as for any chat through the
/// line, not a continued conversation (whose lines his page would read from the archive).
#[tokio::test]
async fn across_nodes_a_continued_chat_handed_to_the_line_reaches_its_next_agent_as_handed_on() {
    let (_cluster, alpha, beta, _ann, chat) = ann_served_and_away("continued-line").await;
    let mut bob = alpha.agent("bob", &["general"], 1).await;
    let (mut carla, _) = continued_to(&alpha, &chat, &mut bob).await;
    assert_eq!(carla.say("it did not arrive", "c2").await["seq"], 3);
    bob.seen_or_next_matching(|f| f["type"] == "message" && f["seq"] == 3)
        .await;
    bob.send(json!({"type": "set_available", "available": false})).await;
    bob.next_of("profile").await;
    let mut dan = beta.agent("dan", &["general"], 1).await;
    bob.send(json!({"type": "transfer", "chat_id": chat, "to_category": "general", "note": "wants a refund"}))
        .await;
    let to_dan = dan.seen_or_next_matching(|f| f["type"] == "chat_started").await;
    assert_eq!(to_dan["chat_id"].as_str(), Some(chat.as_str()), "{to_dan}");
    assert_eq!(
        (
            to_dan["continued"].as_bool().unwrap_or(false),
            to_dan["transfer"]["from_name"].as_str(),
            to_dan["transfer"]["note"].as_str()
        ),
        (false, Some("BOB"), Some("wants a refund")),
        "{to_dan}"
    );
    // The seq goes on with him.
    assert_eq!(dan.say_in(&chat, "Dan here", "d1").await["seq"], 4);
    assert_eq!(carla.next_matching(|f| f["type"] == "message").await["seq"], 4);
    alpha.stop().await;
    beta.stop().await;
}
