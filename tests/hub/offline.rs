//! Offline messages over HTTP with a real SMTP sink (aiosmtpd): a message left while
//! nobody is online is stored, listed for agents and admins and mailed to
//! `OFFLINE_MAIL_TO`; an agent takes it and answers by mail, the reply archived with it;
//! a reply written while the relay is down arrives once it is up; bad input is refused
//! with its code; the public category list says per category whether anyone is online.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::appointment_mail::{failed_twice, mail_settings, outbox};
use crate::archive::free_port;
use crate::common::*;

/// An agent's account, signed in over HTTP.
async fn staff(hub: &TestHub, username: &str, categories: &[&str]) -> Api {
    hub.agent_account(username, categories, 1).await;
    hub.login(username, "agent-password").await
}

async fn leave(hub: &TestHub, body: Value) -> (u16, Value) {
    post(hub, "/api/offline-messages", body).await
}

fn carla(category: &str) -> Value {
    json!({"category": category, "name": "Carla", "email": "carla@example.com",
           "text": "Where is my order 1234?\nIt was due on Monday."})
}

/// A hub mailing offline messages to `desk` through a fresh SMTP sink, with agent Ann
/// (General) signed in over HTTP: the sink, the hub and Ann.
async fn desk_mailing(desk: &str) -> (SmtpSink, TestHub, Api) {
    let port = free_port();
    let smtp = SmtpSink::start(port).await;
    let hub = TestHub::with(|s| {
        mail_settings(port)(s);
        s.mail.offline_to = Some(desk.to_string());
    })
    .await;
    let ann = staff(&hub, "ann", &["general"]).await;
    (smtp, hub, ann)
}

/// `agents_online` of category `id` in the public list.
async fn online(hub: &TestHub, id: &str) -> bool {
    let list: Value = get_json(hub, "/api/categories").await;
    with_id(&list, id)["agents_online"]
        .as_bool()
        .unwrap_or_else(|| panic!("agents_online is a bool: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_while_nobody_is_online_is_stored_listed_and_mailed_to_the_desk() {
    let (smtp, hub, ann) = desk_mailing("Help desk <desk@example.org>").await;
    let sam = staff(&hub, "sam", &["sales"]).await;
    // Nobody is online in General: the page would offer the message form.
    assert!(!online(&hub, "general").await);
    // A customer connected to the queue sees the same (nobody to wait for).
    let mut customer = hub.customer("Carla", "general").await;
    let (status, left) = leave(&hub, carla("general")).await;
    assert_eq!(status, 201, "{left}");
    let id = left["id"].as_str().unwrap().to_string();
    customer.send(json!({"type": "leave"})).await;

    let desk = parse_mail(&smtp.wait_for(1).await[0]);
    assert_eq!(desk.to, "desk@example.org");
    assert_eq!(desk.subject, "Offline message in General from Carla");
    assert!(desk.text.contains("Carla <carla@example.com>"), "{}", desk.text);
    assert!(desk.text.contains("Where is my order 1234?"), "{}", desk.text);
    assert!(desk.text.contains(&hub.url("/agent.html")), "{}", desk.text);
    assert_eq!(desk.message_id, format!("offline-{id}.desk@example.org"));

    // Listed for the agent of General and for admins, with its state; not for Sales.
    let (status, page) = ann.get("/api/offline-messages").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["total"].as_u64(), page["new_count"].as_u64()),
        (Some(1), Some(1)),
        "{page}"
    );
    let m = &page["items"][0];
    assert_eq!(
        (
            m["id"].as_str(),
            m["state"].as_str(),
            m["category"].as_str(),
            m["category_name"].as_str()
        ),
        (Some(id.as_str()), Some("new"), Some("general"), Some("General"))
    );
    assert_eq!(
        (m["name"].as_str(), m["email"].as_str()),
        (Some("Carla"), Some("carla@example.com"))
    );
    let (_, page) = sam.get("/api/offline-messages").await;
    assert_eq!(
        (page["total"].as_u64(), page["new_count"].as_u64()),
        (Some(0), Some(0)),
        "{page}"
    );
    let admin = hub.admin().await;
    let (_, page) = admin.get("/api/offline-messages?state=new&category=general").await;
    assert_eq!(page["total"], 1, "{page}");
    let (_, page) = admin.get("/api/offline-messages?state=handled").await;
    assert_eq!(page["total"], 0, "{page}");
    // Sam may not act on it either.
    refusal(
        sam.post(&format!("/api/offline-messages/{id}/take"), json!({})).await,
        404,
        "unknown_offline_message",
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_takes_a_message_and_the_reply_is_mailed_to_the_customer_and_archived() {
    let (smtp, hub) = mailing_hub(mail_settings).await;
    let ann = staff(&hub, "ann", &["general"]).await;
    let bob = staff(&hub, "bob", &["general"]).await;
    let (_, left) = leave(&hub, carla("general")).await;
    let id = left["id"].as_str().unwrap().to_string();

    let taken = ann
        .post_answering(200, &format!("/api/offline-messages/{id}/take"), json!({}))
        .await;
    assert_eq!(
        (taken["state"].as_str(), taken["taken_by_name"].as_str()),
        (Some("taken"), Some("ANN"))
    );
    let (status, refused) = bob.post(&format!("/api/offline-messages/{id}/take"), json!({})).await;
    assert_eq!((status, error_code(&refused)), (409, "already_taken"), "{refused}");

    let answered = ann.reply_offline(&id, "Your order left our store today.").await;
    assert_eq!(answered["state"], "handled");
    let replies = answered["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0]["agent_name"].as_str(), replies[0]["text"].as_str()),
        (Some("ANN"), Some("Your order left our store today."))
    );

    let mail = parse_mail(&smtp.wait_for(1).await[0]);
    assert_eq!(mail.to, "carla@example.com");
    assert_eq!(mail.subject, "Re: your message to General");
    assert!(mail.text.contains("Your order left our store today."), "{}", mail.text);
    assert!(mail.text.contains("> Where is my order 1234?"), "{}", mail.text);
    let reply_id = replies[0]["id"].as_str().unwrap();
    assert_eq!(mail.message_id, format!("offline-{id}.reply-{reply_id}@example.org"));
    // Archived with the message, for the agent and for admins; no desk mail was set up.
    let (_, page) = hub.admin().await.get("/api/offline-messages?state=handled").await;
    assert_eq!(
        page["items"][0]["replies"][0]["text"], "Your order left our store today.",
        "{page}"
    );
    let (_, page) = ann.get("/api/offline-messages").await;
    assert_eq!(page["new_count"], 0, "{page}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(smtp.mails().len(), 1, "one mail: the reply");

    // Marking another one handled without an answer.
    let (_, other) = leave(&hub, carla("general")).await;
    let other = other["id"].as_str().unwrap();
    let (status, handled) = bob
        .post(&format!("/api/offline-messages/{other}/handled"), json!({}))
        .await;
    assert_eq!(status, 200, "{handled}");
    assert_eq!(
        (handled["state"].as_str(), handled["taken_by_name"].as_str()),
        (Some("handled"), Some("BOB"))
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_written_while_the_relay_is_down_arrives_once_it_is_up() {
    let port = free_port();
    let hub = TestHub::with(mail_settings(port)).await;
    let ann = staff(&hub, "ann", &["general"]).await;
    let (_, left) = leave(&hub, carla("general")).await;
    let id = left["id"].as_str().unwrap().to_string();
    let (status, answered) = ann
        .post(
            &format!("/api/offline-messages/{id}/reply"),
            json!({"text": "On its way."}),
        )
        .await;
    assert_eq!(status, 200, "the reply does not wait for the mail: {answered}");
    let admin = hub.admin().await;
    assert_eq!(failed_twice(&admin).await["purpose"], "offline_reply");
    let smtp = SmtpSink::start(port).await;
    let mail = parse_mail(&smtp.wait_for(1).await[0]);
    assert_eq!(mail.to, "carla@example.com");
    assert!(mail.text.contains("On its way."), "{}", mail.text);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails().len(), 1, "sent once");
    assert_eq!(outbox(&admin, "?status=sent").await["total"], 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offline_messages_are_refused_with_their_codes() {
    let hub = TestHub::with(|s| {
        // The hub's own address is a trusted proxy, so a request can come "from outside".
        s.access.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.max_message_len = 50;
    })
    .await;
    let ann = staff(&hub, "ann", &["general"]).await;
    let mut cases = vec![];
    let mut with = |field: &str, value: Value, code: &'static str| {
        let mut body = carla("general");
        body[field] = value;
        cases.push((body, code));
    };
    with("email", json!("carla"), "invalid_email");
    with("email", json!("carla@localhost"), "invalid_email");
    with("name", json!("  "), "invalid_name");
    with("name", json!("x".repeat(101)), "invalid_name");
    with("category", json!("nope"), "unknown_category");
    with("text", json!(" "), "empty_text");
    with("text", json!("x".repeat(51)), "text_too_long");
    for (body, code) in cases {
        let (status, refused) = leave(&hub, body.clone()).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {refused}"
        );
    }
    refusal(leave(&hub, json!({"category": "general"})).await, 400, "bad_json");
    let big = json!({"category": "general", "name": "C", "email": "c@example.com", "text": "x".repeat(3 << 20)});
    refusal(leave(&hub, big).await, 413, "body_too_large");
    // Nothing was stored.
    assert_eq!(ann.get("/api/offline-messages").await.1["total"], 0);

    for action in ["take", "handled"] {
        refusal(
            ann.post(&format!("/api/offline-messages/nope/{action}"), json!({}))
                .await,
            404,
            "unknown_offline_message",
        );
    }
    let (_, left) = leave(&hub, carla("general")).await;
    let id = left["id"].as_str().unwrap();
    refusal(
        ann.post(&format!("/api/offline-messages/{id}/reply"), json!({"text": " "}))
            .await,
        400,
        "empty_text",
    );
    let (status, _) = ann.get("/api/offline-messages?state=lost").await;
    assert_eq!(status, 400);
    refusal(ann.get("/api/offline-messages?limit=0").await, 400, "bad_query");
    // No session: 401; outside the whitelist: 403, even with a session.
    let res = reqwest::get(hub.url("/api/offline-messages")).await.unwrap();
    assert_eq!(res.status(), 401);
    let client = reqwest::Client::new();
    let outside = |req: reqwest::RequestBuilder| req.header("x-forwarded-for", "203.0.113.5");
    let res = outside(client.get(hub.url("/api/offline-messages")).bearer_auth(&ann.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = outside(
        client
            .post(hub.url(&format!("/api/offline-messages/{id}/take")))
            .bearer_auth(&ann.token),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    // The public form is throttled per address outside the whitelist.
    let mut statuses = vec![];
    for _ in 0..7 {
        let res = outside(client.post(hub.url("/api/offline-messages")).json(&carla("general")))
            .send()
            .await
            .unwrap();
        statuses.push((res.status().as_u16(), res.headers().contains_key("retry-after")));
    }
    assert_eq!(&statuses[..5], &[(201, false); 5], "{statuses:?}");
    assert_eq!(statuses[5], (429, true), "{statuses:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_category_list_says_per_category_whether_an_agent_is_online() {
    let hub = TestHub::start().await;
    assert!(!online(&hub, "general").await && !online(&hub, "sales").await);
    let mut sam = hub.agent("sam", &["sales"], 1).await;
    assert!(online(&hub, "sales").await);
    assert!(!online(&hub, "general").await, "nobody holding General is online");
    // Away does not count (nobody would answer); busy finishing their chats does.
    sam.send(json!({"type": "set_available", "available": false})).await;
    sam.next_of("profile").await;
    assert!(!online(&hub, "sales").await, "an agent away counted as online");
    sam.send(json!({"type": "set_status", "status": "available"})).await;
    sam.next_of("profile").await;
    assert!(online(&hub, "sales").await);
    drop(sam);
    let deadline = Instant::now() + Duration::from_secs(10);
    while online(&hub, "sales").await {
        assert!(
            Instant::now() < deadline,
            "sales still online after its only agent left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hub.stop().await;
}

/// On several nodes each answers from its own routing replica: an agent connected to
/// node B makes their category online on node A too, and offline again once they leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_several_nodes_agents_online_follows_the_replica() {
    use crate::cluster_base::{eventually, two_nodes_on_mongo};

    let scratch = crate::archive::TempDir::new("offline-cluster");
    let redis = crate::redis_server::RedisServer::start().await;
    let (a, b, _conn) = two_nodes_on_mongo(&redis, &scratch).await;
    assert!(!online(&a, "sales").await);
    let token = a.agent_account("sam", &["sales"], 1).await;
    let mut sam_on_b = Ws::agent(&b, &token).await;
    sam_on_b.send(json!({"type": "set_available", "available": true})).await;
    sam_on_b.next_of("profile").await;
    eventually("node A sees sam online in sales", || async {
        online(&a, "sales").await.then_some(())
    })
    .await;
    assert!(!online(&a, "general").await);
    drop(sam_on_b);
    eventually("node A sees sales offline again", || async {
        (!online(&a, "sales").await).then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// A mail body as written: mail-parser gives the lines of a text part with CRLF endings
/// and the line breaks that end the part on the wire.
fn lines(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end_matches('\n').to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_mails_carry_non_ascii_names_and_text_intact() {
    // The desk's own name in From, with umlauts (MAIL_FROM), and an agent who signs with them.
    let (smtp, hub) = koeln_desk(mail_settings, |s| {
        s.mail.offline_to = Some("Kundendienst <desk@example.org>".into())
    })
    .await;
    let juergen = hub.named_agent("juergen", "Jürgen Weiß", &["general"]).await;
    let said = "Grüße aus Köln — wo bleibt meine Bestellung? 🙂";
    let (status, left) = leave(
        &hub,
        json!({"category": "general", "name": "Jörg Müller", "email": "joerg@example.com", "text": said}),
    )
    .await;
    assert_eq!(status, 201, "{left}");
    let id = left["id"].as_str().unwrap().to_string();

    let (_, desk) = koeln_mail_to(&smtp, "desk@example.org").await;
    assert_eq!(desk.subject, "Offline message in General from Jörg Müller");
    assert_eq!(
        lines(&desk.text),
        format!(
            "Jörg Müller <joerg@example.com> left a message in General while nobody was online:\n\n\
             {said}\n\nAnswer it from the agent console: http://{}/agent.html",
            hub.addr
        )
    );
    assert_eq!(desk.message_id, format!("offline-{id}.desk@example.org"));

    juergen
        .post(&format!("/api/offline-messages/{id}/take"), json!({}))
        .await;
    let answer = "Liebe Grüße, Ihre Bestellung ist unterwegs — schönen Tag in Köln!";
    let (status, answered) = juergen
        .post(&format!("/api/offline-messages/{id}/reply"), json!({"text": answer}))
        .await;
    assert_eq!(status, 200, "{answered}");
    let raw = smtp.wait_for(2).await[1].clone();
    assert_mime_utf8(&raw, "example.org");
    let reply = parse_mail(&raw);
    assert_eq!(reply.to, "joerg@example.com");
    assert_eq!(reply.from_name, "Kundendienst Köln");
    assert_eq!(reply.subject, "Re: your message to General");
    assert_eq!(
        lines(&reply.text),
        format!("Hello Jörg Müller,\n\n{answer}\n\nJürgen Weiß\n\nYou wrote:\n> {said}")
    );
    hub.stop().await;
}
