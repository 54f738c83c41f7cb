//! A category's chat opening hours: for each day of the week the local spans it is open,
//! and holidays it is closed all day, in the desk's time zone. Pure: the instant and the
//! zone are arguments, so daylight-saving changes are tested without a clock.
//!
//! "Open at 09:00" means when the desk's wall clock reads 09:00, whatever its offset that
//! day: an instant is mapped to the desk's local date and time, and the category is open
//! when that local time lies in one of the day's `[open, close)` spans and the date is no
//! holiday. On a day whose clock jumps forward over an opening (a gap), the category opens
//! at the first local time after it; on a day whose clock falls back, the repeated hour
//! counts as open or closed by its wall-clock reading both times.
//!
//! A category without hours of its own is always open (the default, and what a desk
//! without hours gets).

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

/// One span of a day, `[open, close)`, local time; `close` after `open` (a span ending
/// at midnight closes at 23:59:59.999… — write `24:00` in the API, read as end of day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub open: Time,
    /// `None`: the end of the day.
    pub close: Option<Time>,
}

impl Span {
    fn contains(&self, t: Time) -> bool {
        self.open <= t && self.close.is_none_or(|close| t < close)
    }
}

/// Why hours cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpeningHoursError {
    #[error("a span must close after it opens ({0})")]
    EmptySpan(String),
    #[error("two spans of {0} overlap")]
    Overlap(String),
    #[error("at most {MAX_SPANS_A_DAY} spans a day")]
    TooManySpans,
    #[error("at most {MAX_HOLIDAYS} holidays")]
    TooManyHolidays,
}

/// Bounds, so that an admin's document stays small.
pub const MAX_SPANS_A_DAY: usize = 6;
pub const MAX_HOLIDAYS: usize = 366;

/// A category's week, Monday first, and its holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours {
    week: [Vec<Span>; 7],
    holidays: BTreeSet<Date>,
}

fn day_index(day: Weekday) -> usize {
    usize::try_from(day.to_monday_zero_offset()).expect("0 to 6")
}

impl OpeningHours {
    /// `week[0]` is Monday. Spans are sorted; they may touch but not overlap.
    pub fn new(week: [Vec<Span>; 7], holidays: impl IntoIterator<Item = Date>) -> Result<Self, OpeningHoursError> {
        let mut week = week;
        for (i, spans) in week.iter_mut().enumerate() {
            let day = DAY_NAMES[i];
            if spans.len() > MAX_SPANS_A_DAY {
                return Err(OpeningHoursError::TooManySpans);
            }
            spans.sort();
            for span in spans.iter() {
                if span.close.is_some_and(|close| close <= span.open) {
                    return Err(OpeningHoursError::EmptySpan(day.to_string()));
                }
            }
            for pair in spans.windows(2) {
                if pair[0].close.is_none_or(|close| close > pair[1].open) {
                    return Err(OpeningHoursError::Overlap(day.to_string()));
                }
            }
        }
        let holidays: BTreeSet<Date> = holidays.into_iter().collect();
        if holidays.len() > MAX_HOLIDAYS {
            return Err(OpeningHoursError::TooManyHolidays);
        }
        Ok(Self { week, holidays })
    }

    /// Open every hour of every day.
    pub fn always() -> Self {
        let all_day = || {
            vec![Span {
                open: Time::midnight(),
                close: None,
            }]
        };
        Self {
            week: std::array::from_fn(|_| all_day()),
            holidays: BTreeSet::new(),
        }
    }

    pub fn week(&self) -> &[Vec<Span>; 7] {
        &self.week
    }

    pub fn holidays(&self) -> impl Iterator<Item = &Date> {
        self.holidays.iter()
    }

    /// Whether the category is open at `instant`, read on the desk's clock in `zone`.
    pub fn is_open_at(&self, instant: Timestamp, zone: &TimeZone) -> bool {
        let local = instant.to_zoned(zone.clone()).datetime();
        if self.holidays.contains(&local.date()) {
            return false;
        }
        self.week[day_index(local.weekday())]
            .iter()
            .any(|span| span.contains(local.time()))
    }

    /// The first instant from `from` on at which the category is open (`from` itself when
    /// open then), read on the desk's clock in `zone`: what a closed category's customers
    /// are told ("opens again at …"). `None` when it opens on none of the next
    /// [`LOOK_AHEAD_DAYS`] days (no spans at all, or holidays throughout).
    pub fn next_open(&self, from: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        if self.is_open_at(from, zone) {
            return Some(from);
        }
        let now = from.to_zoned(zone.clone()).datetime();
        let mut date = now.date();
        for _ in 0..LOOK_AHEAD_DAYS {
            if !self.holidays.contains(&date) {
                for span in &self.week[day_index(date.weekday())] {
                    let opening = first_instant(zone, date.to_datetime(span.open))?;
                    // Today's spans that opened already are over: it is closed now.
                    if opening > from {
                        return Some(opening);
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// How far [`OpeningHours::next_open`] looks: a year of holidays and a week beyond.
pub const LOOK_AHEAD_DAYS: usize = MAX_HOLIDAYS + 8;

/// The first instant the desk's clock reads `local` or, when the clock jumps over it (a
/// spring-forward gap), the first instant after the jump (as `is_open_at` reads it).
fn first_instant(zone: &TimeZone, local: jiff::civil::DateTime) -> Option<Timestamp> {
    let ambiguous = zone.to_ambiguous_timestamp(local);
    // The earlier reading: a repeated hour's first pass; in a gap, the instant just before it.
    let earlier = ambiguous.earlier().ok()?;
    match ambiguous.offset() {
        jiff::tz::AmbiguousOffset::Gap { .. } => zone.following(earlier).next().map(|t| t.timestamp()),
        _ => Some(earlier),
    }
}

/// The days as the API names them, Monday first.
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn span(open: (i8, i8), close: Option<(i8, i8)>) -> Span {
        Span {
            open: time(open.0, open.1, 0, 0),
            close: close.map(|(h, m)| time(h, m, 0, 0)),
        }
    }

    /// Weekdays 09:00–17:00, closed at the weekend and on `holidays`.
    fn office(holidays: Vec<Date>) -> OpeningHours {
        let day = || vec![span((9, 0), Some((17, 0)))];
        OpeningHours::new([day(), day(), day(), day(), day(), vec![], vec![]], holidays).unwrap()
    }

    fn at(zone: &TimeZone, d: Date, h: i8, m: i8) -> Timestamp {
        d.at(h, m, 0, 0).to_zoned(zone.clone()).unwrap().timestamp()
    }

    #[test]
    fn open_inside_a_span_closed_outside_at_the_weekend_and_on_holidays() {
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let hours = office(vec![date(2026, 12, 24)]);
        // Monday 2026-11-23.
        let monday = date(2026, 11, 23);
        assert!(!hours.is_open_at(at(&zone, monday, 8, 59), &zone));
        assert!(hours.is_open_at(at(&zone, monday, 9, 0), &zone));
        assert!(hours.is_open_at(at(&zone, monday, 16, 59), &zone));
        assert!(!hours.is_open_at(at(&zone, monday, 17, 0), &zone), "close is exclusive");
        assert!(
            !hours.is_open_at(at(&zone, date(2026, 11, 28), 12, 0), &zone),
            "Saturday"
        );
        assert!(
            !hours.is_open_at(at(&zone, date(2026, 12, 24), 12, 0), &zone),
            "a holiday"
        );
        assert!(hours.is_open_at(at(&zone, date(2026, 12, 23), 12, 0), &zone));
    }

    #[test]
    fn the_desk_clock_decides_across_a_daylight_saving_change() {
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let hours = office(vec![]);
        // Berlin: UTC+2 until Sunday 2026-10-25, UTC+1 from then. 09:00 local on Friday
        // the 23rd is 07:00 UTC; on Monday the 26th it is 08:00 UTC.
        let utc = |d: Date, h: i8| d.at(h, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap().timestamp();
        assert!(hours.is_open_at(utc(date(2026, 10, 23), 7), &zone));
        assert!(
            !hours.is_open_at(utc(date(2026, 10, 26), 7), &zone),
            "07:00 UTC is 08:00 in winter"
        );
        assert!(hours.is_open_at(utc(date(2026, 10, 26), 8), &zone));
    }

    /// New York's spring-forward Sunday (2026-03-08, 02:00 jumps to 03:00) with one span
    /// from 02:30 to 05:00, and that day's UTC instants by hour and minute.
    fn spring_forward_sunday() -> (TimeZone, OpeningHours, impl Fn(i8, i8) -> Timestamp) {
        let zone = TimeZone::get("America/New_York").unwrap();
        let mut week: [Vec<Span>; 7] = Default::default();
        week[6] = vec![span((2, 30), Some((5, 0)))];
        let hours = OpeningHours::new(week, []).unwrap();
        let utc = |h: i8, m: i8| {
            date(2026, 3, 8)
                .at(h, m, 0, 0)
                .to_zoned(TimeZone::UTC)
                .unwrap()
                .timestamp()
        };
        (zone, hours, utc)
    }

    #[test]
    fn an_opening_in_a_spring_forward_gap_opens_at_the_first_time_after_it() {
        // 2026-03-08: 02:00 jumps to 03:00. A Sunday span from 02:30.
        let (zone, hours, utc) = spring_forward_sunday();
        // 06:59 UTC is 01:59 EST: closed; 07:00 UTC is 03:00 EDT: open.
        assert!(!hours.is_open_at(utc(6, 59), &zone));
        assert!(hours.is_open_at(utc(7, 0), &zone));
    }

    #[test]
    fn bad_spans_are_refused_and_a_span_may_run_to_midnight() {
        let mut week: [Vec<Span>; 7] = Default::default();
        week[0] = vec![span((10, 0), Some((9, 0)))];
        assert_eq!(
            OpeningHours::new(week.clone(), []),
            Err(OpeningHoursError::EmptySpan("mon".into()))
        );
        week[0] = vec![span((9, 0), Some((12, 0))), span((11, 0), Some((14, 0)))];
        assert_eq!(
            OpeningHours::new(week.clone(), []),
            Err(OpeningHoursError::Overlap("mon".into()))
        );
        week[0] = vec![span((13, 0), None), span((9, 0), Some((13, 0)))];
        let hours = OpeningHours::new(week, []).unwrap();
        let zone = TimeZone::UTC;
        assert!(hours.is_open_at(at(&zone, date(2026, 11, 23), 23, 59), &zone));
        assert!(!hours.is_open_at(at(&zone, date(2026, 11, 24), 0, 0), &zone));
        assert!(OpeningHours::always().is_open_at(at(&zone, date(2026, 11, 28), 3, 0), &zone));
    }

    #[test]
    fn next_open_is_the_next_span_start_past_closed_days_and_holidays() {
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        // Monday 2026-11-23; Tuesday the 24th a holiday.
        let hours = office(vec![date(2026, 11, 24)]);
        let monday = date(2026, 11, 23);
        let open_now = at(&zone, monday, 10, 0);
        assert_eq!(hours.next_open(open_now, &zone), Some(open_now), "open now: now");
        assert_eq!(
            hours.next_open(at(&zone, monday, 7, 30), &zone),
            Some(at(&zone, monday, 9, 0)),
            "later today"
        );
        assert_eq!(
            hours.next_open(at(&zone, monday, 17, 0), &zone),
            Some(at(&zone, date(2026, 11, 25), 9, 0)),
            "past the holiday"
        );
        assert_eq!(
            hours.next_open(at(&zone, date(2026, 11, 27), 18, 0), &zone),
            Some(at(&zone, date(2026, 11, 30), 9, 0)),
            "Friday evening: Monday"
        );
        let never = OpeningHours::new(Default::default(), []).unwrap();
        assert_eq!(never.next_open(open_now, &zone), None);
    }

    #[test]
    fn next_open_in_a_spring_forward_gap_is_the_first_instant_after_the_jump() {
        // 2026-03-08: 02:00 jumps to 03:00. A Sunday span from 02:30 opens at 03:00 EDT.
        let (zone, hours, utc) = spring_forward_sunday();
        let opens = hours.next_open(utc(5, 0), &zone).unwrap();
        assert_eq!(opens, utc(7, 0));
        assert!(hours.is_open_at(opens, &zone));
    }
}
