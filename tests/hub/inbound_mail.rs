//! Mail customers send back, read from a real IMAP server (a private Dovecot) by the hub's
//! poller: each mail decided once, flagged on the server, never deleted.

use std::time::Duration;

use switchboard::config::Secret;
use switchboard::config::imap::{ImapServer, ImapSettings};

use crate::common::TestHub;
use crate::dovecot::Dovecot;

const PLAIN_MAIL: &str = "From: Jörg <joerg@example.org>\r\nTo: desk@example.com\r\nSubject: hello\r\nMessage-ID: <first@example.org>\r\n\r\nHello desk\r\n";

/// The harness's own server: it takes a mail by APPEND and keeps it over a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_imap_server_keeps_appended_mail_over_a_restart() {
    let mut imap = Dovecot::start().await;
    imap.append(PLAIN_MAIL).await;
    assert_eq!(imap.flags().await.len(), 1);
    imap.restart().await;
    let flags = imap.flags().await;
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert!(!flags[0].1.iter().any(|f| f.contains("Seen")), "{flags:?}");
}

const AUTO_REPLY: &str = "From: jo@example.org\r\nTo: support@desk.example\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <ooo@example.org>\r\nIn-Reply-To: <root@desk.example>\r\n\r\nI am away\r\n";
const NO_MESSAGE_ID: &str =
    "From: ann@example.org\r\nTo: support@desk.example\r\nSubject: no id\r\n\r\nA mail without an id\r\n";

/// Settings that poll the test's Dovecot (on `port`) every 200 ms; mails above 4,000
/// bytes too large.
pub(crate) fn polling(port: u16) -> ImapSettings {
    ImapSettings {
        server: ImapServer {
            tls: false,
            host: "127.0.0.1".into(),
            port,
        },
        user: crate::dovecot::USER.into(),
        password: Secret(crate::dovecot::PASSWORD.into()),
        mailbox: "INBOX".into(),
        poll: Duration::from_millis(200),
        default_category: "general".into(),
        routes: vec![],
        // Small, so a test mail can be too large without megabytes on the wire.
        max_bytes: 4_000,
        sender_max_per_hour: 20,
    }
}

/// A hub polling the test's Dovecot every 200 ms, its desk `support@desk.example`, mails
/// above 4,000 bytes too large.
async fn polling_hub(imap: &Dovecot) -> TestHub {
    let port = imap.port;
    TestHub::with(move |s| {
        s.mail.from = "Desk <support@desk.example>".into();
        s.imap = Some(polling(port));
    })
    .await
}

/// Waits until every mail in the mailbox is flagged done (and `\Seen`); returns how many.
async fn all_flagged_done(imap: &Dovecot, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let flags = imap.flags().await;
        let done =
            |f: &Vec<String>| f.iter().any(|f| f.contains("SwitchboardDone")) && f.iter().any(|f| f.contains("Seen"));
        if flags.len() == count && flags.iter().all(|(_, f)| done(f)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mails never all flagged: {flags:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `switchboard_inbound_mails_total{outcome}` from the process's metrics (0 when absent).
async fn handled(hub: &TestHub, outcome: &str) -> u64 {
    let text = reqwest::get(hub.url("/metrics")).await.unwrap().text().await.unwrap();
    let wanted = format!("switchboard_inbound_mails_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(wanted.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The hub reads what arrives, flags it done (never deletes it), records each mail once by
/// its Message-ID (or a hash), drops an auto-reply and a mail above the size cap, adds nothing for a mail fetched again,
/// and goes on after the IMAP server was down (without `/readyz` minding) with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_in_the_mailbox_is_handled_once_and_flagged_never_deleted() {
    let mut imap = Dovecot::start().await;
    imap.append(PLAIN_MAIL).await;
    imap.append(AUTO_REPLY).await;
    imap.append(NO_MESSAGE_ID).await;
    let hub = polling_hub(&imap).await;
    all_flagged_done(&imap, 3).await;
    assert!(hub.store.inbound_seen("id:first@example.org").await.unwrap());
    assert!(
        hub.store.inbound_seen("id:ooo@example.org").await.unwrap(),
        "a dropped mail is recorded too"
    );
    let hashed = switchboard::core::inbound_mail::idempotence_key(None, NO_MESSAGE_ID.as_bytes());
    assert!(hub.store.inbound_seen(&hashed).await.unwrap(), "{hashed}");
    assert!(handled(&hub, "auto_reply").await >= 1);
    // A mail above the cap is never downloaded: recorded as dropped, flagged, left there.
    let big = format!(
        "From: big@example.org\r\nTo: support@desk.example\r\nSubject: big\r\nMessage-ID: <big@example.org>\r\n\r\n{}\r\n",
        "x".repeat(5_000)
    );
    let too_large = handled(&hub, "too_large").await;
    imap.append(&big).await;
    all_flagged_done(&imap, 4).await;
    assert_eq!(handled(&hub, "too_large").await, too_large + 1);

    // The same mail again (a second delivery, a restored backup): flagged, nothing added.
    let duplicates = handled(&hub, "duplicate").await;
    imap.append(PLAIN_MAIL).await;
    all_flagged_done(&imap, 5).await;
    assert_eq!(handled(&hub, "duplicate").await, duplicates + 1);

    let admin = hub.admin().await;
    let read = reading(&admin, |r| r["up"] == true).await;
    assert_eq!(
        (read["configured"].as_bool(), read["reader"].as_str()),
        (Some(true), None),
        "{read}"
    );

    // The server goes away: the hub stays ready, retries, the admin sees why, and it takes
    // what came meanwhile.
    imap.stop();
    let down = reading(&admin, |r| r["up"] == false).await;
    assert!(down["failures"].as_u64() >= Some(1), "{down}");
    assert!(down["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{down}");
    assert!(down["last_ok_at"].as_u64().is_some(), "when it last worked: {down}");
    let (status, _) = crate::common::get(&hub, "/readyz").await;
    assert_eq!(status, 200, "an IMAP server down never makes the hub unready");
    // A mail delivered into the mailbox meanwhile waits there for the server's return.
    imap.deliver_locally("From: cy@example.org\r\nTo: support@desk.example\r\nSubject: meanwhile\r\nMessage-ID: <meanwhile@example.org>\r\n\r\nDuring the outage\r\n");
    imap.restart().await;
    imap.append("From: bo@example.org\r\nTo: support@desk.example\r\nSubject: later\r\nMessage-ID: <later@example.org>\r\n\r\nStill there?\r\n").await;
    all_flagged_done(&imap, 7).await;
    assert!(hub.store.inbound_seen("id:meanwhile@example.org").await.unwrap());
    assert!(hub.store.inbound_seen("id:later@example.org").await.unwrap());
    let back = reading(&admin, |r| r["up"] == true).await;
    assert!(back["last_error"].is_null(), "{back}");
    hub.stop().await;
}

/// `GET /api/admin/inbound-mail`'s report, with the view's `configured` and `reader`
/// beside its fields, once `wanted` holds of the report.
async fn reading(admin: &crate::common::Api, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = admin.get("/api/admin/inbound-mail").await;
        assert_eq!(status, 200, "{body}");
        if !body["report"].is_null() && wanted(&body["report"]) {
            let mut report = body["report"].clone();
            report["configured"] = body["configured"].clone();
            report["reader"] = body["reader"].clone();
            return report;
        }
        assert!(std::time::Instant::now() < deadline, "never as wanted: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A mail bomb: one address sends far more mails than a person writes. Past
/// `IMAP_SENDER_MAX_PER_HOUR` its mails add nothing (no conversation, no desk
/// notification), each recorded, flagged and left in the mailbox; another customer's mail
/// meanwhile comes in as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_bomb_from_one_sender_is_cut_off_at_its_hourly_limit_and_others_come_in() {
    let imap = Dovecot::start().await;
    for n in 0..8 {
        imap.append(&format!(
            "From: bomb@example.org\r\nTo: support@desk.example\r\nSubject: spam {n}\r\nMessage-ID: <bomb-{n}@example.org>\r\n\r\nBuy now {n}\r\n"
        ))
        .await;
    }
    imap.append("From: Ann <ann@example.org>\r\nTo: support@desk.example\r\nSubject: my order\r\nMessage-ID: <ann-1@example.org>\r\n\r\nWhere is my order?\r\n").await;
    let port = imap.port;
    let hub = TestHub::with(move |s| {
        s.mail.from = "Desk <support@desk.example>".into();
        let mut imap = polling(port);
        imap.sender_max_per_hour = 3;
        s.imap = Some(imap);
    })
    .await;
    all_flagged_done(&imap, 9).await;
    for n in 0..8 {
        assert!(
            hub.store
                .inbound_seen(&format!("id:bomb-{n}@example.org"))
                .await
                .unwrap(),
            "every mail is recorded, kept or not ({n})"
        );
    }
    let page = switchboard::store::Page { offset: 0, limit: 100 };
    let (started, _) = hub.store.offline_messages(&Default::default(), page).await.unwrap();
    let from = |address: &str| started.iter().filter(|m| m.email == address).count();
    assert_eq!(
        from("bomb@example.org"),
        3,
        "three conversations from the bomb, no more"
    );
    assert_eq!(from("ann@example.org"), 1, "another customer's mail comes in");
    assert!(handled(&hub, "sender_limit").await >= 5);
    hub.stop().await;
}

/// The node `duty` names in Redis (`{sb}:duty:imap` → `<node>:<incarnation>`), if any.
async fn mailbox_reader(conn: &mut redis::aio::ConnectionManager) -> Option<String> {
    let held: Option<String> = redis::cmd("GET").arg("{sb}:duty:imap").query_async(conn).await.unwrap();
    held.and_then(|h| h.rsplit_once(':').map(|(node, _)| node.to_string()))
}

/// Waits until `node` reads the mailbox.
async fn until_reader(conn: &mut redis::aio::ConnectionManager, node: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reader = mailbox_reader(conn).await;
        if reader.as_deref() == Some(node) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{node} never read the mailbox: {reader:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On several nodes with `IMAP_URL`, one reads the mailbox at a time: the real hub process
/// "reader" takes it first, the node started after it waits; killed (SIGKILL), the reader
/// is reaped and the other node takes over, and a mail that arrives then comes in. (Before,
/// every node with `IMAP_URL` read the mailbox, and two could each deliver one mail.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_several_nodes_one_reads_the_mailbox_and_another_takes_over_when_it_dies() {
    use crate::cluster_fixture::{Process, nodes_on, process_and_nodes, redis_conn};

    let imap = Dovecot::start().await;
    let url = format!("imap://127.0.0.1:{}", imap.port);
    let env = [
        ("IMAP_URL", url.as_str()),
        ("IMAP_USER", crate::dovecot::USER),
        ("IMAP_PASSWORD", crate::dovecot::PASSWORD),
        ("IMAP_POLL_SECS", "0.2"),
        ("MAIL_FROM", "Desk <support@desk.example>"),
    ];
    let (mut reader, _bind, [], servers) =
        process_and_nodes("inbound-duty", Process::named("reader").env(&env), [], |_| {}).await;
    let mut conn = redis_conn(&servers.redis).await;
    until_reader(&mut conn, "reader").await;
    let port = imap.port;
    let [standby] = nodes_on(
        &servers.store,
        &servers.redis,
        &servers.scratch,
        ["standby"],
        move |s| {
            s.mail.from = "Desk <support@desk.example>".into();
            s.imap = Some(polling(port));
        },
    )
    .await;
    imap.append(PLAIN_MAIL).await;
    all_flagged_done(&imap, 1).await;
    assert!(servers.store.inbound_seen("id:first@example.org").await.unwrap());
    // The standby has asked several times meanwhile: the reader keeps the mailbox.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(mailbox_reader(&mut conn).await.as_deref(), Some("reader"));

    // The standby's admin sees the reader's report, left in Redis.
    let admin = standby.admin().await;
    let seen = reading(&admin, |r| r["up"] == true).await;
    assert_eq!(seen["reader"], "reader", "{seen}");

    reader.0.kill().unwrap();
    reader.0.wait().unwrap();
    until_reader(&mut conn, "standby").await;
    imap.append("From: bo@example.org\r\nTo: support@desk.example\r\nSubject: later\r\nMessage-ID: <after-the-crash@example.org>\r\n\r\nAnyone there?\r\n").await;
    all_flagged_done(&imap, 2).await;
    assert!(
        servers
            .store
            .inbound_seen("id:after-the-crash@example.org")
            .await
            .unwrap()
    );
    let seen = reading(&admin, |r| r["delivered"].as_u64() >= Some(1)).await;
    assert_eq!(seen["reader"], "standby", "{seen}");
    standby.stop().await;
}

/// A mail answering no conversation starts one in the category `IMAP_ROUTES` gives the
/// address it was sent to (else `IMAP_CATEGORY`), its text decoded whatever the sender's
/// encoding: quoted-printable Latin-1, a base64 UTF-8 subject, an HTML-only body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_mail_goes_to_the_category_of_its_address_its_text_decoded() {
    let imap = Dovecot::start().await;
    imap.append("From: Jörg <joerg@example.org>\r\nTo: verkauf@desk.example\r\nSubject: =?UTF-8?B?UHJlaXNlIGbDvHIgMjAyNw==?=\r\nMessage-ID: <routed@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe aus K=F6ln, was kostet das?\r\n").await;
    imap.append("From: ann@example.org\r\nTo: support@desk.example\r\nSubject: html only\r\nMessage-ID: <html-only@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<html><body><p>My <b>order</b> is late.</p></body></html>\r\n").await;
    let port = imap.port;
    let hub = TestHub::with(move |s| {
        s.mail.from = "Desk <support@desk.example>".into();
        let mut imap = polling(port);
        imap.routes = vec![("verkauf@desk.example".into(), "sales".into())];
        s.imap = Some(imap);
    })
    .await;
    all_flagged_done(&imap, 2).await;
    let page = switchboard::store::Page { offset: 0, limit: 100 };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let started = loop {
        let (started, _) = hub.store.offline_messages(&Default::default(), page).await.unwrap();
        if started.len() == 2 || std::time::Instant::now() > deadline {
            break started;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let of = |email: &str| {
        started
            .iter()
            .find(|m| m.email == email)
            .unwrap_or_else(|| panic!("{email}: {started:?}"))
    };
    let routed = of("joerg@example.org");
    assert_eq!(routed.category, "sales", "{routed:?}");
    assert!(routed.text.contains("Grüße aus Köln, was kostet das?"), "{routed:?}");
    assert!(
        routed.text.contains("Preise für 2027"),
        "the decoded subject goes with it: {routed:?}"
    );
    let html = of("ann@example.org");
    assert_eq!(html.category, "general", "{html:?}");
    assert!(html.text.contains("My order is late."), "{html:?}");
    assert!(!html.text.contains('<'), "no markup: {html:?}");
    hub.stop().await;
}
