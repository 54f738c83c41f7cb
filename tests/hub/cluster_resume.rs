//! Cluster scenario 6, the customer's half: a customer's resume token works on every
//! node of the cluster. A chatting customer who drops from one node resumes on another
//! and gets the chat back (what they missed from the chat's log) in one seq order; a
//! waiting customer keeps their place in line (and its updates); past the grace period
//! the token is refused everywhere.

use std::time::Duration;

use serde_json::json;

use switchboard::store::SharedStore;

use crate::cluster_fixture::{Servers, chat_across_nodes, nodes, sent_and_seen};
use crate::cluster_hub::messages;
use crate::common::{TestHub, Ws, archived_when, seqs_and_texts, until_ok};

/// The (seq, text) of each message in a `resumed` frame's chat.
/// A chat across three nodes (see [`chat_across_nodes`]) in which the customer says "one"
/// (seq 1, relayed and acknowledged) and drops; their agent, told they are away, says `text`
/// (seq 2) meanwhile. Returns the chat's parts, the customer's resume token last.
async fn customer_away_across_three_nodes(
    tag: &str,
    text: &str,
) -> (Ws, String, [TestHub; 3], SharedStore, Servers, String) {
    let (mut agent, _, mut customer, chat, nodes, store, servers) =
        chat_across_nodes(tag, ["alpha", "beta", "gamma"]).await.parts();
    customer.send(json!({"type": "message", "text": "one"})).await;
    assert_eq!(agent.next_of("message").await["seq"], 1);
    assert_eq!(customer.next_of("ack").await["seq"], 1);
    let token = customer.token.clone().unwrap();
    drop(customer);
    assert_eq!(agent.next_of("peer_away").await["chat_id"], chat.as_str());
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": text}))
        .await;
    assert_eq!(agent.next_of("ack").await["seq"], 2);
    (agent, chat, nodes, store, servers, token)
}

/// The customer on alpha chats with an agent on beta, drops, and resumes on gamma within
/// the grace period: gamma's `resumed` carries the chat with the messages after their
/// `last_seq` (one sent while they were away included), the agent is told they are back,
/// and the chat goes on both ways in one gapless seq order; back on the first node it
/// goes on again, and the archive holds every message once.
#[tokio::test]
async fn a_chatting_customer_resumes_on_another_node_and_keeps_their_chat() {
    let (mut agent, chat, [alpha, beta, gamma], store, _servers, resume_token) =
        customer_away_across_three_nodes("cluster-resume-chat", "two").await;

    let mut back = Ws::connect(&gamma.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": resume_token, "last_seq": 1}))
        .await;
    let resumed = back.next_of("resumed").await;
    assert_eq!(resumed["customer_name"], "Carla", "{resumed}");
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");
    let missed = seqs_and_texts(&resumed["chat"]["messages"]);
    assert_eq!(missed, [(2, "two")], "what they missed, from the chat's log: {resumed}");
    assert_eq!(agent.next_of("peer_back").await["chat_id"], chat.as_str());

    back.send(json!({"type": "message", "text": "three"})).await;
    assert_eq!(back.next_of("ack").await["seq"], 3);
    let got = agent.next_of("message").await;
    assert_eq!((got["seq"].as_u64(), got["text"].as_str()), (Some(3), Some("three")));
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "four"}))
        .await;
    let got = messages(&mut back, 1).await;
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["text"].as_str()),
        (Some(4), Some("four"))
    );

    // Once more, back on the node they started on: the token still works there.
    drop(back);
    assert_eq!(agent.next_of("peer_away").await["chat_id"], chat.as_str());
    let mut again = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
    again
        .send(json!({"type": "resume", "token": resume_token, "last_seq": 4}))
        .await;
    let resumed = again.next_of("resumed").await;
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");
    assert_eq!(resumed["chat"]["messages"].as_array().unwrap().len(), 0, "{resumed}");
    agent.next_of("peer_back").await;
    again.send(json!({"type": "message", "text": "five"})).await;
    assert_eq!(again.next_of("ack").await["seq"], 5);
    assert_eq!(agent.next_of("message").await["seq"], 5);
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    assert_eq!(again.next_of("chat_ended").await["chat_id"], chat.as_str());

    // Archived once, every message once, whichever nodes held the customer meanwhile.
    let record = archived_when(&store, &chat, Duration::from_secs(20), |r| {
        r.closed.is_some() && r.messages.len() >= 5
    })
    .await
    .expect("the chat is archived, closed, with its 5 messages");
    let archived: Vec<u64> = record.messages.iter().map(|m| m.seq).collect();
    assert_eq!(archived, [1, 2, 3, 4, 5]);
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}

/// Two customers wait on alpha, one on beta; the second drops and resumes on gamma: still
/// second in line, told when they move up, and paired before the one behind them.
#[tokio::test]
async fn a_waiting_customer_resumes_on_another_node_and_keeps_their_place() {
    let ([alpha, beta, gamma], _servers) = nodes("cluster-resume-wait", ["alpha", "beta", "gamma"], |s| {
        s.resume_grace = Duration::from_secs(10)
    })
    .await;
    // The category exists once an agent's account names it.
    let token = beta.agent_account("ann", &["general"], 1).await;
    let mut first = alpha.customer_queued("First", "general", 1).await;
    let second = alpha.customer_queued("Second", "general", 2).await;
    let mut third = beta.customer_queued("Third", "general", 3).await;
    let resume_token = second.token.clone().unwrap();
    drop(second);

    let mut back = Ws::connect(&gamma.ws_url("/ws/customer"), &[]).await.unwrap();
    back.send(json!({"type": "resume", "token": resume_token})).await;
    let resumed = back.next_of("resumed").await;
    assert_eq!(resumed["customer_name"], "Second", "{resumed}");
    assert_eq!(resumed["place"], 2, "{resumed}");
    assert!(resumed["chat"].is_null(), "{resumed}");

    first.send(json!({"type": "leave"})).await;
    assert_eq!(back.next_of("place").await["place"], 1, "place updates follow them");
    assert_eq!(third.next_of("place").await["place"], 2);

    let mut agent = Ws::agent(&beta, &token).await;
    agent.send(json!({"type": "set_available", "available": true})).await;
    let started = back.next_of("chat_started").await;
    let agent_started = agent.next_of("chat_started").await;
    assert_eq!(started["chat_id"], agent_started["chat_id"]);
    assert_eq!(
        agent_started["peer_name"], "Second",
        "the resumed customer is served first"
    );
    back.send(json!({"type": "message", "text": "hello"})).await;
    assert_eq!(agent.next_of("message").await["seq"], 1);
    for node in [alpha, beta, gamma] {
        node.stop().await;
    }
}

/// Past the grace period the customer is gone and their token is refused on every node,
/// the one that issued it included.
#[tokio::test]
async fn past_the_grace_period_a_token_is_refused_on_every_node() {
    let ([alpha, beta], _servers) = nodes("cluster-resume-expired", ["alpha", "beta"], |s| {
        s.resume_grace = Duration::from_millis(500)
    })
    .await;
    beta.agent_account("ann", &["general"], 1).await;
    let mut gone = alpha.customer("Gone", "general").await;
    gone.next_of("queued").await;
    let mut waiting = beta.customer_queued("Waiting", "general", 2).await;
    let resume_token = gone.token.clone().unwrap();
    drop(gone);
    // The grace period ran out: the one behind moves up.
    assert_eq!(waiting.next_of("place").await["place"], 1);
    for node in [&beta, &alpha] {
        let mut late = Ws::connect(&node.ws_url("/ws/customer"), &[]).await.unwrap();
        late.send(json!({"type": "resume", "token": resume_token})).await;
        let refused = late.next_of("error").await;
        assert_eq!(refused["code"], "resume_expired", "{refused}");
    }
    alpha.stop().await;
    beta.stop().await;
}

/// A customer away when their agent ends the chat resumes on ANOTHER node within the
/// grace period and gets what one node gives (`chat::a_customer_away_when_the_chat_ends_
/// gets_it_and_the_ending_on_resume`): the whole chat after their `last_seq` and how it
/// ended, not `resume_expired`. Once: the visit is over after that.
#[tokio::test]
async fn a_customer_whose_chat_ended_while_away_gets_it_on_another_node() {
    let (mut agent, chat, [_alpha, _beta, gamma], _, _servers, token) =
        customer_away_across_three_nodes("cluster-resume-ended", "bye now").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    agent.next_of("chat_ended").await;

    let resume_on_gamma = || async {
        let mut back = Ws::connect(&gamma.ws_url("/ws/customer"), &[]).await.unwrap();
        back.send(json!({"type": "resume", "token": token, "last_seq": 1}))
            .await;
        let first = back
            .next_matching(|f| f["type"] == "resumed" || f["type"] == "error")
            .await;
        (back, first)
    };
    // The customer's node records the ended visit when it replays the ending, a moment
    // after the agent is told: a try before that is refused, and the client tries again.
    let (mut back, resumed) = until_ok(
        Duration::from_secs(10),
        "no ended chat on resume elsewhere",
        async || {
            let (back, first) = resume_on_gamma().await;
            if first["type"] == "resumed" && first["chat"]["messages"].is_array() {
                Ok((back, first))
            } else {
                Err(first)
            }
        },
    )
    .await;
    let missed = seqs_and_texts(&resumed["chat"]["messages"]);
    assert_eq!(missed, [(2, "bye now")], "what they missed after seq 1: {resumed}");
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str());
    assert_eq!(resumed["place"], serde_json::Value::Null);
    let ended = back.next_of("chat_ended").await;
    assert_eq!(
        (ended["chat_id"].as_str(), ended["ended_by"].as_str()),
        (Some(chat.as_str()), Some("agent"))
    );
    // The visit is over: a second resume with the token is refused.
    let (_, again) = resume_on_gamma().await;
    assert_eq!(again["code"], "resume_expired", "{again}");
}

/// Found by review: a chatting customer's token used on another node while their page
/// is still connected (a second tab) must not take that node down. The second page's
/// resume is refused (the customer is held elsewhere and not away) and it is closed to
/// try again later (1013); a message it sends meanwhile is refused for that sender only.
/// The node's other people chat on (the agent there), and so does the first page.
#[tokio::test]
async fn a_second_page_on_another_node_is_refused_and_that_node_stays_up() {
    let (mut agent, _, mut carla, chat, [_alpha, beta], _, _servers) =
        chat_across_nodes("cluster-resume-second-page", ["alpha", "beta"])
            .await
            .parts();
    sent_and_seen(&mut carla, &mut agent, json!({"type": "message", "text": "one"}), 1).await;

    let token = carla.token.clone().unwrap();
    let mut second = Ws::connect(&beta.ws_url("/ws/customer"), &[]).await.unwrap();
    second
        .send(json!({"type": "resume", "token": token, "last_seq": 1}))
        .await;
    second
        .send(json!({"type": "message", "text": "from the second page", "client_id": "x"}))
        .await;
    let mut frames = vec![];
    while let Some(frame) = second.recv_within(Duration::from_secs(5)).await {
        assert_ne!(frame["type"], "ack", "the second page was acknowledged: {frames:?}");
        frames.push(frame);
    }
    assert!(
        frames.iter().any(|f| f["type"] == "error"),
        "the second page was told no: {frames:?}"
    );

    // Beta is still up: its agent and the first page chat on, one seq order.
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "two"}))
        .await;
    assert_eq!(agent.next_of("ack").await["seq"], 2);
    let got = messages(&mut carla, 1).await;
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["text"].as_str()),
        (Some(2), Some("two"))
    );
    carla.send(json!({"type": "message", "text": "three"})).await;
    assert_eq!(carla.next_of("ack").await["seq"], 3);
    let got = agent.next_of("message").await;
    assert_eq!((got["seq"].as_u64(), got["text"].as_str()), (Some(3), Some("three")));
}

/// Found by scenario 4 (seed 4, under load): a customer's resume on a node that still held
/// them away, applied after they had resumed on another node and left it again. Alpha (a
/// process whose follower holds beta's `customer_resumed` 8 s) holds Carla away; she
/// resumes on beta and closes that page, and before alpha has applied any of it she
/// resumes on alpha, where her record is. Redis takes that resume (she is away); alpha
/// then replays beta's resume (it lets go of her: no record), beta's disconnect, and its
/// own resume, with nothing to show her. Her page there was left unanswered, and Redis held
/// her connected on alpha with no page: every later resume was "still held elsewhere".
/// Now that page is told to resume again (1013), and she is away on alpha: she resumes.
#[tokio::test]
async fn a_resume_applied_after_its_node_let_go_of_the_customer_is_answered_and_leaves_them_away() {
    use crate::cluster_fixture::{Process, customer_on, process_and_nodes, resumed_on};
    let hook = [("SWITCHBOARD_TEST_FOLLOWER_LAG", "alpha:8000:customer_resumed:beta")];
    let (_alpha, bind, [beta], _servers) = process_and_nodes(
        "cluster-resume-let-go-meanwhile",
        Process::named("alpha").env(&hook),
        ["beta"],
        crate::cluster_redis_restart::lease_of(1_000),
    )
    .await;
    let alpha = crate::common::Endpoint::at(&bind);
    let mut ann = beta.agent("ann", &["general"], 1).await;
    let mut carla = customer_on(&bind, "Carla", "general").await;
    let chat = carla.chat_id_in("chat_started").await;
    assert_eq!(ann.chat_id_in("chat_started").await, chat);
    let token = carla.token.clone().unwrap();
    drop(carla);
    assert_eq!(ann.next_of("peer_away").await["chat_id"], chat.as_str());

    let (on_beta, _) = resumed_on(&beta, &token, 0, Duration::from_secs(10), "carla on beta").await;
    assert_eq!(ann.next_of("peer_back").await["chat_id"], chat.as_str());
    drop(on_beta);
    assert_eq!(ann.next_of("peer_away").await["chat_id"], chat.as_str());
    // Alpha has not applied any of it yet: she is its own away customer there.
    let mut on_alpha = Ws::connect(&alpha.ws_url("/ws/customer"), &[]).await.unwrap();
    on_alpha
        .send(json!({"type": "resume", "token": token, "last_seq": 0}))
        .await;
    // Answered once alpha applies the lot (its follower holds it 8 s).
    let answer = on_alpha
        .next_matching_within(Duration::from_secs(30), |f| {
            f["type"] == "error" || f["type"] == "resumed"
        })
        .await;
    assert_eq!(answer["code"], "cluster_unavailable", "{answer}");
    let closed = tokio::time::timeout(Duration::from_secs(10), on_alpha.closed())
        .await
        .expect("the page alpha took the resume for is answered, not left waiting");
    assert_eq!(closed.map(u16::from), Some(1013));

    let (mut back, resumed) = resumed_on(&beta, &token, 0, Duration::from_secs(15), "carla again").await;
    assert_eq!(resumed["chat"]["chat_id"], chat.as_str(), "{resumed}");
    back.send(json!({"type": "message", "text": "still here"})).await;
    assert_eq!(back.next_of("ack").await["chat_id"], chat.as_str());
    assert_eq!(ann.next_of("message").await["text"], "still here");
}
