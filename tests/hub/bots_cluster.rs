//! Bots on several nodes (one Redis, one store): a webhook bot set up through one node is
//! called by every node for its own customers, and its HTTP answers, wherever they come in,
//! reach the customer on the node holding the conversation; it hands over into the shared
//! line and the seq goes on across the nodes; its hook removed on one node, no node calls it.

use std::time::Duration;

use serde_json::json;

use crate::bot_webhooks::{Behaviour, bot_server, calls_signed};
use crate::bots::bot_token;
use crate::cluster_fixture::nodes;
use crate::common::*;
use crate::continuing::wait_archived;

/// A customer of General on `node` who meets bot Faq, once that node knows of it (an
/// admin's change on another node reaches it over the admin bus): their socket and chat id.
/// Those who went to the line before are dropped (nobody is online to take them).
async fn meets_bot(node: &TestHub, name: &str) -> (Ws, String) {
    for _ in 0..200 {
        let mut customer = node.customer(name, "general").await;
        let first = customer
            .next_matching(|f| f["type"] == "chat_started" || f["type"] == "queued")
            .await;
        if first["type"] == "chat_started" && first["peer_name"] == "Faq" {
            return (customer, first["chat_id"].as_str().unwrap().to_string());
        }
        drop(customer);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never met the bot");
}

#[tokio::test]
async fn a_webhook_bots_answers_at_another_node_reach_the_customer_and_hand_over() {
    let ([alpha, beta], _servers) = nodes("bots-cluster-webhook", ["alpha", "beta"], |s| {
        s.webhook_allow_private = true
    })
    .await;
    // Set up through beta only, and the bot answers beta: alpha learns of it over the bus.
    let admin = beta.admin().await;
    admin
        .put_answering(200, "/api/admin/category-bots/general", json!({"bot": "Faq"}))
        .await;
    let token = bot_token(&admin, "Faq").await;
    let (url, calls) = bot_server(beta.url(""), token, Behaviour::Answers).await;
    let secret = admin
        .put_answering(200, "/api/admin/bot-hooks/Faq", json!({"url": url}))
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();

    let (mut carla, chat) = meets_bot(&alpha, "Carla").await;
    let mut ann = beta.agent("ann", &["general"], 2).await;
    assert_eq!(carla.say("what are your opening hours?", "c1").await["seq"], 1);
    // The bot's answer came in at beta; Carla, on alpha, has it, in order.
    let answer = carla.next_of("message").await;
    assert_eq!(
        (answer["text"].as_str(), answer["via"].as_str(), answer["seq"].as_u64()),
        (Some("We are open 9 to 5."), Some("bot"), Some(2)),
        "{answer}"
    );

    // Its hand-over, at beta too: Ann, on beta, takes that conversation; its lines are the
    // archive's, as for any conversation continued from another node (her page reads them).
    assert_eq!(carla.say("I need a person", "c2").await["seq"], 3);
    let taken = ann.chat_continued(&chat).await;
    assert_eq!(taken["peer_name"], "Carla");
    carla.next_of("transferred").await;
    let api = beta.login("ann", "agent-password").await;
    let archived = wait_archived(&api, &chat, 3).await;
    let lines: Vec<(&str, &str)> = archived["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["text"].as_str().unwrap(), m["via"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(
        lines,
        [
            ("what are your opening hours?", "-"),
            ("We are open 9 to 5.", "bot"),
            ("I need a person", "-")
        ],
        "{archived}"
    );
    assert!(
        archived.to_string().contains("wants a person"),
        "the bot's note: {archived}"
    );
    // The seq goes on without a gap, across the nodes, both ways.
    assert_eq!(ann.say_in(&chat, "Ann here, how can I help?", "a1").await["seq"], 4);
    assert_eq!(carla.next_of("message").await["seq"], 4);
    assert_eq!(carla.say("my parcel", "c3").await["seq"], 5);
    assert_eq!(ann.next_of("message").await["seq"], 5);

    // What the bot was sent about it, by alpha, signed: the conversation, each line, its
    // end (customers dropped by `meets_bot` had conversations of their own).
    let mut kinds = vec![];
    for n in 1..=200 {
        let frames = calls_signed(&calls, n, &secret).await;
        kinds = frames
            .iter()
            .filter(|f| f["chat_id"] == chat.as_str())
            .map(|f| f["type"].as_str().unwrap().to_string())
            .collect();
        if kinds.len() == 4 {
            break;
        }
    }
    assert_eq!(kinds, ["conversation", "message", "message", "conversation_ended"]);

    // An answer for a conversation no node holds is refused as on one node.
    let bot = Api::bearer(&alpha, &bot_token(&admin, "Faq").await);
    let (status, refused) = bot
        .post(
            &format!("/api/bot/conversations/{chat}/messages"),
            json!({"text": "late"}),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (404, Some("not_your_chat")),
        "{refused}"
    );

    // The hook removed through beta: alpha's next customers go to the line.
    let (status, _) = admin.delete("/api/admin/bot-hooks/Faq").await;
    assert_eq!(status, 204);
    let mut dora = None;
    for _ in 0..200 {
        let mut customer = alpha.customer("Dora", "general").await;
        let started = customer.next_of("chat_started").await;
        if started["peer_name"] == "ANN" {
            dora = Some(customer);
            break;
        }
        drop(customer);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dora.is_some(),
        "alpha kept calling a bot whose hook was removed on beta"
    );
    alpha.stop().await;
    beta.stop().await;
}
