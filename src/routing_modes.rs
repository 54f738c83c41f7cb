//! Which categories route by offer (the agent accepts or declines) rather than by
//! assignment: their stored form, a desk setting per category in the shared store so every
//! node reads the same, and two admins changing two categories at once on two nodes never
//! undo each other (one document for all, read, changed and written back, did; it is
//! still read for categories that have no setting of their own). The rules of both modes live in `core::routing`; the hours keeper
//! (`desk_hours::keep`) hands the hub the wanted modes each tick, and the hub applies only
//! real changes (on several nodes, one `set_category_mode` in Redis, which every replica
//! follows). An admin's change is applied at once by the node that took it.
//!
//! Each stored mode carries when it was stored (`offer@1795896214055`, ms since the epoch;
//! a mode stored without one counts as stored at 0), and the routing applies a mode only
//! if it was stored no earlier than the one in force: a keeper's read that an admin's newer
//! change overtook between the read and the hand-over changes nothing. The stamps are the
//! storing node's clock, so two admins changing one category within the nodes' clock skew
//! are ordered by their clocks.

use serde::{Deserialize, Serialize};

use crate::core::routing::RoutingMode;
use crate::store::{SharedStore, StoreResult};

/// The store key of the modes of every category as one document (the older form).
pub const KEY: &str = "routing_modes";

/// The store key of one category's mode.
fn key_of(category: &str) -> String {
    format!("routing_mode:{category}")
}

/// A category's mode as stored, and when (ms since the epoch; 0: stored without a stamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredMode {
    pub mode: RoutingMode,
    pub set_at: u64,
}

impl StoredMode {
    /// The stored form: `offer@1795896214055`.
    fn encode(self) -> String {
        format!("{}@{}", self.mode.word(), self.set_at)
    }

    /// `offer@1795896214055`, or a bare `offer` stored before modes had stamps.
    fn decode(raw: &str) -> Option<Self> {
        let (word, set_at) = match raw.split_once('@') {
            Some((word, at)) => (word, at.parse().ok()?),
            None => (raw, 0),
        };
        Some(Self {
            mode: RoutingMode::from_word(word)?,
            set_at,
        })
    }
}

/// Stores `category`'s mode, on its own (nothing else is read or written), stamped now:
/// what the hub must be handed.
pub async fn set(store: &SharedStore, category: &str, mode: RoutingMode) -> StoreResult<StoredMode> {
    let stored = StoredMode {
        mode,
        set_at: u64::try_from(crate::clock::now_ms()).unwrap_or(0),
    };
    store.set_desk_setting(&key_of(category), Some(stored.encode())).await?;
    Ok(stored)
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

/// Every known category's wanted mode (one never stored: as the older document says,
/// stamped 0).
pub async fn wanted_now(store: &SharedStore) -> StoreResult<Vec<(String, StoredMode)>> {
    let doc = load(store).await?;
    let mut wanted = vec![];
    for c in store.categories().await? {
        let own = store.desk_setting(&key_of(&c.id)).await?;
        let stored = match own.as_deref().and_then(StoredMode::decode) {
            Some(stored) => stored,
            None => StoredMode {
                mode: match doc.offer.contains(&c.id) {
                    true => RoutingMode::Offer,
                    false => RoutingMode::Assign,
                },
                set_at: 0,
            },
        };
        wanted.push((c.id, stored));
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_mode_reads_back_and_a_bare_word_is_stamped_zero() {
        let stored = StoredMode {
            mode: RoutingMode::Offer,
            set_at: 1_795_896_214_055,
        };
        assert_eq!(StoredMode::decode(&stored.encode()), Some(stored));
        assert_eq!(
            StoredMode::decode("assign"),
            Some(StoredMode {
                mode: RoutingMode::Assign,
                set_at: 0
            })
        );
        assert_eq!(StoredMode::decode("offer@soon"), None);
        assert_eq!(StoredMode::decode("ring@5"), None);
    }
}
