//! Transcripts by mail through a real SMTP sink (aiosmtpd): asked in the chat while the
//! relay is down, the transcript arrives once after it is back (the outbox retries), with
//! the customer's times, both parts, escaped text and a rating link that rates once; a
//! second ask for the address sends nothing more; a bad address is an error frame and the
//! connection lives; an ask after the chat with the rating token, a corrected address and
//! the cap; nobody asks for another's chat; and across nodes, the mail made from the shared
//! archive whichever node the customer and the agent are on.

use std::time::Duration;

use serde_json::{Value, json};

use crate::appointment_mail::{mail_settings, outbox};
use crate::archive::free_port;
use crate::common::*;

/// Mail settings with the rating link's address.
pub(crate) fn transcript_settings(port: u16) -> impl FnOnce(&mut switchboard::config::Settings) {
    move |s| {
        mail_settings(port)(s);
        s.public_url = Some("https://help.example".into());
    }
}

/// Sends `transcript` and returns the answer (`transcript_requested` or `error`).
pub(crate) async fn ask(customer: &mut Ws, email: Option<&str>) -> Value {
    let frame = match email {
        Some(e) => json!({"type": "transcript", "email": e}),
        None => json!({"type": "transcript"}),
    };
    customer.send(frame).await;
    customer
        .next_matching(|f| f["type"] == "transcript_requested" || f["type"] == "error")
        .await
}

/// The token of the mail's rating link.
fn link_token(text: &str) -> String {
    let at = text.find("https://help.example/rate?token=").expect("a rating link");
    text[at + "https://help.example/rate?token=".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Ann (General, limit 1) on `agent_hub` in a chat with the customer `name`, who joined
/// with `details` on `customer_hub` (the same hub or another node), both told: Ann's
/// socket, the customer's and the chat id.
async fn ann_chatting_with(
    agent_hub: &TestHub,
    customer_hub: &TestHub,
    name: &str,
    details: Value,
) -> (Ws, Ws, String) {
    let mut ann = agent_hub.agent("ann", &["general"], 1).await;
    let (customer, chat) = customer_hub.paired_customer_with(&mut ann, name, details).await;
    (ann, customer, chat)
}

/// The customer says `said`, then Ann answers `answer` in `chat`, each acknowledged.
async fn a_line_each_way(customer: &mut Ws, said: &str, ann: &mut Ws, chat: &str, answer: &str) {
    customer.send(json!({"type": "message", "text": said})).await;
    customer.next_of("ack").await;
    ann.send(json!({"type": "message", "chat_id": chat, "text": answer}))
        .await;
    ann.next_of("ack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_asked_while_smtp_is_down_arrives_once_when_it_is_back() {
    let port = free_port();
    let hub = TestHub::with(transcript_settings(port)).await;
    let new_yorker = json!({"email": "carla@example.com", "zone": "America/New_York"});
    let (mut ann, mut carla, chat) = ann_chatting_with(&hub, &hub, "Carla <b>", new_yorker).await;
    let markup = "my invoice <script>alert(1)</script> is wrong";
    a_line_each_way(&mut carla, markup, &mut ann, &chat, "Fixed & refunded").await;
    ann.note_in(&chat, "SECRET-NOTE refund without asking", "n").await;

    // A bad address: an error frame, and the connection lives on.
    let refused = ask(&mut carla, Some("not an address")).await;
    assert_eq!(refused["code"], "invalid_email", "{refused}");
    // Another chat's id cannot be named: the frame has no such field.
    carla
        .send(json!({"type": "transcript", "chat_id": "someone-else"}))
        .await;
    assert_eq!(carla.next_of("error").await["code"], "bad_frame");
    // No address given now: the one given when joining. Asked twice: one mail.
    let asked = ask(&mut carla, None).await;
    assert_eq!(
        (
            asked["type"].as_str(),
            asked["email"].as_str(),
            asked["already"].as_bool()
        ),
        (Some("transcript_requested"), Some("carla@example.com"), Some(false)),
        "{asked}"
    );
    assert_eq!(asked["chat_id"], chat);
    let again = ask(&mut carla, Some("CARLA@example.com")).await;
    assert_eq!(again["already"], true, "{again}");
    carla.send(json!({"type": "message", "text": "thanks!"})).await;
    carla.next_of("ack").await;

    // The chat ends while the relay is down: the mail is tried and waits.
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let ended = carla.next_of("chat_ended").await;
    let rating_token = ended["rating"]["token"].as_str().unwrap().to_string();
    let admin = hub.admin().await;
    let deadline = std::time::Instant::now() + crate::appointment_mail::WAIT;
    loop {
        let page = outbox(&admin, "?status=pending").await;
        let tried = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["purpose"] == "transcript" && m["attempts"].as_u64() >= Some(1));
        if tried {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never tried: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let smtp = SmtpSink::start(port).await;
    let mails = smtp.wait_for(1).await;
    let mail = parse_mail(&mails[0]);
    assert_eq!(mail.to, "carla@example.com");
    assert!(mail.subject.starts_with("Your chat with ANN"), "{}", mail.subject);
    let said = format!("Carla <b>: {markup}");
    for line in ["(times in America/New_York)", &said, "ANN: Fixed & refunded", "thanks!"] {
        assert!(mail.text.contains(line), "{line:?} in {}", mail.text);
    }
    let escaped = "my invoice &lt;script&gt;alert(1)&lt;/script&gt; is wrong";
    assert!(mail.html.contains(escaped), "{}", mail.html);
    assert!(
        !mail.html.contains("<script>") && !mail.html.contains("<b>"),
        "{}",
        mail.html
    );
    for part in [&mail.text, &mail.html] {
        assert!(!part.contains("SECRET-NOTE"), "a note in the mail: {part}");
    }
    // The times are New York's: the chat's minute there, as the hub's clock saw it.
    let now_ny = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap());
    let hour = now_ny.strftime("[%H:").to_string();
    let hour_before = (now_ny.clone() - jiff::Span::new().minutes(5))
        .strftime("[%H:")
        .to_string();
    assert!(
        mail.text.contains(&hour) || mail.text.contains(&hour_before),
        "{hour}: {}",
        mail.text
    );

    // The mail's link rates the chat once, like the chat's own token.
    let token = link_token(&mail.text);
    let (status, rated) = post(&hub, "/api/ratings", json!({"token": token, "score": 4})).await;
    assert_eq!(status, 201, "{rated}");
    refusal(
        post(&hub, "/api/ratings", json!({"token": rating_token, "score": 1})).await,
        409,
        "already_rated",
    );

    // After the chat, over HTTP with the rating token: the same address is the same mail; a
    // corrected one gets its own (without a rating link now: it is rated); at most three.
    let body = json!({"token": rating_token, "email": "carla@example.com"});
    let (status, same) = post(&hub, "/api/transcripts", body).await;
    assert_eq!((status, same["already"].as_bool()), (202, Some(true)), "{same}");
    let body = json!({"token": rating_token, "email": "carla@work.example"});
    let (status, other) = post(&hub, "/api/transcripts", body).await;
    assert_eq!((status, other["already"].as_bool()), (202, Some(false)), "{other}");
    let mails = smtp.wait_for(2).await;
    let second = parse_mail(&mails[1]);
    assert_eq!(second.to, "carla@work.example");
    assert!(!second.text.contains("/rate?token="), "rated already: {}", second.text);
    assert_ne!(second.message_id, mail.message_id);
    let body = json!({"token": rating_token, "email": "c3@example.com"});
    let (status, third) = post(&hub, "/api/transcripts", body).await;
    assert_eq!(status, 202, "{third}");
    let body = json!({"token": rating_token, "email": "c4@example.com"});
    refusal(post(&hub, "/api/transcripts", body).await, 429, "too_many_transcripts");
    for (body, code) in [
        (
            json!({"token": "forged.token.here", "email": "x@example.com"}),
            "invalid_token",
        ),
        (json!({"token": rating_token, "email": "bad"}), "invalid_email"),
        (json!({"email": "x@example.com"}), "bad_json"),
    ] {
        refusal(post(&hub, "/api/transcripts", body).await, 400, code);
    }
    // Every transcript mail was sent once: three mails, three addresses, nothing twice.
    let mails = smtp.wait_for(3).await;
    let page = outbox(&admin, "?status=sent").await;
    assert_eq!(page["total"], 3, "{page}");
    let mut ids: Vec<String> = mails.iter().map(|m| parse_mail(m).message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), mails.len(), "a mail went out twice");
    // The address given last (a correction) is the one kept with the conversation.
    let (_, record) = admin.get(&format!("/api/conversations/{chat}")).await;
    assert_eq!(record["customer"]["email"], "c3@example.com", "{record}");
    drop(smtp);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_needs_a_chat_and_an_address_and_only_ever_mails_the_askers_own_chat() {
    let (smtp, hub) = mailing_hub(transcript_settings).await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    // Waiting or not joined: no chat to mail.
    let mut nobody = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
    assert_eq!(ask(&mut nobody, Some("x@example.com")).await["code"], "not_joined");
    let mut carla = hub.customer("Carla", "general").await;
    let carla_chat = carla.next_of("chat_started").await["chat_id"].clone();
    let mut dora = hub.customer("Dora", "general").await;
    let dora_chat = dora.next_of("chat_started").await["chat_id"].clone();
    let mut erik = hub.customer("Erik", "general").await;
    assert_eq!(ask(&mut erik, Some("e@example.com")).await["code"], "not_in_chat");
    // Joined without an email and asking without one: say where.
    assert_eq!(ask(&mut carla, None).await["code"], "email_required");
    carla.send(json!({"type": "message", "text": "Carla's line"})).await;
    dora.send(json!({"type": "message", "text": "Dora's line"})).await;
    carla.next_of("ack").await;
    dora.next_of("ack").await;
    let asked = ask(&mut dora, Some("dora@example.com")).await;
    assert_eq!(asked["chat_id"], dora_chat, "{asked}");
    for chat in [&carla_chat, &dora_chat] {
        ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    }
    let mail = parse_mail(&smtp.wait_for(1).await[0]);
    assert_eq!(mail.to, "dora@example.com");
    assert!(
        mail.text.contains("Dora's line") && !mail.text.contains("Carla"),
        "{}",
        mail.text
    );
    // The email is kept with Dora's conversation, not Carla's.
    let admin = hub.admin().await;
    let (_, record) = admin
        .get(&format!("/api/conversations/{}", dora_chat.as_str().unwrap()))
        .await;
    assert_eq!(record["customer"]["email"], "dora@example.com");
    let (_, record) = admin
        .get(&format!("/api/conversations/{}", carla_chat.as_str().unwrap()))
        .await;
    assert!(record["customer"]["email"].is_null(), "{record}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_the_mail_is_made_from_the_shared_archive_and_sent_once() {
    let port = free_port();
    let smtp = SmtpSink::start(port).await;
    let cluster = Cluster::start("cluster-transcripts").await;
    let alpha = cluster.node("alpha", transcript_settings(port)).await;
    let beta = cluster.node("beta", transcript_settings(port)).await;
    let (mut ann, mut carla, chat) =
        ann_chatting_with(&beta, &alpha, "Carla", json!({"email": "carla@example.com"})).await;
    a_line_each_way(&mut carla, "from alpha", &mut ann, &chat, "from beta").await;
    ann.note_in(&chat, "SECRET-NOTE on beta", "n").await;
    let asked = ask(&mut carla, None).await;
    assert_eq!(asked["type"], "transcript_requested", "{asked}");
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    let mail = parse_mail(&smtp.wait_for(1).await[0]);
    assert!(
        mail.text.contains("from alpha") && mail.text.contains("from beta"),
        "{}",
        mail.text
    );
    assert!(!mail.text.contains("SECRET") && !mail.html.contains("SECRET"));
    // Both nodes run the outbox worker; the mail is sent by one of them, once.
    let admin = alpha.admin().await;
    let deadline = std::time::Instant::now() + crate::appointment_mail::WAIT;
    loop {
        let page = outbox(&admin, "?status=sent").await;
        if page["total"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(smtp.mails().len(), 1);
    alpha.stop().await;
    beta.stop().await;
}

/// The transcript is signed with the desk's name as the admin set it for the widget, not
/// with the software's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_is_signed_with_the_desks_name() {
    let (smtp, hub) = mailing_hub(transcript_settings).await;
    hub.admin()
        .await
        .put_answering(
            200,
            "/api/admin/widget",
            json!({"title": "Acme Hilfe", "color": "#0f766e", "greeting": "Hallo!"}),
        )
        .await;
    let (mut ann, mut carla, chat) =
        ann_chatting_with(&hub, &hub, "Carla", json!({"email": "carla@example.com"})).await;
    carla.send(json!({"type": "message", "text": "hello"})).await;
    carla.next_of("ack").await;
    assert_eq!(ask(&mut carla, None).await["type"], "transcript_requested");
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    let mail = parse_mail(&smtp.wait_for(1).await[0]);
    assert!(mail.text.trim_end().ends_with("— Acme Hilfe"), "{}", mail.text);
    assert!(mail.html.contains("— Acme Hilfe"), "{}", mail.html);
    assert!(!mail.text.contains("Switchboard"), "{}", mail.text);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_with_umlauts_is_utf8_mime_from_the_desks_domain() {
    let (smtp, hub) = koeln_desk(transcript_settings, |s| s.widget.title = "Kundendienst Köln".into()).await;
    let berliner = json!({"email": "joerg@example.com", "zone": "Europe/Berlin"});
    let (mut ann, mut joerg, chat) = ann_chatting_with(&hub, &hub, "Jörg Müller", berliner).await;
    let answer = "Schöne Grüße zurück, Jörg — 5 € gutgeschrieben";
    a_line_each_way(&mut joerg, "Grüße aus Köln", &mut ann, &chat, answer).await;
    assert_eq!(ask(&mut joerg, None).await["type"], "transcript_requested");
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    joerg.next_of("chat_ended").await;

    let (_, mail) = koeln_mail_to_joerg(&smtp).await;
    assert!(mail.subject.starts_with("Your chat with ANN on "), "{}", mail.subject);
    let text = mail.text.replace("\r\n", "\n");
    assert!(
        text.starts_with("Hello Jörg Müller, here is the transcript of your chat with ANN on "),
        "{text}"
    );
    assert!(text.contains("] Jörg Müller: Grüße aus Köln\n"), "{text}");
    assert!(
        text.contains("] ANN: Schöne Grüße zurück, Jörg — 5 € gutgeschrieben\n"),
        "{text}"
    );
    assert!(text.ends_with("\n— Kundendienst Köln\n"), "{text}");
    assert!(
        mail.html.contains("<strong>Jörg Müller</strong>: <span"),
        "{}",
        mail.html
    );
    assert!(mail.html.contains(">Grüße aus Köln</span>"), "{}", mail.html);
    assert!(mail.html.contains("<p>— Kundendienst Köln</p>"), "{}", mail.html);
    drop(smtp);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reopen_the_same_address_gets_the_whole_conversation_when_it_ends_again() {
    let port = free_port();
    let smtp = SmtpSink::start(port).await;
    let hub = TestHub::with(transcript_settings(port)).await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    let visitor = json!({"visitor": "carla-transcript-key-0001"});
    let (mut carla, chat) = hub.paired_customer_with(&mut ann, "Carla", visitor).await;
    carla.say("first visit line", "c1").await;
    ann.next_of("message").await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let ended = carla.next_of("chat_ended").await;
    let token = ended["rating"]["token"].as_str().unwrap().to_string();
    let body = json!({"token": token, "email": "carla@example.com"});
    let (status, first) = post(&hub, "/api/transcripts", body.clone()).await;
    assert_eq!((status, first["already"].as_bool()), (202, Some(false)), "{first}");
    let mails = smtp.wait_for(1).await;
    assert!(parse_mail(&mails[0]).text.contains("first visit line"));
    // Nothing said since it went: the same mail.
    let (_, same) = post(&hub, "/api/transcripts", body).await;
    assert_eq!(same["already"], true, "{same}");

    // She continues it the next day: the same address is a mail of the whole conversation,
    // sent when it ends again (not at once on the first visit's end).
    let mut back = crate::continuing::continuing(&hub, Some("carla-transcript-key-0001"), &chat).await;
    back.next_of("chat_started").await;
    ann.next_of("chat_started").await;
    back.say("second visit line", "c2").await;
    ann.next_of("message").await;
    let asked = ask(&mut back, Some("carla@example.com")).await;
    assert_eq!(
        (asked["type"].as_str(), asked["already"].as_bool()),
        (Some("transcript_requested"), Some(false)),
        "{asked}"
    );
    back.say("one more thing", "c3").await;
    ann.next_of("message").await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    back.next_of("chat_ended").await;
    let mails = smtp.wait_for(2).await;
    let whole = parse_mail(&mails[1]);
    assert_eq!(whole.to, "carla@example.com");
    for line in ["first visit line", "second visit line", "one more thing"] {
        assert!(whole.text.contains(line), "{line}: {}", whole.text);
    }
    hub.stop().await;
}
