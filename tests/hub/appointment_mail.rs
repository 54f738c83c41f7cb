//! Appointment mail through a real SMTP sink (aiosmtpd): the confirmation and
//! the cancellation with their calendar parts and the cancel link followed; the relay down
//! at booking time; the hub binary killed (SIGKILL) between booking and sending; two hubs on
//! one store both running the outbox worker; two nodes booking one slot at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};
use switchboard::store::{MongoStore, SharedStore};

use crate::archive::{TempDir, embedded_store, free_port, mongo_uri};
use crate::common::*;

/// How long a test waits for a mail that must come.
pub(crate) const WAIT: Duration = MAIL_WAIT;

/// One mail with its calendar part, parsed.
fn parse(raw: &str) -> Mail {
    let mail = parse_mail(raw);
    assert!(!mail.calendar_type.is_empty(), "a text/calendar part: {raw}");
    mail
}

/// A property of the calendar's VEVENT (or the calendar's METHOD), unfolded.
fn ics_value(calendar: &str, name: &str) -> String {
    let unfolded = calendar.replace("\r\n ", "").replace("\n ", "");
    unfolded
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.split(';').next()? == name).then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {name} in {calendar}"))
}

fn booking(start: &str, name: &str) -> Value {
    json!({"start": start, "name": name, "email": format!("{}@example.com", name.to_lowercase())})
}

async fn book(hub: &Endpoint, body: Value) -> (u16, Value) {
    post(hub, "/api/appointments", body).await
}

/// Carla books the slot at `start`, telling her time zone `zone`: booked (201).
async fn booked_by_carla_from(hub: &Endpoint, start: &str, zone: &str) -> Value {
    let mut carla = booking(start, "Carla");
    carla["zone"] = json!(zone);
    let (status, booked) = book(hub, carla).await;
    assert_eq!(status, 201, "{booked}");
    booked
}

/// Test settings for mail: SMTP on `port`, a fast worker and short, capped retries.
pub(crate) fn mail_settings(port: u16) -> impl FnOnce(&mut switchboard::config::Settings) {
    move |s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        s.mail.from = "Desk <desk@example.org>".to_string();
        s.outbox.poll = Duration::from_millis(100);
        s.outbox.retry_first = Duration::from_millis(200);
        s.outbox.retry_max = Duration::from_millis(800);
        // A sink a test starts late (a relay down, then back) may take seconds to come up
        // on a loaded machine: at 800 ms a try, the default 12 tries were over before it
        // was (CI). A test of a mail that dies sets its own.
        s.outbox.max_attempts = 100;
    }
}

/// The admins' view of the outbox.
pub(crate) async fn outbox(admin: &Api, query: &str) -> Value {
    let (status, page) = admin.get(&format!("/api/admin/mails{query}")).await;
    assert_eq!(status, 200, "{page}");
    page
}

/// A desk in Berlin mailing through a fresh SMTP sink, with representative Ann: the sink
/// and the hub.
async fn berlin_desk() -> (SmtpSink, TestHub) {
    let port = free_port();
    let smtp = SmtpSink::start(port).await;
    let hub = TestHub::with(|s| {
        mail_settings(port)(s);
        s.appointments.zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    })
    .await;
    hub.agent_account("ann", &[], 1).await;
    (smtp, hub)
}

/// The first pending mail of the outbox once it has failed twice (the relay is down).
pub(crate) async fn failed_twice(admin: &Api) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = outbox(admin, "?status=pending").await;
        let mail = &page["items"][0];
        if mail["attempts"].as_u64().unwrap_or(0) >= 2 {
            return mail.clone();
        }
        assert!(Instant::now() < deadline, "no failed attempt recorded: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_and_the_cancellation_arrive_with_their_invitations_and_the_link_cancels() {
    let (smtp, hub) = berlin_desk().await;
    let day = get_json(&hub, &format!("/api/appointments/slots?date={}", day_in(3))).await;
    let start = day["slots"][0]["start"].as_str().unwrap().to_string();
    let booked = booked_by_carla_from(&hub, &start, "America/New_York").await;
    let id = booked["id"].as_str().unwrap();
    assert_eq!(booked["mailed"], true, "SMTP_URL set: the confirmation goes by mail");

    let confirmation = parse(&smtp.wait_for(1).await[0]);
    assert_eq!(confirmation.to, "carla@example.com");
    assert_eq!(confirmation.message_id, format!("{id}.confirmation@example.org"));
    assert_eq!(confirmation.calendar_type, "text/calendar method=REQUEST");
    assert_eq!(ics_value(&confirmation.calendar, "METHOD"), "REQUEST");
    let uid = ics_value(&confirmation.calendar, "UID");
    assert_eq!(uid, format!("appointment-{id}@example.org"));
    assert_eq!(ics_value(&confirmation.calendar, "SEQUENCE"), "0");
    let start_ts: Timestamp = start.parse().unwrap();
    assert_eq!(
        ics_value(&confirmation.calendar, "DTSTART"),
        start_ts.strftime("%Y%m%dT%H%M%SZ").to_string()
    );
    // When: in the customer's zone (New York, where they booked from), the desk's beside.
    let theirs = start_ts.to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap());
    let desks = start_ts.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    assert!(
        confirmation.text.contains(&format!(
            "{}, {}–",
            theirs.strftime("%A, %-d %B %Y"),
            theirs.strftime("%H:%M")
        )) && confirmation.text.contains(" (America/New_York)")
            && confirmation.text.contains(&format!("{}–", desks.strftime("%H:%M")))
            && confirmation.text.contains(" Europe/Berlin at the desk"),
        "{}",
        confirmation.text
    );
    assert_eq!(
        confirmation.subject,
        format!(
            "Confirmed: Video call with ANN on {} (America/New_York)",
            theirs.strftime("%a %-d %b %Y, %H:%M")
        )
    );
    assert_eq!(ics_value(&confirmation.calendar, "SUMMARY"), "Video call with ANN");
    let manage = hub.url(&format!(
        "/manage.html?token={}",
        booked["cancel_token"].as_str().unwrap()
    ));
    assert_eq!(ics_value(&confirmation.calendar, "LOCATION"), manage);
    assert_eq!(ics_value(&confirmation.calendar, "URL"), manage);
    assert!(ics_value(&confirmation.calendar, "DESCRIPTION").contains("Video call with ANN"));
    assert!(
        confirmation.text.contains(&hub.url("/book.html?reschedule=")),
        "a reschedule link: {}",
        confirmation.text
    );

    // The mail's link to the appointment's page: GET shows (a mail scanner changes
    // nothing), POST cancels.
    let link = confirmation
        .text
        .split_whitespace()
        .find(|w| w.contains("/manage.html?token="))
        .expect("the mail has the appointment's link")
        .to_string();
    assert!(link.starts_with(&hub.url("/manage.html?token=")), "{link}");
    let token = link.split("token=").nth(1).unwrap();
    assert_eq!(
        reqwest::get(&link).await.unwrap().status(),
        200,
        "the cancel page is served"
    );
    let shown: Value = get_json(&hub, &format!("/api/appointments/cancel?token={token}")).await;
    assert_eq!(
        (shown["id"].as_str(), shown["status"].as_str()),
        (Some(id), Some("booked")),
        "{shown}"
    );
    let body = json!({"token": token, "reason": "I am ill"});
    let (_, done) = post(&hub, "/api/appointments/cancel", body).await;
    assert_eq!(done["outcome"], "cancelled", "{done}");

    let mails = smtp.wait_for(2).await;
    let cancellation = parse(&mails[1]);
    assert_eq!(cancellation.message_id, format!("{id}.cancellation@example.org"));
    assert_eq!(cancellation.calendar_type, "text/calendar method=CANCEL");
    assert_eq!(ics_value(&cancellation.calendar, "METHOD"), "CANCEL");
    assert_eq!(ics_value(&cancellation.calendar, "UID"), uid);
    assert_eq!(ics_value(&cancellation.calendar, "SEQUENCE"), "1");
    assert!(
        cancellation.subject.starts_with("Cancelled: Video call with ANN on "),
        "{}",
        cancellation.subject
    );
    assert!(cancellation.text.contains("Reason: I am ill"), "{}", cancellation.text);
    assert!(
        cancellation
            .text
            .contains(&format!("book another one:\n{}", hub.url("/book.html"))),
        "{}",
        cancellation.text
    );
    assert_eq!(
        ics_value(&cancellation.calendar, "DTSTART"),
        ics_value(&confirmation.calendar, "DTSTART")
    );
    // Cancelling again sends nothing more.
    let (_, again) = hub
        .admin()
        .await
        .post(&format!("/api/admin/appointments/{id}/cancel"), json!({}))
        .await;
    assert_eq!(again["outcome"], "already_cancelled");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(smtp.mails().len(), 2);
    let page = outbox(&hub.admin().await, "?status=sent").await;
    assert_eq!(page["total"], 2, "{page}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_mail_with_umlauts_is_utf8_mime_from_the_desks_domain() {
    let (smtp, hub) = koeln_desk(mail_settings, |_| {}).await;
    hub.create_agent("juergen", "Jürgen Weiß", &[], 1).await;
    let body = json!({"start": at(2, 11), "name": "Jörg Müller", "email": "joerg@example.com"});
    let (status, booked) = book(&hub, body).await;
    assert_eq!(status, 201, "{booked}");
    let id = booked["id"].as_str().unwrap();

    let (raw, mail) = koeln_mail_to_joerg(&smtp).await;
    assert!(!mail.calendar_type.is_empty(), "a text/calendar part: {raw}");
    assert_eq!(mail.message_id, format!("{id}.confirmation@example.org"));
    assert!(
        mail.subject.starts_with("Confirmed: Video call with Jürgen Weiß on "),
        "{}",
        mail.subject
    );
    assert!(
        mail.text
            .replace("\r\n", "\n")
            .starts_with("Hello Jörg Müller,\n\nyour video call with Jürgen Weiß is booked.\n"),
        "{}",
        mail.text
    );
    assert_eq!(ics_value(&mail.calendar, "SUMMARY"), "Video call with Jürgen Weiß");
    assert!(
        mail.calendar.replace("\r\n ", "").contains("Jörg Müller"),
        "{}",
        mail.calendar
    );
    hub.stop().await;
}

/// `SMTP_URL` set but unusable (the mailer could not be built): mail is only logged, and a
/// booking's answer says it is not mailed.
#[tokio::test]
async fn a_booking_on_a_desk_whose_smtp_could_not_be_set_up_is_not_said_mailed() {
    let hub = TestHub::with(|s| {
        mail_settings(free_port())(s);
        s.mail.smtp_url = Some("no-such-scheme://relay.example".into());
    })
    .await;
    hub.agent_account("ann", &[], 1).await;
    let day = get_json(&hub, &format!("/api/appointments/slots?date={}", day_in(3))).await;
    let start = day["slots"][0]["start"].as_str().unwrap().to_string();
    let booked = booked_by_carla_from(&hub, &start, "Europe/Berlin").await;
    assert_eq!(booked["mailed"], false, "{booked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reschedule_is_mailed_once_as_the_same_event_with_a_higher_sequence() {
    let (smtp, hub) = berlin_desk().await;
    let day: Value = get_json(&hub, &format!("/api/appointments/slots?date={}", day_in(3))).await;
    let (first, later) = (
        day["slots"][0]["start"].as_str().unwrap().to_string(),
        day["slots"][3]["start"].as_str().unwrap().to_string(),
    );
    let booked = booked_by_carla_from(&hub, &first, "Asia/Tokyo").await;
    let id = booked["id"].as_str().unwrap();
    let confirmation = parse(&smtp.wait_for(1).await[0]);
    let uid = ics_value(&confirmation.calendar, "UID");

    let token = booked["cancel_token"].as_str().unwrap();
    let (moved, again) = tokio::join!(
        reqwest::Client::new()
            .post(hub.url("/api/appointments/reschedule"))
            .json(&json!({"token": token, "start": later}))
            .send(),
        async {
            // The same move sent twice (a double click): one moves, the other is refused.
            tokio::time::sleep(Duration::from_millis(5)).await;
            reqwest::Client::new()
                .post(hub.url("/api/appointments/reschedule"))
                .json(&json!({"token": token, "start": later}))
                .send()
                .await
        }
    );
    let (moved, again) = (moved.unwrap(), again.unwrap());
    let statuses = [moved.status().as_u16(), again.status().as_u16()];
    assert!(
        statuses.contains(&200) && statuses.iter().filter(|s| **s == 200).count() == 1,
        "{statuses:?}"
    );
    // The move's answer says the new time goes out by mail, as the booking's did.
    let answer: Value = if statuses[0] == 200 { moved } else { again }.json().await.unwrap();
    assert_eq!(answer["mailed"], true, "{answer}");

    let mails = smtp.wait_for(2).await;
    let rescheduled = parse(&mails[1]);
    assert_eq!(rescheduled.message_id, format!("{id}.reschedule-1@example.org"));
    assert_eq!(rescheduled.calendar_type, "text/calendar method=REQUEST");
    assert_eq!(ics_value(&rescheduled.calendar, "UID"), uid, "the same event");
    assert_eq!(ics_value(&rescheduled.calendar, "SEQUENCE"), "1", "a higher sequence");
    let later_ts: Timestamp = later.parse().unwrap();
    assert_eq!(
        ics_value(&rescheduled.calendar, "DTSTART"),
        later_ts.strftime("%Y%m%dT%H%M%SZ").to_string()
    );
    let tokyo = later_ts.to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap());
    assert_eq!(
        rescheduled.subject,
        format!(
            "Rescheduled: Video call with ANN on {} (Asia/Tokyo)",
            tokyo.strftime("%a %-d %b %Y, %H:%M")
        )
    );
    assert!(rescheduled.text.contains("New:    "), "{}", rescheduled.text);
    assert!(rescheduled.text.contains("Was:    "), "{}", rescheduled.text);
    // Mailed once.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(smtp.mails().len(), 2, "one confirmation and one reschedule mail");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_booked_while_the_relay_is_down_arrives_once_it_is_up() {
    let port = free_port();
    let hub = TestHub::with(mail_settings(port)).await;
    hub.agent_account("ann", &[], 1).await;
    let (status, booked) = book(&hub, booking(&at(2, 11), "Dora")).await;
    assert_eq!(status, 201, "the booking does not wait for the mail: {booked}");
    let admin = hub.admin().await;
    // The worker tries, fails, and says so to admins.
    let mail = failed_twice(&admin).await;
    assert!(mail["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{mail}");
    let smtp = SmtpSink::start(port).await;
    let mails = smtp.wait_for(1).await;
    assert!(parse(&mails[0]).message_id.starts_with(booked["id"].as_str().unwrap()));
    // Several polls later: still once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails().len(), 1);
    assert_eq!(outbox(&admin, "?status=sent").await["total"], 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_failing_its_last_attempt_is_dead_and_listed_for_admins() {
    let port = free_port();
    let hub = TestHub::with(|s| {
        mail_settings(port)(s);
        s.outbox.max_attempts = 2;
    })
    .await;
    hub.agent_account("ann", &[], 1).await;
    assert_eq!(book(&hub, booking(&at(2, 12), "Erik")).await.0, 201);
    let admin = hub.admin().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let page = outbox(&admin, "?status=dead").await;
        if page["total"] == 1 {
            let mail = &page["items"][0];
            assert_eq!(
                (mail["attempts"].as_u64(), mail["purpose"].as_str()),
                (Some(2), Some("confirmation"))
            );
            assert!(
                mail["last_error"].as_str().is_some_and(|e| e.contains("mail server")),
                "{mail}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the mail never died: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Agents may not see it.
    let agent = hub.login("ann", "agent-password").await;
    assert_eq!(agent.get("/api/admin/mails").await.0, 403);
    hub.stop().await;
}

/// The hub binary on the embedded store in `dir`, sending to SMTP `smtp_port`.
async fn binary_hub(dir: &Path, smtp_port: u16) -> HubProcess {
    binary_hub_with(dir, smtp_port, &[]).await
}

/// [`binary_hub`] with `more` settings (which may replace its own).
pub(crate) async fn binary_hub_with(dir: &Path, smtp_port: u16, more: &[(&str, &str)]) -> HubProcess {
    let (data, smtp) = (dir.join("data"), format!("smtp://127.0.0.1:{smtp_port}"));
    let mut envs = vec![
        ("DATA_DIR", data.to_str().unwrap()),
        ("SMTP_URL", smtp.as_str()),
        ("MAIL_FROM", "desk@example.org"),
        ("OUTBOX_POLL_SECS", "0.1"),
        ("OUTBOX_RETRY_FIRST_SECS", "0.2"),
        ("OUTBOX_RETRY_MAX_SECS", "0.5"),
        ("RUST_LOG", "info"),
    ];
    envs.extend_from_slice(more);
    HubProcess::start(Some(dir), &envs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_between_booking_and_sending_sends_the_mail_once_after_restart() {
    let dir = TempDir::new("appointment-mail");
    std::fs::create_dir_all(&dir.0).unwrap();
    let smtp_port = free_port();
    let mut hub = binary_hub(&dir.0, smtp_port).await;
    hub.agent_account("ann", &[], 1).await;
    let admin = hub.admin().await;
    let (status, booked) = book(&hub, booking(&at(2, 13), "Fay")).await;
    assert_eq!(status, 201, "{booked}");
    // Not sent: nothing listens on the SMTP port yet. The outbox says so...
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, page) = admin.get("/api/admin/mails?status=pending").await;
        if page["items"][0]["attempts"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no attempt recorded: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and the hub dies without a chance to do anything more.
    hub.kill();
    let smtp = SmtpSink::start(smtp_port).await;
    let hub = binary_hub(&dir.0, smtp_port).await;
    let mails = smtp.wait_for(1).await;
    let mail = parse(&mails[0]);
    assert_eq!(
        mail.message_id,
        format!("{}.confirmation@example.org", booked["id"].as_str().unwrap())
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails().len(), 1, "the mail arrives once");
    drop(hub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hubs_on_one_embedded_store_send_each_mail_once_and_one_of_two_bookings_of_a_slot_wins() {
    let dir = TempDir::new("appointment-mail-two");
    let store = embedded_store(&dir).await;
    two_nodes(store.clone(), store).await;
}

/// The same with each hub its own MongoDB client on one database, as two machines would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hubs_on_one_mongodb_send_each_mail_once_and_one_of_two_bookings_of_a_slot_wins() {
    let uri = mongo_uri();
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let connect = || async { Arc::new(MongoStore::connect(&uri, &db).await.expect("MongoDB answers")) as SharedStore };
    two_nodes(connect().await, connect().await).await;
}

async fn two_nodes(store_one: SharedStore, store_two: SharedStore) {
    let port = free_port();
    let smtp = SmtpSink::start(port).await;
    // Each node its own DATA_DIR (a MongoDB store's archive spool lives there).
    let (dir_one, dir_two) = (TempDir::new("node-one"), TempDir::new("node-two"));
    let one = TestHub::with_store(store_one, |s| {
        mail_settings(port)(s);
        s.cluster.node_id = "node-one".into();
        s.store.data_dir = dir_one.0.clone();
    })
    .await;
    let two = TestHub::with_store(store_two, |s| {
        mail_settings(port)(s);
        s.cluster.node_id = "node-two".into();
        s.store.data_dir = dir_two.0.clone();
    })
    .await;
    one.agent_account("ann", &[], 1).await;
    // Two nodes booking one slot at once: one wins.
    let (a, b) = tokio::join!(
        book(&one, booking(&at(4, 10), "Gus")),
        book(&two, booking(&at(4, 10), "Hal"))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
    // Eight more bookings, half through each node; both workers poll the one outbox.
    for hour in 11..15 {
        assert_eq!(book(&one, booking(&at(4, hour), &format!("One{hour}"))).await.0, 201);
        assert_eq!(book(&two, booking(&at(5, hour), &format!("Two{hour}"))).await.0, 201);
    }
    let mails = smtp.wait_for(9).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails_after = smtp.mails();
    assert_eq!(
        mails_after.len(),
        9,
        "each mail once: {:#?}",
        mails_after.iter().map(|m| parse(m).message_id).collect::<Vec<_>>()
    );
    let mut ids: Vec<String> = mails.iter().map(|m| parse(m).message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 9);
    let page = outbox(&one.admin().await, "?status=sent").await;
    let senders: std::collections::BTreeSet<&str> = strs_in(&page["items"], "claimed_by").into_iter().collect();
    assert!(
        senders.iter().all(|s| ["node-one", "node-two"].contains(s)),
        "{senders:?}"
    );
    one.stop().await;
    two.stop().await;
}

/// Two hubs on one store, one with no `SMTP_URL` (its mail only logged): a booking through
/// it is answered `mailed: false`, yet its confirmation goes out through the other node,
/// started only later; its own worker does not take the mail (and record it sent, lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_booking_on_a_node_without_smtp_is_mailed_by_a_node_with_it() {
    let dir = TempDir::new("appointment-mail-mixed");
    let store = embedded_store(&dir).await;
    let port = free_port();
    let smtp = SmtpSink::start(port).await;
    let (dir_one, dir_two) = (TempDir::new("node-logs"), TempDir::new("node-sends"));
    let logs = TestHub::with_store(store.clone(), |s| {
        mail_settings(port)(s);
        s.mail.smtp_url = None;
        s.cluster.node_id = "node-logs".into();
        s.store.data_dir = dir_one.0.clone();
    })
    .await;
    logs.agent_account("ann", &[], 1).await;
    let (status, booked) = book(&logs, booking(&at(4, 10), "Gus")).await;
    assert_eq!(status, 201, "{booked}");
    assert_eq!(booked["mailed"], false, "{booked}");
    // Many of its worker's rounds (every 100 ms) go by with the mail due.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sends = TestHub::with_store(store, |s| {
        mail_settings(port)(s);
        s.cluster.node_id = "node-sends".into();
        s.store.data_dir = dir_two.0.clone();
    })
    .await;
    let mail = parse(&smtp.wait_for(1).await[0]);
    assert_eq!(
        mail.message_id,
        format!("{}.confirmation@example.org", booked["id"].as_str().unwrap())
    );
    let page = outbox(&sends.admin().await, "?status=sent").await;
    assert_eq!(strs_in(&page["items"], "claimed_by"), ["node-sends"], "{page}");
    logs.stop().await;
    sends.stop().await;
}

/// On MongoDB a mail is written just before what it announces (no transactions on a
/// standalone server); a crash between leaves a mail for something that never happened.
/// Its cancellation write failing after the mail was stored stands in for that crash here:
/// the worker never sends such a mail, and gives it up for admins to see once it is old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mongodb_a_mail_whose_write_never_completed_is_given_up_not_sent() {
    use switchboard::store::{AppointmentCancel, MailPurpose, MailStatus, OutboxMail, StoreError};
    let store = crate::archive::mongo_store(&mongo_uri()).await;
    let old = Timestamp::now().as_millisecond() - 5 * 60_000;
    let orphan = OutboxMail {
        id: "ghost.cancellation".into(),
        appointment_id: "ghost".into(),
        purpose: MailPurpose::Cancellation,
        to: "ghost@example.com".into(),
        subject: "Cancelled".into(),
        text: "never booked".into(),
        attachments: Vec::new(),
        status: MailStatus::Pending,
        attempts: 0,
        due_at: old,
        claimed_by: None,
        claim_until: None,
        last_error: None,
        created_at: old,
        sent_at: None,
    };
    assert!(matches!(
        store
            .cancel_appointment_with_mail(AppointmentCancel::new("ghost", old, None), orphan)
            .await,
        Err(StoreError::NotFound)
    ));
    let port = free_port();
    let smtp = SmtpSink::start(port).await;
    let dir = TempDir::new("orphan");
    let hub = TestHub::with_store(store, |s| {
        mail_settings(port)(s);
        s.store.data_dir = dir.0.clone();
    })
    .await;
    let admin = hub.admin().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let page = outbox(&admin, "?status=dead").await;
        if page["total"] == 1 {
            assert!(
                page["items"][0]["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("never stored"),
                "{page}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the orphan was never given up: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(smtp.mails().is_empty());
    hub.stop().await;
}

/// A node that sends no mail takes a mail once no sending node took it within
/// `LEFT_TO_SENDING_NODES` (10 minutes): it writes it to the log and records it `logged`,
/// never `sent`, so admins list it as what never left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_only_logged_by_a_node_that_sends_none_is_listed_logged_not_sent() {
    use switchboard::store::{MailPurpose, MailStatus, OutboxMail};
    let dir = TempDir::new("logged-mail");
    let store = embedded_store(&dir).await;
    let long_due = Timestamp::now().as_millisecond() - 11 * 60_000;
    let mail = OutboxMail {
        id: "webhook-disabled:endpoint-1".into(),
        appointment_id: "endpoint-1".into(),
        purpose: MailPurpose::WebhookDisabled,
        to: "admin@example.org".into(),
        subject: "A webhook endpoint was disabled".into(),
        text: "It failed for a day.".into(),
        attachments: Vec::new(),
        status: MailStatus::Pending,
        attempts: 0,
        due_at: long_due,
        claimed_by: None,
        claim_until: None,
        last_error: None,
        created_at: long_due,
        sent_at: None,
    };
    store.add_mail(mail).await.unwrap();
    let run_dir = TempDir::new("logged-mail-node");
    let hub = TestHub::with_store(store, |s| {
        mail_settings(free_port())(s);
        s.mail.smtp_url = None;
        s.store.data_dir = run_dir.0.clone();
    })
    .await;
    let admin = hub.admin().await;
    let deadline = Instant::now() + WAIT;
    let logged = loop {
        let page = outbox(&admin, "?status=logged").await;
        if page["items"].as_array().is_some_and(|items| !items.is_empty()) {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "never recorded logged: {}",
            outbox(&admin, "").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        strs_in(&logged["items"], "id"),
        ["webhook-disabled:endpoint-1"],
        "{logged}"
    );
    let sent = outbox(&admin, "?status=sent").await;
    assert_eq!(sent["items"], json!([]), "{sent}");
    hub.stop().await;
}
