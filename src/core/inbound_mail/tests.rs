//! Tests of `core::inbound_mail`: the order of the checks, threading, routing, the text the
//! agent sees, and properties over random headers and bodies.

use proptest::prelude::*;

use super::*;

const TOKEN: &str = "abcdefghijklmnopqrstuvwxyz";

fn desk() -> Desk {
    Desk {
        address: "support@desk.example".into(),
        max_bytes: 10 << 20,
        default_category: "general".into(),
        routes: vec![("billing@desk.example".into(), "billing".into())],
    }
}

fn mail() -> MailFields {
    MailFields {
        message_id: Some("abc@customer.example".into()),
        from: Some("jo@customer.example".into()),
        recipients: vec!["support@desk.example".into()],
        subject: " Hello ".into(),
        text: "Hi there".into(),
        size: 100,
        ..MailFields::default()
    }
}

fn written(text: &str) -> Written {
    Written {
        from: "jo@customer.example".into(),
        subject: "Hello".into(),
        text: text.into(),
        files: vec![],
    }
}

#[test]
fn a_plain_mail_starts_a_conversation_in_the_default_category() {
    assert_eq!(
        decide(&mail(), &desk()),
        Decision::New {
            category: "general".into(),
            written: written("Hi there")
        }
    );
}

#[test]
fn the_address_it_was_sent_to_chooses_the_category() {
    let mut m = mail();
    m.recipients = vec!["someone@else.example".into(), "Billing@Desk.Example".into()];
    assert!(matches!(decide(&m, &desk()), Decision::New { category, .. } if category == "billing"));
}

#[test]
fn a_reply_token_and_the_answered_ids_thread_it() {
    let mut m = mail();
    m.recipients = vec![
        format!("Support+{}@DESK.example", TOKEN.to_uppercase()),
        "x+y@desk.example".into(),
    ];
    m.in_reply_to = vec!["root@desk.example".into()];
    m.references = vec!["root@desk.example".into(), "second@desk.example".into()];
    match decide(&m, &desk()) {
        Decision::Thread {
            tokens, ids, category, ..
        } => {
            assert_eq!(tokens, vec![TOKEN.to_string()]);
            assert_eq!(ids, vec!["root@desk.example".to_string(), "second@desk.example".into()]);
            assert_eq!(category, "general");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_token_shaped_plus_addresses_of_our_own_address_are_tokens() {
    let tokens = |to: &str| reply_tokens(&[to.to_string()], "support", "desk.example");
    assert_eq!(
        tokens(&format!("support+{TOKEN}@desk.example")),
        vec![TOKEN.to_string()]
    );
    assert!(tokens(&format!("other+{TOKEN}@desk.example")).is_empty());
    assert!(tokens(&format!("support+{TOKEN}@other.example")).is_empty());
    assert!(tokens("support+short@desk.example").is_empty());
    assert!(
        tokens(&format!("support+{}1@desk.example", &TOKEN[1..])).is_empty(),
        "1 is not base32"
    );
}

/// A change that marks a mail automatic, and the header the drop names.
type Marking = (fn(&mut MailFields), &'static str);

#[test]
fn auto_replies_are_dropped_whatever_they_answer() {
    let cases: Vec<Marking> = vec![
        (|m| m.auto_submitted = Some("auto-replied".into()), "Auto-Submitted"),
        (
            |m| m.auto_submitted = Some("auto-generated; x".into()),
            "Auto-Submitted",
        ),
        (|m| m.precedence = Some("Bulk".into()), "Precedence"),
        (|m| m.precedence = Some("list".into()), "Precedence"),
        (|m| m.precedence = Some("junk".into()), "Precedence"),
        (|m| m.x_autoreply = true, "X-Autoreply"),
    ];
    for (mark, header) in cases {
        let mut m = mail();
        m.recipients = vec![format!("support+{TOKEN}@desk.example")];
        m.in_reply_to = vec!["root@desk.example".into()];
        mark(&mut m);
        assert_eq!(decide(&m, &desk()), Decision::Drop(DropReason::AutoReply(header)));
    }
    let mut person = mail();
    person.auto_submitted = Some("No (a person)".into());
    assert!(matches!(decide(&person, &desk()), Decision::New { .. }));
}

#[test]
fn our_own_mail_coming_back_is_dropped() {
    let mut m = mail();
    m.message_id = Some("reply.c1.3@Desk.Example".into());
    assert_eq!(decide(&m, &desk()), Decision::Drop(DropReason::OwnMail));
}

#[test]
fn delivery_reports_are_bounces_even_with_auto_reply_headers() {
    let mut report = mail();
    report.content_type = Some("multipart/report".into());
    report.report_type = Some("delivery-status".into());
    report.auto_submitted = Some("auto-replied".into());
    report.reported_ids = vec!["reply.c1.3@desk.example".into()];
    report.bounce_reason = Some("5.1.1: smtp; 550 user unknown".into());
    assert_eq!(
        decide(&report, &desk()),
        Decision::Bounce {
            original_ids: vec!["reply.c1.3@desk.example".into()],
            reason: Some("5.1.1: smtp; 550 user unknown".into()),
        }
    );
    let mut daemon = mail();
    daemon.from = Some("MAILER-DAEMON@mx.customer.example".into());
    assert_eq!(
        decide(&daemon, &desk()),
        Decision::Bounce {
            original_ids: vec![],
            reason: None
        }
    );
}

#[test]
fn too_large_mails_and_mails_without_a_sender_are_dropped() {
    let mut big = mail();
    big.size = (10 << 20) + 1;
    assert_eq!(
        decide(&big, &desk()),
        Decision::Drop(DropReason::TooLarge((10 << 20) + 1))
    );
    let mut anonymous = mail();
    anonymous.from = None;
    assert_eq!(decide(&anonymous, &desk()), Decision::Drop(DropReason::NoSender));
}

#[test]
fn quoted_history_and_signatures_are_stripped() {
    let text = "\r\nThanks, that works.\r\n> earlier line\r\nSee you\r\n\r\n-- \r\nJo Customer\r\nACME";
    assert_eq!(readable_text(text), "Thanks, that works.\nSee you");
    let gmail = "Yes please\n\nOn Mon, 1 Jan 2024 at 10:00, Desk <support@desk.example>\nwrote:\n> Shall we?\n";
    assert_eq!(readable_text(gmail), "Yes please");
    let german = "Gerne\nAm 01.01.2024 um 10:00 schrieb Desk <support@desk.example>:\n> Wollen wir?";
    assert_eq!(readable_text(german), "Gerne");
    let outlook = "Fine\n-----Original Message-----\nFrom: Desk\nSubject: x";
    assert_eq!(readable_text(outlook), "Fine");
    assert_eq!(
        readable_text("On my way\nsee you"),
        "On my way\nsee you",
        "not an attribution"
    );
}

#[test]
fn the_idempotence_key_is_the_message_id_else_a_hash() {
    assert_eq!(idempotence_key(Some("a@b"), b"x"), "id:a@b");
    let hashed = idempotence_key(None, b"raw mail");
    assert!(hashed.starts_with("sha256:") && hashed.len() == 7 + 64, "{hashed}");
    assert_eq!(hashed, idempotence_key(Some("  "), b"raw mail"));
    assert_ne!(hashed, idempotence_key(None, b"other mail"));
}

fn header() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("no".to_string()),
        Just("auto-replied".to_string()),
        Just("bulk".to_string()),
        Just("list".to_string()),
        Just("delivery-status".to_string()),
        Just("multipart/report".to_string()),
        Just(String::new()),
        any::<String>(),
    ])
}

fn addresses() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            Just(format!("support+{TOKEN}@desk.example")),
            Just("support@desk.example".to_string()),
            Just("billing@desk.example".to_string()),
            Just("MAILER-DAEMON@x.example".to_string()),
            Just("@".to_string()),
            Just("+@+".to_string()),
            any::<String>(),
        ],
        0..4,
    )
}

fn fields() -> impl Strategy<Value = MailFields> {
    (
        (header(), header(), header(), header(), header(), any::<bool>()),
        (addresses(), addresses(), addresses(), addresses()),
        (any::<String>(), ".{0,300}", 0usize..(20 << 20)),
    )
        .prop_map(
            |(
                (message_id, auto_submitted, precedence, content_type, report_type, x_autoreply),
                (from, recipients, in_reply_to, references),
                (subject, text, size),
            )| MailFields {
                message_id,
                from: from.into_iter().next(),
                recipients,
                in_reply_to,
                references,
                auto_submitted,
                precedence,
                x_autoreply,
                content_type,
                report_type,
                reported_ids: vec![],
                bounce_reason: None,
                subject,
                text,
                files: vec![],
                size,
            },
        )
}

proptest! {
    /// Any mix of headers, addresses and text is decided, never a panic; and a mail marked
    /// automatic never reaches a conversation (no auto-reply loop).
    #[test]
    fn every_mail_is_decided_and_automatic_ones_never_thread(m in fields()) {
        let decision = decide(&m, &desk());
        let automatic = m.x_autoreply
            || m.auto_submitted.as_deref().is_some_and(|v| {
                !v.split([';', '(']).next().unwrap_or("").trim().eq_ignore_ascii_case("no")
            })
            || m.precedence.as_deref().is_some_and(|v| {
                ["bulk", "junk", "list", "auto_reply"].contains(&v.trim().to_ascii_lowercase().as_str())
            });
        if automatic {
            prop_assert!(
                matches!(decision, Decision::Drop(_) | Decision::Bounce { .. }),
                "an automatic mail was {:?}", decision
            );
        }
        if let Decision::Thread { written, .. } | Decision::New { written, .. } = &decision {
            prop_assert!(!written.text.lines().any(|l| l.trim_start().starts_with('>')));
            prop_assert!(written.from.contains('@'));
        }
    }

    /// Stripping never panics, never keeps a quoted line, and is idempotent.
    #[test]
    fn readable_text_is_stable(text in "(.{0,40}\n?){0,12}") {
        let once = readable_text(&text);
        prop_assert!(!once.lines().any(|l| l.trim_start().starts_with('>')));
        prop_assert_eq!(readable_text(&once), once);
    }
}

/// A sender's mails that would add to a conversation spend their allowance; past it they
/// are dropped until the hour gives some back; another sender, a bounce and a dropped
/// mail are never held back by it.
#[test]
fn a_sender_past_their_hourly_allowance_is_dropped_and_others_are_not() {
    use std::time::{Duration, Instant};

    use crate::core::guesses::FailedGuesses;

    let mut senders = FailedGuesses::new(sender_allowance(3), 100);
    let now = Instant::now();
    let new_from = |from: &str| Decision::New {
        category: "general".into(),
        written: Written {
            from: from.into(),
            subject: String::new(),
            text: "hi".into(),
            files: vec![],
        },
    };
    for _ in 0..3 {
        assert!(matches!(
            within_sender_limit(new_from("Bomb@Example.org"), &mut senders, now),
            Decision::New { .. }
        ));
    }
    assert_eq!(
        within_sender_limit(new_from("bomb@example.org"), &mut senders, now),
        Decision::Drop(DropReason::SenderLimit),
        "the fourth within the hour, in whatever case"
    );
    assert!(matches!(
        within_sender_limit(new_from("ann@example.org"), &mut senders, now),
        Decision::New { .. }
    ));
    let bounce = Decision::Bounce {
        original_ids: vec![],
        reason: None,
    };
    assert_eq!(within_sender_limit(bounce.clone(), &mut senders, now), bounce);
    // A third of an hour gives one mail back.
    let later = now + Duration::from_secs(20 * 60);
    assert!(matches!(
        within_sender_limit(new_from("bomb@example.org"), &mut senders, later),
        Decision::New { .. }
    ));
    assert_eq!(
        within_sender_limit(new_from("bomb@example.org"), &mut senders, later),
        Decision::Drop(DropReason::SenderLimit)
    );
}

/// A mail that could not be handed over gives its sender's allowance back: a real answer
/// retried while the hub cannot take it never uses up its sender's hour.
#[test]
fn a_mail_not_handed_over_gives_its_senders_allowance_back() {
    use std::time::Instant;

    use crate::core::guesses::FailedGuesses;

    let mut senders = FailedGuesses::new(sender_allowance(1), 100);
    let now = Instant::now();
    let answer = Decision::Thread {
        tokens: vec![],
        ids: vec!["root@desk.example".into()],
        category: "general".into(),
        written: Written {
            from: "Joerg@Example.org".into(),
            subject: String::new(),
            text: "hi".into(),
            files: vec![],
        },
    };
    for _ in 0..5 {
        let decided = within_sender_limit(answer.clone(), &mut senders, now);
        assert_eq!(decided, answer, "each try is allowed");
        senders.give_back(&spender(&decided).unwrap());
    }
    assert_eq!(spender(&Decision::Drop(DropReason::OwnMail)), None);
}
