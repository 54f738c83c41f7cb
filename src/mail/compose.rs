//! The one way a mail is built, whatever sends it (offline messages and their replies,
//! transcripts, bookings, room invitations): always MIME 1.0 with UTF-8 text parts, so a
//! name like "Jörg Müller" reads the same in every mail client.
//!
//! - text only: one `text/plain; charset=utf-8` part;
//! - text and HTML: `multipart/alternative` of the two;
//! - text and files: `multipart/mixed`, the text first.
//!
//! Headers with non-ASCII words (the subject, display names) are RFC 2047 encoded by
//! `lettre`; bodies are sent 7-bit, quoted-printable or base64, never as raw 8-bit bytes.
//! Every mail has a `Date` and a `Message-ID` on the desk's own domain (the domain of
//! `MAIL_FROM`), its left side made from the mail's key (the outbox id, so every retry of a
//! mail carries the same one) as the RFC 5322 dot-atom it must be. A follow-up mail adds a
//! `Reply-To` plus-addressed with its conversation's token and `In-Reply-To`/`References`
//! naming its conversation's root (`conversations::follow_up_mail`).

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart, SinglePart};

use super::{Outgoing, SendError};

/// Builds `outgoing` as a mail from `from`.
pub fn compose(from: &Mailbox, outgoing: &Outgoing) -> Result<Message, SendError> {
    let to: Mailbox = outgoing
        .to
        .parse()
        .map_err(|_| SendError::new(format!("{:?} is not a mail address", outgoing.to)))?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(outgoing.subject.clone())
        .message_id(Some(message_id(from, outgoing.message_key.as_deref())));
    if let Some(token) = &outgoing.reply_token {
        builder = builder.reply_to(reply_address(from, token)?);
    }
    if let Some(key) = &outgoing.thread_key {
        let root = message_id(from, Some(key));
        builder = builder.in_reply_to(root.clone()).references(root);
    }
    let text = SinglePart::plain(outgoing.text.clone());
    let alternative = |html: &String| {
        MultiPart::alternative()
            .singlepart(text.clone())
            .singlepart(SinglePart::html(html.clone()))
    };
    let mut body = match (&outgoing.html, outgoing.attachments.is_empty()) {
        (None, true) => return builder.singlepart(text).map_err(unbuildable),
        (Some(html), true) => return builder.multipart(alternative(html)).map_err(unbuildable),
        (None, false) => MultiPart::mixed().singlepart(text.clone()),
        (Some(html), false) => MultiPart::mixed().multipart(alternative(html)),
    };
    for file in &outgoing.attachments {
        let kind = ContentType::parse(&file.content_type)
            .map_err(|e| SendError::new(format!("attachment {:?}: bad content type: {e}", file.filename)))?;
        body = body.singlepart(LettreAttachment::new(file.filename.clone()).body(file.content.clone(), kind));
    }
    builder.multipart(body).map_err(unbuildable)
}

/// `<left@domain>`: `key` as a dot-atom (what is not `atext` separates atoms: an outbox id
/// like `transcript:c1:0` is `transcript.c1.0`), or a fresh UUID, on `from`'s domain.
fn message_id(from: &Mailbox, key: Option<&str>) -> String {
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let left = key
        .map(|key| {
            key.split(|c| !atext(c))
                .filter(|atom| !atom.is_empty())
                .collect::<Vec<_>>()
                .join(".")
        })
        .filter(|left| !left.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    format!("<{left}@{}>", from.email.domain())
}

/// `from` plus-addressed with `token`: `Desk <desk+token@domain>`, the name kept.
pub fn reply_address(from: &Mailbox, token: &str) -> Result<Mailbox, SendError> {
    let plus = format!("{}+{token}", from.email.user());
    let email = lettre::Address::new(plus, from.email.domain())
        .map_err(|e| SendError::new(format!("the reply address for token {token:?} is not an address: {e}")))?;
    Ok(Mailbox::new(from.name.clone(), email))
}

fn unbuildable(e: lettre::error::Error) -> SendError {
    SendError::new(format!("the mail could not be built: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::Attachment;

    fn from() -> Mailbox {
        "Kundendienst Köln <desk@shop.example>".parse().unwrap()
    }

    fn raw(outgoing: &Outgoing) -> String {
        String::from_utf8(compose(&from(), outgoing).unwrap().formatted()).unwrap()
    }

    fn mail(text: &str) -> Outgoing {
        Outgoing {
            to: "Jörg Müller <joerg@example.com>".into(),
            subject: "Grüße aus Köln".into(),
            text: text.into(),
            ..Outgoing::default()
        }
    }

    #[test]
    fn a_text_mail_declares_mime_and_utf8_and_sends_no_raw_8bit_byte() {
        let raw = raw(&mail("Liebe Grüße, Jürgen"));
        assert!(raw.contains("MIME-Version: 1.0"), "{raw}");
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8"), "{raw}");
        assert!(raw.is_ascii(), "{raw}");
        assert!(
            raw.contains("Subject: =?utf-8?"),
            "the subject is RFC 2047 encoded: {raw}"
        );
        assert!(!raw.contains("Köln"), "no raw non-ASCII header: {raw}");
    }

    #[test]
    fn a_mail_without_a_key_gets_a_message_id_on_the_desks_domain() {
        let made = raw(&mail("hello"));
        assert!(made.contains("@shop.example>"), "{made}");
        assert!(made.contains("\r\nDate: "), "{made}");
    }

    #[test]
    fn a_key_is_the_message_ids_left_side_as_a_dot_atom() {
        let id = |key: &str| {
            let keyed = Outgoing {
                message_key: Some(key.into()),
                ..mail("hi")
            };
            let raw = raw(&keyed);
            let at = raw.find("Message-ID: <").expect("a Message-ID") + "Message-ID: <".len();
            raw[at..].split('>').next().unwrap().to_string()
        };
        assert_eq!(id("offline-1.desk"), "offline-1.desk@shop.example");
        assert_eq!(id("a1.confirmation"), "a1.confirmation@shop.example");
        assert_eq!(id("transcript:c1:0"), "transcript.c1.0@shop.example");
        assert_eq!(id(":a..b <c>@d:"), "a.b.c.d@shop.example");
        assert!(id(":@:").ends_with("@shop.example") && id(":@:").len() > "@shop.example".len());
    }

    #[test]
    fn a_line_break_in_a_subject_cannot_add_a_header() {
        let sneaky = Outgoing {
            subject: "Hi\r\nBcc: all@example.com".into(),
            ..mail("x")
        };
        let raw = raw(&sneaky);
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
        assert!(parsed.bcc().is_none(), "{raw}");
    }

    #[test]
    fn what_is_built_reads_back_as_written() {
        let both = Outgoing {
            html: Some("<p>Grüße &amp; mehr</p>".into()),
            ..mail("Liebe Grüße, Jürgen")
        };
        let raw = compose(&from(), &both).unwrap().formatted();
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let sender = parsed.from().and_then(|f| f.first()).unwrap();
        assert_eq!(sender.name(), Some("Kundendienst Köln"));
        let to = parsed.to().and_then(|t| t.first()).unwrap();
        assert_eq!(to.name(), Some("Jörg Müller"));
        assert_eq!(parsed.subject(), Some("Grüße aus Köln"));
        assert_eq!(parsed.body_text(0).unwrap().trim_end(), "Liebe Grüße, Jürgen");
        assert_eq!(parsed.body_html(0).unwrap().trim_end(), "<p>Grüße &amp; mehr</p>");
    }

    #[test]
    fn html_and_files_are_parts_of_one_mime_tree() {
        let both = Outgoing {
            html: Some("<p>Grüße</p>".into()),
            attachments: vec![Attachment {
                filename: "invite.ics".into(),
                content_type: "text/calendar; method=REQUEST; charset=utf-8".into(),
                content: "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".into(),
            }],
            ..mail("Grüße")
        };
        let raw = raw(&both);
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/html; charset=utf-8"), "{raw}");
        assert!(raw.contains("text/calendar"), "{raw}");
        assert!(raw.is_ascii(), "{raw}");
    }

    #[test]
    fn a_reply_token_and_a_thread_key_make_reply_to_in_reply_to_and_references() {
        let threaded = Outgoing {
            message_key: Some("follow-up:c1:5".into()),
            reply_token: Some("abcdefghijklmnopqrstuvwxyz".into()),
            thread_key: Some("conversation:c1".into()),
            ..mail("Grüße")
        };
        let raw = compose(&from(), &threaded).unwrap().formatted();
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let reply_to = parsed.reply_to().and_then(|r| r.first()).unwrap();
        assert_eq!(reply_to.address(), Some("desk+abcdefghijklmnopqrstuvwxyz@shop.example"));
        assert_eq!(reply_to.name(), Some("Kundendienst Köln"));
        assert_eq!(parsed.in_reply_to().as_text(), Some("conversation.c1@shop.example"));
        assert_eq!(parsed.references().as_text(), Some("conversation.c1@shop.example"));
        assert_eq!(parsed.message_id(), Some("follow-up.c1.5@shop.example"));
        // Without them, none of the three headers.
        let plain = String::from_utf8(compose(&from(), &mail("x")).unwrap().formatted()).unwrap();
        for header in ["Reply-To:", "In-Reply-To:", "References:"] {
            assert!(!plain.contains(header), "{plain}");
        }
    }

    #[test]
    fn a_bad_address_is_named() {
        let bad = Outgoing {
            to: "not an address".into(),
            ..mail("x")
        };
        let e = compose(&from(), &bad).unwrap_err();
        assert!(e.message.contains("not an address"), "{e}");
    }
}
