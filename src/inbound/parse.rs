//! A raw mail turned into the fields `core::inbound_mail` decides on, by the well-kept
//! `mail-parser` crate (MIME structure, quoted-printable, base64, charsets, RFC 2047 words,
//! HTML-only mails turned to text). Malformed input gives empty fields, never a panic.

use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders};

use crate::core::inbound_mail::{MailFields, MailFile};

/// The fields of `raw`.
pub fn fields(raw: &[u8]) -> MailFields {
    let size = raw.len();
    let Some(message) = MessageParser::default().parse(raw) else {
        return MailFields {
            size,
            ..MailFields::default()
        };
    };
    let mut recipients: Vec<String> = addresses(message.to()).chain(addresses(message.cc())).collect();
    for header in message.headers() {
        if header.name().eq_ignore_ascii_case("Delivered-To")
            && let Some(text) = header.value().as_text()
        {
            recipients.push(text.trim().trim_matches(['<', '>']).to_string());
        }
    }
    let text_header = |name: &str| message.header(name).and_then(HeaderValue::as_text).map(str::to_string);
    let content_type = message.content_type();
    MailFields {
        message_id: message.message_id().map(str::to_string),
        from: message
            .from()
            .and_then(Address::first)
            .and_then(|a| a.address())
            .map(str::to_string),
        recipients,
        in_reply_to: ids(message.in_reply_to()),
        references: ids(message.references()),
        auto_submitted: text_header("Auto-Submitted"),
        precedence: text_header("Precedence"),
        x_autoreply: message.header("X-Autoreply").is_some() || message.header("X-Autorespond").is_some(),
        content_type: content_type.map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or("")).to_ascii_lowercase()),
        report_type: content_type
            .and_then(|t| t.attribute("report-type"))
            .map(str::to_string),
        reported_ids: reported_ids(&message),
        bounce_reason: bounce_reason(&message),
        subject: message.subject().unwrap_or("").to_string(),
        text: message.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        files: message
            .attachments()
            .map(|part| MailFile {
                name: part.attachment_name().unwrap_or("attachment").to_string(),
                bytes: part.contents().to_vec(),
            })
            .collect(),
        size,
    }
}

fn addresses<'a>(address: Option<&'a Address<'a>>) -> impl Iterator<Item = String> + 'a {
    address
        .into_iter()
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address())
        .map(str::to_string)
}

/// Message ids of `In-Reply-To` or `References`, without angle brackets.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
        _ => vec![],
    }
}

/// In a delivery report, the `Message-ID`s of the reported mail: from its returned
/// message part (`message/rfc822`) or headers part (`text/rfc822-headers`).
fn reported_ids(message: &Message<'_>) -> Vec<String> {
    let mut found = Vec::new();
    for part in &message.parts {
        if let Some(inner) = part.message() {
            found.extend(inner.message_id().map(str::to_string));
        } else if part
            .content_type()
            .is_some_and(|t| t.subtype().is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers")))
            && let Some(headers) = MessageParser::default().parse_headers(part.contents())
        {
            found.extend(headers.message_id().map(str::to_string));
        }
    }
    found.dedup();
    found
}

/// In a delivery report, why delivery failed, from its `message/delivery-status` part (RFC
/// 3464): the first recipient's `Diagnostic-Code` (its type, `smtp;`, left out) and
/// `Status`, folded lines joined; `None` without either.
fn bounce_reason(message: &Message<'_>) -> Option<String> {
    let part = message.parts.iter().find(|part| {
        part.content_type().is_some_and(|t| {
            t.ctype().eq_ignore_ascii_case("message")
                && t.subtype().is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
        })
    })?;
    let text = String::from_utf8_lossy(part.contents());
    // Unfold: a line starting with white space continues the one before.
    let mut fields: Vec<String> = Vec::new();
    for line in text.lines() {
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => fields.push(line.trim_end().to_string()),
        }
    }
    let field = |name: &str| {
        fields.iter().find_map(|f| {
            let (n, value) = f.split_once(':')?;
            (n.trim().eq_ignore_ascii_case(name) && !value.trim().is_empty()).then(|| value.trim().to_string())
        })
    };
    let diagnostic = field("Diagnostic-Code").map(|d| match d.split_once(';') {
        Some((kind, rest)) if !kind.contains(' ') => rest.trim().to_string(),
        _ => d,
    });
    match (field("Status"), diagnostic) {
        (Some(status), Some(diagnostic)) => Some(format!("{diagnostic} (status {status})")),
        (Some(status), None) => Some(format!("status {status}")),
        (None, diagnostic) => diagnostic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_charsets_and_html_only_mails_are_decoded() {
        let raw = "From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.org>\r\nTo: Desk <support+abc@desk.example>\r\n\
                   Cc: other@example.org\r\nDelivered-To: support@desk.example\r\n\
                   Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\nMessage-ID: <m1@example.org>\r\n\
                   In-Reply-To: <root@desk.example>\r\nReferences: <a@desk.example> <root@desk.example>\r\n\
                   MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Danke <b>sch\u{f6}n</b></p>\r\n";
        let f = fields(raw.as_bytes());
        assert_eq!(f.from.as_deref(), Some("joerg@example.org"));
        assert_eq!(f.subject, "Grüße");
        assert_eq!(f.message_id.as_deref(), Some("m1@example.org"));
        assert_eq!(
            f.recipients,
            ["support+abc@desk.example", "other@example.org", "support@desk.example"]
        );
        assert_eq!(f.in_reply_to, ["root@desk.example"]);
        assert_eq!(f.references, ["a@desk.example", "root@desk.example"]);
        assert_eq!(f.text.trim(), "Danke schön");
        assert_eq!(f.size, raw.len());
    }

    #[test]
    fn a_delivery_report_names_the_mail_it_reports() {
        let raw = "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\nTo: support@desk.example\r\n\
                   Subject: Undelivered\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n\
                   --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\n\
                   Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <x@y>:\r\n  Recipient address rejected\r\n\
                   --b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@desk.example\r\nMessage-ID: <reply.c1.3@desk.example>\r\n\r\n\
                   --b--\r\n";
        let f = fields(raw.as_bytes());
        assert_eq!(f.content_type.as_deref(), Some("multipart/report"));
        assert_eq!(f.report_type.as_deref(), Some("delivery-status"));
        assert_eq!(f.reported_ids, ["reply.c1.3@desk.example"]);
        assert_eq!(
            f.bounce_reason.as_deref(),
            Some("550 5.1.1 <x@y>: Recipient address rejected (status 5.1.1)")
        );
        assert_eq!(f.auto_submitted.as_deref(), Some("auto-replied"));
    }

    #[test]
    fn attachments_are_decoded_with_their_names_and_kept_out_of_the_text() {
        let raw = "From: jo@example.org\r\nTo: desk@desk.example\r\nSubject: shot\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
                   --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the shot.\r\n\
                   --b\r\nContent-Type: application/pdf; name=\"=?UTF-8?Q?Rechnung_M=C3=A4rz.pdf?=\"\r\n\
                   Content-Disposition: attachment; filename=\"=?UTF-8?Q?Rechnung_M=C3=A4rz.pdf?=\"\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";
        let f = fields(raw.as_bytes());
        assert_eq!(f.text.trim(), "See the shot.");
        assert_eq!(
            f.files,
            [MailFile {
                name: "Rechnung März.pdf".into(),
                bytes: b"%PDF-1.4\n".to_vec()
            }]
        );
    }

    /// A charset the mail gets wrong (Latin-1 bytes declared UTF-8) or one nobody knows
    /// still gives the text, its readable parts intact, never an error or an empty line.
    #[test]
    fn a_wrong_or_unknown_charset_still_gives_the_text() {
        let mut wrong = b"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
                          Content-Type: text/plain; charset=utf-8\r\n\r\nGr"
            .to_vec();
        wrong.extend_from_slice(b"\xfc\xdfe aus K\xf6ln, order 1042\r\n");
        let f = fields(&wrong);
        assert!(f.text.contains("order 1042"), "{:?}", f.text);
        assert!(f.text.starts_with("Gr"), "{:?}", f.text);
        let unknown = b"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
                        Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nWhere is order 1042?\r\n";
        let f = fields(unknown);
        assert_eq!(f.text.trim(), "Where is order 1042?");
    }

    #[test]
    fn garbage_gives_empty_fields() {
        for raw in [
            &b""[..],
            b"\xff\xfe\x00",
            b"From: <<<\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
        ] {
            let f = fields(raw);
            assert_eq!(f.size, raw.len());
        }
    }
}
