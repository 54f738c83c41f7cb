//! Which categories route by offer (the agent accepts or declines) rather than by
//! assignment: their stored form, a desk setting per category in the shared store so every
//! node reads the same, and two admins changing two categories at once on two nodes never
//! undo each other (one document for all, read, changed and written back, did; it is
//! still read for categories that have no setting of their own). The rules of both modes live in `core::routing`; the hours keeper
//! (`desk_hours::keep`) hands the hub the wanted modes each tick, and the hub applies only
//! real changes (on several nodes, one `set_category_mode` in Redis, which every replica
//! follows). An admin's change is applied at once by the node that took it.

use serde::{Deserialize, Serialize};

use crate::core::routing::RoutingMode;
use crate::store::{SharedStore, StoreResult};

/// The store key of the modes of every category as one document (the older form).
pub const KEY: &str = "routing_modes";

/// The store key of one category's mode.
fn key_of(category: &str) -> String {
    format!("routing_mode:{category}")
}

/// Stores `category`'s mode, on its own: nothing else is read or written.
pub async fn set(store: &SharedStore, category: &str, mode: RoutingMode) -> StoreResult<()> {
    store
        .set_desk_setting(&key_of(category), Some(mode.word().to_string()))
        .await
}

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

/// Every known category's wanted mode.
pub async fn wanted_now(store: &SharedStore) -> StoreResult<Vec<(String, RoutingMode)>> {
    let doc = load(store).await?;
    let mut wanted = vec![];
    for c in store.categories().await? {
        let own = store.desk_setting(&key_of(&c.id)).await?;
        let mode = match own.as_deref().and_then(RoutingMode::from_word) {
            Some(mode) => mode,
            None if doc.offer.contains(&c.id) => RoutingMode::Offer,
            None => RoutingMode::Assign,
        };
        wanted.push((c.id, mode));
    }
    Ok(wanted)
}
