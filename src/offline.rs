//! Offline messages: the mails they cause, as outbox entries.
//!
//! A new offline message is mailed to the desk (`OFFLINE_MAIL_TO`, when set); an agent's
//! answer is mailed to the customer. Both go through the durable mail outbox: the store
//! writes the mail with the message or the reply, and the outbox worker
//! (`appointments::mailer`) sends it once, retrying while the relay is down. Each mail's
//! id is derived from the message (and the reply), so writing it twice is one mail and
//! its `Message-ID` never changes. The HTTP side is `http::offline`; each message is also a
//! conversation (`conversation`).

pub mod conversation;

use crate::mail::QueuedMail;
use crate::store::{MailPurpose, Millis, OfflineMessage, OfflineReply, OutboxMail};

/// The outbox id of the desk's mail about message `id`.
pub fn desk_mail_id(id: &str) -> String {
    format!("offline-{id}.desk")
}

/// The outbox id of the mail of reply `reply` to message `id`.
pub fn reply_mail_id(id: &str, reply: &str) -> String {
    format!("offline-{id}.reply-{reply}")
}

/// The id of `agent`'s reply to message `message` that they named `client_id`
/// (`core::client_id`): the same for each retry (so the store keeps one reply and one
/// mail). Printed as the other reply ids.
pub fn client_reply_id(message: &str, agent: &str, client_id: &str) -> String {
    crate::core::client_id::derived_id(&REPLY_NAMESPACE, message, agent, client_id)
        .simple()
        .to_string()
}

/// The namespace of [`client_reply_id`]'s UUIDs (random, fixed: changing it would make a
/// retry across an upgrade a second reply).
const REPLY_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b1f_0e2c_93d4_4a57_8c1e_52a9_d7f3_b064);

/// The reply a reply's mail carries, from its id ([`reply_mail_id`]).
pub fn reply_of_mail(mail_id: &str) -> Option<&str> {
    mail_id.rsplit_once(".reply-").map(|(_, r)| r)
}

/// The desk's mail about a new message `m` in `category` (its name), with a link to the
/// console (`console_url`).
pub fn desk_mail(m: &OfflineMessage, category: &str, desk: &str, console_url: &str, now: Millis) -> OutboxMail {
    let subject = format!("Offline message in {category} from {}", m.name);
    let text = format!(
        "{name} <{email}> left a message in {category} while nobody was online:\n\n{text}\n\n\
         Answer it from the agent console: {console_url}\n",
        name = m.name,
        email = m.email,
        text = m.text,
    );
    QueuedMail {
        id: desk_mail_id(&m.id),
        about: m.id.clone(),
        purpose: MailPurpose::OfflineMessage,
        to: desk.to_string(),
        subject,
        text,
        attachments: vec![],
    }
    .due(now)
}

/// The customer's mail with `reply` to their message `m` in `category` (its name).
pub fn reply_mail(m: &OfflineMessage, category: &str, reply: &OfflineReply) -> OutboxMail {
    let subject = format!("Re: your message to {category}");
    let quoted: String = m.text.lines().map(|l| format!("> {l}\n")).collect();
    let text = format!(
        "Hello {name},\n\n{answer}\n\n{agent}\n\nYou wrote:\n{quoted}",
        name = m.name,
        answer = reply.text,
        agent = reply.agent_name,
    );
    QueuedMail {
        id: reply_mail_id(&m.id, &reply.id),
        about: m.id.clone(),
        purpose: MailPurpose::OfflineReply,
        to: m.email.clone(),
        subject,
        text,
        attachments: vec![],
    }
    .due(reply.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_reply_has_one_id_per_message_agent_and_name() {
        let id = client_reply_id("m1", "ann", "c-1");
        assert_eq!(id, client_reply_id("m1", "ann", "c-1"));
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        for other in [
            client_reply_id("m2", "ann", "c-1"),
            client_reply_id("m1", "bob", "c-1"),
            client_reply_id("m1", "ann", "c-2"),
        ] {
            assert_ne!(id, other);
        }
        // Its mail's id leads back to it.
        assert_eq!(reply_of_mail(&reply_mail_id("m1", &id)), Some(id.as_str()));
    }
}
