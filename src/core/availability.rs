//! Which slots and days a customer can book: a slot is free when it may be booked now
//! (`schedule::Calendar::check_booking`) and at least one eligible representative has no
//! booked appointment starting then. Days are the customer's local days in the zone
//! they look from, so a month view marks the days on which they can pick a time. Pure:
//! the representatives and the bookings are handed in.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::schedule::{Calendar, Slot};

/// One booked appointment as availability sees it: who holds which start (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    pub representative: &'a str,
    pub start_ms: i64,
}

/// Whether some representative of `representatives` is free at `slot` and the slot may
/// be booked at `now`.
pub fn is_free(calendar: &Calendar, slot: &Slot, representatives: &[&str], held: &[Held<'_>], now: Timestamp) -> bool {
    let start_ms = slot.start.as_millisecond();
    let someone_free = representatives
        .iter()
        .any(|r| !held.iter().any(|h| h.representative == *r && h.start_ms == start_ms));
    someone_free && calendar.check_booking(slot.start, now).is_ok()
}

/// `[start, end)` of local day `day` in `zone`; `None` out of range.
pub fn day_span(day: Date, zone: &TimeZone) -> Option<(Timestamp, Timestamp)> {
    let start = day.to_zoned(zone.clone()).ok()?.timestamp();
    let end = day.tomorrow().ok()?.to_zoned(zone.clone()).ok()?.timestamp();
    Some((start, end))
}

/// The days from `first` to `last` (both included, local to `zone`) with at least one free slot.
pub fn free_days(
    calendar: &Calendar,
    zone: &TimeZone,
    first: Date,
    last: Date,
    representatives: &[&str],
    held: &[Held<'_>],
    now: Timestamp,
) -> Vec<Date> {
    let mut days = Vec::new();
    let mut day = first;
    while day <= last {
        if let Some((from, to)) = day_span(day, zone)
            && calendar
                .slots_between(from, to)
                .iter()
                .any(|slot| is_free(calendar, slot, representatives, held, now))
        {
            days.push(day);
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use jiff::civil::date;

    fn berlin() -> Calendar {
        crate::core::schedule::tests::berlin_desk(SignedDuration::ZERO)
    }

    #[test]
    fn a_day_is_free_while_one_representative_has_a_free_slot() {
        let calendar = berlin();
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let day = date(2026, 6, 15);
        let slots = calendar.slots(day);
        let starts: Vec<i64> = slots.iter().map(|s| s.start.as_millisecond()).collect();
        let all_of_ann: Vec<Held> = starts
            .iter()
            .map(|&start_ms| Held {
                representative: "ann",
                start_ms,
            })
            .collect();
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            free_days(&calendar, &zone, day, day, &["ann"], &all_of_ann, now),
            Vec::<Date>::new()
        );
        assert_eq!(
            free_days(&calendar, &zone, day, day, &["ann", "bob"], &all_of_ann, now),
            vec![day]
        );
        assert!(
            free_days(&calendar, &zone, day, day, &[], &[], now).is_empty(),
            "nobody serves"
        );
        // Past days are never free.
        let later: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        assert!(free_days(&calendar, &zone, day, day, &["ann"], &[], later).is_empty());
    }

    #[test]
    fn free_days_are_the_customers_local_days() {
        // Every Berlin slot (10:00–17:00, UTC+2 in June) falls on the next day in Kiritimati (UTC+14).
        let calendar = berlin();
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let far_east = TimeZone::get("Pacific/Kiritimati").unwrap();
        let days = free_days(
            &calendar,
            &far_east,
            date(2026, 6, 15),
            date(2026, 6, 16),
            &["ann"],
            &[],
            now,
        );
        // The Berlin 15th's slots are 22:00–04:00 in Kiritimati: on its 15th and its 16th.
        assert_eq!(days, vec![date(2026, 6, 15), date(2026, 6, 16)]);
    }
}
