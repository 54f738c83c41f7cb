//! Bots on several nodes (one Redis, one store): a webhook bot set up through one node is
//! called by every node for its own customers, and its HTTP answers, wherever they come in,
//! reach the customer on the node holding the conversation; it hands over into the shared
//! line and the seq goes on across the nodes; its hook removed on one node, no node calls it.

use std::time::Duration;

use serde_json::{Value, json};

use switchboard::store::{ConversationStatus, EndReason, Side};

use crate::bot_webhooks::{Behaviour, calls_signed, webhook_bot};
use crate::bots::{bot_socket, bot_token, faq_for_general};
use crate::cluster_base::eventually;
use crate::cluster_fixture::{
    Process, ProcessAndNodes, Servers, customer_on, killed_and_back_empty, nodes, process_and_nodes, redis_conn,
    redis_shows, resume_answered, until_reaped, until_registered, woken_fenced,
};
use crate::cluster_redis_restart::healthy;
use crate::common::*;
use crate::continuing::wait_archived;

/// A customer of General on `node` who meets bot Faq (as [`meets_bot_at`]): their socket
/// and chat id.
async fn meets_bot(node: &TestHub, name: &str) -> (Ws, String) {
    let bind = node.url("");
    let bind = bind.trim_start_matches("http://").trim_end_matches('/');
    let (customer, chat, _) = meets_bot_at(bind, name).await;
    (customer, chat)
}

#[tokio::test]
async fn a_webhook_bots_answers_at_another_node_reach_the_customer_and_hand_over() {
    let ([alpha, beta], _servers) = nodes("bots-cluster-webhook", ["alpha", "beta"], |s| {
        s.webhooks.allow_private = Some(true)
    })
    .await;
    // Set up through beta only, and the bot answers beta: alpha learns of it over the bus.
    let admin = beta.admin().await;
    let (calls, secret) = webhook_bot(&admin, beta.url(""), Behaviour::Answers).await;

    let (mut carla, chat) = meets_bot(&alpha, "Carla").await;
    let mut ann = beta.agent("ann", &["general"], 2).await;
    assert_eq!(carla.say("what are your opening hours?", "c1").await["seq"], 1);
    // The bot's answer came in at beta; Carla, on alpha, has it, in order.
    // The bot may answer before her own ack comes (that waits for durability).
    let answer = carla.seen_or_next_matching(|f| f["type"] == "message").await;
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
    archived_with_note(&api, &chat, "wants a person").await;
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
    refusal(
        bot.post(
            &format!("/api/bot/conversations/{chat}/messages"),
            json!({"text": "late"}),
        )
        .await,
        404,
        "not_your_chat",
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

/// Waits for `chat` to be archived with the three lines both bots' tests exchange (the
/// bot's marked), the bot's hand-over `note`, and its two hand-ons: the bot's to the line
/// (archived by the customer's node) and the bot's to Ann (by the node that paired her),
/// which the reports measure Ann from.
async fn archived_with_note(api: &Api, chat: &str, note: &str) {
    wait_archived(api, chat, 3).await;
    let mut archived = Value::Null;
    for _ in 0..100 {
        archived = api.get(&format!("/api/conversations/{chat}")).await.1;
        if archived["transfers"].as_array().is_some_and(|t| t.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hand_ons: Vec<(&str, Option<&str>)> = archived["transfers"]
        .as_array()
        .unwrap_or_else(|| panic!("no transfers: {archived}"))
        .iter()
        .map(|t| (t["from_agent_id"].as_str().unwrap(), t["to_agent_name"].as_str()))
        .collect();
    assert_eq!(hand_ons, [("bot:Faq", None), ("bot:Faq", Some("ANN"))], "{archived}");
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
    assert!(archived.to_string().contains(note), "the bot's note: {archived}");
}

/// A customer of General on the node at `bind` who meets bot Faq, once that node knows of
/// it (an admin's change on another node reaches it over the admin bus): their socket, chat
/// id and resume token. Those who went to the line before are dropped (nobody is online to
/// take them).
async fn meets_bot_at(bind: &str, name: &str) -> (Ws, String, String) {
    for _ in 0..200 {
        let mut customer = customer_on(bind, name, "general").await;
        let first = customer
            .next_matching(|f| f["type"] == "chat_started" || f["type"] == "queued")
            .await;
        if first["type"] == "chat_started" && first["peer_name"] == "Faq" {
            let token = customer.token.clone().unwrap();
            return (customer, first["chat_id"].as_str().unwrap().to_string(), token);
        }
        drop(customer);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never met the bot");
}

/// A customer back on `node` with the `token` of a bot conversation whose node was lost:
/// refused `cluster_unavailable` until the cluster took that node over, then handed over
/// there (`transferred` for `chat`); their socket.
async fn handed_over_on(node: &TestHub, token: &str, last_seq: u64, chat: &str) -> Ws {
    let within = Duration::from_secs(30);
    let (ws, transferred) =
        resume_answered(node, token, last_seq, within, "the customer taken back", "transferred").await;
    assert_eq!(transferred["chat_id"], chat);
    ws
}

/// A real hub process `name` (`tag` its scratch) and one live node, both letting a webhook
/// bot on loopback be called. A ticket resumes within 20 s of the take-over (shorter, the
/// live node ends the conversation before its customer is back).
async fn bot_process_and_live_node(tag: &str, name: &str) -> ProcessAndNodes<1> {
    process_and_nodes(
        tag,
        Process::named(name).env(&[("WEBHOOK_ALLOW_PRIVATE", "true")]),
        ["live"],
        |s| {
            s.webhooks.allow_private = Some(true);
            s.resume_grace = Duration::from_secs(20);
        },
    )
    .await
}

/// Carla, come in at `bind`, asked the bot a question (seq 1) and has its answer (seq 2,
/// marked as the bot's; it may come before her own ack, which waits for durability): her
/// connection, the chat and her resume token.
async fn asked_the_bot_and_answered(bind: &str) -> (Ws, String, String) {
    let (mut carla, chat, resume_token) = meets_bot_at(bind, "Carla").await;
    assert_eq!(carla.say("what are your opening hours?", "c1").await["seq"], 1);
    let answer = carla.seen_or_next_matching(|f| f["type"] == "message").await;
    assert_eq!((answer["seq"].as_u64(), answer["via"].as_str()), (Some(2), Some("bot")));
    (carla, chat, resume_token)
}

/// The bot's node `doomed` killed (kill -9), Carla's connection to it gone; Ann comes
/// online on `live`. Back on `live` with her `token` (refused until the dead node is taken
/// over), Carla is handed over there and Ann takes `chat`: Carla's and Ann's sockets, and
/// each one's `chat_continued`.
async fn killed_and_handed_over(
    doomed: &mut Running,
    carla: Ws,
    live: &TestHub,
    conn: &mut redis::aio::ConnectionManager,
    token: &str,
    chat: &str,
) -> (Ws, Ws, serde_json::Value, serde_json::Value) {
    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    drop(carla);
    let mut ann = live.agent("ann", &["general"], 1).await;
    until_reaped(conn, "doomed").await;
    let mut carla = handed_over_on(live, token, 2, chat).await;
    let started = carla.chat_continued(chat).await;
    let taken = ann.chat_continued(chat).await;
    (carla, ann, started, taken)
}

/// Carla talks to the bot on a real hub process that is killed (kill -9). Back on the live
/// node with her token, she is not stuck: once the cluster took the dead node over, her
/// conversation goes to the category's line there, and Ann takes it with every line that
/// was acknowledged (the bot's marked), the seq going on.
#[tokio::test]
async fn a_customer_whose_node_died_while_talking_to_a_bot_is_handed_over_where_she_comes_back() {
    let (mut doomed, bind, [live], servers) = bot_process_and_live_node("bots-cluster-kill", "doomed").await;
    let mut conn = redis_conn(&servers.redis).await;
    let admin = live.admin().await;
    webhook_bot(&admin, live.url(""), Behaviour::Answers).await;

    let (carla, chat, resume_token) = asked_the_bot_and_answered(&bind).await;
    // Carla sees the bot's line before it is durable (as any peer's); it is acknowledged to
    // the bot once it is, and only then promised to outlive a crash.
    wait_archived(&admin, &chat, 2).await;

    let (mut carla, mut ann, started, taken) =
        killed_and_handed_over(&mut doomed, carla, &live, &mut conn, &resume_token, &chat).await;
    assert_eq!(started["peer_name"], "ANN");
    let lines: Vec<(u64, &str, &str)> = taken["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap(),
                m["via"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (1, "what are your opening hours?", "-"),
            (2, "We are open 9 to 5.", "bot")
        ],
        "{taken}"
    );
    assert_eq!(
        taken["transfer"]["note"],
        "Faq was cut off: the node it ran on stopped."
    );
    assert_eq!(carla.say("thanks, one more thing", "c2").await["seq"], 3);
    assert_eq!(ann.next_of("message").await["seq"], 3);

    // Her token resumes nothing more: the conversation is taken once.
    let mut again = Ws::connect(&live.ws_url("/ws/customer"), &[]).await.unwrap();
    again
        .send(json!({"type": "resume", "token": resume_token, "last_seq": 3}))
        .await;
    assert_eq!(again.next_of("error").await["code"], "resume_expired");
    live.stop().await;
}

/// As above, but Redis restarted empty while Carla talked to the bot: her ticket went with
/// its data, and the node records it again (under its new incarnation) as it re-asserts
/// what it holds, so after it is killed she is still handed over where she comes back.
#[tokio::test]
async fn a_bot_customers_ticket_lost_with_redis_data_is_recorded_again_and_still_hands_her_over() {
    let (mut doomed, bind, [live], mut servers) = bot_process_and_live_node("bots-cluster-ticket-lost", "doomed").await;
    let admin = live.admin().await;
    webhook_bot(&admin, live.url(""), Behaviour::Answers).await;
    let (carla, chat, resume_token) = asked_the_bot_and_answered(&bind).await;
    wait_archived(&admin, &chat, 2).await;

    let _redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&live, "live").await;
    let mut conn = redis_conn(&servers.redis).await;
    let before = until_registered(&mut conn, "doomed").await;
    // The ticket back under the node's incarnation of after the loss.
    let listed = "{sb}:bot-tickets:doomed".to_string();
    eventually("doomed records its bot customer's ticket again", || {
        let mut conn = conn.clone();
        let (listed, chat) = (listed.clone(), chat.clone());
        async move {
            let keys: Vec<String> = redis::cmd("SMEMBERS").arg(&listed).query_async(&mut conn).await.ok()?;
            let key = keys.first()?;
            let raw: String = redis::cmd("GET").arg(key).query_async(&mut conn).await.ok()?;
            let ticket: serde_json::Value = serde_json::from_str(&raw).ok()?;
            (ticket["incarnation"] == before && ticket["chat"] == chat.as_str()).then_some(())
        }
    })
    .await;

    let (mut carla, _ann, _, taken) =
        killed_and_handed_over(&mut doomed, carla, &live, &mut conn, &resume_token, &chat).await;
    assert_eq!(taken["messages"].as_array().unwrap().len(), 2, "{taken}");
    assert_eq!(carla.say("thanks", "c2").await["seq"], 3);
    live.stop().await;
}

/// Waits until the dead node's bot conversation `chat` is closed in `store` as one whose
/// customer went (a disconnect by the customer) and resolved.
async fn closed_as_customer_gone(store: &switchboard::store::SharedStore, chat: &str) {
    let closed = polled(Duration::from_secs(30), async || {
        store.conversation(chat).await.unwrap().closed
    })
    .await
    .expect("the dead node's bot conversation was never closed");
    assert_eq!(
        (closed.reason, closed.ended_by),
        (EndReason::Disconnect, Side::Customer),
        "closed as a customer gone"
    );
    let resolved = polled(Duration::from_secs(30), async || {
        let status = store.conversation_record(chat).await.unwrap().status;
        (status == ConversationStatus::Resolved).then_some(status)
    })
    .await;
    assert!(resolved.is_some(), "the conversation was never resolved");
}

/// Carla talks to the bot on a real hub process that is killed (kill -9) and never comes
/// back. As for a live chat whose customer's node died, she has the grace period to come
/// back anywhere; once it has run out on the node that took the dead one over, her
/// conversation ends as any bot conversation whose customer went: closed in the archive as
/// a disconnect, resolved (no one's open conversation for good), the bot told
/// `customer_gone` once (two live nodes, one acts), and her token resumes nothing.
#[tokio::test]
async fn a_dead_nodes_bot_conversation_whose_customer_never_comes_back_is_closed_after_the_grace() {
    let grace = |s: &mut switchboard::config::Settings| {
        s.webhooks.allow_private = Some(true);
        s.resume_grace = Duration::from_secs(2);
    };
    let (mut doomed, bind, [live, other], servers) = process_and_nodes(
        "bots-cluster-kill-never-back",
        Process::named("doomed").env(&[("WEBHOOK_ALLOW_PRIVATE", "true")]),
        ["live", "other"],
        grace,
    )
    .await;
    let mut conn = redis_conn(&servers.redis).await;
    let admin = live.admin().await;
    let (calls, secret) = webhook_bot(&admin, live.url(""), Behaviour::Answers).await;

    let (carla, chat, resume_token) = asked_the_bot_and_answered(&bind).await;
    wait_archived(&admin, &chat, 2).await;

    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    drop(carla);
    until_reaped(&mut conn, "doomed").await;

    let store = &servers.store;
    closed_as_customer_gone(store, &chat).await;
    // The bot is told, by the node that took the dead one over, that she is gone.
    let told = |frames: &[serde_json::Value]| {
        frames
            .iter()
            .filter(|f| f["chat_id"] == chat.as_str() && f["type"] == "conversation_ended")
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut ended = vec![];
    for n in 1..=200 {
        ended = told(&calls_signed(&calls, n, &secret).await);
        if !ended.is_empty() {
            break;
        }
    }
    assert_eq!(
        ended.first().map(|f| (f["reason"].as_str(), f["why"].as_str())),
        Some((Some("customer_gone"), None)),
        "{ended:?}"
    );

    // Her token resumes nothing now, on either node.
    for node in [&live, &other] {
        let mut again = Ws::connect(&node.ws_url("/ws/customer"), &[]).await.unwrap();
        again
            .send(json!({"type": "resume", "token": resume_token, "last_seq": 2}))
            .await;
        assert_eq!(again.next_of("error").await["code"], "resume_expired");
    }
    let all = calls.lock().unwrap().clone();
    let frames: Vec<serde_json::Value> = all
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(told(&frames).len(), 1, "one node closed it: {frames:?}");
    live.stop().await;
    other.stop().await;
}

/// Carla talks to the bot on a real hub process that is stopped (SIGSTOP) past its lease and
/// woken after the cluster took it over. Fenced, it lets go of her (1012) without ending her
/// conversation: no closing archived, no word to the bot, her ticket kept, so her token
/// resumes it on the live node, where it goes to the line and Ann takes it.
#[tokio::test]
async fn a_node_woken_after_its_lease_ran_out_lets_go_of_its_bot_customers_without_ending_them() {
    let (sleepy, bind, [live], servers) = bot_process_and_live_node("bots-cluster-stall", "sleepy").await;
    let mut conn = redis_conn(&servers.redis).await;
    let before = until_registered(&mut conn, "sleepy").await;
    let admin = live.admin().await;
    webhook_bot(&admin, live.url(""), Behaviour::Answers).await;

    let (mut carla, chat, resume_token) = asked_the_bot_and_answered(&bind).await;

    signal(&sleepy.0, libc::SIGSTOP);
    until_reaped(&mut conn, "sleepy").await;
    woken_fenced(&sleepy, "sleepy", &mut conn, &mut carla, before).await;
    // Time for anything the woken node would still do with her conversation.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut ann = live.agent("ann", &["general"], 1).await;
    let mut carla = handed_over_on(&live, &resume_token, 2, &chat).await;
    carla.chat_continued(&chat).await;
    let taken = ann.chat_continued(&chat).await;
    assert_eq!(taken["chat_id"], chat.as_str());
    assert_eq!(carla.say("still there?", "c2").await["seq"], 3);
    assert_eq!(ann.next_of("message").await["seq"], 3);
    let archived = wait_archived(&admin, &chat, 3).await;
    assert!(
        archived["ended_at"].is_null(),
        "the woken node archived no closing of a conversation going on elsewhere: {archived}"
    );
    live.stop().await;
    drop(sleepy);
}

/// A bot's line for a conversation held by a node that stalled (SIGSTOP) waits for that
/// node's answer; the node it came in at is stopped meanwhile. The bot is answered at once,
/// `cluster_unavailable` with the line perhaps gone out, and the stop is not held up by the
/// wait (it once lasted the whole answer timeout, as long as a test gives a stop).
#[tokio::test]
async fn a_node_stopping_while_a_bots_line_waits_for_another_node_answers_the_bot_at_once() {
    let (sleepy, bind, [live], _servers) = process_and_nodes(
        "bots-cluster-stop-waiting",
        Process::named("sleepy").env(&[("WEBHOOK_ALLOW_PRIVATE", "true")]),
        ["live"],
        |s| s.webhooks.allow_private = Some(true),
    )
    .await;
    let admin = live.admin().await;
    webhook_bot(&admin, live.url(""), Behaviour::Answers).await;
    let (_carla, chat, _) = meets_bot_at(&bind, "Carla").await;
    let bot = Api::bearer(&live, &bot_token(&admin, "Faq").await);

    signal(&sleepy.0, libc::SIGSTOP);
    let line = tokio::spawn(async move {
        bot.post(
            &format!("/api/bot/conversations/{chat}/messages"),
            json!({"text": "still looking", "client_id": "b9"}),
        )
        .await
    });
    // Forwarded to the stalled node, whose subscription Redis still holds: it waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!line.is_finished(), "the line waits for the stalled node");
    live.stop().await;
    let refused = refusal(line.await.unwrap(), 503, "cluster_unavailable");
    let words = refused["error"]["message"].as_str().unwrap();
    assert!(words.contains("stopping"), "{words}");
    signal(&sleepy.0, libc::SIGCONT);
}

/// Two nodes whose General category names bot Faq, with Faq's socket on alpha: the
/// nodes, alpha's admin, the bot's socket and its token.
async fn socket_bot_on_alpha(name: &str) -> ([TestHub; 2], Servers, Api, Ws, String) {
    let (nodes, servers) = nodes(name, ["alpha", "beta"], |_| {}).await;
    let admin = nodes[0].admin().await;
    let secret = faq_for_general(&admin).await;
    let (bot, welcome) = bot_socket(&nodes[0], &secret).await;
    assert_eq!(welcome["bot"], "Faq");
    (nodes, servers, admin, bot, secret)
}

/// A socket bot connected to alpha serves a customer on beta: it is told of her
/// conversation and her lines, its answers reach her (via "bot", the seq going on), its
/// acks come back on its socket, and its hand-over puts her in the shared line, where an
/// agent on alpha takes the conversation with its lines.
#[tokio::test]
async fn a_socket_bot_on_one_node_answers_a_customer_on_another_and_hands_over() {
    let ([alpha, beta], _servers, admin, mut bot, _) = socket_bot_on_alpha("bots-cluster-socket").await;
    let mut ann = alpha.agent("ann", &["general"], 2).await;
    let (mut carla, chat) = meets_bot(&beta, "Carla").await;
    let given = bot
        .next_matching(|f| f["type"] == "conversation" && f["chat_id"] == chat.as_str())
        .await;
    assert_eq!(given["customer_name"], "Carla");

    assert_eq!(carla.say("what are your opening hours?", "c1").await["seq"], 1);
    let line = bot.next_of("message").await;
    assert_eq!(
        (line["chat_id"].as_str(), line["text"].as_str(), line["from"].as_str()),
        (Some(&*chat), Some("what are your opening hours?"), Some("customer"))
    );
    let ack = bot.say_in(&chat, "We are open 9 to 5.", "b1").await;
    assert_eq!(
        (ack["seq"].as_u64(), ack["client_id"].as_str()),
        (Some(2), Some("b1")),
        "{ack}"
    );
    let answer = carla.next_of("message").await;
    assert_eq!(
        (answer["text"].as_str(), answer["via"].as_str(), answer["seq"].as_u64()),
        (Some("We are open 9 to 5."), Some("bot"), Some(2)),
        "{answer}"
    );
    // A refusal decided on beta comes back on the bot's socket as on one node.
    bot.send(json!({"type": "message", "chat_id": chat, "text": "  ", "client_id": "b2"}))
        .await;
    bot.next_refusal("empty_message", "b2").await;

    assert_eq!(carla.say("I need a person", "c2").await["seq"], 3);
    let ended = crate::bots::hands_over_asked(&mut bot, &chat).await;
    assert_eq!(ended["chat_id"], chat.as_str(), "{ended}");
    carla.next_of("transferred").await;
    let taken = ann.chat_continued(&chat).await;
    assert_eq!(taken["peer_name"], "Carla");
    // Her page reads the lines from the archive, as for any conversation continued from
    // another node: the bot's marked, its note kept.
    archived_with_note(&admin, &chat, "wants a refund").await;
    assert_eq!(ann.say_in(&chat, "Ann here.", "a1").await["seq"], 4);
    assert_eq!(carla.next_of("message").await["seq"], 4);
    alpha.stop().await;
    beta.stop().await;
}

/// The socket of a bot on alpha closes while it talks to a customer on beta: she is handed
/// over at once (`bot_gone`), as on one node; the bot connecting again, on beta this time,
/// serves alpha's next customer.
#[tokio::test]
async fn a_socket_bots_socket_closing_hands_over_another_nodes_customer_and_it_serves_again_from_elsewhere() {
    let ([alpha, beta], _servers, _admin, mut bot, secret) = socket_bot_on_alpha("bots-cluster-socket-gone").await;
    let mut ann = beta.agent("ann", &["general"], 2).await;
    let (mut carla, chat) = meets_bot(&beta, "Carla").await;
    bot.next_matching(|f| f["type"] == "conversation" && f["chat_id"] == chat.as_str())
        .await;
    assert_eq!(carla.say("anyone?", "c1").await["seq"], 1);
    bot.next_of("message").await;
    drop(bot);
    carla.next_of("transferred").await;
    let taken = ann.chat_continued(&chat).await;
    assert_eq!(taken["transfer"]["note"], "Faq went offline.");

    let (mut bot, _) = bot_socket(&beta, &secret).await;
    let (mut dora, dora_chat) = meets_bot(&alpha, "Dora").await;
    bot.next_matching(|f| f["type"] == "conversation" && f["chat_id"] == dora_chat.as_str())
        .await;
    assert_eq!(dora.say("hello", "d1").await["seq"], 1);
    bot.next_of("message").await;
    assert_eq!(bot.say_in(&dora_chat, "Hello Dora.", "b1").await["seq"], 2);
    assert_eq!(dora.next_of("message").await["via"], "bot");
    alpha.stop().await;
    beta.stop().await;
}

/// A socket bot connected to a hub process that is killed (kill -9) while it talks to a
/// customer on the live node: once the cluster takes the dead node over, she is handed
/// over to the line, not left with a bot nobody can reach.
#[tokio::test]
async fn a_customer_whose_socket_bots_node_died_is_handed_over() {
    let (mut doomed, bind, [live], servers) =
        process_and_nodes("bots-cluster-socket-kill", Process::named("doomed"), ["live"], |_| {}).await;
    let mut conn = redis_conn(&servers.redis).await;
    let secret = faq_for_general(&live.admin().await).await;
    let auth = format!("Bearer {secret}");
    let mut bot = Ws::connect(&format!("ws://{bind}/ws/bot"), &[("authorization", &auth)])
        .await
        .unwrap();
    bot.next_of("bot_welcome").await;
    let mut ann = live.agent("ann", &["general"], 1).await;
    let (mut carla, chat) = meets_bot(&live, "Carla").await;
    bot.next_matching(|f| f["type"] == "conversation" && f["chat_id"] == chat.as_str())
        .await;

    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    until_reaped(&mut conn, "doomed").await;
    let moved = carla.next_of("transferred").await;
    assert_eq!(moved["chat_id"], chat.as_str());
    let taken = ann.chat_continued(&chat).await;
    assert_eq!(taken["transfer"]["note"], "Faq went offline.");
    assert_eq!(carla.say("hello?", "c1").await["seq"], 1);
    assert_eq!(ann.next_of("message").await["seq"], 1);
    live.stop().await;
}

/// Redis frozen (SIGSTOP, shorter than the lease) while a socket bot on alpha talks to a
/// customer on beta: the bot's line is refused on its socket (`cluster_unavailable`), as a
/// new customer's join on beta is, and nothing is lost: once Redis answers, the bot's
/// line sent again reaches her, the seq going on, and beta's next customer meets the bot.
#[tokio::test]
async fn redis_away_refuses_a_socket_bots_line_for_another_node_and_nothing_is_lost() {
    let ([alpha, beta], servers, _admin, mut bot, _) = socket_bot_on_alpha("bots-cluster-socket-redis").await;
    let (mut carla, chat) = meets_bot(&beta, "Carla").await;
    bot.next_matching(|f| f["type"] == "conversation" && f["chat_id"] == chat.as_str())
        .await;
    assert_eq!(carla.say("hello", "c1").await["seq"], 1);
    bot.next_of("message").await;

    servers.redis.pause();
    redis_shows(&alpha, "down").await;
    bot.send(json!({"type": "message", "chat_id": chat, "text": "Hello Carla.", "client_id": "b1"}))
        .await;
    bot.next_refusal("cluster_unavailable", "b1").await;
    let bind = beta.url("");
    let mut dora = Ws::connect(&beta.ws_url("/ws/customer"), &[]).await.unwrap();
    dora.send(json!({"type": "join", "name": "Dora", "category": "general"}))
        .await;
    assert_eq!(dora.next_of("error").await["code"], "cluster_unavailable");
    servers.redis.resume();
    redis_shows(&alpha, "up").await;
    redis_shows(&beta, "up").await;

    assert_eq!(bot.say_in(&chat, "Hello Carla.", "b1").await["seq"], 2);
    let answer = carla.next_of("message").await;
    assert_eq!(
        (answer["text"].as_str(), answer["seq"].as_u64()),
        (Some("Hello Carla."), Some(2)),
        "{answer}"
    );
    let bind = bind.trim_start_matches("http://").trim_end_matches('/');
    let (_dora, dora_chat, _) = meets_bot_at(bind, "Dora").await;
    bot.next_matching(|f| f["type"] == "conversation" && f["chat_id"] == dora_chat.as_str())
        .await;
    alpha.stop().await;
    beta.stop().await;
}

/// Redis killed and started empty while a socket bot is connected to alpha: the record of
/// its socket went with the data, and alpha records it again once it has subscribed again,
/// so beta's next customer meets the bot.
#[tokio::test]
async fn a_socket_bot_is_found_again_after_redis_lost_its_data() {
    let ([alpha, beta], mut servers, _admin, mut bot, _) = socket_bot_on_alpha("bots-cluster-socket-lost").await;
    let _redis = killed_and_back_empty(&mut servers.redis).await;
    healthy(&alpha, "alpha").await;
    healthy(&beta, "beta").await;
    // Joins are refused while the nodes restore (`cluster_unavailable`), then go to the
    // line until alpha's record is back.
    let _carla = meets_bot_again(&beta, &mut bot).await;
    alpha.stop().await;
    beta.stop().await;
}

/// The record of a socket bot's socket on alpha is lost without a gap in alpha's bots
/// channel or a loss of Redis's data (deleted here, as one write Redis refused leaves it):
/// alpha records it again at its next periodic re-assertion, so beta's customers meet the
/// bot again rather than going to the line until the bot reconnects.
#[tokio::test]
async fn a_socket_bots_lost_record_is_written_again_and_serves_another_nodes_customers() {
    let ([alpha, beta], servers, _admin, mut bot, _) = socket_bot_on_alpha("bots-cluster-socket-refresh").await;
    let mut conn = redis_conn(&servers.redis).await;
    let key = "{sb}:bot-socket:Faq";
    let recorded = polled(Duration::from_secs(30), async || {
        redis::cmd("GET")
            .arg(key)
            .query_async::<Option<String>>(&mut conn)
            .await
            .unwrap()
    })
    .await;
    assert!(recorded.is_some(), "alpha never recorded its bot's socket");
    let deleted: i64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await.unwrap();
    assert_eq!(deleted, 1);

    let _carla = meets_bot_again(&beta, &mut bot).await;
    alpha.stop().await;
    beta.stop().await;
}

/// A customer of General on `node` once one meets bot Faq again (those before are refused
/// or go to the line while the node cannot find the bot's socket), the bot's socket `bot`
/// told of her conversation: her socket.
async fn meets_bot_again(node: &TestHub, bot: &mut Ws) -> Ws {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut carla = Ws::connect(&node.ws_url("/ws/customer"), &[]).await.unwrap();
        carla
            .send(json!({"type": "join", "name": "Carla", "category": "general"}))
            .await;
        let first = carla
            .next_matching(|f| ["chat_started", "queued", "error"].contains(&f["type"].as_str().unwrap_or("")))
            .await;
        if first["type"] == "chat_started" && first["peer_name"] == "Faq" {
            let chat = first["chat_id"].as_str().unwrap();
            bot.next_matching(|f| f["type"] == "conversation" && f["chat_id"] == chat)
                .await;
            return carla;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node's customers never met the bot again: {first}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A socket bot on alpha talks to Carla on beta and Dora on alpha, and connects again on
/// beta while its first socket is still open (a reconnect the load balancer sent
/// elsewhere). As on one node, the older socket is closed (4000, replaced) and the newer
/// one's `bot_welcome` lists both conversations with their lines; what each customer says
/// next reaches the newer socket, and its answers reach them, the seq going on.
#[tokio::test]
async fn a_socket_bots_newer_socket_on_another_node_is_welcomed_with_every_conversation_it_holds() {
    let ([alpha, beta], _servers, _admin, mut bot, secret) = socket_bot_on_alpha("bots-cluster-socket-welcome").await;
    let mut talks = vec![];
    for (node, name) in [(&beta, "Carla"), (&alpha, "Dora")] {
        let (mut customer, chat) = meets_bot(node, name).await;
        bot.next_matching(|f| f["type"] == "conversation" && f["chat_id"] == chat.as_str())
            .await;
        assert_eq!(customer.say(&format!("hello, I am {name}"), "c1").await["seq"], 1);
        bot.next_matching(|f| f["type"] == "message" && f["chat_id"] == chat.as_str())
            .await;
        talks.push((customer, chat, name));
    }

    let (mut newer, welcome) = bot_socket(&beta, &secret).await;
    let mut listed: Vec<(String, Vec<String>)> = welcome["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let lines = c["messages"].as_array().unwrap();
            let texts = lines.iter().map(|m| m["text"].as_str().unwrap().to_string()).collect();
            (c["chat_id"].as_str().unwrap().to_string(), texts)
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, Vec<String>)> = talks
        .iter()
        .map(|(_, chat, name)| (chat.clone(), vec![format!("hello, I am {name}")]))
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "{welcome}");
    assert_eq!(
        bot.closed().await.map(u16::from),
        Some(4000),
        "the older socket is replaced"
    );

    for (customer, chat, name) in &mut talks {
        assert_eq!(customer.say("still there?", "c2").await["seq"], 2);
        let line = newer
            .next_matching(|f| f["type"] == "message" && f["chat_id"] == chat.as_str())
            .await;
        assert_eq!(line["text"], "still there?");
        let answer = format!("Yes, {name}.");
        assert_eq!(newer.say_in(chat, &answer, "b1").await["seq"], 3);
        let seen = customer.next_of("message").await;
        assert_eq!(
            (seen["text"].as_str(), seen["via"].as_str()),
            (Some(answer.as_str()), Some("bot"))
        );
    }
    // Again on the same node: the newest is told both too, Dora's held on alpha included.
    let (_newest, welcome) = bot_socket(&beta, &secret).await;
    let mut listed: Vec<(String, usize)> = welcome["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let chat = c["chat_id"].as_str().unwrap().to_string();
            (chat, c["messages"].as_array().unwrap().len())
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, usize)> = talks.iter().map(|(_, chat, _)| (chat.clone(), 3)).collect();
    expected.sort();
    assert_eq!(listed, expected, "{welcome}");
    assert_eq!(newer.closed().await.map(u16::from), Some(4000));
    alpha.stop().await;
    beta.stop().await;
}

/// Carla talks to the bot on a real hub process ("doomed") that is killed (kill -9); the
/// only other node, a real process too ("taker"), takes it over and owes the sweep of its
/// bot conversations (recorded in Redis), and is killed (kill -9) as well before its grace
/// period ran out. A node started afterwards ("heir") takes "taker" over, and with it what
/// "taker" owed: Carla's conversation is not stuck with the dead bot stage, it is closed as
/// any whose customer went (a disconnect, resolved).
#[tokio::test]
async fn a_dead_nodes_bot_conversation_is_closed_though_the_node_that_took_it_over_died_too() {
    let redis = crate::redis_server::RedisServer::start().await;
    let mut conn = redis_conn(&redis).await;
    let scratch = crate::archive::TempDir::new("bots-cluster-heir-dies");
    let webhooks = [("WEBHOOK_ALLOW_PRIVATE", "true")];
    let doomed = crate::cluster_hub::node_process_with(&redis, &mut conn, &scratch, "doomed", None, &webhooks).await;
    let store: switchboard::store::SharedStore = std::sync::Arc::new(
        switchboard::store::MongoStore::connect(&doomed.uri, &doomed.db)
            .await
            .unwrap(),
    );
    // The taker's own grace period is long: it dies before it would sweep.
    let taker_env = [
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("MONGODB_DB", doomed.db.as_str()),
        ("RESUME_GRACE_SECS", "600"),
    ];
    // A directory of its own: a node's data directory is its own.
    let taker_scratch = crate::archive::TempDir::new("bots-cluster-heir-dies-taker");
    let mut taker =
        crate::cluster_hub::node_process_with(&redis, &mut conn, &taker_scratch, "taker", None, &taker_env).await;
    let tweak = |s: &mut switchboard::config::Settings| {
        s.webhooks.allow_private = Some(true);
        s.resume_grace = Duration::from_secs(1);
    };
    let [setup] = crate::cluster_fixture::nodes_on(&store, &redis, &scratch, ["setup"], tweak).await;
    let admin = setup.admin().await;
    let (_calls, _secret) = webhook_bot(&admin, setup.url(""), Behaviour::Answers).await;
    let (carla, chat, _token) = asked_the_bot_and_answered(&doomed.bind).await;
    wait_archived(&admin, &chat, 2).await;
    // Only the taker is left to take the doomed node over.
    setup.stop().await;

    let mut doomed = doomed.running;
    doomed.0.kill().unwrap();
    let _ = doomed.0.wait();
    drop(carla);
    until_reaped(&mut conn, "doomed").await;
    // The taker owes the doomed node's sweep; it dies before its grace period ran out.
    let owed = |mut conn: redis::aio::ConnectionManager| async move {
        let owed: Vec<String> = redis::cmd("SMEMBERS")
            .arg("{sb}:bot-sweeps:taker")
            .query_async(&mut conn)
            .await
            .unwrap();
        owed.contains(&"doomed".to_string()).then_some(())
    };
    crate::cluster_base::eventually("the taker owes the doomed node's sweep", || owed(conn.clone())).await;
    taker.running.0.kill().unwrap();
    let _ = taker.running.0.wait();

    let [heir] = crate::cluster_fixture::nodes_on(&store, &redis, &scratch, ["heir"], tweak).await;
    until_reaped(&mut conn, "taker").await;
    closed_as_customer_gone(&store, &chat).await;
    // Nothing is owed any more.
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("{sb}:bot-sweeps:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    heir.stop().await;
}
