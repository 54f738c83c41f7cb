//! Which categories route by offer (the agent accepts or declines) rather than by
//! assignment: their stored form, one desk setting in the shared store so every node reads
//! the same. The rules of both modes live in `core::routing`; the hours keeper
//! (`desk_hours::keep`) hands the hub the wanted modes each tick, and the hub applies only
//! real changes (on several nodes, one `set_category_mode` in Redis, which every replica
//! follows). An admin's change is applied at once by the node that took it.

use serde::{Deserialize, Serialize};

use crate::core::routing::RoutingMode;
use crate::store::{SharedStore, StoreResult};

/// The store key of the modes.
pub const KEY: &str = "routing_modes";

/// The categories in offer mode (every other one assigns).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModesDoc {
    #[serde(default)]
    pub offer: Vec<String>,
}

/// The stored modes (none stored, or unreadable: every category assigns).
pub async fn load(store: &SharedStore) -> StoreResult<ModesDoc> {
    let Some(raw) = store.desk_setting(KEY).await? else {
        return Ok(ModesDoc::default());
    };
    Ok(serde_json::from_str(&raw).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the stored routing modes are unreadable; every category assigns");
        ModesDoc::default()
    }))
}

pub async fn save(store: &SharedStore, doc: &ModesDoc) -> StoreResult<()> {
    let raw = serde_json::to_string(doc).expect("modes serialise");
    store.set_desk_setting(KEY, Some(raw)).await
}

/// Every known category's wanted mode.
pub async fn wanted_now(store: &SharedStore) -> StoreResult<Vec<(String, RoutingMode)>> {
    let doc = load(store).await?;
    Ok(store
        .categories()
        .await?
        .into_iter()
        .map(|c| {
            let mode = if doc.offer.contains(&c.id) {
                RoutingMode::Offer
            } else {
                RoutingMode::Assign
            };
            (c.id, mode)
        })
        .collect())
}
