//! The direct path: a running chat's messages relayed by the sending connection's own
//! task (`hub::live_chat`), raced against what makes the hub take the chat back.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// Messages each side sends in the races below: enough to overlap what the hub does.
const BURST: u64 = 300;

/// A hub whose connections may send and receive a burst without being rate limited
/// or closed as slow readers (the test reads only once it has sent everything).
async fn hub() -> TestHub {
    TestHub::with(|s| {
        s.rate_limit_per_sec = 100_000;
        s.rate_limit_burst = 100_000;
        s.outbound_buffer = 65_536;
    })
    .await
}

/// The customer sends `BURST` messages at once, texts `{prefix}0`, `{prefix}1`..., then
/// reads the chat until every one is acknowledged and `peer` messages came from the agent.
async fn customer_burst(mut customer: Ws, prefix: &'static str, peer: u64) -> BTreeMap<u64, (String, String)> {
    for i in 0..BURST {
        // The client id is the text: the ack names it, so both sides can be compared.
        let text = format!("{prefix}{i}");
        customer
            .send(json!({"type": "message", "text": text, "client_id": text}))
            .await;
    }
    read_chat(&mut customer, BURST, peer, "customer").await
}

/// Reads `ws` until it has the acknowledgements of `own` messages and `peer` messages
/// of the chat; returns seq → (author, text) for both, failing on a seq seen twice.
async fn read_chat(ws: &mut Ws, own: u64, peer: u64, me: &str) -> BTreeMap<u64, (String, String)> {
    let mut seen = BTreeMap::new();
    let (mut acks, mut messages) = (0, 0);
    while acks < own || messages < peer {
        let frame = ws
            .next_matching_within(Duration::from_secs(20), |f| {
                f["type"] == "ack" || f["type"] == "message"
            })
            .await;
        let seq = frame["seq"].as_u64().expect("a seq");
        let entry = if frame["type"] == "ack" {
            acks += 1;
            (
                me.to_string(),
                frame["client_id"].as_str().expect("own client id").to_string(),
            )
        } else {
            messages += 1;
            (
                frame["from"].as_str().unwrap().to_string(),
                frame["text"].as_str().unwrap().to_string(),
            )
        };
        assert!(seen.insert(seq, entry).is_none(), "seq {seq} twice: {frame}");
    }
    seen
}

/// Both sides send at once on a hub with several worker threads: each sees every seq
/// from 1 once, with the same author and text as the other side sees, and each side's
/// own messages keep the order they were sent in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_sides_sending_at_once_see_one_order_with_no_gap() {
    let hub = hub().await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (customer, chat) = hub.paired_customer(&mut agent, "Carla", "general").await;

    let customer_side = tokio::spawn(customer_burst(customer, "c", BURST));
    let chat_id = chat.clone();
    let agent_side = tokio::spawn(async move {
        for i in 0..BURST {
            agent
                .send(json!({"type": "message", "chat_id": chat_id, "text": format!("a{i}"), "client_id": format!("a{i}")}))
                .await;
        }
        read_chat(&mut agent, BURST, BURST, "agent").await
    });
    let by_customer = customer_side.await.unwrap();
    let by_agent = agent_side.await.unwrap();
    assert_eq!(by_customer, by_agent, "both sides see one order");
    assert_eq!(
        by_customer.keys().copied().collect::<Vec<_>>(),
        (1..=2 * BURST).collect::<Vec<_>>()
    );
    for (who, prefix) in [("customer", 'c'), ("agent", 'a')] {
        let own: Vec<String> = by_customer
            .values()
            .filter(|(author, _)| author == who)
            .map(|(_, text)| text.clone())
            .collect();
        let sent: Vec<String> = (0..BURST).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(own, sent, "{who}'s messages in the order sent");
    }
    hub.stop().await;
}

/// A customer's burst while the agent opens a second tab, which takes over: the new
/// tab's welcome holds the chat up to some seq and the rest reach it live, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tab_taking_over_mid_burst_gets_every_message_once_in_order() {
    let hub = hub().await;
    let (mut first_tab, token) = hub.agent_with_token("ann", &["general"], 1).await;
    let (customer, chat) = hub.paired_customer(&mut first_tab, "Carla", "general").await;

    let customer_side = tokio::spawn(customer_burst(customer, "m", 0));
    // Some messages reach the first tab, then the second one opens mid-burst.
    first_tab
        .next_matching_within(Duration::from_secs(20), |f| f["type"] == "message" && f["seq"] == 20)
        .await;
    let (mut second_tab, welcome) = Ws::with_bearer(&hub, "/ws/agent", &token, "agent_welcome").await;
    assert_eq!(welcome["chats"][0]["chat_id"], chat);
    let mut seqs: Vec<u64> = u64s_in(&welcome["chats"][0]["messages"], "seq");
    while seqs.last() != Some(&BURST) {
        let m = second_tab
            .next_matching_within(Duration::from_secs(20), |f| f["type"] == "message")
            .await;
        assert_eq!(m["chat_id"], chat);
        seqs.push(m["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, (1..=BURST).collect::<Vec<_>>(), "each message once, in order");
    let acked = customer_side.await.unwrap();
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (1..=BURST).collect::<Vec<_>>()
    );
    // The tab taken over relays nothing more: the chat is the second tab's.
    assert_eq!(first_tab.closed().await.map(u16::from), Some(4000));
    hub.stop().await;
}

/// A message the direct path cannot take (too long, or for a chat that is not the
/// sender's) is answered by the hub as ever, in its place among the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_is_answered_in_its_place() {
    let hub = TestHub::with(|s| s.max_message_len = 5).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (mut customer, chat) = hub.paired_customer(&mut agent, "Carla", "general").await;
    for text in ["one", "far too long", "two"] {
        customer
            .send(json!({"type": "message", "text": text, "client_id": text}))
            .await;
    }
    let answers: Vec<Value> = customer.each_of(&["ack", "error", "ack"]).await;
    assert_eq!(answers[0]["client_id"], "one");
    assert_eq!(answers[1]["code"], "message_too_long");
    assert_eq!(answers[1]["client_id"], "far too long");
    assert_eq!(
        (answers[2]["client_id"].clone(), answers[2]["seq"].clone()),
        (json!("two"), json!(2))
    );
    // An agent naming no chat, or another one, is refused, not relayed.
    messages_naming_no_chat_are_refused(&mut agent).await;
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "ok"}))
        .await;
    assert_eq!(customer.next_of("message").await["seq"], 3);
    hub.stop().await;
}
