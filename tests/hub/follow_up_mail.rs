//! An agent writing to a customer who left, by mail, through a real SMTP sink (aiosmtpd):
//! lines written within the follow-up window make one mail listing them, with a reply
//! address of the plus form bound to the conversation and threading headers to the
//! conversation's root; a later batch threads to the same root; the console reads which
//! lines went out by mail and their delivery state.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::appointment_mail::{binary_hub_with, mail_settings};
use crate::archive::{TempDir, free_port};
use crate::common::*;

const VISITOR: &str = "joergs-browser-key-0001";

/// A parsed mail's header, raw and trimmed ("" when absent).
pub(crate) fn header(raw: &str, name: &str) -> String {
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a parsable mail");
    message.header_raw(name).unwrap_or_default().trim().to_string()
}

/// A Köln desk ([`koeln_desk`]) whose follow-up mails go out `delay` after the first line
/// written to a customer who left: its SMTP sink and the hub.
pub(crate) async fn follow_up_desk(delay: Duration) -> (SmtpSink, TestHub) {
    koeln_desk(mail_settings, |s| s.follow_up_mail_delay = delay).await
}

/// Jörg (email on file) chats with `agent` and leaves: his page is closed and the grace
/// period runs out (`customer_gone`). The conversation id.
pub(crate) async fn joerg_visits(hub: &Endpoint, agent: &mut Ws) -> String {
    let (mut joerg, chat) = hub
        .paired_customer_with(
            agent,
            "Jörg Müller",
            json!({"email": "joerg@example.com", "visitor": VISITOR}),
        )
        .await;
    joerg
        .send(json!({"type": "message", "text": "Wo ist mein Paket?", "client_id": "c1"}))
        .await;
    joerg.next_of("ack").await;
    agent.next_of("message").await;
    drop(joerg);
    let ended = agent.next_of("chat_ended").await;
    assert_eq!(ended["reason"], "customer_gone", "{ended}");
    chat
}

/// The agent writes `text` into `chat` (nobody there) and waits for its ack; its seq. Asked
/// again while the ended chat's record is not stored yet (`unknown_chat` until then).
pub(crate) async fn write(agent: &mut Ws, chat: &str, text: &str, client_id: &str) -> u64 {
    for _ in 0..100 {
        agent
            .send(json!({"type": "message", "chat_id": chat, "text": text, "client_id": client_id}))
            .await;
        let ack = agent
            .next_matching(|f| f["type"] == "ack" || f["type"] == "error")
            .await;
        if ack["type"] == "ack" {
            return ack["seq"].as_u64().unwrap();
        }
        assert_eq!(ack["code"], "unknown_chat", "{ack}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{text:?} was never acknowledged");
}

/// The conversation's mails as the console reads them, once `done` holds of them.
pub(crate) async fn mails_until(api: &Api, chat: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + MAIL_WAIT;
    loop {
        let (status, body) = api.get(&format!("/api/conversations/{chat}/mails")).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "never as wanted: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_written_to_a_customer_who_left_go_out_as_one_threaded_mail_per_window() {
    let (smtp, hub) = follow_up_desk(Duration::from_secs(2)).await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let chat = joerg_visits(&hub, &mut ann).await;

    // Two lines within the window: one mail with both.
    let first = write(&mut ann, &chat, "Ihr Paket ist unterwegs, Grüße", "f1").await;
    let second = write(&mut ann, &chat, "Zustellung morgen früh 🚚", "f2").await;
    let api = hub.login("ann", "agent-password").await;
    let queued = mails_until(&api, &chat, |b| b["mails"].as_array().is_some_and(|m| !m.is_empty())).await;
    assert_eq!(queued["mails"][0]["status"], "queued", "{queued}");

    let (raw, mail) = koeln_mail_to_joerg(&smtp).await;
    assert!(mail.text.contains("Ihr Paket ist unterwegs, Grüße"), "{}", mail.text);
    assert!(mail.text.contains("Zustellung morgen früh 🚚"), "{}", mail.text);
    assert!(
        !mail.text.contains("Wo ist mein Paket?"),
        "only the new lines: {}",
        mail.text
    );
    // The reply address: MAIL_FROM's local part plus an unguessable token, on its domain.
    let reply_to = header(&raw, "Reply-To");
    let address = reply_to
        .rsplit_once('<')
        .map_or(reply_to.as_str(), |(_, a)| a.trim_end_matches('>'));
    let token = address
        .strip_prefix("desk+")
        .and_then(|rest| rest.strip_suffix("@example.org"))
        .unwrap_or_else(|| panic!("not a plus address: {reply_to}"));
    assert_eq!(token.len(), 26, "{token}");
    assert!(switchboard::core::inbound_mail::has_a_tokens_shape(token), "{token}");
    let root = header(&raw, "In-Reply-To");
    assert!(root.starts_with('<') && root.ends_with("@example.org>"), "{root}");
    assert_eq!(header(&raw, "References"), root);
    assert_ne!(format!("<{}>", mail.message_id), root);

    // The console: both lines went out in that mail, sent.
    let sent = mails_until(&api, &chat, |b| b["mails"][0]["status"] == "sent").await;
    assert_eq!(sent["mails"].as_array().unwrap().len(), 1, "{sent}");
    assert_eq!(sent["mails"][0]["seqs"], json!([first, second]), "{sent}");
    assert_eq!(sent["mails"][0]["to"], "joerg@example.com", "{sent}");

    // Later, outside the window: a second mail, threaded to the same root, with only the new line.
    // The first mail is sent only once its window is over, so the window is past already.
    let third = write(&mut ann, &chat, "Nachtrag: bitte klingeln", "f3").await;
    let mails = smtp.wait_for(2).await;
    let later = parse_mail(&mails[1]);
    assert!(later.text.contains("Nachtrag: bitte klingeln"), "{}", later.text);
    assert!(!later.text.contains("Ihr Paket ist unterwegs"), "{}", later.text);
    assert_eq!(header(&mails[1], "In-Reply-To"), root);
    assert_eq!(header(&mails[1], "References"), root);
    assert_ne!(later.message_id, mail.message_id);
    let both = mails_until(&api, &chat, |b| {
        b["mails"]
            .as_array()
            .is_some_and(|m| m.len() == 2 && m.iter().all(|m| m["status"] == "sent"))
    })
    .await;
    assert_eq!(both["mails"][1]["seqs"], json!([third]), "{both}");
    // Nothing more is sent: one mail per window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.mails().len(), 2);
    // Another agent, who never served it, reads nothing of it.
    hub.agent_account("bob", &["general"], 1).await;
    let bob = hub.login("bob", "agent-password").await;
    let (status, _) = bob.get(&format!("/api/conversations/{chat}/mails")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_without_an_email_gets_no_mail() {
    let (smtp, hub) = follow_up_desk(Duration::from_millis(200)).await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let (mut carla, chat) = hub
        .paired_customer_with(&mut ann, "Carla", json!({"visitor": VISITOR}))
        .await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    carla.next_of("chat_ended").await;
    write(&mut ann, &chat, "are you there?", "f1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(smtp.mails().is_empty());
    let api = hub.login("ann", "agent-password").await;
    let (status, body) = api.get(&format!("/api/conversations/{chat}/mails")).await;
    assert_eq!((status, body["mails"].clone()), (200, json!([])), "{body}");
}

/// The hub binary on the embedded store in `dir`, sending to SMTP `smtp_port`, with a
/// follow-up window long enough to span a restart.
async fn binary_hub(dir: &Path, smtp_port: u16) -> HubProcess {
    let more = [
        ("MAIL_FROM", "Kundendienst Köln <desk@example.org>"),
        ("FOLLOW_UP_MAIL_DELAY_SECS", "12"),
        ("RESUME_GRACE_SECS", "0.5"),
    ];
    binary_hub_with(dir, smtp_port, &more).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_within_the_window_sends_one_mail_with_the_lines_from_before_and_after() {
    let dir = TempDir::new("follow-up-mail");
    std::fs::create_dir_all(&dir.0).unwrap();
    let smtp_port = free_port();
    let smtp = SmtpSink::start(smtp_port).await;
    let mut hub = binary_hub(&dir.0, smtp_port).await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let chat = joerg_visits(&hub, &mut ann).await;
    let started = std::time::Instant::now();
    let first = write(&mut ann, &chat, "vor dem Neustart: Grüße", "k1").await;
    let api = hub.login("ann", "agent-password").await;
    mails_until(&api, &chat, |b| b["mails"][0]["status"] == "queued").await;

    // Killed mid-window; started again on the same store, the agent writes on.
    hub.kill();
    let hub = binary_hub(&dir.0, smtp_port).await;
    let token = hub.login("ann", "agent-password").await.token;
    let mut ann = Ws::agent(&hub, &token).await;
    let second = write(&mut ann, &chat, "nach dem Neustart: Tschüß", "k2").await;
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "the restart took the whole window: the test proves nothing"
    );

    // One mail with both lines, once.
    let mails = smtp.wait_for(1).await;
    let mail = parse_mail(&mails[0]);
    assert!(mail.text.contains("vor dem Neustart: Grüße"), "{}", mail.text);
    assert!(mail.text.contains("nach dem Neustart: Tschüß"), "{}", mail.text);
    let api = hub.login("ann", "agent-password").await;
    let sent = mails_until(&api, &chat, |b| b["mails"][0]["status"] == "sent").await;
    assert_eq!(sent["mails"][0]["seqs"], json!([first, second]), "{sent}");
    assert_eq!(sent["mails"].as_array().unwrap().len(), 1, "{sent}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails().len(), 1);
}

/// `POST /api/attachments` with a staff session token: the status and the answer.
async fn staff_upload(hub: &Endpoint, token: &str, conversation: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(hub.url("/api/attachments"))
        .query(&[("conversation", conversation), ("name", name)])
        .bearer_auth(token)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Ann sends Jörg, who left, a PDF with her line: the agent who holds the conversation may
/// upload for it (another agent may not), the line carries the file into the archive, and
/// the follow-up mail names it with its size (the file itself is fetched in the chat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_to_a_customer_who_left_is_kept_with_the_line_and_named_in_the_mail() {
    let (smtp, hub) = follow_up_desk(Duration::from_millis(500)).await;
    let (mut ann, ann_token) = hub.agent_with_token("ann", &["general"], 2).await;
    let chat = joerg_visits(&hub, &mut ann).await;
    let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n";

    let bob_token = hub.agent_account("bob", &["general"], 1).await;
    refusal(
        staff_upload(&hub, &bob_token, &chat, "rechnung.pdf", pdf).await,
        403,
        "not_your_chat",
    );

    // Until the ended chat's record is stored, the conversation is nobody's yet.
    let mut uploaded = Value::Null;
    for _ in 0..100 {
        let (status, answer) = staff_upload(&hub, &ann_token, &chat, "rechnung.pdf", pdf).await;
        if status == 201 {
            uploaded = answer;
            break;
        }
        assert_eq!(status, 403, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = uploaded["id"]
        .as_str()
        .expect("Ann may upload for her conversation")
        .to_string();
    ann.send(
        json!({"type": "message", "chat_id": chat, "text": "Ihre Rechnung", "attachments": [id], "client_id": "f1"}),
    )
    .await;
    let ack = ann.next_matching(|f| f["type"] == "ack" || f["type"] == "error").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let archived = crate::continuing::archived_as_ann(&hub, &chat, 2).await;
    assert_eq!(
        archived["messages"][1]["attachments"][0]["id"],
        id.as_str(),
        "{archived}"
    );

    let (_, mail) = koeln_mail_to_joerg(&smtp).await;
    assert!(mail.text.contains("Ihre Rechnung"), "{}", mail.text);
    assert!(mail.text.contains("[file: rechnung.pdf, 35 B]"), "{}", mail.text);
    hub.stop().await;
}
