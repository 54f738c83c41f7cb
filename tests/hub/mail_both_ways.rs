//! Email both ways: an agent's line to a customer who left goes out by mail (SMTP sink);
//! the customer's answer, put in the desk's mailbox on a real IMAP server (Dovecot), comes
//! back as their line in the same conversation, on the agent's console, and opens it
//! again. The reply token decides (a `From` that is not the customer's is shown as such),
//! and the same mail fetched twice adds nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::appointment_mail::mail_settings;
use crate::common::*;
use crate::dovecot::Dovecot;
use crate::follow_up_mail::{header, joerg_visits, write};

/// The customer's answer to the desk mail `raw`: to its reply address, threaded to it,
/// quoting it (the quote is not part of the line).
fn answer(raw: &str, from: &str, message_id: &str, text: &str) -> String {
    let reply_to = header(raw, "Reply-To");
    let to = reply_to
        .rsplit_once('<')
        .map_or(reply_to.as_str(), |(_, a)| a.trim_end_matches('>'));
    let answered = header(raw, "Message-ID");
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Re: Ihr Paket\r\nMessage-ID: <{message_id}>\r\nIn-Reply-To: {answered}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         {text}\r\n\r\nAm Montag schrieb Kundendienst:\r\n> Ihr Paket ist unterwegs\r\n"
    )
}

/// The next customer line of conversation `chat` on the agent's page: a mail's, so up to
/// [`MAIL_WAIT`] (the mailbox is polled, and a busy machine delays the poll).
async fn customer_line(agent: &mut Ws, chat: &str) -> Value {
    agent
        .next_matching_within(MAIL_WAIT, |f| {
            f["type"] == "message" && f["chat_id"] == chat && f["from"] == "customer"
        })
        .await
}

/// The next customer line of `chat` ([`customer_line`]), asserted to begin with `text`
/// and to carry `note` (why a part of the mail did not come with it).
async fn line_with_note(agent: &mut Ws, chat: &str, text: &str, note: &str) -> Value {
    let line = customer_line(agent, chat).await;
    let said = line["text"].as_str().unwrap();
    assert!(said.starts_with(text) && said.contains(note), "{said}");
    line
}

/// A file attached to a `multipart/mixed` mail with the boundary `b`: its part, base64.
fn part(kind: &str, name: &str, bytes: &[u8]) -> String {
    use base64::Engine;
    format!(
        "--b\r\nContent-Type: {kind}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Jörg's mail `<{id}@example.com>` answering `chat` ([`joergs_headers`], then `rest`: more
/// headers or the blank line, and the body), put in the mailbox.
async fn joerg_answers(imap: &Dovecot, chat: &str, id: &str, rest: &str) {
    imap.append(&format!("{}{rest}", joergs_headers(chat, id))).await;
}

/// The headers of Jörg's mail `<{id}@example.com>` answering conversation `chat` (its
/// `In-Reply-To`), up to the body or the MIME headers.
fn joergs_headers(chat: &str, id: &str) -> String {
    format!(
        "From: joerg@example.com\r\nTo: desk@example.org\r\nSubject: Re: Paket\r\nMessage-ID: <{id}@example.com>\r\n\
         In-Reply-To: <conversation.{chat}@example.org>\r\n"
    )
}

/// A desk mailing through an SMTP sink (follow-ups after 500 ms) and reading a real
/// Dovecot's mailbox: the server, the sink and the hub.
pub(crate) async fn desk_with_mailbox() -> (Dovecot, SmtpSink, TestHub) {
    let imap = Dovecot::start().await;
    let port = imap.port;
    let (smtp, hub) = koeln_desk(mail_settings, move |s| {
        s.follow_up_mail_delay = Duration::from_millis(500);
        s.imap = Some(crate::inbound_mail::polling(port));
    })
    .await;
    (imap, smtp, hub)
}

/// A conversation Jörg left and Ann answered in writing, then resolved: his follow-up
/// mail, raw, is what he answers.
struct Mailed {
    chat: String,
    /// The seq of Ann's written line.
    seq: u64,
    raw: String,
}

/// Jörg visits `hub` and leaves; Ann writes to him and resolves the conversation.
async fn mailed_and_resolved(hub: &Endpoint, ann: &mut Ws, smtp: &SmtpSink) -> Mailed {
    let chat = joerg_visits(hub, ann).await;
    let seq = write(ann, &chat, "Ihr Paket ist unterwegs", "f1").await;
    let (raw, _) = koeln_mail_to_joerg(smtp).await;
    ann.send(
        json!({"type": "set_conversation_status", "conversation_id": chat, "status": "resolved", "client_id": "r1"}),
    )
    .await;
    let resolved = ann
        .next_matching(|f| f["type"] == "conversation_status" && f["client_id"] == "r1")
        .await;
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    Mailed { chat, seq, raw }
}

/// Jörg answers the mail with `text` (its `Message-ID` `message_id`): on Ann's console,
/// his line right after hers, without the quoted mail, and the conversation open again.
async fn answered(imap: &Dovecot, ann: &mut Ws, mailed: &Mailed, message_id: &str, text: &str) {
    let (chat, seq) = (mailed.chat.as_str(), mailed.seq + 1);
    // Statuses heard before the answer (its opening's, overtaken) are not the reopening.
    ann.seen.retain(|f| f["type"] != "conversation_status");
    imap.append(&answer(
        &mailed.raw,
        "Jörg Müller <joerg@example.com>",
        message_id,
        text,
    ))
    .await;
    let line = ann
        .next_matching_within(MAIL_WAIT, |f| {
            f["type"] == "message" && f["chat_id"] == chat && f["from"] == "customer"
        })
        .await;
    assert_eq!(
        (line["text"].as_str(), line["seq"].as_u64()),
        (Some(text), Some(seq)),
        "the quoted mail is not part of the line: {line}"
    );
    assert_eq!(line["via"], "email", "a line by mail says so: {line}");
    // Across nodes the status (over the bus) may come before the line (over the chat's log).
    let status = ann
        .seen_or_next_matching(|f| {
            f["type"] == "conversation_status" && f["conversation_id"] == chat && f["status"] == "open"
        })
        .await;
    assert_eq!(status["status"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_answer_by_mail_comes_back_into_the_conversation_once() {
    let (imap, smtp, hub) = desk_with_mailbox().await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let mailed = mailed_and_resolved(&hub, &mut ann, &smtp).await;
    // Jörg answers the mail: his line, in the same conversation, on Ann's console, which
    // opens it again in her list.
    answered(&imap, &mut ann, &mailed, "a1@example.com", "Danke, ich warte gern.").await;
    let Mailed { chat, seq, raw } = mailed;

    // The same mail again, and someone else writing with his token: once, and shown as such.
    imap.append(&answer(
        &raw,
        "Jörg Müller <joerg@example.com>",
        "a1@example.com",
        "Danke, ich warte gern.",
    ))
    .await;
    imap.append(&answer(
        &raw,
        "Mallory <mallory@example.net>",
        "m1@example.net",
        "Send it to me instead",
    ))
    .await;
    let spoofed = customer_line(&mut ann, &chat).await;
    assert_eq!(
        spoofed["seq"].as_u64(),
        Some(seq + 2),
        "the repeat added nothing: {spoofed}"
    );
    let text = spoofed["text"].as_str().unwrap();
    assert!(
        text.contains("mallory@example.net") && text.contains("not the customer's address"),
        "{text}"
    );

    let api = hub.login("ann", "agent-password").await;
    // The archive has both lines after Ann's, once each.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, c) = api.get(&format!("/api/conversations/{chat}")).await;
        let lines = seqs_and_texts(&c["messages"]);
        if lines.len() as u64 == seq + 2 {
            assert_eq!(lines[seq as usize].1, "Danke, ich warte gern.");
            // After a reload too, the lines by mail say so, and Ann's own does not.
            let messages = c["messages"].as_array().unwrap();
            let via: Vec<&Value> = messages.iter().map(|m| &m["via"]).collect();
            assert_eq!(via[seq as usize - 1], &Value::Null, "{c}");
            assert_eq!(via[seq as usize], "email", "{c}");
            assert_eq!(via[seq as usize + 1], "email", "{c}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The whole mail as it came is kept with its line: a download, byte for byte.
    let (_, c) = api.get(&format!("/api/conversations/{chat}")).await;
    let original = &c["messages"][seq as usize]["attachments"][0];
    assert_eq!(
        (&original["name"], &original["type"]),
        (&json!("original-mail.eml"), &json!("message/rfc822")),
        "{c}"
    );
    let (status, links) = api
        .get(&format!("/api/attachments/{}/link", original["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{links}");
    let body = reqwest::get(hub.url(links["url"].as_str().unwrap())).await.unwrap();
    let disposition = body.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let sent = answer(
        &raw,
        "Jörg Müller <joerg@example.com>",
        "a1@example.com",
        "Danke, ich warte gern.",
    );
    assert_eq!(
        body.bytes().await.unwrap().as_ref(),
        sent.as_bytes(),
        "the mail as it came"
    );
}

/// A customer's mail arriving while their chat waits in a category's line after a
/// transfer (its count is its own until it is paired again): the mail waits in the
/// mailbox and becomes their line in the chat once an agent has it. (It took the hub
/// down once: the chat had a wire id but no log.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_for_a_chat_waiting_after_a_transfer_waits_and_joins_the_chat() {
    let imap = Dovecot::start().await;
    let port = imap.port;
    let (_smtp, hub) = koeln_desk(mail_settings, move |s| {
        s.imap = Some(crate::inbound_mail::polling(port));
    })
    .await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    let (mut joerg, chat) = hub
        .paired_customer_with(&mut ann, "Jörg Müller", json!({"email": "joerg@example.com"}))
        .await;
    joerg
        .send(json!({"type": "message", "text": "Wo ist mein Paket?", "client_id": "c1"}))
        .await;
    joerg.next_of("ack").await;
    ann.send(json!({"type": "transfer", "chat_id": chat, "to_category": "billing", "note": "refund"}))
        .await;
    joerg.next_of("queued").await;

    // He writes by mail meanwhile (answering the conversation, from his own address).
    joerg_answers(&imap, &chat, "w1", "\r\nAny news?\r\n").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The hub is up (a customer still joins, and Ann, free again, gets her), and Bill, taking billing, gets the chat,
    // then the mail as Jörg's line in it.
    let mut zoe = hub.customer("Zoe", "general").await;
    zoe.next_of("chat_started").await;
    let mut bill = hub.agent("bill", &["billing"], 1).await;
    let started = bill.next_of("chat_started").await;
    assert_eq!(started["chat_id"], chat, "{started}");
    let line = customer_line(&mut bill, &chat).await;
    assert_eq!(
        (line["text"].as_str(), line["seq"].as_u64()),
        (Some("Any news?"), Some(2)),
        "{line}"
    );
    assert_eq!(line["via"], "email", "in a live chat too: {line}");
    assert_eq!(joerg.next_of("message").await["text"], "Any news?");
}

/// Where the server offers `IDLE` (Dovecot does), the poller waits in it: a mail arriving
/// is the customer's line within moments, though `IMAP_POLL_SECS` is 300 (polling alone
/// would take that long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_the_server_offers_idle_a_mail_comes_in_as_it_arrives_not_at_the_next_poll() {
    let imap = Dovecot::start().await;
    let port = imap.port;
    let (_smtp, hub) = koeln_desk(mail_settings, move |s| {
        let mut imap = crate::inbound_mail::polling(port);
        imap.poll = Duration::from_secs(300);
        s.imap = Some(imap);
    })
    .await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    let (_joerg, chat) = hub
        .paired_customer_with(&mut ann, "Jörg Müller", json!({"email": "joerg@example.com"}))
        .await;
    // The poller has had its first look (an empty mailbox), so the next poll is 300 s away.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(hub.url("/metrics")).await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l == "switchboard_inbound_mail_up 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mailbox was never read: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    joerg_answers(&imap, &chat, "idle-1", "\r\nIch bin per Mail da.\r\n").await;
    let line = ann
        .next_matching_within(Duration::from_secs(30), |f| {
            f["type"] == "message" && f["chat_id"] == chat.as_str() && f["from"] == "customer"
        })
        .await;
    assert_eq!(line["text"], "Ich bin per Mail da.", "{line}");
    hub.stop().await;
}

/// Two nodes of the Köln desk mailing through one SMTP sink (follow-ups after 500 ms);
/// beta alone reads the mailbox, on a real Dovecot.
struct MailNodes {
    imap: Dovecot,
    smtp: SmtpSink,
    alpha: TestHub,
    beta: TestHub,
    /// Kept until the nodes are stopped.
    _cluster: Cluster,
}

async fn mail_nodes(tag: &str) -> MailNodes {
    let imap = Dovecot::start().await;
    let port = imap.port;
    let smtp = SmtpSink::start(crate::archive::free_port()).await;
    let smtp_port = smtp.port;
    let desk = move |s: &mut switchboard::config::Settings| {
        mail_settings(smtp_port)(s);
        s.mail.from = "Kundendienst Köln <desk@example.org>".into();
        s.follow_up_mail_delay = Duration::from_millis(500);
    };
    let cluster = Cluster::start(tag).await;
    let alpha = cluster.node("alpha", desk).await;
    let beta = cluster
        .node("beta", move |s| {
            desk(s);
            s.imap = Some(crate::inbound_mail::polling(port));
        })
        .await;
    MailNodes {
        imap,
        smtp,
        alpha,
        beta,
        _cluster: cluster,
    }
}

/// Across nodes: Ann, on alpha, writes to Jörg, who left from beta; the follow-up mail
/// goes out once though both nodes send the outbox; his answer, read by beta (the one node
/// with `IMAP_URL`), is his line on Ann's console on alpha, with the next seq, and opens
/// the conversation again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_the_answer_polled_on_one_node_reaches_the_agent_on_another() {
    let MailNodes {
        imap,
        smtp,
        alpha,
        beta,
        _cluster,
    } = mail_nodes("mail-both-ways").await;
    let mut ann = alpha.agent("ann", &["general"], 2).await;
    let mailed = mailed_and_resolved(&beta, &mut ann, &smtp).await;
    answered(&imap, &mut ann, &mailed, "x1@example.com", "Danke, bis morgen.").await;
    // One mail went out, though both nodes send the outbox.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails().len(), 1);
    for node in [alpha, beta] {
        node.stop().await;
    }
}

/// Across nodes, in a live chat: Jörg chats on beta (the node reading the mailbox) with Ann
/// on alpha and writes by mail meanwhile. His mail is his next line on both pages, marked
/// as by mail on Ann's too (the chat's log in Redis carries the mark), and in the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_a_mail_into_a_live_chat_is_marked_on_the_agents_node() {
    let MailNodes {
        imap,
        smtp: _smtp,
        alpha,
        beta,
        _cluster,
    } = mail_nodes("mail-live-across").await;
    let mut ann = alpha.agent("ann", &["general"], 1).await;
    let (mut joerg, chat) = beta
        .paired_customer_with(&mut ann, "Jörg Müller", json!({"email": "joerg@example.com"}))
        .await;
    assert_eq!(joerg.say("Wo ist mein Paket?", "c1").await["seq"], 1);
    assert_eq!(customer_line(&mut ann, &chat).await["seq"], 1);

    joerg_answers(&imap, &chat, "live-1", "\r\nAuch per Mail: wo ist es?\r\n").await;
    let line = customer_line(&mut ann, &chat).await;
    assert_eq!(
        (line["text"].as_str(), line["seq"].as_u64(), &line["via"]),
        (Some("Auch per Mail: wo ist es?"), Some(2), &json!("email")),
        "{line}"
    );
    let own = joerg.next_of("message").await;
    assert_eq!((own["seq"].as_u64(), &own["via"]), (Some(2), &json!("email")), "{own}");
    let archived = crate::continuing::archived_as_ann(&alpha, &chat, 2).await;
    assert_eq!(archived["messages"][1]["via"], "email", "{archived}");
    for node in [alpha, beta] {
        node.stop().await;
    }
}

/// Jörg answers with a picture, a PDF and a program attached: the picture and the PDF come
/// with his line, checked and kept as uploads are (the picture written afresh, with a
/// thumbnail), in the archive too; the program is refused by its bytes, and the line says so.
/// The whole mail is not kept with the line: the refused program is inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_mail_brings_its_attachments_and_names_the_ones_refused() {
    let (imap, smtp, hub) = desk_with_mailbox().await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let Mailed { chat, seq, raw } = mailed_and_resolved(&hub, &mut ann, &smtp).await;
    let answered = header(&raw, "Message-ID");
    let reply_to = header(&raw, "Reply-To");
    let to = reply_to
        .rsplit_once('<')
        .map_or(reply_to.as_str(), |(_, a)| a.trim_end_matches('>'));
    imap.append(&format!(
        "From: joerg@example.com\r\nTo: {to}\r\nSubject: Re: Paket\r\nMessage-ID: <files-1@example.com>\r\n\
         In-Reply-To: {answered}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHier die Unterlagen.\r\n{}{}{}--b--\r\n",
        part("image/png", "foto.png", &crate::attachments::png(8, 6)),
        part(
            "application/pdf",
            "Rechnung.pdf",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
        ),
        // Called a PDF; its bytes say it is a program.
        part(
            "application/pdf",
            "tool.pdf",
            b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0"
        ),
    ))
    .await;
    let line = ann
        .next_matching_within(MAIL_WAIT, |f| {
            f["type"] == "message" && f["chat_id"] == chat.as_str() && f["from"] == "customer"
        })
        .await;
    assert_eq!(
        (line["seq"].as_u64(), &line["via"]),
        (Some(seq + 1), &json!("email")),
        "{line}"
    );
    let text = line["text"].as_str().unwrap();
    assert!(
        text.starts_with("Hier die Unterlagen.")
            && text.contains("(attachment tool.pdf refused: type ")
            && text.contains("not allowed)")
            && text.contains("(the whole mail is kept only in the mailbox: it carries a file that was refused)"),
        "{text}"
    );
    let files = line["attachments"].as_array().expect("attachments");
    let kinds: Vec<(&str, &str, bool)> = files
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["type"].as_str().unwrap(),
                f["thumbnail"] == true,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("foto.png", "image/png", true),
            ("Rechnung.pdf", "application/pdf", false)
        ],
        "{line}"
    );

    // Ann fetches them through links, and the archive has them with the line.
    let api = hub.login("ann", "agent-password").await;
    for file in files {
        let (status, links) = api
            .get(&format!("/api/attachments/{}/link", file["id"].as_str().unwrap()))
            .await;
        assert_eq!(status, 200, "{links}");
        let body = reqwest::get(hub.url(links["url"].as_str().unwrap())).await.unwrap();
        assert_eq!(body.status(), 200);
        assert_eq!(body.bytes().await.unwrap().len() as u64, file["size"].as_u64().unwrap());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, c) = api.get(&format!("/api/conversations/{chat}")).await;
        if let Some(archived) = c["messages"].as_array().and_then(|m| m.get(seq as usize)) {
            assert_eq!(archived["attachments"], line["attachments"], "{c}");
            assert_eq!(archived["via"], "email", "{c}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With a virus scanner (a real clamd with one test signature): a customer's mail whose
/// attachment it finds a signature in comes in without that file, the line saying why;
/// the clean picture beside it comes with the line. The whole mail is scanned too; with
/// the scanner down, a mail without files comes in, the whole mail left in the mailbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mails_attachment_the_virus_scanner_refuses_is_named_not_kept() {
    let mut clamd = crate::clamd::Clamd::start().await;
    let imap = Dovecot::start().await;
    let (port, socket) = (imap.port, clamd.socket.clone());
    let (_smtp, hub) = koeln_desk(mail_settings, move |s| {
        s.imap = Some(crate::inbound_mail::polling(port));
        s.clamd = Some(switchboard::config::clamd::Clamd::Unix(socket));
    })
    .await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    let (_joerg, chat) = hub
        .paired_customer_with(&mut ann, "Jörg Müller", json!({"email": "joerg@example.com"}))
        .await;
    let found = crate::clamd::SIGNATURE;
    let mut notes = b"meine Notizen\n".to_vec();
    notes.extend_from_slice(crate::clamd::MARKER);
    let mail = format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAnbei.\r\n{}{}--b--\r\n",
        part("image/png", "foto.png", &crate::attachments::png(8, 6)),
        part("text/plain", "notizen.txt", &notes)
    );
    joerg_answers(&imap, &chat, "scan-1", &mail).await;
    let refused = format!("(attachment notizen.txt refused: the virus scanner found {found})");
    let line = line_with_note(&mut ann, &chat, "Anbei.", &refused).await;
    let names: Vec<&str> = line["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["foto.png"], "{line}");

    // The whole mail is scanned too: what it holds beside its files (here, an HTML part)
    // is never offered as its download.
    let mail = format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n\
         --a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNoch etwas.\r\n\
         --a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Noch etwas.</p><!-- {} -->\r\n--a--\r\n",
        String::from_utf8_lossy(crate::clamd::MARKER)
    );
    joerg_answers(&imap, &chat, "scan-2", &mail).await;
    let kept = format!("(the whole mail is kept only in the mailbox: the virus scanner found {found})");
    let line = line_with_note(&mut ann, &chat, "Noch etwas.", &kept).await;
    assert!(
        line["attachments"].as_array().is_none_or(|files| files.is_empty()),
        "{line}"
    );

    // The scanner down: a mail without files still comes in as his line; the whole mail,
    // unchecked, stays in the mailbox.
    clamd.kill();
    joerg_answers(&imap, &chat, "scan-3", "\r\nSind Sie noch da?\r\n").await;
    let kept = "(the whole mail is kept only in the mailbox: the virus scanner could not check it)";
    line_with_note(&mut ann, &chat, "Sind Sie noch da?", kept).await;
    hub.stop().await;
}
