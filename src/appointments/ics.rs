//! The calendar attachment of appointment mail (RFC 5545 / iTIP RFC 5546): a
//! `METHOD:REQUEST` invitation when booked, again with the same `UID` and a higher
//! `SEQUENCE` when moved, and a `METHOD:CANCEL` with the same `UID` and a higher
//! `SEQUENCE` when cancelled, so calendar programs update the one event they already hold
//! instead of adding a second. The confirmation page's download is `METHOD:PUBLISH` (an
//! event to add, not an invitation to answer). Text escaping and line folding are the
//! `icalendar` crate's.

use icalendar::{Calendar, Component, EventLike, EventStatus};
use jiff::Timestamp;

/// Whether the attachment announces the appointment or withdraws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Request,
    Cancel,
    Publish,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Cancel => "CANCEL",
            Method::Publish => "PUBLISH",
        }
    }
}

/// What the attachment says about one appointment.
#[derive(Debug, Clone)]
pub struct Invitation<'a> {
    /// Stable for the appointment's whole life (booking and cancellation share it).
    pub uid: &'a str,
    /// 0 when booked; each later change of the same appointment sends a higher one.
    pub sequence: u32,
    pub method: Method,
    pub start: Timestamp,
    pub end: Timestamp,
    /// When this version was written (`DTSTAMP`).
    pub stamp: Timestamp,
    pub summary: &'a str,
    pub description: &'a str,
    /// The appointment's page, where the customer joins the call: `URL` and `LOCATION`.
    pub url: &'a str,
    /// The desk's From address: the organizer calendar programs answer to.
    pub organizer: &'a str,
    pub attendee_name: &'a str,
    pub attendee_email: &'a str,
}

/// `20260615T080000Z`: the UTC form every calendar program reads.
fn utc(at: Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// The `text/calendar` body for the invitation.
pub fn render(invitation: &Invitation<'_>) -> String {
    let method = invitation.method.name();
    let status = match invitation.method {
        Method::Request | Method::Publish => EventStatus::Confirmed,
        Method::Cancel => EventStatus::Cancelled,
    };
    let attendee = format!("mailto:{}", invitation.attendee_email);
    let event = icalendar::Event::new()
        .uid(invitation.uid)
        .sequence(invitation.sequence)
        .add_property("DTSTAMP", utc(invitation.stamp))
        .add_property("DTSTART", utc(invitation.start))
        .add_property("DTEND", utc(invitation.end))
        .summary(invitation.summary)
        .description(invitation.description)
        .url(invitation.url)
        .location(invitation.url)
        .status(status)
        .append_property(icalendar::Property::new("ORGANIZER", format!("mailto:{}", invitation.organizer)).done())
        .append_property(
            icalendar::Property::new("ATTENDEE", attendee)
                .add_parameter("CN", invitation.attendee_name)
                .add_parameter("ROLE", "REQ-PARTICIPANT")
                .add_parameter("RSVP", "FALSE")
                .done(),
        )
        .done();
    Calendar::new()
        .append_property(icalendar::Property::new("METHOD", method).done())
        .push(event)
        .done()
        .to_string()
}

/// The MIME type of the attachment, with the method as iTIP asks.
pub fn content_type(method: Method) -> &'static str {
    match method {
        Method::Request => "text/calendar; charset=utf-8; method=REQUEST",
        Method::Cancel => "text/calendar; charset=utf-8; method=CANCEL",
        Method::Publish => "text/calendar; charset=utf-8; method=PUBLISH",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booked() -> Invitation<'static> {
        Invitation {
            uid: "appt-42@switchboard",
            sequence: 0,
            method: Method::Request,
            start: "2026-06-15T08:00:00Z".parse().unwrap(),
            end: "2026-06-15T09:00:00Z".parse().unwrap(),
            stamp: "2026-06-01T12:00:00Z".parse().unwrap(),
            summary: "Video appointment; with the desk, about \"billing\"",
            description: "Join at the link.\nCancel: https://desk.example/cancel?t=x",
            url: "https://desk.example/room.html?a=42",
            organizer: "desk@example.com",
            attendee_name: "Ada, Countess",
            attendee_email: "ada@example.com",
        }
    }

    fn parsed(text: &str) -> Calendar {
        text.parse::<Calendar>().expect("the attachment parses as iCalendar")
    }

    #[test]
    fn a_booking_is_a_request_with_its_uid_times_and_escaped_text() {
        let text = render(&booked());
        assert!(text.contains("\r\n"), "lines end in CRLF");
        assert!(
            text.lines().all(|line| line.len() <= 75),
            "long lines are folded:\n{text}"
        );
        let calendar = parsed(&text);
        assert_eq!(calendar.property_value("METHOD"), Some("REQUEST"));
        let event = calendar.events().next().expect("one event");
        assert_eq!(event.get_uid(), Some("appt-42@switchboard"));
        assert_eq!(event.get_sequence(), Some(0));
        assert_eq!(event.property_value("DTSTART"), Some("20260615T080000Z"));
        assert_eq!(event.property_value("DTEND"), Some("20260615T090000Z"));
        assert_eq!(event.property_value("STATUS"), Some("CONFIRMED"));
        assert_eq!(
            event.get_summary(),
            Some("Video appointment; with the desk, about \"billing\"")
        );
    }

    #[test]
    fn a_cancellation_keeps_the_uid_and_raises_the_sequence() {
        let cancel = Invitation {
            method: Method::Cancel,
            sequence: 1,
            ..booked()
        };
        let calendar = parsed(&render(&cancel));
        assert_eq!(calendar.property_value("METHOD"), Some("CANCEL"));
        let event = calendar.events().next().expect("one event");
        assert_eq!(event.get_uid(), Some("appt-42@switchboard"));
        assert_eq!(event.get_sequence(), Some(1));
        assert_eq!(event.property_value("STATUS"), Some("CANCELLED"));
        assert_eq!(
            content_type(Method::Cancel),
            "text/calendar; charset=utf-8; method=CANCEL"
        );
    }
}
