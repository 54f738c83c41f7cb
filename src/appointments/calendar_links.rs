//! "Add to calendar" links for the confirmation page: Google Calendar's and Outlook on the
//! web's event templates, filled with the appointment's title, times (UTC), description
//! and location (the appointment's page). Query strings are built by the `url` crate.

use jiff::Timestamp;

/// What a calendar link pre-fills.
pub struct Event<'a> {
    pub title: &'a str,
    pub start: Timestamp,
    pub end: Timestamp,
    pub details: &'a str,
    pub location: &'a str,
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

/// Google Calendar's "create event" template.
pub fn google(event: &Event<'_>) -> String {
    let dates = format!(
        "{}/{}",
        event.start.strftime("%Y%m%dT%H%M%SZ"),
        event.end.strftime("%Y%m%dT%H%M%SZ")
    );
    format!(
        "https://calendar.google.com/calendar/render?{}",
        query(&[
            ("action", "TEMPLATE"),
            ("text", event.title),
            ("dates", &dates),
            ("details", event.details),
            ("location", event.location),
        ])
    )
}

/// Outlook on the web's "compose event" deep link.
pub fn outlook(event: &Event<'_>) -> String {
    let (start, end) = (
        event.start.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        event.end.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    format!(
        "https://outlook.live.com/calendar/0/deeplink/compose?{}",
        query(&[
            ("path", "/calendar/action/compose"),
            ("rru", "addevent"),
            ("subject", event.title),
            ("startdt", &start),
            ("enddt", &end),
            ("body", event.details),
            ("location", event.location),
        ])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_links_carry_the_event_encoded() {
        let event = Event {
            title: "Video call with Anna Berg — Support",
            start: "2026-06-15T08:00:00Z".parse().unwrap(),
            end: "2026-06-15T09:00:00Z".parse().unwrap(),
            details: "Join: https://desk.example/manage.html?token=a&b",
            location: "https://desk.example/manage.html?token=a",
        };
        let google = google(&event);
        assert!(google.starts_with("https://calendar.google.com/calendar/render?action=TEMPLATE&text=Video+call+with+Anna+Berg+%E2%80%94+Support"), "{google}");
        assert!(
            google.contains("&dates=20260615T080000Z%2F20260615T090000Z"),
            "{google}"
        );
        assert!(google.contains("token%3Da%26b"), "{google}");
        let outlook = outlook(&event);
        assert!(outlook.contains("startdt=2026-06-15T08%3A00%3A00Z"), "{outlook}");
        assert!(outlook.contains("rru=addevent"), "{outlook}");
    }
}
