//! Chat opening hours per category: their stored form (one desk setting in the shared
//! store, so every node reads the same), and the keeper that opens and closes categories
//! as the desk's clock crosses their hours.
//!
//! The routing rules (a closed category takes no join and pairs nobody) live in
//! `core::routing`; which categories are open *now* is `core::opening_hours` applied to the
//! clock. The keeper of each node reads the hours every [`TICK`] and hands the hub the
//! categories whose wanted state changed since its last reading; the hub compares with its
//! routing (on several nodes, its replica of Redis's) and applies only real changes, so
//! nodes agreeing cost nothing. An admin's change is applied at once by the node that took
//! it (the same call, forced); the other nodes agree at their next tick. Every
//! [`FORCE_EVERY`] ticks the keeper hands over every category, so a change lost on the way
//! (Redis away at that moment) is made good. Each hand-over carries the stamp of the hours
//! document it was read from ([`Wanted::read_at`], its `saved_at`), and the routing
//! applies no reading of an older document than the one in force: a keeper's read that an
//! admin's change on another node overtook between the read and the hand-over opened the
//! category again until the admin's node's next tick.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::config::Settings;
use crate::core::opening_hours::{DAY_NAMES, OpeningHours, Span};
use crate::hub::Hub;
use crate::store::{SharedStore, StoreResult};

/// The store key of the hours.
pub const KEY: &str = "chat_hours";

/// How often a node's keeper reads the hours and the clock: a category opens or closes at
/// most this late.
pub const TICK: Duration = Duration::from_secs(5);

/// Every this many ticks the keeper hands over every category, changed or not.
const FORCE_EVERY: u32 = 12;

/// One span as the API writes it: local `HH:MM`; `close` may be `24:00` (end of day).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpanDoc {
    pub open: String,
    pub close: String,
}

/// A category's hours as the API and the store write them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"category": "sales",
    "week": {"mon": [{"open": "09:00", "close": "17:00"}], "tue": [{"open": "09:00", "close": "17:00"}]},
    "holidays": ["2026-12-25"]}))]
pub struct CategoryHoursDoc {
    pub category: String,
    /// Days by name (`mon` … `sun`); a day not named is closed all day.
    pub week: std::collections::BTreeMap<String, Vec<SpanDoc>>,
    /// Local dates (`YYYY-MM-DD`) closed all day.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// Every category's own hours (categories not listed are always open).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct HoursDoc {
    #[serde(default)]
    pub categories: Vec<CategoryHoursDoc>,
    /// When it was saved (ms since the epoch, the saving node's clock, never below the
    /// saving before it; 0: saved before it was kept): every reading of it carries this,
    /// and the routing applies no reading of an older document.
    #[serde(default)]
    #[schema(ignore)]
    pub saved_at: u64,
}

/// Why a document of hours is refused: a message for the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadHours(pub String);

fn time(raw: &str) -> Result<Option<Time>, BadHours> {
    if raw.trim() == "24:00" {
        return Ok(None);
    }
    Time::strptime("%H:%M", raw.trim())
        .map(Some)
        .map_err(|_| BadHours(format!("{raw:?} is not a local time HH:MM")))
}

impl CategoryHoursDoc {
    /// The rules' form, checked.
    pub fn hours(&self) -> Result<OpeningHours, BadHours> {
        let mut week: [Vec<Span>; 7] = Default::default();
        for (day, spans) in &self.week {
            let Some(i) = DAY_NAMES.iter().position(|d| d == day) else {
                return Err(BadHours(format!("{day:?} is not a day (mon, tue, … sun)")));
            };
            for s in spans {
                let open = time(&s.open)?.ok_or_else(|| BadHours("a span cannot open at 24:00".into()))?;
                week[i].push(Span {
                    open,
                    close: time(&s.close)?,
                });
            }
        }
        let holidays = self
            .holidays
            .iter()
            .map(|d| {
                d.trim()
                    .parse::<Date>()
                    .map_err(|_| BadHours(format!("{d:?} is not a date YYYY-MM-DD")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        OpeningHours::new(week, holidays).map_err(|e| BadHours(e.to_string()))
    }

    /// The same hours in canonical form (days in order, `HH:MM`, sorted dates).
    pub fn canonical(&self) -> Result<Self, BadHours> {
        let hours = self.hours()?;
        let fmt = |t: Time| t.strftime("%H:%M").to_string();
        let week = DAY_NAMES
            .iter()
            .zip(hours.week())
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(day, spans)| {
                let spans = spans
                    .iter()
                    .map(|s| SpanDoc {
                        open: fmt(s.open),
                        close: s.close.map_or_else(|| "24:00".to_string(), fmt),
                    })
                    .collect();
                (day.to_string(), spans)
            })
            .collect();
        Ok(Self {
            category: self.category.clone(),
            week,
            holidays: hours.holidays().map(ToString::to_string).collect(),
        })
    }
}

/// The stored hours (none stored, or unreadable: every category always open).
pub async fn load(store: &SharedStore) -> StoreResult<HoursDoc> {
    let Some(raw) = store.desk_setting(KEY).await? else {
        return Ok(HoursDoc::default());
    };
    Ok(serde_json::from_str(&raw).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the stored chat hours are unreadable; every category stays open");
        HoursDoc::default()
    }))
}

/// Saves `doc` (as read, then changed), stamped now: after the document it was read as,
/// even when this node's clock is behind the one that saved that.
pub async fn save(store: &SharedStore, doc: &HoursDoc) -> StoreResult<()> {
    let now = u64::try_from(crate::clock::now_ms()).unwrap_or(0);
    let doc = HoursDoc {
        saved_at: now.max(doc.saved_at + 1),
        ..doc.clone()
    };
    let raw = serde_json::to_string(&doc).expect("hours serialise");
    store.set_desk_setting(KEY, Some(raw)).await
}

/// Whether each category with hours of its own is open at `now`.
pub fn wanted(doc: &HoursDoc, settings: &Settings, now: Timestamp) -> HashMap<String, bool> {
    doc.categories
        .iter()
        .filter_map(|c| c.hours().ok().map(|h| (c.category.clone(), h)))
        .map(|(category, hours)| (category, hours.is_open_at(now, &settings.appointments.zone)))
        .collect()
}

/// Every known category's wanted state (open unless its hours say otherwise), and the
/// stamp of the hours it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub categories: Vec<(String, bool)>,
    /// The read document's `saved_at`: the routing applies no reading of a document older
    /// than the one in force, so a read that an admin's change overtook between the read
    /// and the hand-over changes nothing, whatever the reading nodes' clocks say (every
    /// reader of one document carries the same stamp; only the saving node's clock makes
    /// it, and a save is stamped after the document it changes).
    pub read_at: u64,
}

/// Every known category's wanted state now.
pub async fn wanted_now(store: &SharedStore, settings: &Settings) -> StoreResult<Wanted> {
    let doc = load(store).await?;
    let read_at = doc.saved_at;
    let wanted = wanted(&doc, settings, Timestamp::now());
    let categories = store
        .categories()
        .await?
        .into_iter()
        .map(|c| {
            let open = wanted.get(&c.id).copied().unwrap_or(true);
            (c.id, open)
        })
        .collect();
    Ok(Wanted { categories, read_at })
}

/// The keeper: each tick, the categories whose wanted state (open or closed, and routing
/// mode, `routing_modes`) changed go to the hub.
pub async fn keep(store: SharedStore, settings: std::sync::Arc<Settings>, hub: Hub, shutdown: CancellationToken) {
    let mut last: HashMap<String, bool> = HashMap::new();
    let mut last_modes: HashMap<String, crate::routing_modes::StoredMode> = HashMap::new();
    let mut ticks: u32 = 0;
    let mut beat = crate::ticks::Ticks::new(TICK, &shutdown);
    while beat.next().await {
        let now = match wanted_now(&store, &settings).await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the chat hours; categories stay as they are");
                continue;
            }
        };
        let force = ticks.is_multiple_of(FORCE_EVERY);
        ticks = ticks.wrapping_add(1);
        match crate::routing_modes::wanted_now(&store).await {
            Ok(modes) => {
                test_only_keeper_lag().await;
                let changed: Vec<_> = modes
                    .iter()
                    .filter(|(c, mode)| force || last_modes.get(c) != Some(mode))
                    .cloned()
                    .collect();
                last_modes = modes.into_iter().collect();
                if !changed.is_empty() && hub.set_category_modes(changed).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the routing modes; categories keep theirs"),
        }
        let Wanted { categories, read_at } = now;
        let changed: Vec<(String, bool)> = categories
            .iter()
            .filter(|(c, open)| force || last.get(c) != Some(open))
            .cloned()
            .collect();
        last = categories.into_iter().collect();
        if !changed.is_empty() && hub.open_categories(changed, read_at).await.is_err() {
            return;
        }
    }
}

/// TEST ONLY (read in debug builds alone): `SWITCHBOARD_TEST_KEEPER_LAG_MS` holds the
/// keeper back that long between reading the routing modes and handing them to the hub, so
/// a test can stage a read that an admin's newer change overtakes.
async fn test_only_keeper_lag() {
    crate::test_hooks::pause("SWITCHBOARD_TEST_KEEPER_LAG_MS").await;
}
