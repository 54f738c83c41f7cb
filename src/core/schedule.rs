//! The appointment calendar's rules: which slots a day has in the desk's time zone, and
//! whether a requested start may be booked. Pure: the zone, the hours and "now" are
//! arguments, so daylight-saving changes and every refusal are tested without a clock.
//!
//! A day's slots are the desk's local opening hours cut into equal slots (one hour by
//! default, 10:00–17:00: seven a day) on the desk's bookable weekdays (every day by
//! default); a closed weekday has none, whatever the date. Local times are mapped to instants in the desk's
//! zone with two rules:
//! - a local start that falls in a clock change's **gap** (it never happens on that day)
//!   is no slot;
//! - a local start that falls in a **fold** (it happens twice) is the **earlier** instant,
//!   and the later one is no slot, so one local label never names two slots.
//!
//! A booking names its slot by its start instant (UTC): it is accepted only when that
//! instant is exactly one of its local day's slots, is not in the past, and is at least
//! the minimum notice ahead.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

pub use super::opening_hours::DAY_NAMES;

/// The desk's appointment hours: `[open, close)` local time, cut into `slot_minutes` slots,
/// on its bookable weekdays.
#[derive(Debug, Clone)]
pub struct Hours {
    open: Time,
    close: Time,
    slot_minutes: u16,
    days: Weekdays,
}

/// The weekdays the desk takes appointments on (at least one), named as the chat hours
/// name them (`mon` … `sun`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weekdays {
    /// Bit 0 is Monday, bit 6 Sunday.
    mask: u8,
}

/// Why a list of weekdays is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeekdaysError {
    #[error("at least one weekday is needed")]
    None,
    #[error("{0:?} is not a weekday (mon, tue, wed, thu, fri, sat, sun)")]
    NotADay(String),
    #[error("{0:?} is not a range from an earlier weekday to a later one, such as mon-fri")]
    NotARange(String),
}

impl Default for Weekdays {
    /// Every day: a desk that names no weekdays takes bookings on all seven.
    fn default() -> Self {
        Weekdays::EVERY_DAY
    }
}

impl Weekdays {
    pub const EVERY_DAY: Weekdays = Weekdays { mask: 0b111_1111 };

    fn index(name: &str) -> Result<usize, WeekdaysError> {
        let name = name.trim();
        DAY_NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(name))
            .ok_or_else(|| WeekdaysError::NotADay(name.to_string()))
    }

    fn of_mask(mask: u8) -> Result<Self, WeekdaysError> {
        if mask & Self::EVERY_DAY.mask == 0 {
            return Err(WeekdaysError::None);
        }
        Ok(Weekdays {
            mask: mask & Self::EVERY_DAY.mask,
        })
    }

    /// From the days' names (any case, any order; a day named twice counts once).
    pub fn from_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Self, WeekdaysError> {
        let mut mask = 0u8;
        for name in names {
            mask |= 1 << Self::index(name.as_ref())?;
        }
        Self::of_mask(mask)
    }

    /// A setting's form: names and ranges with commas, such as `mon-fri` or `mon-wed,sat`.
    pub fn parse(raw: &str) -> Result<Self, WeekdaysError> {
        let mut mask = 0u8;
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (first, last) = match item.split_once('-') {
                Some((first, last)) => (Self::index(first)?, Self::index(last)?),
                None => (Self::index(item)?, Self::index(item)?),
            };
            if first > last {
                return Err(WeekdaysError::NotARange(item.to_string()));
            }
            for i in first..=last {
                mask |= 1 << i;
            }
        }
        Self::of_mask(mask)
    }

    /// Bits 0 (Monday) to 6 (Sunday); the property tests draw sets with it.
    #[cfg(test)]
    pub(crate) fn from_mask(mask: u8) -> Self {
        Self::of_mask(mask).expect("a day in the mask")
    }

    pub fn contains(&self, day: Weekday) -> bool {
        self.mask & (1 << day.to_monday_zero_offset()) != 0
    }

    /// The days' names, Monday first.
    pub fn names(&self) -> Vec<&'static str> {
        DAY_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.mask & (1 << i) != 0)
            .map(|(_, name)| *name)
            .collect()
    }
}

/// Why a set of hours is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("the opening time must be before the closing time")]
    Empty,
    #[error("a slot must last between 5 minutes and 12 hours")]
    SlotLength,
    #[error("the opening hours must hold at least one whole slot")]
    NoWholeSlot,
}

impl Hours {
    pub fn new(open: Time, close: Time, slot_minutes: u16) -> Result<Self, HoursError> {
        if !(5..=720).contains(&slot_minutes) {
            return Err(HoursError::SlotLength);
        }
        if open >= close {
            return Err(HoursError::Empty);
        }
        let hours = Hours {
            open,
            close,
            slot_minutes,
            days: Weekdays::EVERY_DAY,
        };
        if hours.local_starts().next().is_none() {
            return Err(HoursError::NoWholeSlot);
        }
        Ok(hours)
    }

    /// 10:00 to 17:00 in one-hour slots, as the scheduling kit has it.
    pub fn default_desk() -> Self {
        Hours::new(Time::constant(10, 0, 0, 0), Time::constant(17, 0, 0, 0), 60).expect("valid default hours")
    }

    pub fn open(&self) -> Time {
        self.open
    }

    pub fn close(&self) -> Time {
        self.close
    }

    pub fn slot_minutes(&self) -> u16 {
        self.slot_minutes
    }

    /// The same hours on `days` only.
    pub fn with_days(self, days: Weekdays) -> Self {
        Hours { days, ..self }
    }

    pub fn days(&self) -> Weekdays {
        self.days
    }

    /// The local start times of the slots on a day without clock changes.
    fn local_starts(&self) -> impl Iterator<Item = Time> + '_ {
        let slot = i64::from(self.slot_minutes);
        let open = minutes_of(self.open);
        let close = minutes_of(self.close);
        (0..)
            .map(move |i| open + i * slot)
            .take_while(move |start| start + slot <= close)
            .map(|minutes| Time::constant((minutes / 60) as i8, (minutes % 60) as i8, 0, 0))
    }
}

fn minutes_of(time: Time) -> i64 {
    i64::from(time.hour()) * 60 + i64::from(time.minute())
}

/// The rules of one desk (or one category with its own hours).
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: TimeZone,
    hours: Hours,
    min_notice: SignedDuration,
}

/// One slot: its start instant and the local wall-clock time it is labelled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub start: Timestamp,
    pub end: Timestamp,
    pub local_start: DateTime,
}

/// Why a requested start cannot be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingRefusal {
    /// Outside the hours, not on a slot boundary, or in a clock change's gap or second fold.
    NotASlot,
    /// The slot has already begun.
    Past,
    /// The slot starts sooner than the minimum notice allows.
    TooSoon,
}

impl BookingRefusal {
    pub fn code(self) -> &'static str {
        match self {
            BookingRefusal::NotASlot => "not_a_slot",
            BookingRefusal::Past => "slot_in_past",
            BookingRefusal::TooSoon => "too_short_notice",
        }
    }
}

impl Calendar {
    pub fn new(zone: TimeZone, hours: Hours, min_notice: SignedDuration) -> Self {
        Calendar {
            zone,
            hours,
            min_notice,
        }
    }

    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    pub fn hours(&self) -> &Hours {
        &self.hours
    }

    /// The local date an instant falls on in the desk's zone.
    pub fn local_date(&self, at: Timestamp) -> Date {
        at.to_zoned(self.zone.clone()).date()
    }

    /// The slots of a local day, in order. A day of a clock change may have fewer; a
    /// weekday the desk is closed on has none.
    pub fn slots(&self, day: Date) -> Vec<Slot> {
        if !self.hours.days.contains(day.weekday()) {
            return Vec::new();
        }
        let slot = SignedDuration::from_mins(i64::from(self.hours.slot_minutes));
        self.hours
            .local_starts()
            .filter_map(|time| {
                let local_start = day.to_datetime(time);
                let start = self.instant_of(local_start)?;
                let end = start.checked_add(slot).ok()?;
                Some(Slot {
                    start,
                    end,
                    local_start,
                })
            })
            .collect()
    }

    /// The slots starting in `[from, to)`, in order, whichever of the desk's local days they
    /// fall on: a customer's day in another zone may straddle two desk days.
    pub fn slots_between(&self, from: Timestamp, to: Timestamp) -> Vec<Slot> {
        if from >= to {
            return Vec::new();
        }
        let last_instant = to.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(to);
        let (first, last) = (self.local_date(from), self.local_date(last_instant));
        let mut slots = Vec::new();
        let mut day = first;
        while day <= last {
            slots.extend(self.slots(day).into_iter().filter(|s| s.start >= from && s.start < to));
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        slots
    }

    /// The instant a local start time names: none in a gap, the earlier one in a fold.
    fn instant_of(&self, local: DateTime) -> Option<Timestamp> {
        let ambiguous = self.zone.to_ambiguous_timestamp(local);
        match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => ambiguous.earlier().ok(),
            AmbiguousOffset::Gap { .. } => None,
        }
    }

    /// Whether `start` may be booked at `now`; the slot it names when it may.
    pub fn check_booking(&self, start: Timestamp, now: Timestamp) -> Result<Slot, BookingRefusal> {
        let slot = self
            .slots(self.local_date(start))
            .into_iter()
            .find(|slot| slot.start == start)
            .ok_or(BookingRefusal::NotASlot)?;
        if start <= now {
            return Err(BookingRefusal::Past);
        }
        if start.duration_since(now) < self.min_notice {
            return Err(BookingRefusal::TooSoon);
        }
        Ok(slot)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    /// The default desk's hours in Berlin, booked at least `min_notice` ahead.
    pub(crate) fn berlin_desk(min_notice: SignedDuration) -> Calendar {
        Calendar::new(
            TimeZone::get("Europe/Berlin").unwrap(),
            Hours::default_desk(),
            min_notice,
        )
    }

    fn berlin() -> Calendar {
        berlin_desk(SignedDuration::from_hours(1))
    }

    /// Hourly slots in Berlin from `open` to `close` o'clock at night, bookable at once:
    /// where the clock changes.
    fn berlin_night(open: i8, close: i8) -> Calendar {
        Calendar::new(
            TimeZone::get("Europe/Berlin").unwrap(),
            hours((open, 0), (close, 0), 60),
            SignedDuration::ZERO,
        )
    }

    fn hours(open: (i8, i8), close: (i8, i8), slot: u16) -> Hours {
        Hours::new(
            Time::constant(open.0, open.1, 0, 0),
            Time::constant(close.0, close.1, 0, 0),
            slot,
        )
        .unwrap()
    }

    fn labels(slots: &[Slot]) -> Vec<String> {
        slots
            .iter()
            .map(|s| s.local_start.time().strftime("%H:%M").to_string())
            .collect()
    }

    #[test]
    fn a_default_day_has_seven_one_hour_slots_in_the_desk_zone() {
        let slots = berlin().slots(date(2026, 6, 15));
        assert_eq!(
            labels(&slots),
            ["10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]
        );
        // Summer time in Berlin: UTC+2.
        assert_eq!(slots[0].start.to_string(), "2026-06-15T08:00:00Z");
        assert_eq!(slots[6].end.to_string(), "2026-06-15T15:00:00Z");
    }

    #[test]
    fn the_spring_gap_removes_the_slot_that_never_happens() {
        // 29 March 2026, Berlin: 02:00 jumps to 03:00.
        let night = berlin_night(0, 5);
        let slots = night.slots(date(2026, 3, 29));
        assert_eq!(labels(&slots), ["00:00", "01:00", "03:00", "04:00"]);
        assert_eq!(slots[1].start.to_string(), "2026-03-29T00:00:00Z");
        assert_eq!(
            slots[2].start.to_string(),
            "2026-03-29T01:00:00Z",
            "03:00 CEST is 01:00 UTC"
        );
        // The daytime desk is untouched by the night's change, but its offset moved.
        let day = berlin().slots(date(2026, 3, 29));
        assert_eq!(day.len(), 7);
        assert_eq!(day[0].start.to_string(), "2026-03-29T08:00:00Z");
        assert_eq!(
            berlin().slots(date(2026, 3, 28))[0].start.to_string(),
            "2026-03-28T09:00:00Z"
        );
    }

    #[test]
    fn the_autumn_fold_keeps_only_the_earlier_of_the_repeated_hour() {
        // 25 October 2026, Berlin: 03:00 CEST goes back to 02:00 CET; 02:00 happens twice.
        let night = berlin_night(1, 4);
        let slots = night.slots(date(2026, 10, 25));
        assert_eq!(labels(&slots), ["01:00", "02:00", "03:00"]);
        assert_eq!(
            slots[1].start.to_string(),
            "2026-10-25T00:00:00Z",
            "the first 02:00 (CEST)"
        );
        assert_eq!(slots[2].start.to_string(), "2026-10-25T02:00:00Z", "03:00 CET");
        let before = Timestamp::from_second(0).unwrap();
        let second_two_oclock: Timestamp = "2026-10-25T01:00:00Z".parse().unwrap();
        assert_eq!(
            night.check_booking(second_two_oclock, before),
            Err(BookingRefusal::NotASlot)
        );
        assert!(night.check_booking(slots[1].start, before).is_ok());
    }

    #[test]
    fn bookings_outside_hours_off_the_hour_past_or_too_soon_are_refused() {
        let calendar = berlin();
        let now: Timestamp = "2026-06-15T08:30:00Z".parse().unwrap(); // 10:30 in Berlin
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        for (start, refusal, why) in [
            ("2026-06-15T01:00:00Z", BookingRefusal::NotASlot, "03:00 local"),
            ("2026-06-15T15:00:00Z", BookingRefusal::NotASlot, "17:00 closes"),
            ("2026-06-15T10:30:00Z", BookingRefusal::NotASlot, "half past"),
            ("2026-06-15T08:00:00Z", BookingRefusal::Past, "10:00 local, gone"),
            (
                "2026-06-15T09:00:00Z",
                BookingRefusal::TooSoon,
                "30 min ahead, 1 h notice",
            ),
        ] {
            assert_eq!(calendar.check_booking(at(start), now), Err(refusal), "{why}");
        }
        assert!(calendar.check_booking(at("2026-06-15T10:00:00Z"), now).is_ok());
    }

    #[test]
    fn a_new_york_day_takes_the_berlin_slots_that_start_in_it() {
        let zone = TimeZone::get("America/New_York").unwrap();
        let day = date(2026, 6, 15);
        let from = day.to_zoned(zone.clone()).unwrap().timestamp();
        let to = day.tomorrow().unwrap().to_zoned(zone).unwrap().timestamp();
        let slots = berlin().slots_between(from, to);
        // 10:00–16:00 Berlin (UTC+2) is 04:00–10:00 New York (UTC-4), all on the 15th.
        assert_eq!(slots.len(), 7);
        assert_eq!(slots[0].start.to_string(), "2026-06-15T08:00:00Z");
        // Auckland (UTC+12): its 15th holds the end of Berlin's 14th and the start of its 15th.
        let auckland = TimeZone::get("Pacific/Auckland").unwrap();
        let from = day.to_zoned(auckland.clone()).unwrap().timestamp();
        let to = day.tomorrow().unwrap().to_zoned(auckland).unwrap().timestamp();
        let starts: Vec<String> = berlin()
            .slots_between(from, to)
            .iter()
            .map(|s| s.start.to_string())
            .collect();
        assert_eq!(starts.len(), 7, "three of Berlin's 14th, four of its 15th: {starts:?}");
        assert_eq!(starts[0], "2026-06-14T12:00:00Z", "00:00 on the 15th in Auckland");
        assert_eq!(starts[6], "2026-06-15T11:00:00Z", "23:00 on the 15th in Auckland");
    }

    #[test]
    fn a_closed_weekday_has_no_slot_and_refuses_a_booking() {
        let weekdays = Weekdays::parse("mon-fri").unwrap();
        let calendar = Calendar::new(
            TimeZone::get("Europe/Berlin").unwrap(),
            Hours::default_desk().with_days(weekdays),
            SignedDuration::ZERO,
        );
        // 13 June 2026 is a Saturday, 15 June a Monday.
        assert!(calendar.slots(date(2026, 6, 13)).is_empty());
        assert!(calendar.slots(date(2026, 6, 14)).is_empty());
        assert_eq!(calendar.slots(date(2026, 6, 15)).len(), 7);
        let saturday_ten: Timestamp = "2026-06-13T08:00:00Z".parse().unwrap();
        let long_ago = Timestamp::from_second(0).unwrap();
        assert_eq!(
            calendar.check_booking(saturday_ten, long_ago),
            Err(BookingRefusal::NotASlot)
        );
        // The default desk takes every day.
        assert_eq!(berlin().slots(date(2026, 6, 13)).len(), 7);
    }

    #[test]
    fn weekdays_are_read_as_names_and_ranges_and_refused_when_unclear() {
        let names = |raw: &str| Weekdays::parse(raw).map(|w| w.names());
        assert_eq!(names("mon-fri").unwrap(), ["mon", "tue", "wed", "thu", "fri"]);
        assert_eq!(names(" Sat , MON-Tue,sun").unwrap(), ["mon", "tue", "sat", "sun"]);
        assert_eq!(names("mon-sun").unwrap(), DAY_NAMES);
        assert_eq!(Weekdays::default(), Weekdays::EVERY_DAY);
        for bad in ["", " , ", "monday", "mon-", "fri-mon", "mon-fri-sun", "mo"] {
            assert!(Weekdays::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Weekdays::from_names(["fri", "MON", "fri"]).unwrap().names(),
            ["mon", "fri"]
        );
        assert!(Weekdays::from_names(Vec::<&str>::new()).is_err());
        assert!(Weekdays::from_names(["mon-fri"]).is_err());
    }

    #[test]
    fn hours_that_hold_no_slot_are_refused() {
        let t = |h, m| Time::constant(h, m, 0, 0);
        assert_eq!(Hours::new(t(17, 0), t(10, 0), 60).unwrap_err(), HoursError::Empty);
        assert_eq!(
            Hours::new(t(10, 0), t(10, 30), 60).unwrap_err(),
            HoursError::NoWholeSlot
        );
        assert_eq!(Hours::new(t(10, 0), t(17, 0), 0).unwrap_err(), HoursError::SlotLength);
    }

    const ZONES: &[&str] = &[
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/Sao_Paulo",
        "Australia/Lord_Howe", // a 30-minute DST shift
        "Asia/Kolkata",        // a half-hour offset
        "Pacific/Apia",        // skipped 30 December 2011 entirely
        "America/St_Johns",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every slot is inside the hours, labelled by the local time it starts at,
        /// in order, never overlapping, and exactly the slots are bookable.
        #[test]
        fn slots_are_consistent_with_their_labels_and_bookings(
            zone in prop::sample::select(ZONES),
            days in 0i32..8000,
            open_min in 0i64..(23 * 60),
            span in 5i64..(12 * 60),
            slot in prop::sample::select(vec![5u16, 15, 30, 45, 60, 90]),
            probe_minutes in 0i64..(24 * 60),
            open_days in 1u8..128,
        ) {
            let close_min = (open_min + span).min(24 * 60 - 1);
            prop_assume!(close_min - open_min >= i64::from(slot));
            let t = |m: i64| Time::constant((m / 60) as i8, (m % 60) as i8, 0, 0);
            let calendar = Calendar::new(
                TimeZone::get(zone).unwrap(),
                Hours::new(t(open_min), t(close_min), slot).unwrap(),
                SignedDuration::ZERO,
            );
            let day = date(2005, 1, 1).checked_add(jiff::Span::new().days(days)).unwrap();
            let slots = calendar.slots(day);
            prop_assert!(slots.len() as i64 <= (close_min - open_min) / i64::from(slot));
            for pair in slots.windows(2) {
                prop_assert!(pair[0].start < pair[1].start);
                prop_assert!(pair[0].local_start < pair[1].local_start);
            }
            let long_ago = Timestamp::from_second(0).unwrap();
            for s in &slots {
                prop_assert_eq!(s.local_start.date(), day);
                let minutes = minutes_of(s.local_start.time());
                prop_assert!(minutes >= open_min && minutes + i64::from(slot) <= close_min);
                prop_assert_eq!((minutes - open_min) % i64::from(slot), 0);
                prop_assert_eq!(s.start.to_zoned(calendar.zone().clone()).datetime(), s.local_start);
                prop_assert_eq!(calendar.check_booking(s.start, long_ago), Ok(s.clone()));
            }
            // Closed weekdays: the same day has no slot, and each slot of it is refused.
            let closed = Calendar::new(
                calendar.zone().clone(),
                calendar.hours().clone().with_days(Weekdays::from_mask(open_days)),
                SignedDuration::ZERO,
            );
            let open = closed.hours().days().contains(day.weekday());
            let closed_slots = closed.slots(day);
            prop_assert_eq!(&closed_slots, &if open { slots.clone() } else { Vec::new() });
            for s in &slots {
                prop_assert_eq!(closed.check_booking(s.start, long_ago).is_ok(), open);
            }
            // Any instant of the day that is not a slot's start is refused as no slot.
            let probe = calendar.zone().to_ambiguous_timestamp(day.to_datetime(t(probe_minutes))).earlier();
            if let Ok(probe) = probe {
                let is_slot = slots.iter().any(|s| s.start == probe);
                prop_assert_eq!(calendar.check_booking(probe, long_ago).is_ok(), is_slot);
            }
        }
    }
}
