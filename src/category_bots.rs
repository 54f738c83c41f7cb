//! Which bot each category routes to first, as a desk setting per category in the shared
//! store (`category_bot:<category>` → the bot's name), so every node reads the same. The
//! node that takes an admin's change tells its hub at once; a bot connecting reads the
//! categories naming it, so a node started since, or another node's change, is known by
//! the time the bot could take a customer there.

use crate::store::{SharedStore, StoreResult};

/// The store key of one category's bot.
fn key_of(category: &str) -> String {
    format!("category_bot:{category}")
}

/// Names `category`'s bot (`None`: no bot, its customers go to its line at once).
pub async fn set(store: &SharedStore, category: &str, bot: Option<&str>) -> StoreResult<()> {
    store.set_desk_setting(&key_of(category), bot.map(str::to_string)).await
}

/// Every category with the bot it names, if any.
pub async fn all(store: &SharedStore) -> StoreResult<Vec<(String, Option<String>)>> {
    let mut named = vec![];
    for c in store.categories().await? {
        let bot = store.desk_setting(&key_of(&c.id)).await?;
        named.push((c.id, bot));
    }
    Ok(named)
}

/// The categories naming `bot`.
pub async fn naming(store: &SharedStore, bot: &str) -> StoreResult<Vec<String>> {
    Ok(all(store)
        .await?
        .into_iter()
        .filter(|(_, named)| named.as_deref() == Some(bot))
        .map(|(category, _)| category)
        .collect())
}
