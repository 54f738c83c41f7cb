//! Webhook bots' settings: a bot (the name a `bot` API token acts as) may have an outgoing
//! URL. While it has one and no socket of its own, the hub POSTs that URL what a socket bot
//! is sent (`hub::bot_calls`), signed with the bot's secret as webhooks are, and the bot
//! answers over the HTTP API with its token (`http::bot_api`).
//!
//! Kept as a desk setting per bot in the shared store (`bot_hook:<bot>` → `{url, secret}`),
//! as categories' bots are (`category_bots`), so every node reads the same; the node that
//! takes an admin's change tells its hub at once, and a starting hub reads them all (`hub::load_bot_hooks`).

use serde::{Deserialize, Serialize};

use crate::store::{SharedStore, StoreResult};

/// Where a webhook bot is called, and the secret its calls are signed with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotHook {
    pub url: String,
    pub secret: String,
}

/// Printed without its secret, and its URL only up to its host: a URL may carry a
/// credential in its path or query.
impl std::fmt::Debug for BotHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotHook")
            .field("host", &host_of(&self.url))
            .field("secret", &"(hidden)")
            .finish()
    }
}

/// The host of `url`, for logs (the rest may carry a credential).
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "(not a URL)".into())
}

fn key_of(bot: &str) -> String {
    format!("bot_hook:{bot}")
}

/// Bot `bot`'s hook, if it has one. A stored value that does not read as one is logged
/// and counts as none.
pub async fn get(store: &SharedStore, bot: &str) -> StoreResult<Option<BotHook>> {
    Ok(store.desk_setting(&key_of(bot)).await?.and_then(|raw| {
        serde_json::from_str(&raw)
            .inspect_err(|e| tracing::error!(bot, error = %e, "a bot's stored hook does not read; it counts as none"))
            .ok()
    }))
}

/// Gives bot `bot` its hook, or takes it away (`None`).
pub async fn set(store: &SharedStore, bot: &str, hook: Option<&BotHook>) -> StoreResult<()> {
    let value = hook.map(|h| serde_json::to_string(h).unwrap_or_default());
    store.set_desk_setting(&key_of(bot), value).await
}

/// Every bot a live `bot` token acts as, with its hook if it has one, by name.
pub async fn all(store: &SharedStore) -> StoreResult<Vec<(String, Option<BotHook>)>> {
    let mut bots: Vec<String> = store
        .api_tokens()
        .await?
        .into_iter()
        .filter(|t| crate::core::api_tokens::spent(t.revoked_at, t.expires_at, crate::clock::now_ms()).is_none())
        .filter_map(|t| t.bot)
        .collect();
    bots.sort();
    bots.dedup();
    let mut hooked = Vec::with_capacity(bots.len());
    for bot in bots {
        let hook = get(store, &bot).await?;
        hooked.push((bot, hook));
    }
    Ok(hooked)
}
