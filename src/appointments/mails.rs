//! The confirmation, reschedule and cancellation mail of an appointment, as outbox entries.
//!
//! Each mail says when in the customer's own time zone (the one their browser gave at
//! booking), with the desk's time beside it, with whom and how long; links to the
//! appointment's page (where the customer joins, and cancels after confirming), to
//! rescheduling, and after a cancellation to the booking page; and carries the ICS
//! invitation: `METHOD:REQUEST` when booked and again with a higher `SEQUENCE` when moved,
//! `METHOD:CANCEL` with the same `UID` and the raised `SEQUENCE` when cancelled. A mail's id
//! is derived from its appointment and purpose (and, for a move, the sequence it
//! announces), so writing it twice is one mail and its `Message-ID` (made from that id by
//! `mail::compose`) never changes.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::ics::{self, Invitation, Method};
use crate::mail::QueuedMail;
use crate::store::{Appointment, MailAttachment, MailPurpose, Millis, OutboxMail};

/// What the mails of one desk share.
pub struct Desk<'a> {
    pub zone: &'a TimeZone,
    /// The From address (without a display name): the invitation's organizer.
    pub organizer: String,
}

/// Who and where an appointment's mail names, gathered by the caller.
pub struct Context<'a> {
    /// The representative's display name.
    pub representative: &'a str,
    /// The category's name, when the booking named one.
    pub topic: Option<&'a str>,
    /// The appointment's page with its token (absolute): join, reschedule, cancel.
    pub manage_url: &'a str,
    /// The booking page in reschedule mode for this appointment (absolute).
    pub reschedule_url: &'a str,
    /// The booking page (absolute), for booking another one.
    pub book_url: &'a str,
}

impl<'a> Context<'a> {
    /// Who and what, with no links (a summary line, or a mail that sets the links it needs).
    pub fn bare(representative: &'a str, topic: Option<&'a str>) -> Self {
        Context {
            representative,
            topic,
            manage_url: "",
            reschedule_url: "",
            book_url: "",
        }
    }
}

/// The address inside `MAIL_FROM` (validated at start-up as a mailbox).
pub fn address_of(mail_from: &str) -> String {
    mail_from
        .parse::<lettre::message::Mailbox>()
        .map(|m| m.email.to_string())
        .unwrap_or_else(|_| mail_from.to_string())
}

/// The outbox id of an appointment's mail of `purpose`; a move's names the sequence it announces.
pub fn mail_id(appointment_id: &str, purpose: MailPurpose, sequence: u32) -> String {
    match purpose {
        MailPurpose::Confirmation => format!("{appointment_id}.confirmation"),
        MailPurpose::Cancellation => format!("{appointment_id}.cancellation"),
        MailPurpose::Reschedule => format!("{appointment_id}.reschedule-{sequence}"),
        // Named by `offline::desk_mail_id` and `offline::reply_mail_id`; never asked of here.
        MailPurpose::OfflineMessage => format!("offline-{appointment_id}.desk"),
        MailPurpose::OfflineReply => format!("offline-{appointment_id}.reply-{sequence}"),
        // Named by `transcripts::mail_id`; never asked of here.
        MailPurpose::Transcript => format!("transcript:{appointment_id}:{sequence}"),
        // Named by `conversations::follow_up_mail::mail_id`; never asked of here.
        MailPurpose::FollowUp => format!("follow-up:{appointment_id}:{sequence}"),
        // Named by `webhooks::disabled_mail::mail_id`; never asked of here.
        MailPurpose::WebhookDisabled => format!("webhook-disabled:{appointment_id}:{sequence}"),
    }
}

/// The sequence a reschedule mail announces, from its id ([`mail_id`]).
pub fn announced_sequence(mail_id: &str) -> Option<u32> {
    mail_id.rsplit_once(".reschedule-")?.1.parse().ok()
}

/// The ICS `UID` of an appointment: one for its whole life, on the organizer's domain.
pub fn uid(appointment_id: &str, organizer: &str) -> String {
    let domain = organizer.rsplit_once('@').map_or("switchboard.invalid", |(_, d)| d);
    format!("appointment-{appointment_id}@{domain}")
}

fn instant(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The zone the customer sees times in: theirs when known, else the desk's.
pub fn customer_zone(desk_zone: &TimeZone, a: &Appointment) -> TimeZone {
    a.customer_zone
        .as_deref()
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or_else(|| desk_zone.clone())
}

fn zone_name(zone: &TimeZone) -> &str {
    zone.iana_name().unwrap_or("UTC")
}

/// "Video call with Anna Berg — Support": the event's title.
pub fn summary(context: &Context<'_>) -> String {
    match context.topic {
        Some(topic) => format!("Video call with {} — {topic}", context.representative),
        None => format!("Video call with {}", context.representative),
    }
}

/// How the customer's clock reads a time: "03:00 PM" or "15:00", as their booking page
/// showed it (one format per locale, in the page and every mail).
fn clock(a: &Appointment) -> &'static str {
    if a.customer_hour12 { "%I:%M %p" } else { "%H:%M" }
}

/// "Tuesday, 24 November 2026, 03:00–04:00 (America/New_York)".
pub fn when_for_customer(desk: &Desk<'_>, a: &Appointment) -> String {
    let zone = customer_zone(desk.zone, a);
    let (start, end) = (
        instant(a.start).to_zoned(zone.clone()),
        instant(a.end).to_zoned(zone.clone()),
    );
    format!(
        "{}, {}–{} ({})",
        start.strftime("%A, %-d %B %Y"),
        start.strftime(clock(a)),
        end.strftime(clock(a)),
        zone_name(&zone)
    )
}

/// "09:00–10:00 Europe/Berlin" (with the date when it differs from the customer's).
pub fn when_at_the_desk(desk: &Desk<'_>, a: &Appointment) -> String {
    let customer = instant(a.start).to_zoned(customer_zone(desk.zone, a));
    let (start, end) = (
        instant(a.start).to_zoned(desk.zone.clone()),
        instant(a.end).to_zoned(desk.zone.clone()),
    );
    let day = if start.date() == customer.date() {
        String::new()
    } else {
        format!("{} ", start.strftime("%a %-d %b"))
    };
    format!(
        "{day}{}–{} {}",
        start.strftime(clock(a)),
        end.strftime(clock(a)),
        zone_name(desk.zone)
    )
}

/// "Tue 24 Nov 2026, 03:00 (America/New_York)": the start for a subject line.
fn short_when(desk: &Desk<'_>, a: &Appointment) -> String {
    let zone = customer_zone(desk.zone, a);
    let start = instant(a.start).to_zoned(zone.clone());
    format!(
        "{}, {} ({})",
        start.strftime("%a %-d %b %Y"),
        start.strftime(clock(a)),
        zone_name(&zone)
    )
}

fn minutes(a: &Appointment) -> i64 {
    (a.end - a.start) / 60_000
}

/// The lines every mail shares: what, when (theirs, the desk's) and how long.
fn facts(desk: &Desk<'_>, a: &Appointment, context: &Context<'_>, when_label: &str) -> String {
    format!(
        "What:   {what}\n{when_label}{when}\n        {desk_when} at the desk\nLength: {minutes} minutes\n",
        what = summary(context),
        when = when_for_customer(desk, a),
        desk_when = when_at_the_desk(desk, a),
        minutes = minutes(a),
    )
}

/// The ICS calendar of `a` as it is now (the confirmation page's download, and each mail's part).
pub fn calendar(
    desk: &Desk<'_>,
    a: &Appointment,
    context: &Context<'_>,
    method: Method,
    now: Timestamp,
    description: &str,
) -> String {
    let uid = uid(&a.id, &desk.organizer);
    let summary = summary(context);
    ics::render(&Invitation {
        uid: &uid,
        sequence: a.sequence,
        method,
        start: instant(a.start),
        end: instant(a.end),
        stamp: now,
        summary: &summary,
        description,
        url: context.manage_url,
        organizer: &desk.organizer,
        attendee_name: &a.name,
        attendee_email: &a.email,
    })
}

/// What a mail to the customer tells of their appointment.
#[derive(Clone, Copy)]
enum Change {
    Booked,
    Moved,
    Cancelled,
}

impl Change {
    fn purpose(self) -> MailPurpose {
        match self {
            Change::Booked => MailPurpose::Confirmation,
            Change::Moved => MailPurpose::Reschedule,
            Change::Cancelled => MailPurpose::Cancellation,
        }
    }

    /// The calendar method of its invitation: a cancellation withdraws the event.
    fn method(self) -> Method {
        match self {
            Change::Booked | Change::Moved => Method::Request,
            Change::Cancelled => Method::Cancel,
        }
    }

    /// The subject's first word.
    fn label(self) -> &'static str {
        match self {
            Change::Booked => "Confirmed",
            Change::Moved => "Rescheduled",
            Change::Cancelled => "Cancelled",
        }
    }
}

/// The mail telling of `change` to appointment `a` (as it is now) with body `text`, and
/// the invitation of `a` attached: every customer mail is built here.
fn mail(
    desk: &Desk<'_>,
    a: &Appointment,
    context: &Context<'_>,
    now: Timestamp,
    change: Change,
    text: String,
) -> OutboxMail {
    let method = change.method();
    let ics = MailAttachment {
        filename: "invite.ics".to_string(),
        content_type: format!("text/calendar; method={}; charset=utf-8", method.name()),
        content: calendar(desk, a, context, method, now, &text),
    };
    let purpose = change.purpose();
    QueuedMail {
        id: mail_id(&a.id, purpose, a.sequence),
        about: a.id.clone(),
        purpose,
        to: a.email.clone(),
        subject: format!("{}: {} on {}", change.label(), summary(context), short_when(desk, a)),
        text,
        attachments: vec![ics],
    }
    .due(now.as_millisecond())
}

/// How to join, move and cancel: the links of a confirmation and a reschedule mail.
fn links(context: &Context<'_>) -> String {
    format!(
        "Join: at the time, open your appointment's page and press \"Join the video call\":\n{manage}\n\n\
         Need another time? Reschedule:\n{reschedule}\n\n\
         Can't make it? Cancel on your appointment's page (you will be asked to confirm):\n{manage}\n",
        manage = context.manage_url,
        reschedule = context.reschedule_url,
    )
}

/// The confirmation of booked appointment `a`.
pub fn confirmation(desk: &Desk<'_>, a: &Appointment, context: &Context<'_>, now: Timestamp) -> OutboxMail {
    let text = format!(
        "Hello {name},\n\nyour video call with {representative} is booked.\n\n{facts}\n{links}",
        name = a.name,
        representative = context.representative,
        facts = facts(desk, a, context, "When:   "),
        links = links(context),
    );
    mail(desk, a, context, now, Change::Booked, text)
}

/// The announcement that `a` (as it is once moved, `a.sequence` raised) moved from `was`.
pub fn reschedule(
    desk: &Desk<'_>,
    was: &Appointment,
    a: &Appointment,
    context: &Context<'_>,
    now: Timestamp,
) -> OutboxMail {
    let text = format!(
        "Hello {name},\n\nyour video call with {representative} has moved to a new time.\n\n{facts}\
         Was:    {was}\n\n{links}",
        name = a.name,
        representative = context.representative,
        facts = facts(desk, a, context, "New:    "),
        was = when_for_customer(desk, was),
        links = links(context),
    );
    mail(desk, a, context, now, Change::Moved, text)
}

/// The cancellation of appointment `a` as it is once cancelled (`a.sequence` raised).
pub fn cancellation(desk: &Desk<'_>, a: &Appointment, context: &Context<'_>, now: Timestamp) -> OutboxMail {
    let reason = match a.cancel_reason.as_deref() {
        Some(reason) => format!("Reason: {reason}\n"),
        None => String::new(),
    };
    let text = format!(
        "Hello {name},\n\nyour video call with {representative} is cancelled.\n\n{facts}{reason}\n\
         You are welcome to book another one:\n{book}\n",
        name = a.name,
        representative = context.representative,
        facts = facts(desk, a, context, "Was:    "),
        book = context.book_url,
    );
    mail(desk, a, context, now, Change::Cancelled, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AppointmentStatus;

    /// Asserts that `text` says `what`, showing the text when it does not.
    #[track_caller]
    fn says(text: &str, what: &str) {
        assert!(text.contains(what), "{what:?} is not in:\n{text}");
    }

    fn booked() -> Appointment {
        Appointment {
            id: "a1".into(),
            start: "2030-03-31T08:00:00Z".parse::<Timestamp>().unwrap().as_millisecond(),
            end: "2030-03-31T09:00:00Z".parse::<Timestamp>().unwrap().as_millisecond(),
            representative_id: "r".into(),
            category: None,
            name: "Carla".into(),
            email: "carla@example.com".into(),
            comment: String::new(),
            status: AppointmentStatus::Booked,
            cancel_token_hash: "h".into(),
            created_at: 0,
            cancelled_at: None,
            sequence: 0,
            customer_zone: Some("America/New_York".into()),
            customer_hour12: false,
            cancel_reason: None,
        }
    }

    #[test]
    fn a_customer_whose_clock_shows_12_hours_gets_times_so_in_every_line() {
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let desk = berlin_desk(&zone);
        let a = Appointment {
            customer_hour12: true,
            ..booked()
        };
        let mail = confirmation(&desk, &a, &context(), Timestamp::now());
        // 08:00Z is 04:00 AM in New York and 10:00 AM in Berlin.
        says(&mail.text, "04:00 AM–05:00 AM (America/New_York)");
        says(&mail.text, "10:00 AM–11:00 AM Europe/Berlin at the desk");
        says(&mail.subject, "04:00 AM (America/New_York)");
        let mail = confirmation(&desk, &booked(), &context(), Timestamp::now());
        says(&mail.text, "04:00–05:00 (America/New_York)");
        assert!(!mail.text.contains(" AM"), "{}", mail.text);
    }

    fn context() -> Context<'static> {
        Context {
            representative: "Anna Berg",
            topic: Some("Support"),
            manage_url: "https://desk.example/manage.html?token=t",
            reschedule_url: "https://desk.example/book.html?reschedule=t",
            book_url: "https://desk.example/book.html",
        }
    }

    fn berlin_desk(zone: &TimeZone) -> Desk<'_> {
        Desk {
            zone,
            organizer: "desk@example.org".to_string(),
        }
    }

    #[test]
    fn the_confirmation_says_when_in_the_customers_zone_with_the_desks_beside_it() {
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let desk = berlin_desk(&zone);
        let mail = confirmation(&desk, &booked(), &context(), Timestamp::now());
        // 08:00 UTC on 31 March 2030: 04:00 EDT in New York, 10:00 CEST in Berlin.
        says(&mail.text, "Sunday, 31 March 2030, 04:00–05:00 (America/New_York)");
        says(&mail.text, "10:00–11:00 Europe/Berlin at the desk");
        says(&mail.text, "Length: 60 minutes");
        assert_eq!(
            mail.subject,
            "Confirmed: Video call with Anna Berg — Support on Sun 31 Mar 2030, 04:00 (America/New_York)"
        );
        says(&mail.text, "https://desk.example/manage.html?token=t");
        says(&mail.text, "https://desk.example/book.html?reschedule=t");
        assert_eq!(mail.id, "a1.confirmation");
        let ics = &mail.attachments[0].content;
        says(ics, "METHOD:REQUEST");
        says(ics, "UID:appointment-a1@example.org");
        says(ics, "SUMMARY:Video call with Anna Berg — Support");
        says(ics, "LOCATION:https://desk.example/manage.html?token=t");
    }

    #[test]
    fn a_move_is_a_request_with_the_same_uid_and_a_higher_sequence() {
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let desk = berlin_desk(&zone);
        let was = booked();
        let mut moved = was.clone();
        moved.start += 3_600_000;
        moved.end += 3_600_000;
        moved.sequence = 1;
        let mail = reschedule(&desk, &was, &moved, &context(), Timestamp::now());
        assert_eq!(mail.id, "a1.reschedule-1");
        assert_eq!(announced_sequence(&mail.id), Some(1));
        assert_eq!(announced_sequence("a1.confirmation"), None);
        says(&mail.text, "New:    Sunday, 31 March 2030, 05:00–06:00");
        says(&mail.text, "Was:    Sunday, 31 March 2030, 04:00–05:00");
        let ics = &mail.attachments[0].content;
        says(ics, "METHOD:REQUEST");
        says(ics, "SEQUENCE:1");
        says(ics, "UID:appointment-a1@example.org");
    }

    #[test]
    fn the_cancellation_keeps_the_uid_with_a_higher_sequence_and_links_the_booking_page() {
        let zone = TimeZone::UTC;
        let desk = berlin_desk(&zone);
        let mut a = booked();
        a.status = AppointmentStatus::Cancelled;
        a.sequence = 1;
        a.cancel_reason = Some("I am ill".into());
        let mail = cancellation(&desk, &a, &context(), Timestamp::now());
        let ics = &mail.attachments[0].content;
        says(ics, "METHOD:CANCEL");
        says(ics, "SEQUENCE:1");
        says(ics, "UID:appointment-a1@example.org");
        assert_eq!(mail.id, "a1.cancellation");
        says(&mail.text, "Reason: I am ill");
        says(&mail.text, "book another one:\nhttps://desk.example/book.html");
    }
}
