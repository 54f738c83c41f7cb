//! A follow-up mail that cannot be delivered is shown bounced: when a delivery failure
//! report about it (a real DSN, put in the desk's mailbox on Dovecot) comes back, and when
//! the relay (the SMTP sink) refuses its recipient for good (550), where it is not tried
//! again. The console reads it, with the reason, from `/api/conversations/{id}/mails`.

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::follow_up_mail::{follow_up_desk, header, joerg_visits, mails_until, write};
use crate::mail_both_ways::desk_with_mailbox;

/// A delivery status notification (RFC 3464) from the customer's mail server about the
/// desk mail whose `Message-ID` (with its angle brackets) is `original`.
fn delivery_report(original: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\nTo: desk@example.org\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx.example.com>\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"dsn\"\r\n\r\n\
         --dsn\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
         Your message could not be delivered to joerg@example.com.\r\n\r\n\
         --dsn\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.example.com\r\nArrival-Date: Fri, 27 Nov 2026 03:00:00 +0000\r\n\r\n\
         Final-Recipient: rfc822; joerg@example.com\r\nOriginal-Recipient: rfc822;joerg@example.com\r\n\
         Action: failed\r\nStatus: 5.2.2\r\n\
         Diagnostic-Code: smtp; 552 5.2.2 <joerg@example.com>: mailbox full\r\n\r\n\
         --dsn\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         From: Kundendienst Koeln <desk@example.org>\r\nTo: joerg@example.com\r\n\
         Subject: Re: Your conversation\r\nMessage-ID: {original}\r\n\r\n\
         --dsn--\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_report_about_a_follow_up_mail_shows_it_bounced_with_the_reason() {
    let (imap, smtp, hub) = desk_with_mailbox().await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    let chat = joerg_visits(&hub, &mut ann).await;
    write(&mut ann, &chat, "Ihr Paket ist unterwegs", "f1").await;
    let (raw, _) = koeln_mail_to_joerg(&smtp).await;
    let api = hub.login("ann", "agent-password").await;
    mails_until(&api, &chat, |b| b["mails"][0]["status"] == "sent").await;

    // His mail server reports it undeliverable, naming the mail by its Message-ID.
    imap.append(&delivery_report(&header(&raw, "Message-ID"))).await;
    let bounced = mails_until(&api, &chat, |b| b["mails"][0]["status"] == "bounced").await;
    let error = bounced["mails"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("552 5.2.2") && error.contains("mailbox full"),
        "the report's reason: {bounced}"
    );
    // The report is no line of the conversation, and a second copy changes nothing.
    imap.append(&delivery_report(&header(&raw, "Message-ID"))).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, c) = api.get(&format!("/api/conversations/{chat}")).await;
    assert!(
        seqs_and_texts(&c["messages"])
            .iter()
            .all(|(_, t)| !t.contains("delivered")),
        "{c}"
    );
    let again = mails_until(&api, &chat, |b| b["mails"][0]["status"] == "bounced").await;
    assert_eq!(again["mails"].as_array().map(Vec::len), Some(1), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_mail_the_relay_refuses_for_good_is_bounced_not_retried() {
    let (smtp, hub) = follow_up_desk(Duration::from_millis(200)).await;
    let mut ann = hub.agent("ann", &["general"], 2).await;
    // A customer whose address the relay does not know (the sink refuses "bounce…" with 550).
    let (mut karl, chat) = hub
        .paired_customer_with(&mut ann, "Karl", json!({"email": "bounce.karl@example.com"}))
        .await;
    ann.send(json!({"type": "end_chat", "chat_id": chat})).await;
    karl.next_of("chat_ended").await;
    drop(karl);
    write(&mut ann, &chat, "Sind Sie noch da?", "f1").await;
    let api = hub.login("ann", "agent-password").await;
    let bounced = mails_until(&api, &chat, |b| b["mails"][0]["status"] == "bounced").await;
    let mail = &bounced["mails"][0];
    assert_eq!(mail["attempts"], 1, "tried once: {bounced}");
    let error = mail["error"].as_str().unwrap_or_default();
    assert!(error.contains("550"), "the relay's answer: {bounced}");
    // Not tried again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = mails_until(&api, &chat, |_| true).await;
    assert_eq!(
        (
            later["mails"][0]["status"].as_str(),
            later["mails"][0]["attempts"].as_u64()
        ),
        (Some("bounced"), Some(1)),
        "{later}"
    );
    assert!(smtp.mails().is_empty());
}
