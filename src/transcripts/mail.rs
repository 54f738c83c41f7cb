//! A transcript mail's content, made from the archive when the mail is sent: a plain-text
//! and an HTML part with the same lines, each message with its time in the customer's zone
//! (the one their browser gave when joining, else the desk's), and — while the chat is not
//! rated — a link to rate it on the hub's `/rate` page.
//!
//! It is made from a [`CustomerTranscript`] only, which holds no notes (see
//! `store::transcripts`). Everything a customer or agent typed (names, messages) is escaped
//! in the HTML part by `html-escape`; the plain part is plain text.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::store::{CustomerTranscript, EndReason, Millis, Side};

/// What the mail says and links to, beside the transcript.
pub struct Desk<'a> {
    /// The desk's name (the widget's title), in the subject and the signature.
    pub name: &'a str,
    /// The desk's own zone, for a customer who gave none.
    pub zone: &'a TimeZone,
    /// The hub's public address, for the rating link (no trailing slash).
    pub base_url: &'a str,
}

/// A made transcript mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The mail of `transcript`; `rating_token` gives the rating link (none when rated already
/// or the chat may not be rated).
pub fn make(transcript: &CustomerTranscript, desk: &Desk<'_>, rating_token: Option<&str>) -> Made {
    let opened = &transcript.opened;
    let zone = transcript
        .opened
        .customer
        .zone
        .as_deref()
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or_else(|| desk.zone.clone());
    let zone_name = zone.iana_name().unwrap_or("UTC").to_string();
    let local = |ms: Millis| {
        Timestamp::from_millisecond(ms)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(zone.clone())
    };
    let started = local(opened.paired_at);
    let day = started.strftime("%A, %-d %B %Y").to_string();
    let subject = format!(
        "Your chat with {} on {}",
        opened.agent_name,
        started.strftime("%-d %B %Y")
    );
    let intro = format!(
        "Hello {}, here is the transcript of your chat with {} on {day} (times in {zone_name}).",
        opened.customer_name, opened.agent_name
    );
    let ended = transcript.closed.as_ref().map(|c| {
        let how = match c.reason {
            EndReason::Ended => "The chat ended",
            EndReason::Disconnect => "The chat ended when a side left",
            EndReason::Expiry | EndReason::Shutdown => "The chat was closed",
        };
        format!("{how} at {}.", local(c.ended_at).strftime("%H:%M"))
    });
    let rate_url = rating_token.map(|token| format!("{}/rate?token={token}", desk.base_url));

    // One line per message; a date line where the day changes (a chat past midnight).
    let mut lines = Vec::with_capacity(transcript.messages.len());
    let mut last_day = started.date();
    for m in &transcript.messages {
        let at = local(m.at);
        let new_day = (at.date() != last_day).then(|| at.strftime("%A, %-d %B %Y").to_string());
        last_day = at.date();
        let who = match m.from {
            Side::Customer => opened.customer_name.as_str(),
            Side::Agent => opened.agent_name.as_str(),
            Side::System => desk.name,
        };
        lines.push((new_day, at.strftime("%H:%M").to_string(), who, said_with_files(m)));
    }

    let mut text = format!("{intro}\n\n");
    for (new_day, time, who, said) in &lines {
        if let Some(day) = new_day {
            let _ = writeln!(text, "— {day} —");
        }
        // Continuation lines indented under the message.
        let said = said.replace('\n', "\n        ");
        let _ = writeln!(text, "[{time}] {who}: {said}");
    }
    if lines.is_empty() {
        text.push_str("(No messages were written.)\n");
    }
    if let Some(ended) = &ended {
        let _ = write!(text, "\n{ended}\n");
    }
    if let Some(url) = &rate_url {
        let _ = write!(
            text,
            "\nHow did we do? Rate this chat (the link works for 7 days):\n{url}\n"
        );
    }
    let _ = write!(text, "\n— {}\n", desk.name);

    let e = |s: &str| html_escape::encode_text(s).into_owned();
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:system-ui,sans-serif;color:#111;max-width:40em\">\n",
    );
    let _ = writeln!(html, "<p>{}</p>", e(&intro));
    html.push_str("<table role=\"presentation\" style=\"border-collapse:collapse\">\n");
    for (new_day, time, who, said) in &lines {
        if let Some(day) = new_day {
            let _ = writeln!(
                html,
                "<tr><td colspan=\"2\" style=\"padding:8px 0;color:#555\">{}</td></tr>",
                e(day)
            );
        }
        let _ = writeln!(
            html,
            "<tr><td style=\"vertical-align:top;color:#555;padding:2px 8px 2px 0\">{}</td>\
             <td style=\"padding:2px 0\"><strong>{}</strong>: <span style=\"white-space:pre-wrap\">{}</span></td></tr>",
            e(time),
            e(who),
            e(said)
        );
    }
    html.push_str("</table>\n");
    if lines.is_empty() {
        html.push_str("<p>(No messages were written.)</p>\n");
    }
    if let Some(ended) = &ended {
        let _ = writeln!(html, "<p>{}</p>", e(ended));
    }
    if let Some(url) = &rate_url {
        let _ = writeln!(
            html,
            "<p>How did we do? <a href=\"{}\">Rate this chat</a> (the link works for 7 days).</p>",
            html_escape::encode_double_quoted_attribute(url)
        );
    }
    let _ = writeln!(html, "<p>— {}</p>\n</body></html>", e(desk.name));
    Made { subject, text, html }
}

/// A message's text and, a line each, the files it carried (name and size: the files
/// themselves are fetched through links that expire within minutes, no use in a mail).
pub(crate) fn said_with_files(m: &crate::store::ArchivedMessage) -> String {
    let mut said = m.text.clone();
    for file in &m.attachments {
        if !said.is_empty() {
            said.push('\n');
        }
        let size = match file.size {
            s if s < 1024 => format!("{s} B"),
            s if s < 1024 * 1024 => format!("{} KB", s.div_ceil(1024)),
            s => format!("{:.1} MB", s as f64 / (1024.0 * 1024.0)),
        };
        let _ = write!(said, "[file: {}, {size}]", file.name);
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ArchivedMessage, ConversationClosed, ConversationKind, ConversationOpened, CustomerProfile};

    fn transcript(zone: Option<&str>) -> CustomerTranscript {
        // 2026-03-29 00:30 UTC: 01:30 in Berlin before the spring-forward change.
        let t0 = 1_774_744_200_000;
        let message = |seq: u64, from, text: &str, at| ArchivedMessage::plain(format!("m{seq}"), seq, from, text, at);
        CustomerTranscript {
            opened: ConversationOpened {
                id: "c1".into(),
                kind: ConversationKind::Service,
                category: Some("billing".into()),
                customer_name: "Carla <b>".into(),
                agent_id: "a1".into(),
                agent_name: "Ann & Co".into(),
                queued_at: t0,
                paired_at: t0,
                customer: CustomerProfile {
                    zone: zone.map(String::from),
                    ..CustomerProfile::default()
                },
            },
            closed: Some(ConversationClosed {
                id: "c1".into(),
                ended_at: t0 + 3_600_000,
                ended_by: Side::Agent,
                reason: EndReason::Ended,
                inferred: None,
            }),
            messages: vec![
                message(1, Side::Customer, "<script>alert(1)</script>\nsecond line", t0 + 60_000),
                ArchivedMessage {
                    via: None,
                    attachments: vec![crate::attachments::AttachmentMeta {
                        id: "f1".into(),
                        name: "error <shot>.png".into(),
                        mime: "image/png".into(),
                        size: 48_213,
                        thumbnail: true,
                    }],
                    ..message(2, Side::Customer, "", t0 + 120_000)
                },
                message(3, Side::Agent, "Fixed \"it\"", t0 + 3_540_000),
            ],
            rating: None,
        }
    }

    fn desk(zone: &TimeZone) -> Desk<'_> {
        Desk {
            name: "Acme help",
            zone,
            base_url: "https://help.example",
        }
    }

    #[test]
    fn times_are_in_the_customers_zone_across_a_clock_change_and_typed_text_is_escaped() {
        let utc = TimeZone::UTC;
        let made = make(&transcript(Some("Europe/Berlin")), &desk(&utc), Some("tok"));
        assert!(made.text.contains("(times in Europe/Berlin)"), "{}", made.text);
        assert!(
            made.text.contains("[01:31] Carla <b>: <script>alert(1)</script>"),
            "{}",
            made.text
        );
        // 01:29 UTC is 03:29 CEST: the clock went forward in between.
        assert!(made.text.contains("[03:29] Ann & Co: Fixed \"it\""), "{}", made.text);
        // A message that was a file alone: its name and size.
        assert!(
            made.text.contains("[01:32] Carla <b>: [file: error <shot>.png, 48 KB]"),
            "{}",
            made.text
        );
        assert!(
            made.html.contains("[file: error &lt;shot&gt;.png, 48 KB]"),
            "{}",
            made.html
        );
        assert!(made.text.contains("ended at 03:30"), "{}", made.text);
        assert!(made.text.contains("https://help.example/rate?token=tok"));
        assert!(
            !made.html.contains("<script>") && !made.html.contains("<b>"),
            "{}",
            made.html
        );
        assert!(
            made.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{}",
            made.html
        );
        assert!(made.html.contains("Ann &amp; Co"));
        assert!(made.html.contains("href=\"https://help.example/rate?token=tok\""));
        assert!(made.subject.contains("Ann & Co"));
    }

    #[test]
    fn without_a_zone_the_desks_and_without_a_token_no_link() {
        let berlin = TimeZone::get("America/New_York").unwrap();
        let made = make(&transcript(None), &desk(&berlin), None);
        assert!(made.text.contains("(times in America/New_York)"), "{}", made.text);
        assert!(made.text.contains("[20:31]"), "{}", made.text);
        assert!(!made.text.contains("/rate") && !made.html.contains("/rate"));
    }
}
