//! API tokens that expire act as revoked ones at their expiry, on every node: each node
//! looks at the tokens every [`TICK`] and, for each one that expired since, closes the bot
//! sockets it opened here and stops calling a webhook bot left without a live token (its
//! conversations handed over), as `bot_token_revoked` does for a revocation. Every node
//! runs it for its own sockets and hooks, so no message between nodes is needed; a request
//! with the token is refused from its expiry on regardless (`api_tokens`).

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::core::api_tokens::{Spent, spent};
use crate::store::SharedStore;

use super::Hub;

/// How often the tokens are looked at: a token's sockets close at most this long after it
/// expires. One read of the token list (a desk has a handful) per tick per node.
pub const TICK: Duration = Duration::from_secs(2);

/// The tokens expired at `now` that `done` has not acted on yet (revoked ones are acted on
/// at their revocation).
pub fn newly_expired<'a>(
    tokens: impl IntoIterator<Item = (&'a str, Option<i64>, Option<i64>)>,
    done: &HashSet<String>,
    now: i64,
) -> Vec<String> {
    tokens
        .into_iter()
        .filter(|(id, revoked_at, expires_at)| {
            spent(*revoked_at, *expires_at, now) == Some(Spent::Expired) && !done.contains(*id)
        })
        .map(|(id, _, _)| id.to_string())
        .collect()
}

/// Acts on tokens as they expire until `shutdown`.
pub async fn keep(store: SharedStore, hub: Hub, shutdown: CancellationToken) {
    let mut done: HashSet<String> = HashSet::new();
    let mut ticks = crate::ticks::Ticks::new(TICK, &shutdown);
    while ticks.next().await {
        let tokens = match store.api_tokens().await {
            Ok(tokens) => tokens,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the API tokens to close expired ones; trying again");
                continue;
            }
        };
        let expired = newly_expired(
            tokens.iter().map(|t| (t.id.as_str(), t.revoked_at, t.expires_at)),
            &done,
            now_ms(),
        );
        for id in expired {
            match super::bot_token_revoked(&store, &hub, &id).await {
                Ok(()) => {
                    tracing::info!(token = %id, "an API token expired: its bot sockets here are closed");
                    done.insert(id);
                }
                Err(e) => {
                    tracing::warn!(token = %id, error = %e, "could not act on an expired API token; trying again")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_acted_on_once_when_it_expires_and_a_revoked_one_is_not() {
        let tokens = [
            ("live", None, Some(2_000)),
            ("expired", None, Some(1_000)),
            ("revoked", Some(500), Some(1_000)),
            ("forever", None, None),
        ];
        let mut done = HashSet::new();
        assert_eq!(newly_expired(tokens, &done, 1_500), vec!["expired".to_string()]);
        done.insert("expired".to_string());
        assert!(newly_expired(tokens, &done, 1_500).is_empty());
        assert_eq!(newly_expired(tokens, &done, 2_000), vec!["live".to_string()]);
    }
}
