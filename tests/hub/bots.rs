//! Agent bots end to end: a category names a bot; while the bot is connected (`/ws/bot`
//! with its `bot` API token) a joining customer talks to it first; it answers, asks for
//! the email, resolves, or hands over, and the agent who then takes the conversation gets
//! its lines, the bot's marked. A bot that does not answer in time, or goes away, hands
//! over by itself; one that floods or sends garbage is refused, logged, and nothing the
//! customer said is lost. The example bot in `examples/` runs for real.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};

use crate::common::*;

/// A `bot` token for bot `name`: its secret.
pub(crate) async fn bot_token(admin: &Api, name: &str) -> String {
    bot_token_and_id(admin, name).await.0
}

/// A `bot` token for bot `name`: its secret and its id.
pub(crate) async fn bot_token_and_id(admin: &Api, name: &str) -> (String, String) {
    let created = admin
        .post_answering(
            201,
            "/api/admin/api-tokens",
            json!({"name": format!("{name} bot"), "scopes": ["bot"], "bot": name}),
        )
        .await;
    (
        created["secret"].as_str().unwrap().to_string(),
        created["id"].as_str().unwrap().to_string(),
    )
}

/// Bot `name` connected with `secret`, its welcome read.
pub(crate) async fn bot_socket(hub: &Endpoint, secret: &str) -> (Ws, Value) {
    Ws::with_bearer(hub, "/ws/bot", secret, "bot_welcome").await
}

/// Through `admin`, General names bot Faq (on every node of a cluster, over the admin bus):
/// the secret of a new token for Faq's socket.
pub(crate) async fn faq_for_general(admin: &Api) -> String {
    admin
        .put_answering(200, "/api/admin/category-bots/general", json!({"bot": "Faq"}))
        .await;
    bot_token(admin, "Faq").await
}

/// Customer `name` joins General, where `bot` answers first: their socket and chat id, once
/// the bot was given the conversation.
async fn to_the_bot(hub: &TestHub, bot: &mut Ws, name: &str) -> (Ws, String) {
    let mut customer = hub.customer(name, "general").await;
    let chat = customer.chat_started().await;
    bot.next_of("conversation").await;
    (customer, chat)
}

/// As [`to_the_bot`], and the customer asks the bot `question` (client id `client_id`),
/// which the bot gets.
async fn asked_the_bot(hub: &TestHub, bot: &mut Ws, name: &str, question: &str, client_id: &str) -> (Ws, String) {
    let (mut customer, chat) = to_the_bot(hub, bot, name).await;
    customer.say(question, client_id).await;
    bot.next_of("message").await;
    (customer, chat)
}

/// As [`hub_with_bot`] with the test defaults, and Ann of General (taking `max_chats`)
/// connected and available: her socket last.
async fn hub_with_bot_and_ann(max_chats: u8) -> (TestHub, Api, Ws, Ws) {
    let (hub, admin, bot) = hub_with_bot(|_| {}).await;
    let ann = hub.agent("ann", &["general"], max_chats).await;
    (hub, admin, bot, ann)
}

/// A hub whose General category names bot Faq, with Faq connected: the hub, the admin,
/// and Faq's socket.
async fn hub_with_bot(tweak: impl FnOnce(&mut switchboard::config::Settings)) -> (TestHub, Api, Ws) {
    let hub = TestHub::with(tweak).await;
    let admin = hub.admin().await;
    let listed = admin
        .put_answering(200, "/api/admin/category-bots/general", json!({"bot": "Faq"}))
        .await;
    assert!(
        listed["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["category"] == "general" && c["bot"] == "Faq"),
        "{listed}"
    );
    let secret = bot_token(&admin, "Faq").await;
    let (bot, welcome) = bot_socket(&hub, &secret).await;
    assert_eq!(welcome["bot"], "Faq");
    (hub, admin, bot)
}

#[tokio::test]
async fn a_bot_answers_first_and_hands_over_and_the_agent_sees_its_lines() {
    let (hub, admin, mut bot) = hub_with_bot(|_| {}).await;
    let (mut agent, token) = hub.agent_with_token("ann", &["general"], 2).await;

    let mut customer = hub.customer("Carla", "general").await;
    let started = customer.next_of("chat_started").await;
    assert_eq!(started["peer_name"], "Faq");
    let chat = started["chat_id"].as_str().unwrap().to_string();
    let given = bot.next_of("conversation").await;
    assert_eq!(
        (given["chat_id"].as_str(), given["customer_name"].as_str()),
        (Some(&*chat), Some("Carla"))
    );

    let ack = customer.say("what are your opening hours?", "c1").await;
    assert_eq!(ack["seq"], 1);
    let line = bot.next_of("message").await;
    assert_eq!(
        (line["text"].as_str(), line["from"].as_str()),
        (Some("what are your opening hours?"), Some("customer"))
    );

    let ack = bot.say_in(&chat, "We are open 9 to 5.", "b1").await;
    assert_eq!(ack["seq"], 2);
    let answer = customer.next_of("message").await;
    assert_eq!(
        (answer["from"].as_str(), answer["via"].as_str()),
        (Some("agent"), Some("bot"))
    );

    bot.send(json!({"type": "ask_email", "chat_id": chat})).await;
    customer.next_of("email_asked").await;
    customer
        .send(json!({"type": "email", "email": "carla@example.com"}))
        .await;
    assert_eq!(bot.next_of("customer_email").await["email"], "carla@example.com");

    customer.say("I need a person", "c2").await;
    let ended = hands_over_asked(&mut bot, &chat).await;
    assert_eq!(ended["reason"], "handed_over", "{ended}");

    // The agent gets the same conversation with its lines, the bot's marked and named.
    let taken = agent.next_of("chat_started").await;
    assert_eq!(
        (taken["chat_id"].as_str(), taken["continued"].as_bool()),
        (Some(&*chat), Some(true))
    );
    let lines = taken["messages"].as_array().unwrap();
    let texts: Vec<(&str, Option<&str>)> = lines
        .iter()
        .map(|m| (m["text"].as_str().unwrap(), m["via"].as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("what are your opening hours?", None),
            ("We are open 9 to 5.", Some("bot")),
            ("I need a person", None)
        ]
    );
    assert_eq!(taken["transfer"]["from_name"], "Faq");
    assert_eq!(taken["transfer"]["note"], "wants a refund");
    let carla = customer.next_of("chat_started").await;
    assert_eq!(
        (carla["chat_id"].as_str(), carla["peer_name"].as_str()),
        (Some(&*chat), Some("ANN"))
    );

    // The conversation goes on at the next seq, and the archive has every line.
    let ack = agent.say_in(&chat, "Hello Carla, I am Ann.", "a1").await;
    assert_eq!(ack["seq"], 4);
    // Ann's page opened afresh (another browser) gets the chat with its hand-over.
    let auth = format!("Bearer {token}");
    let mut again = Ws::connect(&hub.ws_url("/ws/agent"), &[("authorization", &auth)])
        .await
        .unwrap();
    let welcome = again.next_of("agent_welcome").await;
    let snapshot = &welcome["chats"][0];
    assert_eq!(
        (
            snapshot["transfer"]["from_name"].as_str(),
            snapshot["transfer"]["note"].as_str()
        ),
        (Some("Faq"), Some("wants a refund")),
        "{welcome}"
    );
    // The newer page ends it.
    again.send(json!({"type": "end_chat", "chat_id": chat})).await;
    customer.next_of("chat_ended").await;
    let archived = eventually_archived(&admin, &chat, 4).await;
    assert_eq!(archived["messages"][1]["via"], "bot");
    assert_eq!(archived["customer"]["email"], "carla@example.com", "{archived}");
}

/// Conversation `chat` once the archive has `lines` of its lines.
async fn eventually_archived(admin: &Api, chat: &str, lines: usize) -> Value {
    for _ in 0..100 {
        let (status, conversation) = admin.get(&format!("/api/conversations/{chat}")).await;
        if status == 200 && conversation["messages"].as_array().map_or(0, Vec::len) >= lines {
            return conversation;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("conversation {chat} never had {lines} lines in the archive");
}

/// The bot takes the customer's line asking for a person and hands conversation `chat`
/// over with the note "wants a refund": the `conversation_ended` it is told, which says
/// it asked.
pub(crate) async fn hands_over_asked(bot: &mut Ws, chat: &str) -> Value {
    bot.next_of("message").await;
    bot.send(json!({"type": "handover", "chat_id": chat, "note": "wants a refund"}))
        .await;
    let ended = bot.next_of("conversation_ended").await;
    assert_eq!(ended["why"], "asked", "{ended}");
    ended
}

/// The agent's `chat_started` for conversation `chat` handed over by bot Faq, its first
/// line `first`.
pub(crate) async fn handed_to(agent: &mut Ws, chat: &str, first: &str) -> Value {
    let taken = agent.next_of("chat_started").await;
    assert_eq!(taken["chat_id"], chat);
    assert_eq!(taken["messages"][0]["text"], first);
    assert_eq!(taken["transfer"]["from_name"], "Faq");
    taken
}

/// Carla talks to the bot in one tab; a second tab of her browser (same visitor key) asks to
/// continue that conversation: refused `already_live`, as for a conversation live with an
/// agent, and the bot's conversation goes on in the first tab. Before, the second tab was
/// let in (the bot's conversation was not counted live): the conversation ran in two
/// places, each drawing its own seqs.
#[tokio::test]
async fn a_conversation_with_a_bot_is_continued_on_no_other_tab() {
    let (hub, _admin, mut bot) = hub_with_bot(|_| {}).await;
    let visitor = "carlas-browser-key-0001";
    let mut carla = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    carla
        .send(json!({"type": "join", "name": "Carla", "category": "general", "visitor": visitor}))
        .await;
    let chat = carla.chat_started().await;
    bot.next_of("conversation").await;
    assert_eq!(carla.say("where is my parcel?", "c1").await["seq"], 1);
    bot.next_of("message").await;

    let mut second = crate::continuing::continuing(&hub, Some(visitor), &chat).await;
    let refused = second.next_of("error").await;
    assert_eq!(refused["code"], "already_live", "{refused}");
    assert_eq!(carla.say("hello?", "c2").await["seq"], 2);
    assert_eq!(bot.next_of("message").await["text"], "hello?");
}

#[tokio::test]
async fn a_bot_that_never_answers_hands_over_after_the_timeout() {
    let (hub, _admin, mut bot) = hub_with_bot(|s| s.bot_reply_timeout = Duration::from_millis(300)).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let mut customer = hub.customer("Carla", "general").await;
    let chat = customer.chat_started().await;
    customer.say("hello?", "c1").await;
    bot.next_of("message").await;
    // The bot says nothing: the conversation goes to Ann by itself.
    let ended = bot.next_of("conversation_ended").await;
    assert_eq!(ended["why"], "timeout");
    handed_to(&mut agent, &chat, "hello?").await;
    customer.next_of("transferred").await;
}

#[tokio::test]
async fn a_bot_that_goes_away_hands_over_and_a_category_without_its_bot_goes_to_the_line() {
    let (hub, _admin, mut bot, mut agent) = hub_with_bot_and_ann(2).await;
    let (mut customer, chat) = to_the_bot(&hub, &mut bot, "Carla").await;
    customer.say("anyone?", "c1").await;
    drop(bot);
    let taken = agent.next_of("chat_started").await;
    assert_eq!(taken["chat_id"], chat.as_str());
    assert_eq!(taken["transfer"]["note"], "Faq went offline.");

    // No bot connected now: the next customer goes straight to the line.
    let mut second = hub.customer("Dora", "general").await;
    assert_eq!(second.next_of("chat_started").await["peer_name"], "ANN");
}

#[tokio::test]
async fn a_bot_resolves_and_the_archive_has_it_closed_as_the_bots() {
    let (hub, admin, mut bot) = hub_with_bot(|_| {}).await;
    let (mut customer, chat) = to_the_bot(&hub, &mut bot, "Carla").await;
    customer.say("opening hours", "c1").await;
    bot.say_in(&chat, "9 to 5", "b1").await;
    bot.send(json!({"type": "resolve", "chat_id": chat})).await;
    let ended = customer.next_of("chat_ended").await;
    assert_eq!(ended["reason"], "resolved");
    assert_eq!(bot.next_of("conversation_ended").await["reason"], "resolved");
    // The archive has it closed, ended by its agent (the bot), its agent the bot's id.
    for _ in 0..100 {
        let (_, archived) = admin.get(&format!("/api/conversations/{chat}")).await;
        if archived["ended_at"].is_i64() {
            assert_eq!(archived["agent_id"], "bot:Faq", "{archived}");
            assert_eq!(archived["messages"].as_array().unwrap().len(), 2, "{archived}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the bot's conversation was never archived closed");
}

#[tokio::test]
async fn a_bot_sending_garbage_or_flooding_is_refused_and_nothing_is_lost() {
    let (hub, _admin, mut bot) = hub_with_bot(|s| {
        s.bot_rate_limit_per_sec = 5;
        s.bot_rate_limit_burst = 5;
    })
    .await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (mut customer, chat) = to_the_bot(&hub, &mut bot, "Carla").await;
    customer.say("hello", "c1").await;

    // Malformed frames: an error each, the connection lives on.
    bot.send_raw("{not json").await;
    assert_eq!(bot.next_of("error").await["code"], "bad_json");
    bot.send(json!({"type": "message", "text": "no chat named"})).await;
    assert_eq!(bot.next_of("error").await["code"], "missing_chat_id");
    bot.send(json!({"type": "handover", "chat_id": "not-a-conversation"}))
        .await;
    assert_eq!(bot.next_of("error").await["code"], "not_your_chat");
    bot.send(json!({"type": "set_status", "status": "away"})).await;
    assert_eq!(bot.next_of("error").await["code"], "not_allowed");

    // A flood: refused past the rate, then the bot is closed; its customer is handed over
    // with everything said so far.
    for i in 0..40 {
        let _ = bot
            .inner
            .send(tokio_tungstenite::tungstenite::Message::Text(
                json!({"type": "message", "chat_id": chat, "text": format!("spam {i}")})
                    .to_string()
                    .into(),
            ))
            .await;
    }
    assert!(bot.closed().await.is_some());
    handed_to(&mut agent, &chat, "hello").await;
}

/// A bot socket answers every conversation of its categories, yet had one person's rate
/// limit: a bot answering a burst of customers at once was refused `rate_limited`, then
/// closed, and every conversation it held handed over. It has its own limit
/// (`BOT_RATE_LIMIT_*`): a burst under that is answered frame by frame while people's
/// sockets keep theirs.
#[tokio::test]
async fn a_bot_socket_has_its_own_rate_limit_above_a_persons() {
    let (hub, _admin, mut bot) = hub_with_bot(|s| {
        s.rate_limit_per_sec = 5;
        s.rate_limit_burst = 5;
        s.bot_rate_limit_per_sec = 200;
        s.bot_rate_limit_burst = 400;
    })
    .await;
    // 60 frames at once: past a person's burst and twice over (which closes a person's
    // socket), well under the bot's burst.
    for i in 0..60 {
        bot.send(json!({"type": "handover", "chat_id": format!("not-a-conversation-{i}")}))
            .await;
    }
    for i in 0..60 {
        let refused = bot.next_of("error").await;
        assert_eq!(refused["code"], "not_your_chat", "frame {i}: {refused}");
    }
    // The socket lives on: a customer routed to the bot reaches it.
    let mut customer = hub.customer("Carla", "general").await;
    let chat = customer.chat_started().await;
    assert_eq!(bot.next_of("conversation").await["chat_id"], chat);
    hub.stop().await;
}

#[tokio::test]
async fn bot_sockets_take_bot_tokens_only() {
    let (hub, admin) = TestHub::with_admin().await;
    let read = admin
        .post_answering(201, "/api/admin/api-tokens", json!({"name": "r", "scopes": ["read"]}))
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    for (auth, status) in [
        (format!("Bearer {read}"), 403),
        ("Bearer sbt_nope".to_string(), 401),
        (String::new(), 401),
    ] {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("authorization", &auth)]
        };
        let refused = Ws::connect(&hub.ws_url("/ws/bot"), &headers).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{auth}")
            }
            other => panic!("{auth}: expected a refusal, got {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn the_example_bot_answers_its_keyword_and_hands_over_otherwise() {
    let hub = TestHub::start().await;
    let admin = hub.admin().await;
    let secret = faq_for_general(&admin).await;
    let mut agent = hub.agent("ann", &["general"], 2).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/faq-bot.mjs");
    let mut example = tokio::process::Command::new("node")
        .arg("--experimental-websocket")
        .arg(script)
        .env("SWITCHBOARD_URL", hub.ws_url("/ws/bot"))
        .env("SWITCHBOARD_BOT_TOKEN", &secret)
        .kill_on_drop(true)
        .spawn()
        .expect("node runs the example bot");
    // The bot is connected once a customer meets it rather than Ann.
    let (mut customer, chat) = loop {
        let mut customer = hub.customer("Carla", "general").await;
        let started = customer.next_of("chat_started").await;
        if started["peer_name"] == "Faq" {
            break (customer, started["chat_id"].as_str().unwrap().to_string());
        }
        customer.send(json!({"type": "leave"})).await;
        agent.next_of("chat_ended").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    customer.say("What are your opening hours?", "c1").await;
    // The bot may answer before the customer's own `ack` comes (both wait for the
    // archive): the answer may be among the frames `say` passed over.
    let answer = customer.seen_or_next_matching(|f| f["type"] == "message").await;
    assert_eq!(answer["via"], "bot");
    assert!(answer["text"].as_str().unwrap().contains("9:00"), "{answer}");
    customer.say("My parcel is broken", "c2").await;
    let taken = agent
        .next_matching(|f| f["type"] == "chat_started" && f["chat_id"] == chat.as_str())
        .await;
    assert_eq!(taken["transfer"]["from_name"], "Faq");
    assert_eq!(taken["messages"].as_array().unwrap().len(), 3, "{taken}");
    let _ = example.kill().await;
}

/// The report of yesterday and today (UTC), once `ready` holds for it.
async fn report_once(admin: &Api, ready: impl Fn(&Value) -> bool) -> Value {
    let day = |offset: i64| {
        (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * offset))
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string()
    };
    let path = format!("/api/reports?from={}&to={}&zone=UTC", day(-1), day(0));
    let mut last = Value::Null;
    for _ in 0..200 {
        let (status, report) = admin.get(&path).await;
        assert_eq!(status, 200, "{report}");
        if ready(&report) {
            return report;
        }
        last = report;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the report never showed what was expected: {last}");
}

#[tokio::test]
async fn reports_separate_conversations_the_bot_resolved_from_those_it_handed_over() {
    let (hub, admin, mut bot, mut agent) = hub_with_bot_and_ann(2).await;

    // Carla's question the bot answers and resolves.
    let (mut carla, first) = asked_the_bot(&hub, &mut bot, "Carla", "opening hours", "c1").await;
    bot.say_in(&first, "9 to 5", "b1").await;
    bot.send(json!({"type": "resolve", "chat_id": first})).await;
    carla.next_of("chat_ended").await;
    bot.next_of("conversation_ended").await;

    // Dora's the bot hands over to Ann, who ends it.
    let (mut dora, second) = asked_the_bot(&hub, &mut bot, "Dora", "I need a person", "d1").await;
    bot.send(json!({"type": "handover", "chat_id": second})).await;
    bot.next_of("conversation_ended").await;
    assert_eq!(agent.next_of("chat_started").await["chat_id"], second.as_str());
    agent.send(json!({"type": "end_chat", "chat_id": second})).await;
    dora.next_of("chat_ended").await;

    let counts = |row: &Value| (row["bot_resolved"].as_u64(), row["bot_handed_over"].as_u64());
    let report = report_once(&admin, |r| counts(&r["totals"]) == (Some(1), Some(1))).await;
    assert_eq!(report["totals"]["conversations"], 2, "{report}");
    // Per day too (both today), and each under its agent now: the bot and Ann.
    let days = report["day_totals"].as_array().unwrap();
    let summed = days.iter().fold((0, 0), |(r, h), d| {
        (
            r + d["bot_resolved"].as_u64().unwrap(),
            h + d["bot_handed_over"].as_u64().unwrap(),
        )
    });
    assert_eq!(summed, (1, 1), "{report}");
    let agent_row = |name: &str| {
        find_by(&report["agents"], "agent_name", name)
            .cloned()
            .unwrap_or_else(|| panic!("no agent row {name}: {report}"))
    };
    let faq = agent_row("Faq");
    assert_eq!(faq["agent_id"], "bot:Faq");
    assert_eq!(counts(&faq), (Some(1), Some(0)));
    assert_eq!(counts(&agent_row("ANN")), (Some(0), Some(1)));
}

/// The person who takes a conversation its bot handed over is measured from the hand-over,
/// not from the bot's pairing: their wait from when the customer went to the line to when
/// they took it, their first response from then to their own first line. The bot's lines
/// answer nobody for them (before, the bot's instant line was the person's first response
/// and the customer's wait ended when the bot took them).
#[tokio::test]
async fn a_person_who_takes_over_from_a_bot_is_measured_from_the_hand_over() {
    let (hub, admin, mut bot, mut ann) = hub_with_bot_and_ann(1).await;
    // Eve's conversation the bot hands over at once, Ann takes it and never writes.
    let (_eve, eves) = to_the_bot(&hub, &mut bot, "Eve").await;
    bot.say_in(&eves, "Let me find someone", "b1").await;
    bot.send(json!({"type": "handover", "chat_id": eves})).await;
    assert_eq!(ann.next_of("chat_started").await["chat_id"], eves.as_str());
    // Dora's the bot answers and hands over while Ann is full: Dora waits for her.
    let (mut dora, doras) = to_the_bot(&hub, &mut bot, "Dora").await;
    bot.say_in(&doras, "Let me find someone", "b2").await;
    bot.send(json!({"type": "handover", "chat_id": doras})).await;
    dora.next_of("queued").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    ann.send(json!({"type": "end_chat", "chat_id": eves})).await;
    let taken = ann
        .next_matching(|f| f["type"] == "chat_started" && f["chat_id"] == doras.as_str())
        .await;
    assert_eq!(taken["transfer"]["from_name"], "Faq");
    tokio::time::sleep(Duration::from_millis(300)).await;
    ann.say_in(&doras, "Hello Dora, Ann here", "a1").await;
    ann.send(json!({"type": "end_chat", "chat_id": doras})).await;
    dora.next_of("chat_ended").await;

    let report = report_once(&admin, |r| r["totals"]["bot_handed_over"] == 2).await;
    let ann_row = find_by(&report["agents"], "agent_name", "ANN")
        .cloned()
        .unwrap_or_else(|| panic!("no row for Ann: {report}"));
    let ms = |key: &str| ann_row[key].as_i64().unwrap_or_else(|| panic!("{key}: {ann_row}"));
    assert_eq!(ann_row["conversations"], 2, "{ann_row}");
    // Eve's: Ann never wrote; the bot's line is not hers.
    assert_eq!(ann_row["unanswered"], 1, "{ann_row}");
    // Dora's: one first response, Ann's own, at least 300 ms after she took it.
    assert!(ms("first_response_median_ms") >= 300, "{ann_row}");
    // Dora waited at least 400 ms for a person (the longer of the two waits).
    assert!(ms("wait_p90_ms") >= 400, "{ann_row}");
}

/// A customer who came with a question (`join.message`) sends it as their first `message`
/// once the chat starts, as the customer page does in any chat: the bot gets it once, as
/// line 1, and the archive keeps it once (the hub recorded it as well, so it came twice).
#[tokio::test]
async fn a_join_message_reaches_the_bot_once() {
    let (hub, admin, mut bot) = hub_with_bot(|_| {}).await;
    let mut customer = hub
        .customer_joining(
            json!({"type": "join", "name": "Carla", "category": "general", "message": "Where is my parcel?"}),
        )
        .await;
    let chat = customer.chat_started().await;
    bot.next_of("conversation").await;
    let ack = customer.say("Where is my parcel?", "c1").await;
    assert_eq!(ack["seq"], 1, "the page's first message is line 1");
    let line = bot.next_of("message").await;
    assert_eq!(
        (line["text"].as_str(), line["seq"].as_u64()),
        (Some("Where is my parcel?"), Some(1))
    );
    let answered = bot.say_in(&chat, "Let me look.", "b1").await;
    assert_eq!(answered["seq"], 2, "no other line came between: {answered}");
    bot.send(json!({"type": "resolve", "chat_id": chat})).await;
    customer.next_of("chat_ended").await;
    let record = eventually_archived(&admin, &chat, 2).await;
    let texts: Vec<&str> = record["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["text"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(texts, ["Where is my parcel?", "Let me look."]);
}

/// A conversation a bot took first is created once (the bot its agent); the person who
/// takes it after the hand-over is told as `conversation.assigned`, not a second creation.
#[tokio::test]
async fn a_handed_over_conversation_is_created_once_and_then_assigned() {
    let (hub, admin, mut bot) = hub_with_bot(|s| s.webhooks.allow_private = Some(true)).await;
    let (url, got) = crate::webhooks::receiver(0).await;
    crate::webhooks::register(
        &admin,
        &url,
        &[
            "conversation.created",
            "conversation.assigned",
            "conversation.status_changed",
            "message.created",
        ],
    )
    .await;
    let mut agent = hub.agent("ann", &["general"], 2).await;
    let ann = admin.agent_id("ann").await;
    let (mut customer, chat) = asked_the_bot(&hub, &mut bot, "Carla", "a person please", "c1").await;
    bot.say_in(&chat, "One moment.", "b1").await;
    bot.send(json!({"type": "handover", "chat_id": chat})).await;
    agent.next_of("chat_started").await;
    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    customer.next_of("chat_ended").await;

    // Delivered in order per conversation: once `resolved` came, every earlier event had.
    let events = loop {
        let events = crate::webhooks::delivered(&got, 1).await;
        let resolved = events
            .iter()
            .any(|(_, e)| e["type"] == "conversation.status_changed" && e["data"]["status"] == "resolved");
        if resolved {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let of = |kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|(_, e)| e["type"] == kind)
            .map(|(_, e)| e["data"].clone())
            .collect()
    };
    let created = of("conversation.created");
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        (created[0]["conversation_id"].as_str(), created[0]["agent_id"].as_str()),
        (Some(&*chat), Some("bot:Faq"))
    );
    let assigned = of("conversation.assigned");
    assert_eq!(assigned.len(), 1, "{assigned:?}");
    assert_eq!(
        (
            assigned[0]["conversation_id"].as_str(),
            assigned[0]["agent_id"].as_str(),
            assigned[0]["previous_agent_id"].as_str()
        ),
        (Some(&*chat), Some(ann.as_str()), Some("bot:Faq"))
    );
    let messages = of("message.created");
    let lines: Vec<(&str, &str, Option<&str>)> = messages
        .iter()
        .map(|m| {
            (
                m["text"].as_str().unwrap(),
                m["from"].as_str().unwrap(),
                m["via"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("a person please", "customer", None),
            ("One moment.", "agent", Some("bot"))
        ]
    );
}

/// A bot's name is held to one limit wherever it is given: the token acting as it and the
/// category naming it take the same names and refuse the same.
#[tokio::test]
async fn a_bot_name_has_one_limit_for_its_token_and_its_category() {
    let (_hub, admin) = TestHub::with_admin().await;
    let longest = "B".repeat(switchboard::core::bots::NAME_MAX_CHARS);
    let too_long = format!("{longest}B");
    admin
        .post_answering(
            201,
            "/api/admin/api-tokens",
            json!({"name": "long", "scopes": ["bot"], "bot": longest}),
        )
        .await;
    admin
        .put_answering(200, "/api/admin/category-bots/general", json!({"bot": longest}))
        .await;
    let refused = admin
        .post_answering(
            400,
            "/api/admin/api-tokens",
            json!({"name": "long", "scopes": ["bot"], "bot": too_long}),
        )
        .await;
    assert_eq!(refused["error"]["code"], "invalid_bot", "{refused}");
    let refused = admin
        .put_answering(400, "/api/admin/category-bots/general", json!({"bot": too_long}))
        .await;
    assert_eq!(refused["error"]["code"], "invalid_bot", "{refused}");
}

/// Revoking a bot's token closes its socket at once (4001, as for a session that ended),
/// and its customers are handed over as when the bot goes away.
#[tokio::test]
async fn revoking_a_bots_token_closes_its_socket_and_hands_its_customers_over() {
    let hub = TestHub::start().await;
    let admin = hub.admin().await;
    admin
        .put_answering(200, "/api/admin/category-bots/general", json!({"bot": "Faq"}))
        .await;
    let (secret, id) = bot_token_and_id(&admin, "Faq").await;
    let (mut bot, _) = bot_socket(&hub, &secret).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (mut customer, chat) = asked_the_bot(&hub, &mut bot, "Carla", "hello?", "c1").await;

    let (status, _) = admin.delete(&format!("/api/admin/api-tokens/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(bot.closed().await.map(u16::from), Some(4001));
    let taken = handed_to(&mut agent, &chat, "hello?").await;
    assert_eq!(taken["transfer"]["note"], "Faq went offline.");
    customer.next_of("transferred").await;
}

/// On several nodes, a bot token revoked on one node closes the bot's socket on the other.
#[tokio::test]
async fn a_bot_token_revoked_on_one_node_closes_its_socket_on_the_other() {
    let cluster = Cluster::start("bot-revoked").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    crate::api_tokens::both_listen_on_the_admin_bus(&cluster).await;
    let admin = alpha.admin().await;
    let (secret, id) = bot_token_and_id(&admin, "Faq").await;
    let (mut bot, _) = bot_socket(&beta, &secret).await;
    let (status, _) = admin.delete(&format!("/api/admin/api-tokens/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(bot.closed().await.map(u16::from), Some(4001));
}

/// A bot's burst to one customer, within its rate limit, once filled the customer's outbox
/// (`OUTBOUND_BUFFER`): the customer was closed as not reading and the chat ended as the
/// customer's leaving. Now the bot is refused `rate_limited` once the customer has half an
/// outbox to take, and its socket lives; the customer stays, and gets every line the bot
/// had an `ack` for. The defaults: an outbox of 256 frames, a bot burst of 400.
#[tokio::test]
async fn a_bots_burst_to_one_customer_is_refused_before_the_customer_is_closed() {
    let (hub, _admin, mut bot) = hub_with_bot(|_| {}).await;
    let (mut customer, chat) = to_the_bot(&hub, &mut bot, "Flooded").await;
    const BURST: usize = 300;
    for i in 0..BURST {
        let line =
            json!({"type": "message", "chat_id": chat, "text": format!("spam {i}"), "client_id": format!("s{i}")});
        bot.inner
            .send(tokio_tungstenite::tungstenite::Message::Text(line.to_string().into()))
            .await
            .expect("the bot's socket takes the burst");
    }
    // An answer to each line: its ack, or rate_limited.
    let mut acked = std::collections::BTreeSet::new();
    let mut refused = 0;
    while acked.len() + refused < BURST {
        let frame = bot.recv_within(Duration::from_secs(10)).await.unwrap_or_else(|| {
            panic!(
                "the bot's socket answers every line: {} acked, {refused} refused",
                acked.len()
            )
        });
        match frame["type"].as_str() {
            Some("ack") => {
                acked.insert(frame["client_id"].as_str().unwrap().trim_start_matches('s').to_string());
            }
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                refused += 1;
            }
            _ => {}
        }
    }
    assert!(refused > 0, "the burst was refused in part");
    // The customer, reading only now, gets every acknowledged line.
    let mut got = std::collections::BTreeSet::new();
    while got.len() < acked.len() {
        let frame = customer
            .recv_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("the customer stays connected: {} of {} lines", got.len(), acked.len()));
        if frame["type"] == "message" {
            got.insert(frame["text"].as_str().unwrap().trim_start_matches("spam ").to_string());
        }
    }
    assert_eq!(got, acked);
    // Still the bot's conversation, with both sockets open.
    customer.say("still here", "c1").await;
    let heard = bot.next_of("message").await;
    assert_eq!(heard["text"], "still here", "{heard}");
    hub.stop().await;
}

/// The public category list's `bot_online` for General.
async fn general_bot_online(hub: &Endpoint) -> Value {
    let (status, categories) = get(hub, "/api/categories").await;
    assert_eq!(status, 200, "{categories}");
    let general = with_id(&categories, "general");
    assert_eq!(general["agents_online"], false, "{general}");
    general["bot_online"].clone()
}

/// A category served by a connected bot, with no agent online, is not "nobody online":
/// the category list and the widget say its bot answers, on the bot's node and on another
/// node, and say so no more once the bot is gone.
#[tokio::test]
async fn a_category_whose_bot_is_connected_is_answered_with_nobody_online() {
    let (hub, admin, bot) = hub_with_bot(|_| {}).await;
    assert_eq!(general_bot_online(&hub).await, true);
    // The admin sees it online too.
    let admin_online = async || {
        let (_, view) = admin.get("/api/admin/category-bots").await;
        find_by(&view["categories"], "category", "general")
            .map(|c| c["online"].clone())
            .unwrap()
    };
    assert_eq!(admin_online().await, true);
    let widget = get_json(&hub, "/api/widget").await;
    assert_eq!(widget["bot_online"], true, "{widget}");
    drop(bot);
    let gone = polled(Duration::from_secs(10), async || {
        (general_bot_online(&hub).await == false).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the bot's leaving never reached the category list");
    assert_eq!(admin_online().await, false);
    hub.stop().await;

    let cluster = Cluster::start("bot-online").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    let admin = alpha.admin().await;
    let secret = faq_for_general(&admin).await;
    let (_bot, _) = bot_socket(&beta, &secret).await;
    let seen = polled(Duration::from_secs(10), async || {
        (general_bot_online(&alpha).await == true).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "the node without the bot's socket never said its bot answers"
    );
}
