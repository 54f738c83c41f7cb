//! Whether a booked appointment may move to another slot. Pure: the appointment's state,
//! the calendar and "now" are arguments. The store then decides who gets the new slot
//! (its unique key), in the same write that frees the old one.
//!
//! A move is allowed while the appointment is booked and has not begun, to a different
//! instant that is itself bookable now (a slot, not past, with the minimum notice).

use jiff::Timestamp;

use super::schedule::{BookingRefusal, Calendar, Slot};

/// Why an appointment cannot be moved to the requested start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescheduleRefusal {
    /// It was cancelled; book a new one instead.
    Cancelled,
    /// Its slot has begun (or is over): too late to move it.
    AlreadyBegun,
    /// The requested start is the one it has.
    SameSlot,
    /// The requested start is no bookable slot.
    Slot(BookingRefusal),
}

impl RescheduleRefusal {
    pub fn code(self) -> &'static str {
        match self {
            RescheduleRefusal::Cancelled => "appointment_cancelled",
            RescheduleRefusal::AlreadyBegun => "already_begun",
            RescheduleRefusal::SameSlot => "same_slot",
            RescheduleRefusal::Slot(refusal) => refusal.code(),
        }
    }
}

/// The slot an appointment starting at `current_start` (booked when `booked`) may move
/// to, or why it may not.
pub fn check_move(
    calendar: &Calendar,
    booked: bool,
    current_start: Timestamp,
    requested: Timestamp,
    now: Timestamp,
) -> Result<Slot, RescheduleRefusal> {
    if !booked {
        return Err(RescheduleRefusal::Cancelled);
    }
    if current_start <= now {
        return Err(RescheduleRefusal::AlreadyBegun);
    }
    if requested == current_start {
        return Err(RescheduleRefusal::SameSlot);
    }
    calendar.check_booking(requested, now).map_err(RescheduleRefusal::Slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::schedule::Hours;
    use jiff::SignedDuration;
    use jiff::tz::TimeZone;

    #[test]
    fn a_booked_future_appointment_moves_to_another_bookable_slot_only() {
        let calendar = Calendar::new(TimeZone::UTC, Hours::default_desk(), SignedDuration::from_hours(1));
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let now = at("2026-06-15T08:00:00Z");
        let current = at("2026-06-16T10:00:00Z");
        assert_eq!(
            check_move(&calendar, true, current, at("2026-06-16T11:00:00Z"), now).map(|s| s.start),
            Ok(at("2026-06-16T11:00:00Z"))
        );
        assert_eq!(
            check_move(&calendar, false, current, at("2026-06-16T11:00:00Z"), now),
            Err(RescheduleRefusal::Cancelled)
        );
        assert_eq!(
            check_move(&calendar, true, current, current, now),
            Err(RescheduleRefusal::SameSlot)
        );
        assert_eq!(
            check_move(
                &calendar,
                true,
                at("2026-06-15T07:00:00Z"),
                at("2026-06-16T11:00:00Z"),
                now
            ),
            Err(RescheduleRefusal::AlreadyBegun)
        );
        assert_eq!(
            check_move(&calendar, true, current, at("2026-06-15T08:30:00Z"), now)
                .unwrap_err()
                .code(),
            "not_a_slot"
        );
        assert_eq!(
            check_move(
                &calendar,
                true,
                current,
                at("2026-06-15T10:00:00Z"),
                at("2026-06-15T09:30:00Z")
            )
            .unwrap_err()
            .code(),
            "too_short_notice"
        );
    }
}
