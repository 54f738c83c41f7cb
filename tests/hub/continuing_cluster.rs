//! Continuing a conversation across nodes (one Redis, one store): a customer comes back
//! on another node than the one they left from, their agent on a third; what the agent
//! wrote meanwhile, on their node, comes first and the seq goes on without a gap; one
//! customer continues a conversation at a time, whatever the node.

use serde_json::json;

use crate::common::*;
use crate::continuing::{
    VISITOR, back_with_her_lines, continuing, first_visit, her_third_line, own_until, wait_archived,
};

#[tokio::test]
async fn across_nodes_a_customer_continues_on_another_node_with_their_agent_on_a_third() {
    let cluster = Cluster::start("continuing-cluster").await;
    let alpha = cluster.node("alpha", |_| {}).await;
    let beta = cluster.node("beta", |_| {}).await;
    let gamma = cluster.node("gamma", |_| {}).await;
    let mut ann = gamma.agent("ann", &["general"], 2).await;
    // Carla's first visit is on alpha; she comes back on beta.
    let chat = first_visit(&alpha, &mut ann).await;
    own_until(&beta, VISITOR, "resolved").await;

    let mut carla = continuing(&beta, Some(VISITOR), &chat).await;
    // Ann, on gamma, gets it back as that conversation; its lines are the archive's.
    back_with_her_lines(&mut carla, &mut ann, &chat).await;

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
    let api = gamma.login("ann", "agent-password").await;
    let archived = wait_archived(&api, &chat, 4).await;
    assert_eq!(u64s_in(&archived["messages"], "seq"), vec![1, 2, 3, 4]);
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

#[tokio::test]
async fn across_nodes_what_the_agent_writes_while_the_customer_is_away_comes_first_when_they_continue() {
    let cluster = Cluster::start("follow-up-cluster").await;
    let alpha = cluster.node("alpha", |_| {}).await;
    let beta = cluster.node("beta", |_| {}).await;
    let mut ann = beta.agent("ann", &["general"], 2).await;
    let chat = first_visit(&alpha, &mut ann).await;
    own_until(&beta, VISITOR, "resolved").await;

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
    let api = beta.login("ann", "agent-password").await;
    let archived = wait_archived(&api, &chat, 7).await;
    assert_eq!(u64s_in(&archived["messages"], "seq"), (1..=7).collect::<Vec<_>>());
    alpha.stop().await;
    beta.stop().await;
}
