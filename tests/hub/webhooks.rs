//! Signed webhooks end to end: an admin registers an endpoint (a real HTTP receiver the
//! test starts on loopback, reachable because `WEBHOOK_ALLOW_PRIVATE` is on); a customer
//! chats, the agent answers and resolves; the receiver gets the conversation's events in
//! order, each signed over `timestamp.body` with the secret shown at registration. A
//! receiver answering 500 gets the event again; without the setting a loopback URL is
//! refused at registration and, for one registered earlier, at delivery; an agent cannot
//! register an endpoint; a logged delivery sent again reaches the receiver once more; an
//! endpoint failing for a day is disabled and each admin mailed once (a real SMTP sink).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard::store::{DeliveryStatus, MemoryStore, SharedStore};

use crate::common::*;

/// What the receiver got: each delivery's headers and body, and how it answered (0: not
/// at all, held).
#[derive(Default)]
pub(crate) struct Received {
    pub deliveries: Vec<(HeaderMap, String, u16)>,
    /// Answers 500 to this many requests first.
    pub fail_first: usize,
    /// Holds this many requests first, never answering them (until the sender goes away).
    pub hold_first: usize,
    /// Answers every other request only after this long (a slow receiver).
    pub answer_after: Duration,
}

/// A hub that delivers to receivers on loopback (as [`receiver`]), and its admin signed in.
pub(crate) async fn hub_delivering_to_loopback() -> (TestHub, Api) {
    let hub = TestHub::with(|s| s.webhooks.allow_private = Some(true)).await;
    let admin = hub.admin().await;
    (hub, admin)
}

/// A real HTTP receiver on a loopback port: its URL and what it got.
pub(crate) async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Received>>) {
    receiver_as(Received {
        fail_first,
        ..Received::default()
    })
    .await
}

/// [`receiver`] answering as `behaviour` says.
pub(crate) async fn receiver_as(behaviour: Received) -> (String, Arc<Mutex<Received>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    receiver_on(listener, behaviour)
}

/// [`receiver_as`] on `listener`.
fn receiver_on(listener: tokio::net::TcpListener, behaviour: Received) -> (String, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(behaviour));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let got = got.clone();
            move |headers: HeaderMap, body: String| async move {
                let (status, wait) = {
                    let mut got = got.lock().unwrap();
                    let status = if got.hold_first > 0 {
                        got.hold_first -= 1;
                        None
                    } else if got.fail_first > 0 {
                        got.fail_first -= 1;
                        Some(StatusCode::INTERNAL_SERVER_ERROR)
                    } else {
                        Some(StatusCode::OK)
                    };
                    got.deliveries.push((headers, body, status.map_or(0, |s| s.as_u16())));
                    (status, got.answer_after)
                };
                let Some(status) = status else {
                    return std::future::pending().await;
                };
                tokio::time::sleep(wait).await;
                (status, "thanks")
            }
        }),
    );
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// The deliveries answered 2xx, once `n` of them came (or fails after 15 s).
pub(crate) async fn delivered(got: &Arc<Mutex<Received>>, n: usize) -> Vec<(HeaderMap, Value)> {
    delivered_within(got, n, Duration::from_secs(15)).await
}

/// [`delivered`], failing after `wait`.
pub(crate) async fn delivered_within(got: &Arc<Mutex<Received>>, n: usize, wait: Duration) -> Vec<(HeaderMap, Value)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let ok: Vec<(HeaderMap, Value)> = got
            .lock()
            .unwrap()
            .deliveries
            .iter()
            .filter(|(_, _, status)| *status == 200)
            .map(|(h, b, _)| (h.clone(), serde_json::from_str(b).unwrap()))
            .collect();
        if ok.len() >= n {
            return ok;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} deliveries came: {:?}",
            ok.len(),
            ok.iter().map(|(_, b)| b["type"].clone()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a delivery's signature as a receiver would, from its raw body.
pub(crate) fn assert_signed(headers: &HeaderMap, body: &str, secret: &str) {
    let timestamp = headers["switchboard-timestamp"].to_str().unwrap();
    let ts: i64 = timestamp.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 300, "a fresh timestamp: {ts}");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let wanted = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["switchboard-signature"].to_str().unwrap(), wanted, "{body}");
}

/// The events of a conversation's life (created, the customer's line, the agent's,
/// resolved), in that order, are what came.
pub(crate) fn assert_a_conversations_life(deliveries: &[(HeaderMap, Value)]) {
    let types: Vec<&str> = deliveries.iter().map(|(_, b)| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "conversation.created",
            "message.created",
            "message.created",
            "conversation.status_changed"
        ],
        "{deliveries:?}"
    );
}

pub(crate) async fn register(admin: &Api, url: &str, events: &[&str]) -> Value {
    admin
        .post_answering(201, "/api/admin/webhooks", json!({"url": url, "events": events}))
        .await
}

const ALL: [&str; 5] = [
    "conversation.created",
    "conversation.status_changed",
    "message.created",
    "rating.given",
    "offline_message.created",
];

#[tokio::test]
async fn a_conversation_s_life_reaches_the_receiver_in_order_and_signed() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (url, got) = receiver(0).await;
    let endpoint = register(&admin, &url, &ALL).await;
    let secret = endpoint["secret"].as_str().expect("the secret, shown once").to_string();
    assert!(secret.len() >= 32, "{endpoint}");
    let (_, listed) = admin.get("/api/admin/webhooks").await;
    assert_eq!(listed[0]["url"], url, "{listed}");
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is not shown again: {listed}"
    );

    let (mut ann, mut carla, chat) = hub.agent_and_customer_in_a_chat().await;
    carla.say("Hello, my order is late", "c1").await;
    ann.next_of("message").await;
    ann.say_in(&chat, "Let me look at it", "a1").await;
    carla.next_of("message").await;
    // An internal note is never an event.
    ann.note_in(&chat, "customer seems upset", "n1").await;
    resolved(&mut ann, &mut carla, &chat).await;

    let deliveries = delivered(&got, 4).await;
    assert_a_conversations_life(&deliveries);
    let bodies: Vec<&Value> = deliveries.iter().map(|(_, b)| b).collect();
    assert_eq!(bodies[0]["data"]["conversation_id"], chat);
    assert_eq!(
        (bodies[1]["data"]["from"].as_str(), bodies[1]["data"]["text"].as_str()),
        (Some("customer"), Some("Hello, my order is late"))
    );
    assert_eq!(
        (bodies[2]["data"]["from"].as_str(), bodies[2]["data"]["text"].as_str()),
        (Some("agent"), Some("Let me look at it"))
    );
    assert_eq!(
        (
            bodies[3]["data"]["status"].as_str(),
            bodies[3]["data"]["previous_status"].as_str()
        ),
        (Some("resolved"), Some("open")),
        "{}",
        bodies[3]
    );
    for (headers, body) in &deliveries {
        assert!(body["id"].is_string() && body["created_at"].is_i64(), "{body}");
        assert_eq!(headers["switchboard-event-id"].to_str().unwrap(), body["id"]);
    }
    for (headers, raw, _) in &got.lock().unwrap().deliveries {
        assert_signed(headers, raw, &secret);
        assert!(!raw.contains("customer seems upset"), "a note went out: {raw}");
    }

    // The delivery log shows each, delivered, with the receiver's answer: recorded once
    // the hub has read the answer, a moment after the receiver sent it.
    let id = endpoint["id"].as_str().unwrap();
    let log = logged_when(&admin, id, |log| {
        log.len() >= 4 && log.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let newest = &log[0];
    assert_eq!(newest["status"], "delivered", "{newest}");
    assert_eq!(newest["attempts"][0]["status_code"], 200, "{newest}");
    assert_eq!(newest["attempts"][0]["excerpt"], "thanks", "{newest}");
    assert!(newest["attempts"][0]["latency_ms"].is_u64(), "{newest}");
}

#[tokio::test]
async fn a_receiver_answering_500_gets_the_event_again() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (url, got) = receiver(1).await;
    let endpoint = register(&admin, &url, &["conversation.created"]).await;
    let (_ann, _carla, chat) = hub.agent_and_customer_in_a_chat().await;

    let deliveries = delivered(&got, 1).await;
    assert_eq!(deliveries[0].1["data"]["conversation_id"], chat);
    let all: Vec<(String, u16)> = got
        .lock()
        .unwrap()
        .deliveries
        .iter()
        .map(|(_, body, status)| (body.clone(), *status))
        .collect();
    assert_eq!(
        all.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [500, 200],
        "refused once, then taken"
    );
    assert_eq!(all[0].0, all[1].0, "the same event, the same body");
    let id = endpoint["id"].as_str().unwrap();
    let codes = |log: &[Value]| -> Vec<Value> {
        log.first()
            .and_then(|d| d["attempts"].as_array())
            .map(|a| a.iter().map(|a| a["status_code"].clone()).collect())
            .unwrap_or_default()
    };
    let log = logged_when(&admin, id, |log| codes(log).len() >= 2).await;
    assert_eq!(codes(&log), [json!(500), json!(200)], "{log:?}");
}

/// Endpoint `id`'s delivery log once `ready` holds of it: an attempt is logged once the
/// hub has read the answer, a moment after the receiver sent it.
pub(crate) async fn logged_when(admin: &Api, id: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, log) = admin.get(&format!("/api/admin/webhooks/{id}/deliveries")).await;
        assert_eq!(status, 200, "{log}");
        let log = log.as_array().cloned().unwrap_or_default();
        if ready(&log) {
            return log;
        }
        assert!(std::time::Instant::now() < deadline, "never as wanted: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The receiver is down (nothing listens on its port) while a conversation lives its
/// life: the deliveries fail and are retried; once it is back it gets every event, each
/// once at least, in the conversation's order.
#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_in_order_once_it_is_back() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    // A port the kernel never hands out, so nothing else takes it while the receiver is down.
    let port = crate::mongod::unassigned_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    register(&admin, &url, &ALL).await;

    let (mut ann, mut carla, chat) = hub.agent_and_customer_in_a_chat().await;
    carla.say("Hello, my order is late", "c1").await;
    ann.next_of("message").await;
    ann.say_in(&chat, "Let me look at it", "a1").await;
    carla.next_of("message").await;
    resolved(&mut ann, &mut carla, &chat).await;
    // Down long enough for the first delivery to fail twice (tries after 0 s, 1 s, 3 s...).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, log) = admin.get("/api/admin/webhooks").await;
        let id = log[0]["id"].as_str().unwrap().to_string();
        let (_, deliveries) = admin.get(&format!("/api/admin/webhooks/{id}/deliveries")).await;
        let failed = deliveries
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["attempts"].as_array().map_or(0, Vec::len))
            .max()
            .unwrap_or(0);
        if failed >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never tried twice: {deliveries}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (_, got) = receiver_on(listener, Received::default());
    let deliveries = delivered_within(&got, 4, Duration::from_secs(60)).await;
    assert_a_conversations_life(&deliveries[..4]);
    assert_eq!(deliveries[0].1["data"]["conversation_id"], chat);
}

/// A receiver that is not there: the delivery log says why ("Connection refused"), and
/// never the URL, whose query here holds the receiver's key.
#[tokio::test]
async fn a_failed_delivery_says_why_and_never_the_url() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let port = crate::mongod::unassigned_port();
    let endpoint = register(
        &admin,
        &format!("http://127.0.0.1:{port}/hook?api_key=TOPSECRET123"),
        &ALL,
    )
    .await;
    let id = endpoint["id"].as_str().unwrap();
    let (mut ann, mut carla, chat) = hub.agent_and_customer_in_a_chat().await;
    resolved(&mut ann, &mut carla, &chat).await;
    let log = logged_when(&admin, id, |log| {
        log.iter()
            .any(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let attempt = log
        .iter()
        .find_map(|d| d["attempts"].as_array().and_then(|a| a.first()))
        .unwrap();
    let why = attempt["excerpt"].as_str().unwrap();
    assert!(why.contains("Connection refused"), "{why}");
    assert!(!why.contains("TOPSECRET") && !why.contains("/hook"), "{why}");
}

/// A receiver that redirects is not followed (the redirect's target never hears of the
/// event; the attempt is logged as failed with the 307); one answering 10 MB has its
/// delivery taken, the answer read up to the cap and logged as a short excerpt.
#[tokio::test]
async fn a_redirect_is_not_followed_and_a_huge_answer_is_cut_short() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (hub, admin) = hub_delivering_to_loopback().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let followed = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/moved",
            axum::routing::post({
                let to = format!("{base}/inside");
                move || async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)], "") }
            }),
        )
        .route(
            "/inside",
            axum::routing::post({
                let followed = followed.clone();
                move || async move {
                    followed.fetch_add(1, Ordering::SeqCst);
                    "reached"
                }
            }),
        )
        .route("/huge", axum::routing::post(|| async { "x".repeat(10 << 20) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let moved = register(&admin, &format!("{base}/moved"), &["conversation.created"]).await;
    let huge = register(&admin, &format!("{base}/huge"), &["conversation.created"]).await;
    let (_ann, _carla, _chat) = hub.agent_and_customer_in_a_chat().await;

    let log_of = |endpoint: &Value| format!("/api/admin/webhooks/{}/deliveries", endpoint["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (moved_log, huge_log) = loop {
        let (_, moved_log) = admin.get(&log_of(&moved)).await;
        let (_, huge_log) = admin.get(&log_of(&huge)).await;
        let tried = |log: &Value| log[0]["attempts"].as_array().is_some_and(|a| !a.is_empty());
        if tried(&moved_log) && huge_log[0]["status"] == "delivered" {
            break (moved_log, huge_log);
        }
        assert!(std::time::Instant::now() < deadline, "{moved_log} {huge_log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let attempt = &moved_log[0]["attempts"][0];
    assert_eq!(attempt["status_code"], 307, "{moved_log}");
    assert_ne!(moved_log[0]["status"], "delivered", "{moved_log}");
    assert_eq!(followed.load(Ordering::SeqCst), 0, "the redirect was followed");
    let excerpt = huge_log[0]["attempts"][0]["excerpt"].as_str().unwrap();
    assert!(excerpt.len() <= 500 && excerpt.starts_with("xxx"), "{excerpt}");
}

#[tokio::test]
async fn loopback_urls_are_refused_without_the_setting_at_registration_and_at_delivery() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let (url, got) = receiver(0).await;
    // Registered while the setting was on...
    let allowed = TestHub::with_store(store.clone(), |s| s.webhooks.allow_private = Some(true)).await;
    let endpoint = register(&allowed.admin().await, &url, &["conversation.created"]).await;
    allowed.stop().await;

    // ...and off now: no new registration, and nothing sent to the one stored.
    let hub = TestHub::with_store(store, |_| {}).await;
    let admin = hub.admin().await;
    for bad in [
        url.as_str(),
        "http://localhost:9/x",
        "http://169.254.169.254/latest",
        "http://[::1]/",
    ] {
        let (status, answer) = admin
            .post(
                "/api/admin/webhooks",
                json!({"url": bad, "events": ["message.created"]}),
            )
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_url")),
            "{bad}: {answer}"
        );
    }
    refusal(
        admin
            .post(
                "/api/admin/webhooks",
                json!({"url": "ftp://example.com/", "events": ["message.created"]}),
            )
            .await,
        400,
        "invalid_url",
    );
    // An empty address is told what to write, not the URL parser's words.
    let (status, answer) = admin
        .post("/api/admin/webhooks", json!({"url": "", "events": ["message.created"]}))
        .await;
    assert_eq!(
        (status, answer["error"]["message"].as_str()),
        (
            400,
            Some("enter the address to send to, such as https://crm.example.com/switchboard")
        ),
        "{answer}"
    );
    // Nor may an endpoint be pointed at one by an edit.
    let stored = endpoint["id"].as_str().unwrap();
    let (status, answer) = admin
        .patch(
            &format!("/api/admin/webhooks/{stored}"),
            json!({"url": "http://169.254.169.254/latest"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_url")),
        "{answer}"
    );

    let (_ann, _carla, _chat) = hub.agent_and_customer_in_a_chat().await;
    let id = endpoint["id"].as_str().unwrap();
    let log = logged_when(&admin, id, |log| {
        log.first()
            .and_then(|d| d["attempts"].as_array())
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    let attempt = &log[0]["attempts"][0];
    assert!(attempt["status_code"].is_null(), "{attempt}");
    assert!(attempt["excerpt"].as_str().unwrap().contains("private"), "{attempt}");
    assert_eq!(log[0]["status"], "pending", "tried again later: {log:?}");
    assert!(
        got.lock().unwrap().deliveries.is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn only_admins_register_list_and_delete_endpoints() {
    let hub = TestHub::with(|s| s.webhooks.allow_private = Some(true)).await;
    let token = hub.agent_account("rita", &["general"], 1).await;
    let rita = Api::bearer(&hub, &token);
    let (url, _got) = receiver(0).await;
    let (status, _) = rita
        .post(
            "/api/admin/webhooks",
            json!({"url": url, "events": ["message.created"]}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = rita.get("/api/admin/webhooks").await;
    assert_eq!(status, 403);

    let admin = hub.admin().await;
    refusal(
        admin
            .post("/api/admin/webhooks", json!({"url": url, "events": ["message.sent"]}))
            .await,
        400,
        "invalid_events",
    );
    let endpoint = register(&admin, &url, &["message.created"]).await;
    let id = endpoint["id"].as_str().unwrap();
    let (status, _) = rita.delete(&format!("/api/admin/webhooks/{id}")).await;
    assert_eq!(status, 403);
    let (status, off) = admin
        .patch(&format!("/api/admin/webhooks/{id}"), json!({"enabled": false}))
        .await;
    assert_eq!((status, &off["enabled"]), (200, &json!(false)), "{off}");
    let (status, _) = admin.delete(&format!("/api/admin/webhooks/{id}")).await;
    assert_eq!(status, 204);
    let (_, listed) = admin.get("/api/admin/webhooks").await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn a_rating_and_an_offline_message_are_events() {
    let hub = TestHub::with(|s| {
        s.webhooks.allow_private = Some(true);
        s.rooms.token_secret = switchboard::config::Secret(b"a webhook test secret, 32 bytes!".to_vec());
    })
    .await;
    let admin = hub.admin().await;
    let (url, got) = receiver(0).await;
    register(&admin, &url, &["rating.given", "offline_message.created"]).await;

    let (_ann, mut carla, chat) = hub.agent_and_customer_in_a_chat().await;
    carla.send(json!({"type": "leave"})).await;
    let ended = carla.next_of("chat_ended").await;
    let token = ended["rating"]["token"].as_str().expect("a rating token");
    let (status, answer) = post(
        &hub,
        "/api/ratings",
        json!({"token": token, "score": 4, "comment": "kind"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let answer = leave_offline_message(&hub).await;

    let deliveries = delivered(&got, 2).await;
    let rating = json!({"conversation_id": chat, "score": 4, "comment": "kind"});
    assert_shows(
        &deliveries[0].1,
        json!({"type": "rating.given", "data": rating}),
        "the rating",
    );
    let offline = json!({"offline_message_id": answer["id"], "text": "Call me back"});
    assert_shows(
        &deliveries[1].1,
        json!({"type": "offline_message.created", "data": offline}),
        "the offline message",
    );
}

#[tokio::test]
async fn a_logged_delivery_is_sent_again_through_the_queue() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (url, got) = receiver(0).await;
    let endpoint = register(&admin, &url, &["offline_message.created"]).await;
    let id = endpoint["id"].as_str().unwrap();
    leave_offline_message(&hub).await;
    let first = delivered(&got, 1).await;
    let (_, log) = admin.get(&format!("/api/admin/webhooks/{id}/deliveries")).await;
    let logged = log[0]["id"].as_str().unwrap().to_string();

    let (status, again) = send_again(&admin, id, &logged).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["status"], "pending", "{again}");
    assert_ne!(again["id"], json!(logged), "a new delivery in the log");
    assert_eq!(again["event_id"], log[0]["event_id"], "of the same event");
    let both = delivered(&got, 2).await;
    assert_eq!(both[1].1, first[0].1, "the same event, the same body");
    assert_eq!(both[1].0["switchboard-event-id"], first[0].0["switchboard-event-id"]);
    let (_, log) = admin.get(&format!("/api/admin/webhooks/{id}/deliveries")).await;
    assert_eq!(log.as_array().unwrap().len(), 2, "{log}");
    assert_eq!(log[0]["id"], again["id"], "newest first: {log}");

    // No such delivery: 404; a disabled endpoint: 409 naming what to do.
    let (status, answer) = send_again(&admin, id, "nope").await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &json!("not_found")),
        "{answer}"
    );
    let (status, _) = admin
        .patch(&format!("/api/admin/webhooks/{id}"), json!({"enabled": false}))
        .await;
    assert_eq!(status, 200);
    let (status, answer) = send_again(&admin, id, &logged).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (409, &json!("endpoint_disabled")),
        "{answer}"
    );
}

/// Olga leaves an offline message ("Call me back"): the hub's answer.
pub(crate) async fn leave_offline_message(hub: &Endpoint) -> Value {
    let (status, answer) = post(
        hub,
        "/api/offline-messages",
        json!({"category": "general", "name": "Olga", "email": "olga@example.com", "text": "Call me back"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    answer
}

/// An admin's "send again" of a logged delivery: the status and the answer.
async fn send_again(admin: &Api, endpoint: &str, delivery: &str) -> (u16, Value) {
    admin
        .post(
            &format!("/api/admin/webhooks/{endpoint}/deliveries/{delivery}/redeliver"),
            json!({}),
        )
        .await
}

#[tokio::test]
async fn transfers_to_a_colleague_and_to_a_line_are_events_and_name_who_has_it_now() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (url, got) = receiver(0).await;
    register(&admin, &url, &["conversation.transferred", "conversation.assigned"]).await;
    let (mut ann, mut carla, chat) = crate::cluster_fixture::paired(&hub, "ann", 1, &hub, "Carla").await;
    let mut bob = hub.agent("bob", &["general"], 1).await;
    let (ann_id, bob_id) = (admin.agent_id("ann").await, admin.agent_id("bob").await);

    // Ann hands the chat to Bob, Bob hands it to billing's line, and Bill takes it there.
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_agent": bob_id, "note": "Invoice 42"}))
        .await;
    assert_eq!(ann.next_of("chat_ended").await["reason"], "transferred");
    bob.next_of("chat_started").await;
    bob.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "note": "refund"}))
        .await;
    assert_eq!(bob.next_of("chat_ended").await["reason"], "transferred");
    carla.next_of("queued").await;
    let mut bill = hub.agent("bill", &["billing"], 1).await;
    bill.next_of("chat_started").await;
    let bill_id = admin.agent_id("bill").await;

    let deliveries = delivered(&got, 4).await;
    let bodies: Vec<&Value> = deliveries.iter().map(|(_, b)| b).collect();
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "conversation.transferred",
            "conversation.assigned",
            "conversation.transferred",
            "conversation.assigned"
        ],
        "{bodies:?}"
    );
    let to_bob = &bodies[0]["data"];
    assert_eq!(
        (
            &to_bob["conversation_id"],
            &to_bob["from_agent_id"],
            &to_bob["from_agent_name"],
            &to_bob["to_agent_id"],
            &to_bob["to_agent_name"],
            &to_bob["to_category"],
            &to_bob["category"]
        ),
        (
            &chat,
            &json!(ann_id),
            &json!("ANN"),
            &json!(bob_id),
            &json!("BOB"),
            &Value::Null,
            &json!("general")
        ),
        "{to_bob}"
    );
    assert!(to_bob.get("note").is_none(), "the note is for colleagues: {to_bob}");
    let assigned_bob = &bodies[1]["data"];
    assert_eq!(
        (
            &assigned_bob["agent_id"],
            &assigned_bob["agent_name"],
            &assigned_bob["previous_agent_id"]
        ),
        (&json!(bob_id), &json!("BOB"), &json!(ann_id)),
        "{assigned_bob}"
    );
    let to_line = &bodies[2]["data"];
    assert_eq!(
        (
            &to_line["from_agent_id"],
            &to_line["to_agent_id"],
            &to_line["to_category"],
            &to_line["category"]
        ),
        (&json!(bob_id), &Value::Null, &json!("billing"), &json!("billing")),
        "{to_line}"
    );
    let assigned_bill = &bodies[3]["data"];
    assert_eq!(
        (
            &assigned_bill["conversation_id"],
            &assigned_bill["agent_id"],
            &assigned_bill["previous_agent_id"],
            &assigned_bill["category"]
        ),
        (&chat, &json!(bill_id), &json!(bob_id), &json!("billing")),
        "{assigned_bill}"
    );
}

#[tokio::test]
async fn an_appointment_booked_rescheduled_and_cancelled_is_three_events_in_order() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (url, got) = receiver(0).await;
    register(
        &admin,
        &url,
        &["appointment.booked", "appointment.rescheduled", "appointment.cancelled"],
    )
    .await;
    hub.agent_account("ann", &[], 1).await;
    let ann_id = admin.agent_id("ann").await;
    let (status, booked) = post(
        &hub,
        "/api/appointments",
        json!({"start": at(2, 10), "name": "Carla", "email": "carla@example.com", "comment": "the blue one"}),
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    let token = booked["cancel_token"].as_str().unwrap();
    let (status, moved) = post(
        &hub,
        "/api/appointments/reschedule",
        json!({"token": token, "start": at(2, 12)}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    let (status, cancelled) = post(
        &hub,
        "/api/appointments/cancel",
        json!({"token": token, "reason": "found it myself"}),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");

    let deliveries = delivered(&got, 3).await;
    let bodies: Vec<&Value> = deliveries.iter().map(|(_, b)| b).collect();
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["appointment.booked", "appointment.rescheduled", "appointment.cancelled"],
        "{bodies:?}"
    );
    let ms = |rfc: &str| rfc.parse::<jiff::Timestamp>().unwrap().as_millisecond();
    let id = &booked["id"];
    let b = &bodies[0]["data"];
    assert_eq!(
        (
            &b["appointment_id"],
            &b["representative_id"],
            &b["start"],
            &b["name"],
            &b["email"],
            &b["comment"],
            &b["sequence"]
        ),
        (
            id,
            &json!(ann_id),
            &json!(ms(&at(2, 10))),
            &json!("Carla"),
            &json!("carla@example.com"),
            &json!("the blue one"),
            &json!(0)
        ),
        "{b}"
    );
    let r = &bodies[1]["data"];
    assert_eq!(
        (&r["appointment_id"], &r["start"], &r["previous_start"], &r["sequence"]),
        (id, &json!(ms(&at(2, 12))), &json!(ms(&at(2, 10))), &json!(1)),
        "{r}"
    );
    assert!(r["end"].as_i64() > r["start"].as_i64(), "{r}");
    let c = &bodies[2]["data"];
    assert_eq!(
        (&c["appointment_id"], &c["start"], &c["reason"], &c["sequence"]),
        (id, &json!(ms(&at(2, 12))), &json!("found it myself"), &json!(2)),
        "{c}"
    );
    assert!(c["cancelled_at"].is_i64(), "{c}");
}

/// An endpoint answering 500 for a day is disabled at its delivery's last failed attempt,
/// and the admins (`ADMIN_MAIL_TO`) each get one mail naming its URL, the failures, the last
/// error and the admin page where it is enabled again; on two nodes, both delivering, only
/// the one that disabled it writes the mails. The delivery's first 35 failures (a day of
/// retries) are stored as made already; the hub makes the 36th, its last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_a_day_is_disabled_and_each_admin_is_mailed_once() {
    let m = two_nodes_mailing_admins("webhook-disabled").await;
    let delivery = m.failed_for_a_day(35, DeliveryStatus::Pending).await;
    m.cluster.store.add_delivery(delivery).await.unwrap();
    m.admins_told_once("36 failed attempts", "HTTP 500: thanks").await;
    assert_eq!(
        m.got.lock().unwrap().deliveries.len(),
        1,
        "one last attempt, by one node"
    );
}

/// A node killed after storing a delivery's last failed attempt (the delivery `dying`) and
/// before disabling its endpoint: the other nodes' deliverers find it, disable the endpoint,
/// mail each admin once and mark the delivery `dead`; nothing more is sent to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabling_a_dead_node_left_undone_is_done_by_the_others() {
    let m = two_nodes_mailing_admins("webhook-dying").await;
    let mut dying = m.failed_for_a_day(36, DeliveryStatus::Dying).await;
    dying.claimed_by = Some("killed-node".into());
    m.cluster.store.add_delivery(dying).await.unwrap();

    m.admins_told_once("36 failed attempts", "HTTP 500: down").await;
    let log = logged_when(&m.admin, &m.id, |log| log[0]["status"] == "dead").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(m.got.lock().unwrap().deliveries.is_empty(), "nothing sent to it again");
}

/// Two nodes mailing two admins (`ADMIN_MAIL_TO`) through an SMTP sink, and an endpoint
/// wanting `offline_message.created` registered at a receiver answering 500 to everything.
struct Mailing {
    smtp: SmtpSink,
    cluster: Cluster,
    /// Kept running for the test's length.
    _nodes: (TestHub, TestHub),
    admin: Api,
    url: String,
    got: Arc<Mutex<Received>>,
    id: String,
}

async fn two_nodes_mailing_admins(tag: &str) -> Mailing {
    let port = crate::archive::free_port();
    let smtp = SmtpSink::start(port).await;
    let cluster = Cluster::start(tag).await;
    let nodes = cluster
        .two_nodes(|s| {
            crate::appointment_mail::mail_settings(port)(s);
            s.webhooks.allow_private = Some(true);
            s.webhooks.admin_mail_to = vec!["Ops <ops@example.org>".into(), "lead@example.org".into()];
        })
        .await;
    let admin = nodes.0.admin().await;
    let (url, got) = receiver(usize::MAX).await;
    let endpoint = register(&admin, &url, &["offline_message.created"]).await;
    let id = endpoint["id"].as_str().unwrap().to_string();
    Mailing {
        smtp,
        cluster,
        _nodes: nodes,
        admin,
        url,
        got,
        id,
    }
}

impl Mailing {
    /// A delivery of `offline_message.created` to the endpoint whose `failures` attempts
    /// failed over the last day (HTTP 500 "down"), due now, as `status`.
    async fn failed_for_a_day(&self, failures: usize, status: DeliveryStatus) -> switchboard::store::WebhookDelivery {
        use switchboard::store::{DeliveryAttempt, WebhookDelivery};
        let (cluster, id) = (&self.cluster, self.id.as_str());
        let now = switchboard::clock::now_ms();
        let day_ago = now - 24 * 3_600_000;
        let failed = DeliveryAttempt {
            at: day_ago,
            status_code: Some(500),
            latency_ms: 3,
            excerpt: "down".into(),
        };
        WebhookDelivery {
            id: format!("ev-1-{id}"),
            endpoint_id: id.to_string(),
            seq: cluster.store.next_delivery_seq().await.unwrap(),
            ordering_key: "ev-1".into(),
            event_id: "ev-1".into(),
            event_type: "offline_message.created".into(),
            body: json!({"id": "ev-1", "type": "offline_message.created"}).to_string(),
            status,
            due_at: now,
            attempts: vec![failed; failures],
            created_at: day_ago,
            claimed_by: None,
            claim_until: None,
        }
    }

    /// Both admins got one mail each saying the endpoint was disabled (`failed`
    /// attempts, `last_error`, the admin page), the endpoint reads disabled, and the outbox
    /// holds one mail per admin named by the delivery that died: a second write of the same
    /// disabling (a retry, another node) is the same mail.
    async fn admins_told_once(&self, failed: &str, last_error: &str) {
        let (smtp, cluster, admin, url, id) = (&self.smtp, &self.cluster, &self.admin, self.url.as_str(), &self.id);
        let mails: Vec<Mail> = smtp.wait_for(2).await.iter().map(|m| parse_mail(m)).collect();
        let mut to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
        to.sort();
        assert_eq!(to, ["lead@example.org", "ops@example.org"]);
        for mail in &mails {
            assert_eq!(mail.subject, format!("Webhook endpoint disabled: {url}"));
            for says in [url, failed, last_error, "/admin.html#webhooks"] {
                assert!(mail.text.contains(says), "no {says:?} in {}", mail.text);
            }
        }
        let (_, listed) = admin.get("/api/admin/webhooks").await;
        assert_eq!(listed[0]["enabled"], false, "{listed}");
        let queued = cluster.store.mails_by_id_prefix("webhook-disabled:").await.unwrap();
        assert_eq!(queued.len(), 2, "{queued:?}");
        assert!(
            queued.iter().all(|m| m.id.contains(&format!("ev-1-{id}"))),
            "{queued:?}"
        );
    }
}

/// A receiver that never answers holds up only its own deliveries: another endpoint gets a
/// conversation's lines one after another meanwhile, all before the held attempt's 10 s
/// timeout (before, every round of the deliverer waited for its slowest attempt), while the
/// hanging one's later lines wait behind its first (in order per conversation).
#[tokio::test]
async fn a_receiver_that_hangs_holds_up_no_other_endpoint() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (hanging_url, hanging) = receiver_as(Received {
        hold_first: usize::MAX,
        ..Received::default()
    })
    .await;
    let (url, got) = receiver(0).await;
    register(&admin, &hanging_url, &["message.created"]).await;
    register(&admin, &url, &["message.created"]).await;

    let (mut ann, _carla, chat) = hub.agent_and_customer_in_a_chat().await;
    for i in 0..4 {
        ann.say_in(&chat, &format!("line {i}"), &format!("m{i}")).await;
    }
    let lines = delivered_within(&got, 4, Duration::from_secs(8)).await;
    let texts: Vec<&Value> = lines.iter().map(|(_, body)| &body["data"]["text"]).collect();
    assert_eq!(texts, ["line 0", "line 1", "line 2", "line 3"]);
    assert_eq!(
        hanging.lock().unwrap().deliveries.len(),
        1,
        "the hanging receiver got its first line only"
    );
}

/// An endpoint's backlog (its receiver down for hours: a thousand and more deliveries
/// waiting for their retries) does not hide the other endpoints' deliveries from the
/// deliverer, which reads each endpoint's pending deliveries apart.
#[tokio::test]
async fn a_long_backlog_of_one_endpoint_starves_no_other() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (down_url, _down) = receiver(usize::MAX).await;
    let (url, got) = receiver(0).await;
    let down = register(&admin, &down_url, &["message.created"]).await;
    register(&admin, &url, &["message.created"]).await;
    let down_id = down["id"].as_str().unwrap().to_string();
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    for i in 0..1_100 {
        let seq = hub.store.next_delivery_seq().await.unwrap();
        let delivery = switchboard::store::WebhookDelivery {
            id: format!("backlog-{i}-{down_id}"),
            endpoint_id: down_id.clone(),
            seq,
            ordering_key: format!("backlog-{i}"),
            event_id: format!("backlog-{i}"),
            event_type: "message.created".into(),
            body: "{}".into(),
            status: DeliveryStatus::Pending,
            due_at: in_an_hour,
            attempts: vec![],
            created_at: 0,
            claimed_by: None,
            claim_until: None,
        };
        hub.store.add_delivery(delivery).await.unwrap();
    }

    let (mut ann, _carla, chat) = hub.agent_and_customer_in_a_chat().await;
    ann.say_in(&chat, "after the backlog", "m1").await;
    let lines = delivered(&got, 1).await;
    assert_eq!(lines[0].1["data"]["text"], "after the backlog");
}

#[tokio::test]
async fn an_internal_note_goes_only_to_an_endpoint_that_asks_for_notes() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (notes_url, notes) = receiver(0).await;
    let (messages_url, messages) = receiver(0).await;
    register(&admin, &notes_url, &["note.created"]).await;
    register(&admin, &messages_url, &["message.created"]).await;

    let (mut ann, _carla, chat) = hub.agent_and_customer_in_a_chat().await;
    ann.say_in(&chat, "before the note", "m1").await;
    ann.note_in(&chat, "VIP: refund without asking", "n1").await;
    ann.say_in(&chat, "after the note", "m2").await;

    let noted = delivered(&notes, 1).await;
    let note = &noted[0].1;
    let data = json!({"conversation_id": chat, "text": "VIP: refund without asking", "agent_name": "ANN"});
    assert_shows(note, json!({"type": "note.created", "data": data}), "the note");
    assert!(
        note["data"]["note_id"].is_string() && note["data"]["at"].is_i64(),
        "{note}"
    );

    // The line after the note arrived, so the note was fanned out before it: had the
    // messages' endpoint been given it, it would be in between.
    let lines = delivered(&messages, 2).await;
    let texts: Vec<&Value> = lines.iter().map(|(_, body)| &body["data"]["text"]).collect();
    assert_eq!(texts, [&json!("before the note"), &json!("after the note")]);
    assert!(lines.iter().all(|(_, body)| body["type"] == "message.created"));
    assert_eq!(
        notes.lock().unwrap().deliveries.len(),
        1,
        "the notes' endpoint got no message"
    );
}

/// A failed attempt reaches the server's log (the real binary's): the endpoint, its host,
/// the cause and when it is tried next, never its URL's path or query (which may hold the
/// receiver's secret); a second failure within the quiet period is not another line.
#[tokio::test]
async fn a_failed_attempt_is_logged_with_its_host_and_cause_and_never_its_url() {
    let scratch = crate::archive::TempDir::new("webhook-failure-log");
    let port = crate::archive::free_port();
    let closed = crate::archive::free_port();
    let bind = format!("127.0.0.1:{port}");
    let log = scratch.0.join("hub.log");
    let mut command = crate::storeops::hub_command(
        &scratch.0,
        &[
            ("BIND_ADDR", bind.as_str()),
            ("STORE", "memory"),
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
        &["serve"],
    );
    command.stdout(std::fs::File::create(&log).unwrap());
    command.stderr(std::process::Stdio::null());
    let _hub = Running(command.spawn().expect("the hub binary starts"));
    crate::archive::wait_for_port(port).await;
    let hub = Endpoint {
        addr: bind.parse().unwrap(),
    };
    let admin = hub.admin().await;
    let endpoint = register(
        &admin,
        &format!("http://127.0.0.1:{closed}/hooks/s3cr3t-path?token=s3cr3t-query"),
        &["offline_message.created"],
    )
    .await;
    for n in 0..2 {
        let olga =
            json!({"category": "general", "name": "Olga", "email": "olga@example.com", "text": format!("Hello {n}")});
        assert_eq!(post(&hub, "/api/offline-messages", olga).await.0, 201);
    }
    let wanted = "a webhook delivery failed";
    let logged = polled(Duration::from_secs(20), async || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.matches(wanted).count() >= 1 && text.contains("127.0.0.1")).then_some(text)
    })
    .await
    .expect("a failed attempt was never logged");
    let line = logged.lines().find(|l| l.contains(wanted)).unwrap();
    assert!(line.contains(endpoint["id"].as_str().unwrap()), "{line}");
    assert!(line.contains("next_try_at_ms"), "{line}");
    assert!(!logged.contains("s3cr3t"), "the URL's secret was logged: {logged}");
    // Both deliveries failed; the second within the quiet period got no line of its own.
    let deliveries = polled(Duration::from_secs(20), async || {
        let (_, log) = admin
            .get(&format!(
                "/api/admin/webhooks/{}/deliveries",
                endpoint["id"].as_str().unwrap()
            ))
            .await;
        (log.as_array()
            .is_some_and(|l| l.len() >= 2 && l.iter().all(|d| !d["attempts"].as_array().unwrap().is_empty())))
        .then_some(log)
    })
    .await
    .expect("both deliveries were tried");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches(wanted).count(), 1, "{deliveries}\n{text}");
}

/// An admin edits an endpoint instead of deleting it and registering another (a new
/// secret for the receiver): its address and events change, its id and secret stay, and a
/// refused edit changes nothing.
#[tokio::test]
async fn an_endpoint_is_pointed_elsewhere_and_given_other_events_keeping_its_id_and_secret() {
    let (hub, admin) = hub_delivering_to_loopback().await;
    let (old_url, old) = receiver(0).await;
    let (new_url, new) = receiver(0).await;
    let endpoint = register(&admin, &old_url, &["conversation.created"]).await;
    let id = endpoint["id"].as_str().unwrap();
    let path = format!("/api/admin/webhooks/{id}");

    // Refused edits (a bad scheme, an unknown event, no event) change nothing.
    for (bad, code) in [
        (
            json!({"url": "ftp://example.com/", "events": ["message.created"]}),
            "invalid_url",
        ),
        (json!({"url": new_url, "events": ["message.nope"]}), "invalid_events"),
        (json!({"events": []}), "invalid_events"),
    ] {
        refusal(admin.patch(&path, bad).await, 400, code);
    }
    let (_, listed) = admin.get("/api/admin/webhooks").await;
    assert_eq!(listed[0]["url"].as_str(), Some(old_url.as_str()), "{listed}");

    let (status, edited) = admin
        .patch(&path, json!({"url": new_url, "events": ["message.created"]}))
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        (edited["id"].as_str(), edited["url"].as_str(), &edited["events"]),
        (Some(id), Some(new_url.as_str()), &json!(["message.created"])),
        "{edited}"
    );

    // The next chat's line goes to the new address, as the new event, signed as before.
    let (mut ann, _carla, chat) = hub.agent_and_customer_in_a_chat().await;
    ann.say_in(&chat, "to the new address", "m1").await;
    let lines = delivered(&new, 1).await;
    assert_eq!(lines[0].1["type"], "message.created", "{:?}", lines[0].1);
    assert_eq!(lines[0].1["data"]["text"], "to the new address");
    let secret = endpoint["secret"].as_str().unwrap();
    for (headers, raw, _) in &new.lock().unwrap().deliveries {
        assert_signed(headers, raw, secret);
    }
    assert!(
        old.lock().unwrap().deliveries.is_empty(),
        "nothing went to the old address"
    );
}
