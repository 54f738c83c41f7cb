//! The confirmation and cancellation mail of an appointment, as outbox entries.
//!
//! Each mail says when (on the desk's wall clock, with its zone, and in UTC), with whom,
//! and how to cancel (the confirmation's cancel link), and carries the ICS invitation:
//! `METHOD:REQUEST` when booked, `METHOD:CANCEL` with the same `UID` and the raised
//! `SEQUENCE` when cancelled. A mail's id is derived from its appointment and purpose,
//! so writing it twice is one mail and its `Message-ID` ([`message_id`]) never changes.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::ics::{self, Invitation, Method};
use crate::store::{Appointment, MailAttachment, MailPurpose, MailStatus, Millis, OutboxMail};

/// What the mails of one desk share.
pub struct Desk<'a> {
    pub zone: &'a TimeZone,
    /// The From address (without a display name): the invitation's organizer.
    pub organizer: String,
}

/// The address inside `MAIL_FROM` (validated at start-up as a mailbox).
pub fn address_of(mail_from: &str) -> String {
    mail_from
        .parse::<lettre::message::Mailbox>()
        .map(|m| m.email.to_string())
        .unwrap_or_else(|_| mail_from.to_string())
}

/// The outbox id of an appointment's mail of `purpose`.
pub fn mail_id(appointment_id: &str, purpose: MailPurpose) -> String {
    match purpose {
        MailPurpose::Confirmation => format!("{appointment_id}.confirmation"),
        MailPurpose::Cancellation => format!("{appointment_id}.cancellation"),
    }
}

/// The `Message-ID` (without angle brackets) of outbox mail `mail_id`, in the From
/// address's domain as RFC 5322 advises.
pub fn message_id(mail_id: &str, organizer: &str) -> String {
    let domain = organizer.rsplit_once('@').map_or("switchboard.invalid", |(_, d)| d);
    format!("{mail_id}@{domain}")
}

/// The ICS `UID` of an appointment: one for its whole life.
pub fn uid(appointment_id: &str, organizer: &str) -> String {
    message_id(&format!("appointment-{appointment_id}"), organizer)
}

fn instant(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// "Monday, 2030-06-17 10:00–11:00 Europe/Berlin (08:00–09:00 UTC)".
pub fn when(desk: &Desk<'_>, a: &Appointment) -> String {
    let (start, end) = (instant(a.start), instant(a.end));
    let (local_start, local_end) = (start.to_zoned(desk.zone.clone()), end.to_zoned(desk.zone.clone()));
    let zone = desk.zone.iana_name().unwrap_or("UTC");
    format!(
        "{} {}–{} {zone} ({}–{} UTC)",
        local_start.strftime("%A, %Y-%m-%d"),
        local_start.strftime("%H:%M"),
        local_end.strftime("%H:%M"),
        start.strftime("%Y-%m-%d %H:%M"),
        end.strftime("%H:%M"),
    )
}

fn attachment(
    desk: &Desk<'_>,
    a: &Appointment,
    method: Method,
    sequence: u32,
    now: Timestamp,
    text: &str,
    url: &str,
) -> MailAttachment {
    let uid = uid(&a.id, &desk.organizer);
    let body = ics::render(&Invitation {
        uid: &uid,
        sequence,
        method,
        start: instant(a.start),
        end: instant(a.end),
        stamp: now,
        summary: "Video appointment",
        description: text,
        url,
        organizer: &desk.organizer,
        attendee_name: &a.name,
        attendee_email: &a.email,
    });
    let method = match method {
        Method::Request => "REQUEST",
        Method::Cancel => "CANCEL",
    };
    MailAttachment {
        filename: "invite.ics".to_string(),
        content_type: format!("text/calendar; method={method}; charset=utf-8"),
        content: body,
    }
}

fn pending(
    a: &Appointment,
    purpose: MailPurpose,
    subject: String,
    text: String,
    ics: MailAttachment,
    now: Millis,
) -> OutboxMail {
    OutboxMail {
        id: mail_id(&a.id, purpose),
        appointment_id: a.id.clone(),
        purpose,
        to: a.email.clone(),
        subject,
        text,
        attachments: vec![ics],
        status: MailStatus::Pending,
        attempts: 0,
        due_at: now,
        claimed_by: None,
        claim_until: None,
        last_error: None,
        created_at: now,
        sent_at: None,
    }
}

/// The confirmation of booked appointment `a` with `representative`; `cancel_url` is the
/// absolute cancel link (with its token), which is also the appointment's page.
pub fn confirmation(
    desk: &Desk<'_>,
    a: &Appointment,
    representative: &str,
    cancel_url: &str,
    now: Timestamp,
) -> OutboxMail {
    let when = when(desk, a);
    let text = format!(
        "Hello {name},\n\nyour video appointment is booked.\n\nWhen: {when}\n\
         Where: a video call with {representative}. At the time, open your appointment's page and \
         press \"Join the video call\":\n{cancel_url}\n\n\
         To cancel, open the same page and confirm there.\n",
        name = a.name,
    );
    let ics = attachment(desk, a, Method::Request, a.sequence, now, &text, cancel_url);
    let subject = format!("Your appointment on {}", local_day(desk, a));
    pending(a, MailPurpose::Confirmation, subject, text, ics, now.as_millisecond())
}

/// The cancellation of appointment `a` as it is once cancelled (`a.sequence` raised).
pub fn cancellation(desk: &Desk<'_>, a: &Appointment, now: Timestamp) -> OutboxMail {
    let when = when(desk, a);
    let text = format!(
        "Hello {name},\n\nyour video appointment is cancelled.\n\nWas: {when}\n\n\
         You are welcome to book another one.\n",
        name = a.name,
    );
    let ics = attachment(desk, a, Method::Cancel, a.sequence, now, &text, "");
    let subject = format!("Cancelled: your appointment on {}", local_day(desk, a));
    pending(a, MailPurpose::Cancellation, subject, text, ics, now.as_millisecond())
}

fn local_day(desk: &Desk<'_>, a: &Appointment) -> String {
    instant(a.start)
        .to_zoned(desk.zone.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AppointmentStatus;

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
        }
    }

    #[test]
    fn the_confirmation_says_when_in_the_desks_zone_and_utc_and_how_to_cancel() {
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let desk = Desk {
            zone: &zone,
            organizer: "desk@example.org".to_string(),
        };
        let mail = confirmation(
            &desk,
            &booked(),
            "Rita",
            "https://desk.example/cancel.html?token=t",
            Timestamp::now(),
        );
        assert!(
            mail.text
                .contains("10:00–11:00 Europe/Berlin (2030-03-31 08:00–09:00 UTC)"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("https://desk.example/cancel.html?token=t"));
        assert_eq!(mail.id, "a1.confirmation");
        let ics = &mail.attachments[0].content;
        assert!(
            ics.contains("METHOD:REQUEST") && ics.contains("UID:appointment-a1@example.org"),
            "{ics}"
        );
        assert_eq!(message_id(&mail.id, &desk.organizer), "a1.confirmation@example.org");
    }

    #[test]
    fn the_cancellation_keeps_the_uid_with_a_higher_sequence() {
        let zone = TimeZone::UTC;
        let desk = Desk {
            zone: &zone,
            organizer: "desk@example.org".to_string(),
        };
        let mut a = booked();
        a.status = AppointmentStatus::Cancelled;
        a.sequence = 1;
        let mail = cancellation(&desk, &a, Timestamp::now());
        let ics = &mail.attachments[0].content;
        assert!(ics.contains("METHOD:CANCEL") && ics.contains("SEQUENCE:1"), "{ics}");
        assert!(ics.contains("UID:appointment-a1@example.org"));
        assert_eq!(mail.id, "a1.cancellation");
    }
}
