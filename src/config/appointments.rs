//! The appointment desk's settings: its zone, its bookable days and hours, and the
//! times around a booked slot (`APPOINTMENT_*`).

use std::time::Duration;

use jiff::tz::TimeZone;

use super::{ConfigError, Reader};
use crate::core::schedule::{Hours, Weekdays};

/// `APPOINTMENT_*` settings.
#[derive(Debug, Clone)]
pub struct AppointmentSettings {
    /// `APPOINTMENT_TIME_ZONE`: the IANA zone the desk's days and hours are in (default UTC).
    pub zone: TimeZone,
    /// `APPOINTMENT_HOURS`, `APPOINTMENT_SLOT_MINUTES` and `APPOINTMENT_DAYS`: the bookable
    /// local hours, in slots, on the bookable weekdays.
    pub hours: Hours,
    /// `APPOINTMENT_MIN_NOTICE_MINUTES`: how far ahead a slot must start to be booked.
    pub min_notice: Duration,
    /// `APPOINTMENT_START_WINDOW_MINUTES`: "start" is allowed from this long before an
    /// appointment's start to this long after it.
    pub start_window: Duration,
    /// `APPOINTMENT_ROOM_GRACE_MINUTES`: an appointment's room stays open to joins until
    /// this long after the slot's end (a member who left or dropped out may come back).
    pub room_grace: Duration,
    /// `APPOINTMENT_BOOKING_BURST`: bookings one client address may make back to back.
    pub booking_burst: u32,
    /// `APPOINTMENT_BOOKING_REFILL_SECS`: after the burst, one more booking per this long.
    pub booking_refill: Duration,
}

impl AppointmentSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let minutes = |var: &'static str, default: u64, max: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(r.ranged::<u64>(var, default, 0..=max)? * 60))
        };
        Ok(Self {
            zone: time_zone(r, "APPOINTMENT_TIME_ZONE")?,
            hours: hours(r, "APPOINTMENT_HOURS", "APPOINTMENT_SLOT_MINUTES")?.with_days(days(r, "APPOINTMENT_DAYS")?),
            min_notice: minutes("APPOINTMENT_MIN_NOTICE_MINUTES", 60, 60 * 24 * 365)?,
            start_window: minutes("APPOINTMENT_START_WINDOW_MINUTES", 60, 60 * 24)?,
            room_grace: minutes("APPOINTMENT_ROOM_GRACE_MINUTES", 15, 60 * 24)?,
            booking_burst: r.ranged::<u32>("APPOINTMENT_BOOKING_BURST", 5, 1..=10_000)?,
            booking_refill: r.positive_seconds("APPOINTMENT_BOOKING_REFILL_SECS", 600.0)?,
        })
    }
}

/// An IANA time zone name (default UTC), looked up in jiff's zone database.
fn time_zone(r: &Reader<'_>, var: &'static str) -> Result<TimeZone, ConfigError> {
    let Some(name) = r.optional(var) else {
        return Ok(TimeZone::UTC);
    };
    TimeZone::get(&name).map_err(|e| {
        Reader::error(
            var,
            &name,
            format!("not a known IANA time zone name such as Europe/Berlin ({e})"),
        )
    })
}

/// `HH:MM-HH:MM` local opening hours (default 10:00-17:00) cut into slots of the
/// second variable's minutes (default 60).
fn hours(r: &Reader<'_>, var: &'static str, slot_var: &'static str) -> Result<Hours, ConfigError> {
    let slot_minutes: u16 = r.ranged(slot_var, 60, 5..=720)?;
    let value = r.text(var, "10:00-17:00");
    let bad = |why: &str| Reader::error(var, &value, why);
    let (open, close) = value
        .split_once('-')
        .ok_or_else(|| bad("must be two local times HH:MM-HH:MM, e.g. 10:00-17:00"))?;
    let time = |t: &str| {
        jiff::civil::Time::strptime("%H:%M", t.trim())
            .map_err(|_| bad("must be two local times HH:MM-HH:MM, e.g. 10:00-17:00"))
    };
    let (open, close) = (time(open)?, time(close)?);
    Hours::new(open, close, slot_minutes)
        .map_err(|e| Reader::error(var, &format!("{value} with {slot_var}={slot_minutes}"), e))
}

/// The bookable weekdays, such as `mon-fri` or `mon-wed,sat` (default every day).
fn days(r: &Reader<'_>, var: &'static str) -> Result<Weekdays, ConfigError> {
    let value = r.text(var, "mon-sun");
    Weekdays::parse(&value).map_err(|e| Reader::error(var, &value, e))
}
