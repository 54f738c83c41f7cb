//! The desk's appointment hours through the admin API: an admin may replace
//! the `APPOINTMENT_HOURS` of the settings (which stay the default) and give categories
//! hours of their own. Stored in the shared store, so every node applies them.
//!
//! The bookable weekdays (`days`) are the desk's, for every category; hours set without
//! them keep `APPOINTMENT_DAYS`.
//!
//! The slot length stays `APPOINTMENT_SLOT_MINUTES`, and a category's opening time must
//! lie on the desk's slot grid (a whole number of slots from the desk's opening): a
//! representative holding two categories then never gets two overlapping slots with
//! different starts, which the store's one-booking-per-(representative, start) key would
//! not catch.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, JsonResult};
use super::responses::{AdminsOnly, Unavailable};
use super::session::Admin;
use super::{ApiError, AppState, ErrorBody};
use crate::core::schedule::{Hours, Weekdays};
use crate::store::StoreResult;

/// The store key of the admin's hours.
const KEY: &str = "appointment_hours";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, replace, reset))
}

/// One category's own hours.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryHours {
    pub category: String,
    /// Local `HH:MM`, on the desk's slot grid.
    pub open: String,
    pub close: String,
}

/// Hours as an admin sets them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"open": "09:00", "close": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"],
    "categories": [{"category": "sales", "open": "12:00", "close": "16:00"}]}))]
pub struct DeskHours {
    /// Local `HH:MM` in the desk's zone.
    pub open: String,
    pub close: String,
    /// The bookable weekdays (`mon` … `sun`, at least one), for every category; left out:
    /// `APPOINTMENT_DAYS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    #[serde(default)]
    pub categories: Vec<CategoryHours>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoursView {
    /// `settings` (APPOINTMENT_HOURS) or `admin` (set through this API).
    pub source: &'static str,
    pub open: String,
    pub close: String,
    /// The bookable weekdays, Monday first (`APPOINTMENT_DAYS` unless an admin set them).
    pub days: Vec<&'static str>,
    /// `APPOINTMENT_SLOT_MINUTES`, for every category.
    pub slot_minutes: u16,
    pub categories: Vec<CategoryHours>,
}

fn time(raw: &str, field: &str) -> Result<jiff::civil::Time, ApiError> {
    jiff::civil::Time::strptime("%H:%M", raw.trim()).map_err(|_| {
        ApiError::invalid(
            "invalid_hours",
            format!("{field} must be a local time HH:MM, not {raw:?}"),
        )
    })
}

fn hours(open: &str, close: &str, slot_minutes: u16, what: &str) -> Result<Hours, ApiError> {
    Hours::new(time(open, "open")?, time(close, "close")?, slot_minutes)
        .map_err(|e| ApiError::invalid("invalid_hours", format!("{what}: {e}")))
}

/// The weekdays an admin gave, else the settings'.
fn days(given: Option<&[String]>, settings: &Hours) -> Result<Weekdays, ApiError> {
    match given {
        None => Ok(settings.days()),
        Some(names) => Weekdays::from_names(names).map_err(|e| ApiError::invalid("invalid_days", format!("days: {e}"))),
    }
}

/// The hours that apply to `category` (the desk's when it has none of its own).
pub async fn hours_for(state: &AppState, category: Option<&str>) -> StoreResult<Hours> {
    let settings = state.settings.appointments.hours.clone();
    let Some(raw) = state.store.desk_setting(KEY).await? else {
        return Ok(settings);
    };
    let Ok(desk) = serde_json::from_str::<DeskHours>(&raw) else {
        tracing::error!("the stored appointment hours are unreadable; using APPOINTMENT_HOURS");
        return Ok(settings);
    };
    let slot = settings.slot_minutes();
    let own = category.and_then(|c| desk.categories.iter().find(|h| h.category == c));
    let (open, close) = own.map_or((&desk.open, &desk.close), |h| (&h.open, &h.close));
    let stored =
        hours(open, close, slot, "stored").and_then(|h| Ok(h.with_days(days(desk.days.as_deref(), &settings)?)));
    Ok(stored.unwrap_or(settings))
}

fn minutes(t: jiff::civil::Time) -> i64 {
    i64::from(t.hour()) * 60 + i64::from(t.minute())
}

/// The appointment hours in force.
#[utoipa::path(get, path = "/api/admin/appointment-hours", tag = "admin",
    responses((status = 200, body = HoursView), AdminsOnly, Unavailable))]
async fn show(Admin(state): Admin) -> JsonResult<HoursView> {
    let settings = &state.settings.appointments.hours;
    let fmt = |t: jiff::civil::Time| t.strftime("%H:%M").to_string();
    let stored = match state.store.desk_setting(KEY).await? {
        Some(raw) => serde_json::from_str::<DeskHours>(&raw).ok(),
        None => None,
    };
    Ok(Json(match stored {
        Some(desk) => HoursView {
            source: "admin",
            days: days(desk.days.as_deref(), settings)
                .unwrap_or_else(|_| settings.days())
                .names(),
            open: desk.open,
            close: desk.close,
            slot_minutes: settings.slot_minutes(),
            categories: desk.categories,
        },
        None => HoursView {
            source: "settings",
            days: settings.days().names(),
            open: fmt(settings.open()),
            close: fmt(settings.close()),
            slot_minutes: settings.slot_minutes(),
            categories: Vec::new(),
        },
    }))
}

/// Replaces the appointment hours (and the categories' own hours) for every node.
/// Booked appointments stay as they are.
#[utoipa::path(put, path = "/api/admin/appointment-hours", tag = "admin",
    request_body = DeskHours,
    responses((status = 200, body = HoursView),
        (status = 400, description = "`bad_json`; `invalid_hours` (not HH:MM, closing before opening, no whole \
            slot, a category's opening off the desk's slot grid, a category twice); `invalid_days` (no day, or a \
            name not `mon` … `sun`); `unknown_category`", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn replace(Admin(state): Admin, ApiJson(mut desk): ApiJson<DeskHours>) -> JsonResult<HoursView> {
    let slot = state.settings.appointments.hours.slot_minutes();
    let desk_hours = hours(&desk.open, &desk.close, slot, "the desk's hours")?;
    // Checked now, stored only when given: hours set without days follow APPOINTMENT_DAYS.
    let desk_days = match desk.days.as_deref() {
        Some(given) => Some(days(Some(given), &state.settings.appointments.hours)?),
        None => None,
    };
    let known = state.store.categories().await?;
    let mut seen = std::collections::HashSet::new();
    for own in &desk.categories {
        if !known.iter().any(|c| c.id == own.category) {
            return Err(super::admin::unknown_category(&own.category));
        }
        if !seen.insert(own.category.clone()) {
            return Err(ApiError::invalid(
                "invalid_hours",
                format!("category {:?} is given twice", own.category),
            ));
        }
        let h = hours(&own.open, &own.close, slot, &format!("category {:?}", own.category))?;
        if (minutes(h.open()) - minutes(desk_hours.open())).rem_euclid(i64::from(slot)) != 0 {
            return Err(ApiError::invalid(
                "invalid_hours",
                format!(
                    "category {:?} must open a whole number of {slot}-minute slots from {}",
                    own.category, desk.open
                ),
            ));
        }
    }
    // Stored in the canonical HH:MM form.
    let fmt = |t: jiff::civil::Time| t.strftime("%H:%M").to_string();
    desk.open = fmt(desk_hours.open());
    desk.close = fmt(desk_hours.close());
    desk.days = desk_days.map(|d| d.names().into_iter().map(String::from).collect());
    for own in &mut desk.categories {
        own.open = fmt(time(&own.open, "open")?);
        own.close = fmt(time(&own.close, "close")?);
    }
    let raw = serde_json::to_string(&desk).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    state.store.set_desk_setting(KEY, Some(raw)).await?;
    show(Admin(state)).await
}

/// Back to the settings' hours (`APPOINTMENT_HOURS`), for every category.
#[utoipa::path(delete, path = "/api/admin/appointment-hours", tag = "admin",
    responses((status = 200, body = HoursView), AdminsOnly, Unavailable))]
async fn reset(Admin(state): Admin) -> JsonResult<HoursView> {
    state.store.set_desk_setting(KEY, None).await?;
    show(Admin(state)).await
}
