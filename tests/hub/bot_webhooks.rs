//! Webhook bots end to end: a bot with an outgoing URL (a real HTTP server the test starts
//! on loopback, reachable because `WEBHOOK_ALLOW_PRIVATE` is on) is POSTed what a socket
//! bot is sent, signed with the secret shown when its URL was set, and answers the
//! customer over the HTTP API with its token; it hands over the same way. A bot that takes
//! the calls and never answers hands over after the timeout; one whose URL fails hands
//! over at once; a private URL is refused without the setting, when set and at each call;
//! a starting hub knows the bots in the store; revoking a bot's token stops its calls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::bots::{bot_token, handed_to};
use crate::common::*;

/// How the test's bot behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Answers "hours" with the opening hours over the API, hands anything else over.
    Answers,
    /// Takes every call (200) and never answers.
    Silent,
    /// Answers every call 500.
    Fails,
    /// Takes the first `conversation` call and never answers it; the rest as `Answers`.
    HangsOnTheFirst,
}

/// The calls the bot got: headers and raw body.
pub(crate) type Calls = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A real HTTP bot on a loopback port, acting on `hub` with `token`: its URL and its calls.
async fn bot_server(hub: String, token: String, behaviour: Behaviour) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let hung = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = axum::Router::new().route(
        "/bot",
        axum::routing::post({
            let calls = calls.clone();
            move |headers: HeaderMap, body: String| async move {
                calls.lock().unwrap().push((headers, body.clone()));
                let frame: Value = serde_json::from_str(&body).unwrap();
                match behaviour {
                    Behaviour::Fails => return StatusCode::INTERNAL_SERVER_ERROR,
                    Behaviour::Silent => return StatusCode::OK,
                    Behaviour::HangsOnTheFirst
                        if frame["type"] == "conversation" && !hung.swap(true, std::sync::atomic::Ordering::SeqCst) =>
                    {
                        return std::future::pending::<StatusCode>().await;
                    }
                    Behaviour::HangsOnTheFirst | Behaviour::Answers => {}
                }
                if frame["type"] == "message" && frame["from"] == "customer" {
                    // Answered after this call's own answer, as a real bot would.
                    let (hub, token) = (hub.clone(), token.clone());
                    tokio::spawn(async move { answer(&hub, &token, &frame).await });
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/bot"), calls)
}

/// The bot's answer to a customer's line, over the HTTP API.
async fn answer(hub: &str, token: &str, line: &Value) {
    let chat = line["chat_id"].as_str().unwrap();
    let client = reqwest::Client::new();
    let text = line["text"].as_str().unwrap();
    let (path, body) = if text.contains("hours") {
        ("messages", json!({"text": "We are open 9 to 5.", "client_id": "b1"}))
    } else {
        ("handover", json!({"note": "wants a person"}))
    };
    let answered = client
        .post(format!("{hub}/api/bot/conversations/{chat}/{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = answered.status().as_u16();
    let answer = answered.text().await.unwrap();
    assert!(status == 200 || status == 204, "{path}: {status} {answer}");
    if path == "messages" {
        let ack: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            (ack["type"].as_str(), ack["client_id"].as_str()),
            (Some("ack"), Some("b1")),
            "{ack}"
        );
    }
}

/// A hub whose General category names bot Faq, called at the URL of a test bot behaving
/// as `behaviour`: the hub, the admin, the bot's calls and the secret they are signed with.
async fn hub_with_webhook_bot(
    behaviour: Behaviour,
    tweak: impl FnOnce(&mut switchboard::config::Settings),
) -> (TestHub, Api, Calls, String) {
    let hub = TestHub::with(|s| {
        s.webhooks.allow_private = Some(true);
        tweak(s);
    })
    .await;
    let admin = hub.admin().await;
    let (calls, secret) = webhook_bot(&admin, hub.url(""), behaviour).await;
    (hub, admin, calls, secret)
}

/// A hub whose webhooks may reach this machine (the test bots listen on loopback) and
/// whose General category names bot Faq, not given an address yet: the hub and the admin.
async fn hub_naming_faq(tweak: impl FnOnce(&mut switchboard::config::Settings)) -> (TestHub, Api) {
    let hub = TestHub::with(|s| {
        s.webhooks.allow_private = Some(true);
        tweak(s);
    })
    .await;
    let admin = hub.admin().await;
    admin
        .put_answering(200, "/api/admin/category-bots/general", json!({"bot": "Faq"}))
        .await;
    (hub, admin)
}

/// Agent Ann in General, and customer Carla, who asked "hello?" in a chat with bot Faq
/// once the bot was called for her conversation and her line: Ann, the chat, Carla.
async fn carla_asking_faq(hub: &TestHub, calls: &Calls) -> (Ws, String, Ws) {
    let agent = hub.agent("ann", &["general"], 2).await;
    let mut customer = hub.customer("Carla", "general").await;
    let chat = customer.chat_started().await;
    customer.say("hello?", "c1").await;
    while calls.lock().unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (agent, chat, customer)
}

/// Bot Faq taken out: its chat with Carla is handed to Ann, and a new customer goes to
/// the line (Ann) rather than to the bot.
async fn faq_gone_to_ann(hub: &TestHub, agent: &mut Ws, chat: &str) {
    let taken = handed_to(agent, chat, "hello?").await;
    assert_eq!(taken["transfer"]["note"], "Faq went offline.");
    let mut next = hub.customer("Dora", "general").await;
    assert_eq!(next.next_of("chat_started").await["peer_name"], "ANN");
}

/// Through `admin`: General names bot Faq, which a test bot behaving as `behaviour`
/// answers as, at `answers_at` (a hub's address); its calls and their secret.
pub(crate) async fn webhook_bot(admin: &Api, answers_at: String, behaviour: Behaviour) -> (Calls, String) {
    admin
        .put_answering(200, "/api/admin/category-bots/general", json!({"bot": "Faq"}))
        .await;
    let token = bot_token(admin, "Faq").await;
    let (url, calls) = bot_server(answers_at, token, behaviour).await;
    let set = admin
        .put_answering(200, "/api/admin/bot-hooks/Faq", json!({"url": url}))
        .await;
    assert_eq!(
        (set["bot"].as_str(), set["url"].as_str()),
        (Some("Faq"), Some(url.as_str()))
    );
    let secret = set["secret"].as_str().unwrap().to_string();
    let (_, listed) = admin.get("/api/admin/bot-hooks").await;
    assert_eq!(listed, json!([{"bot": "Faq", "url": url}]));
    (calls, secret)
}

/// The calls' frames, once `n` came, each checked signed with `secret`.
pub(crate) async fn calls_signed(calls: &Calls, n: usize, secret: &str) -> Vec<Value> {
    for _ in 0..300 {
        let got = calls.lock().unwrap().clone();
        if got.len() >= n {
            return got
                .iter()
                .map(|(headers, body)| {
                    crate::webhooks::assert_signed(headers, body, secret);
                    let frame: Value = serde_json::from_str(body).unwrap();
                    assert_eq!(headers["switchboard-event-type"], frame["type"].as_str().unwrap());
                    frame
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the bot was not called {n} times: {:?}", calls.lock().unwrap().len());
}

#[tokio::test]
async fn a_webhook_bot_answers_over_the_api_and_hands_over() {
    let (hub, _admin, calls, secret) = hub_with_webhook_bot(Behaviour::Answers, |_| {}).await;
    let mut agent = hub.agent("ann", &["general"], 2).await;
    let mut customer = hub.customer("Carla", "general").await;
    let started = customer.next_of("chat_started").await;
    assert_eq!(started["peer_name"], "Faq");
    let chat = started["chat_id"].as_str().unwrap().to_string();

    customer.say("what are your opening hours?", "c1").await;
    // The bot may answer before the customer's own ack comes (that waits for durability).
    let answer = customer.seen_or_next_matching(|f| f["type"] == "message").await;
    assert_eq!(
        (answer["text"].as_str(), answer["from"].as_str(), answer["via"].as_str()),
        (Some("We are open 9 to 5."), Some("agent"), Some("bot"))
    );

    customer.say("I need a person", "c2").await;
    let taken = handed_to(&mut agent, &chat, "what are your opening hours?").await;
    assert_eq!(taken["transfer"]["note"], "wants a person");
    assert_eq!(taken["messages"][1]["via"], "bot");
    customer.next_of("transferred").await;

    // What the bot was sent, signed: the conversation, each customer line, and its end.
    let frames = calls_signed(&calls, 4, &secret).await;
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["conversation", "message", "message", "conversation_ended"]);
    assert_eq!(frames[0]["chat_id"], chat.as_str());
    assert_eq!(frames[0]["customer_name"], "Carla");
    assert_eq!(frames[3]["why"], "asked");
}

#[tokio::test]
async fn a_webhook_bot_that_never_answers_hands_over_after_the_timeout() {
    let (hub, _admin, _calls, _) =
        hub_with_webhook_bot(Behaviour::Silent, |s| s.bot_reply_timeout = Duration::from_millis(300)).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let mut customer = hub.customer("Carla", "general").await;
    let chat = customer.chat_started().await;
    customer.say("hello?", "c1").await;
    let taken = handed_to(&mut agent, &chat, "hello?").await;
    assert_eq!(taken["transfer"]["note"], "Faq did not answer in time.");
}

/// A customer of General goes to Ann at once: bot Faq could not be reached.
async fn handed_over_at_once(hub: &TestHub) {
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let mut customer = hub.customer("Carla", "general").await;
    let chat = customer.chat_started().await;
    let taken = agent.next_of("chat_started").await;
    assert_eq!(taken["chat_id"], chat.as_str());
    assert_eq!(taken["transfer"]["note"], "Faq could not be reached.");
}

#[tokio::test]
async fn a_webhook_bot_whose_url_fails_hands_over_at_once() {
    let (hub, _admin, _calls, _) = hub_with_webhook_bot(Behaviour::Fails, |_| {}).await;
    handed_over_at_once(&hub).await;
}

#[tokio::test]
async fn a_private_bot_url_is_refused_and_the_api_is_for_the_bots_own_conversations() {
    let (hub, admin) = TestHub::with_admin().await;
    // No live token acts as the bot yet: it could never answer, so it gets no URL.
    let refused = admin
        .put_answering(
            400,
            "/api/admin/bot-hooks/Faq",
            json!({"url": "https://example.com/bot"}),
        )
        .await;
    assert_eq!(refused["error"]["code"], "unknown_bot", "{refused}");
    let token = bot_token(&admin, "Faq").await;
    for url in [
        "http://127.0.0.1:9/bot",
        "http://169.254.169.254/",
        "ftp://example.com/",
    ] {
        let refused = admin
            .put_answering(400, "/api/admin/bot-hooks/Faq", json!({"url": url}))
            .await;
        assert_eq!(refused["error"]["code"], "invalid_url", "{url}: {refused}");
    }

    let bot = Api::bearer(&hub, &token);
    refusal(
        bot.post("/api/bot/conversations/nope/messages", json!({"text": "hi"}))
            .await,
        404,
        "not_your_chat",
    );
    let (status, refused) = admin.post("/api/bot/conversations/nope/resolve", json!({})).await;
    assert_eq!(status, 401, "a person's session is no bot token: {refused}");
    let reader = admin
        .post_answering(201, "/api/admin/api-tokens", json!({"name": "r", "scopes": ["read"]}))
        .await;
    let reader = Api::bearer(&hub, reader["secret"].as_str().unwrap());
    refusal(
        reader.post("/api/bot/conversations/nope/resolve", json!({})).await,
        403,
        "missing_scope",
    );
}

/// A hand-over's body (optional JSON) sent chunked past the JSON limit is 413
/// `body_too_large` in JSON, as on every JSON route: it was axum's plain-text 413.
#[tokio::test]
async fn a_handover_body_streamed_over_the_limit_is_a_json_413() {
    let hub = TestHub::start().await;
    let admin = hub.admin().await;
    let token = bot_token(&admin, "Faq").await;
    let note = format!("{{\"note\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        note.into_bytes().chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let answer = reqwest::Client::new()
        .post(hub.url("/api/bot/conversations/c1/handover"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    let body: Value = answer.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], "body_too_large", "{body}");
}

/// A hub started over a store holding a webhook bot knows it: no socket tells it that the
/// bot exists, so it reads the bots' URLs, and the categories naming them, as it starts.
#[tokio::test]
async fn a_starting_hub_calls_the_webhook_bots_in_the_store() {
    let store: switchboard::store::SharedStore = Arc::new(switchboard::store::MemoryStore::new());
    let allowed = |s: &mut switchboard::config::Settings| s.webhooks.allow_private = Some(true);
    let first = TestHub::with_store(store.clone(), allowed).await;
    let admin = first.admin().await;
    let (calls, secret) = webhook_bot(&admin, first.url(""), Behaviour::Silent).await;
    drop(admin);
    first.stop().await;

    let second = TestHub::with_store(store, allowed).await;
    let mut customer = second.customer("Carla", "general").await;
    let started = customer.next_of("chat_started").await;
    assert_eq!(started["peer_name"], "Faq");
    let frames = calls_signed(&calls, 1, &secret).await;
    assert_eq!(frames[0]["type"], "conversation");
    assert_eq!(frames[0]["chat_id"], started["chat_id"]);
}

/// Revoking a webhook bot's token stops its calls: the customers it holds are handed over
/// at once, as when a socket bot's token is revoked, and new ones go to the line.
#[tokio::test]
async fn revoking_a_webhook_bots_token_hands_its_customers_over() {
    let (hub, admin) = hub_naming_faq(|_| {}).await;
    let (token, id) = crate::bots::bot_token_and_id(&admin, "Faq").await;
    let (url, calls) = bot_server(hub.url(""), token, Behaviour::Silent).await;
    admin
        .put_answering(200, "/api/admin/bot-hooks/Faq", json!({"url": url}))
        .await;
    let (mut agent, chat, _customer) = carla_asking_faq(&hub, &calls).await;

    let (status, _) = admin.delete(&format!("/api/admin/api-tokens/{id}")).await;
    assert_eq!(status, 200);
    faq_gone_to_ann(&hub, &mut agent, &chat).await;
    let (_, listed) = admin.get("/api/admin/bot-hooks").await;
    assert_eq!(listed, json!([]), "a bot without a live token is listed no more");

    // A new token for the bot: it is called at its URL again.
    bot_token(&admin, "Faq").await;
    let mut again = hub.customer("Erik", "general").await;
    assert_eq!(again.next_of("chat_started").await["peer_name"], "Faq");
}

/// A bot URL set while private addresses were allowed is refused at each call once they
/// are not: its customers are handed over at once rather than sent into the network.
#[tokio::test]
async fn a_private_bot_url_is_refused_at_the_call_too() {
    let store: switchboard::store::SharedStore = Arc::new(switchboard::store::MemoryStore::new());
    let allowed = TestHub::with_store(store.clone(), |s| s.webhooks.allow_private = Some(true)).await;
    let admin = allowed.admin().await;
    let (calls, _) = webhook_bot(&admin, allowed.url(""), Behaviour::Silent).await;
    drop(admin);
    allowed.stop().await;

    let hub = TestHub::with_store(store, |_| {}).await;
    handed_over_at_once(&hub).await;
    assert!(
        calls.lock().unwrap().is_empty(),
        "nothing was sent to the private address"
    );
}

/// One bot's calls went one at a time: a conversation whose call hung (the bot slow for
/// it) held up every other conversation of the bot until that call's timeout. Another
/// conversation's calls go meanwhile, and its customer is answered.
#[tokio::test]
async fn a_hanging_call_holds_up_no_other_conversation_of_the_bot() {
    // Calls time out after 10 s; the reply timer, as long, is not what ends anything here.
    let (hub, _admin, calls, _) = hub_with_webhook_bot(Behaviour::HangsOnTheFirst, |s| {
        s.bot_reply_timeout = Duration::from_secs(10)
    })
    .await;
    let mut first = hub.customer("First", "general").await;
    let first_chat = first.chat_started().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while calls.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the first call never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut second = hub.customer("Second", "general").await;
    second.chat_started().await;
    second.say("what are your opening hours?", "c1").await;
    let answer = second.seen_or_next_matching(|f| f["type"] == "message").await;
    assert_eq!(answer["text"], "We are open 9 to 5.");
    // First's call is still under way: it has not timed out and handed First over.
    still_the_bots(&mut first, &first_chat).await;
    hub.stop().await;
}

/// A webhook bot's calls queued when the admin replaced its URL were dropped: its
/// customer's frames never reached the bot. They go to the new URL, after the call that
/// was under way at the old one, which, failing there, is made again at the new one.
#[tokio::test]
async fn a_replaced_bot_url_gets_the_calls_queued_before_the_change() {
    let (hub, admin, hanging, mut first, chat) = an_address_queued_behind_a_hanging_call(Duration::from_secs(1)).await;
    let (new_url, new_calls) = bot_server(hub.url(""), String::new(), Behaviour::Silent).await;
    let set = admin
        .put_answering(200, "/api/admin/bot-hooks/Faq", json!({"url": new_url}))
        .await;
    let frames = calls_signed(&new_calls, 2, set["secret"].as_str().unwrap()).await;
    let got: Vec<(&str, &str)> = frames
        .iter()
        .map(|f| (f["type"].as_str().unwrap(), f["chat_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("conversation", chat.as_str()), ("customer_email", chat.as_str())]
    );
    assert_eq!(frames[1]["email"], "first@example.com");
    assert_eq!(hanging.lock().unwrap().len(), 1, "calls to the replaced URL");
    still_the_bots(&mut first, &chat).await;
    hub.stop().await;
}

/// A webhook bot's hook removed while a conversation's calls are queued (and no socket):
/// the customer goes to people at once, not left to a bot nobody calls.
#[tokio::test]
async fn a_removed_bot_url_hands_over_the_conversations_with_calls_queued() {
    // Calls time out after 10 s: the hand-over is the removal's, not a failed call's.
    let (hub, admin, hanging, mut first, chat) = an_address_queued_behind_a_hanging_call(Duration::from_secs(10)).await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (status, _) = admin.delete("/api/admin/bot-hooks/Faq").await;
    assert_eq!(status, 204);
    let taken = agent.next_of("chat_started").await;
    assert_eq!(taken["chat_id"], chat.as_str());
    assert_eq!(taken["transfer"]["note"], "Faq went offline.");
    first.next_of("transferred").await;
    assert_eq!(hanging.lock().unwrap().len(), 1, "no call after the removal");
    hub.stop().await;
}

/// A webhook bot's calls queued behind a slow one were made for conversations that had
/// ended meanwhile (the customer left, or was handed over). Only their end is still told.
#[tokio::test]
async fn a_conversation_ended_meanwhile_gets_only_its_end_called() {
    let (hub, _admin, hanging, mut first) = hub_with_a_hanging_bot(Duration::from_secs(1)).await;
    // First's line queues behind its conversation's hanging call; then First leaves.
    let chat = first.chat_started().await;
    first.say("hello?", "c1").await;
    first.send(json!({"type": "leave"})).await;
    let frames = |hanging: &Calls| -> Vec<Value> {
        let calls = hanging.lock().unwrap();
        calls
            .iter()
            .map(|(_, body)| serde_json::from_str(body).unwrap())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !frames(&hanging)
        .iter()
        .any(|f| f["type"] == "conversation_ended" && f["chat_id"] == chat)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never told the end: {:?}",
            frames(&hanging)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<Value> = frames(&hanging)
        .into_iter()
        .filter(|f| f["chat_id"] == chat)
        .map(|f| f["type"].clone())
        .collect();
    assert_eq!(kinds, ["conversation", "conversation_ended"], "called after its end");
    hub.stop().await;
}

/// A hub whose General names bot Faq, called at a [`hanging_receiver`] (calls time out
/// after `timeout`, the bot's reply timeout), with customer First's call in hand: the hub,
/// the admin, the calls, First.
async fn hub_with_a_hanging_bot(timeout: Duration) -> (TestHub, Api, Calls, Ws) {
    let (hub, admin) = hub_naming_faq(|s| s.bot_reply_timeout = timeout).await;
    bot_token(&admin, "Faq").await;
    let (hang_url, hanging) = hanging_receiver().await;
    admin
        .put_answering(200, "/api/admin/bot-hooks/Faq", json!({"url": hang_url}))
        .await;
    let first = hub.customer("First", "general").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hanging.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the first call never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (hub, admin, hanging, first)
}

/// As [`hub_with_a_hanging_bot`], First having given their address, whose call is queued
/// behind their conversation's hanging one (an address, not a line: no reply timer runs):
/// the hub, the admin, the calls, First and their conversation.
async fn an_address_queued_behind_a_hanging_call(timeout: Duration) -> (TestHub, Api, Calls, Ws, String) {
    let (hub, admin, hanging, mut first) = hub_with_a_hanging_bot(timeout).await;
    let chat = first.chat_started().await;
    first.send(json!({"type": "email", "email": "first@example.com"})).await;
    (hub, admin, hanging, first, chat)
}

/// Checks that `customer`'s conversation `chat` is still the bot's: not handed over.
async fn still_the_bots(customer: &mut Ws, chat: &str) {
    let handed = customer.drain_of("transferred").await;
    assert!(handed.is_empty(), "{chat} was handed over: {handed:?}");
}

/// A receiver that takes every call and never answers (each call lasts its timeout): its
/// URL and its calls.
async fn hanging_receiver() -> (String, Calls) {
    let hanging: Calls = Arc::default();
    let app = axum::Router::new().route(
        "/hang",
        axum::routing::post({
            let hanging = hanging.clone();
            move |headers: HeaderMap, body: String| async move {
                hanging.lock().unwrap().push((headers, body));
                std::future::pending::<StatusCode>().await
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hang", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hanging)
}

/// A webhook bot whose only token expires is called no more from its expiry on: its
/// customers are handed over, as at a revocation, and new ones go to the line; a socket
/// bot's socket opened with an expiring token closes at its expiry (4001).
#[tokio::test]
async fn a_bot_whose_token_expires_is_taken_out_as_at_a_revocation() {
    let (hub, admin) = hub_naming_faq(|_| {}).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let expiring =
        |bot: &str| json!({"name": format!("{bot} bot"), "scopes": ["bot"], "bot": bot, "expires_at": now + 3_000});
    let made = admin
        .post_answering(201, "/api/admin/api-tokens", expiring("Faq"))
        .await;
    let (url, calls) = bot_server(
        hub.url(""),
        made["secret"].as_str().unwrap().to_string(),
        Behaviour::Silent,
    )
    .await;
    admin
        .put_answering(200, "/api/admin/bot-hooks/Faq", json!({"url": url}))
        .await;
    let socket_token = admin
        .post_answering(201, "/api/admin/api-tokens", expiring("Sockbot"))
        .await;
    let (mut sockbot, _) = crate::bots::bot_socket(&hub, socket_token["secret"].as_str().unwrap()).await;

    let (mut agent, chat, _customer) = carla_asking_faq(&hub, &calls).await;
    // Past the expiry: handed over, as at a revocation (the bot's timeout is far longer).
    faq_gone_to_ann(&hub, &mut agent, &chat).await;
    assert_eq!(sockbot.closed().await.map(u16::from), Some(4001));
}
