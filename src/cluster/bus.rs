//! The admin-change bus: an admin change made through any node (an account's categories,
//! limit, name or enabled flag; the category list; revoked sessions and API tokens) is
//! applied by that node's handler as on a single process, then published on the Redis
//! pub/sub channel `{sb}:admin`; every other node reloads what changed from the shared
//! store and feeds its hub the same commands the admin handlers use. Messages name what
//! changed, never carry it (the store is the truth) and never carry a session token (only
//! its hash) or an API token's secret (only its id).
//!
//! Pub/sub delivers at most once, to whoever is subscribed at that moment. A node whose
//! subscription was cut reloads every account and the category list when it subscribes
//! again, so changes it missed still reach its hub.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::node::Cluster;
use super::subscription::{self, Listener, Resubscribing};

/// The one channel of admin changes.
pub const ADMIN_CHANNEL: &str = "{sb}:admin";

/// What changed; the receiver reads the rest from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdminChange {
    /// An account was changed (categories, limit, name, enabled flag, password).
    Account { id: String },
    /// The category list changed; `removed` names a category that is gone.
    Categories { removed: Option<String> },
    /// These sessions (by id, `auth::session_id`) were revoked: their sockets close with 4001.
    SessionsEnded { ids: Vec<String> },
    /// An API token (by id, never its secret or hash) was revoked: refused from now on.
    ApiTokenRevoked { id: String },
    /// A customer rated a chat (stored already): its agent's console is told wherever it is.
    Rated {
        agent: String,
        conversation: String,
        rating: crate::store::Rating,
    },
    /// A conversation's status or holder changed (stored already): its holder is told
    /// wherever they are; `woken`: its snooze ran out, and every agent who may list it is
    /// told too (absent from nodes that predate it: false).
    Conversation {
        record: crate::store::ConversationRecord,
        #[serde(default)]
        woken: bool,
    },
    /// A bot's webhook, or a category's bot, was set or removed: every node reloads the
    /// bots' hooks and the categories' bots (they are few).
    Bots {},
    /// A webhook endpoint was registered, enabled, disabled or deleted: every node reads
    /// the endpoints again (whether to make webhook events at all).
    Webhooks {},
    /// A customer's line came in on this node for a conversation held by `agent` (their
    /// answer by mail, stored already): its `message` frame, for the agent's console
    /// wherever it is connected.
    Line { agent: String, frame: String },
}

/// One message on the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The node that published it, which has applied it already.
    from: String,
    change: AdminChange,
}

/// The change could not be published: other nodes may not apply it until they next resync.
#[derive(Debug, thiserror::Error)]
#[error("the other nodes could not be told of this change: {0}")]
pub struct NotPublished(String);

impl Cluster {
    /// Refuses (before anything is changed) while this node cannot tell the others.
    pub fn require_usable(&self) -> Result<(), NotPublished> {
        if self.status().usable() {
            Ok(())
        } else {
            Err(NotPublished(
                "Redis is unreachable or this node holds no cluster lease".into(),
            ))
        }
    }

    /// Publishes a change this node has applied to its own hub.
    pub async fn publish(&self, change: AdminChange) -> Result<(), NotPublished> {
        let message = serde_json::to_string(&Envelope {
            from: self.node_id().to_string(),
            change,
        })
        .expect("an admin change serialises");
        let mut conn = self.conn();
        redis::cmd("PUBLISH")
            .arg(ADMIN_CHANNEL)
            .arg(message)
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| NotPublished(e.to_string()))
    }
}

/// What a node applies the changes it receives to (the hub's side is
/// `hub::admin_bus::Appliers`; the bus itself knows nothing of the hub).
pub trait ApplyAdminChanges: Send + Sync + 'static {
    /// Applies one change made on another node.
    fn apply(&self, change: AdminChange) -> impl Future<Output = Result<(), String>> + Send;
    /// After a gap in the subscription: reloads everything a change could have touched.
    fn resync(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// How the bus subscribes again: a growing pause, and a Redis that accepts but does not
/// answer must not hold the listener forever.
const RESUBSCRIBING: Resubscribing = Resubscribing {
    timeout: Duration::from_secs(5),
    first_pause: Duration::from_millis(200),
    longest_pause: Duration::from_secs(5),
};

/// Listens on [`ADMIN_CHANNEL`] until `shutdown` (`subscription::listen`), reloading
/// everything after a gap.
pub async fn listen(cluster: Cluster, appliers: impl ApplyAdminChanges, shutdown: CancellationToken) {
    let bus = Bus {
        node_id: cluster.node_id(),
        appliers,
    };
    subscription::listen(
        &cluster,
        ADMIN_CHANNEL,
        "the admin-change bus",
        RESUBSCRIBING,
        &bus,
        &shutdown,
    )
    .await;
}

struct Bus<'a, A> {
    node_id: &'a str,
    appliers: A,
}

impl<A: ApplyAdminChanges> Listener for Bus<'_, A> {
    async fn resubscribed(&self) {
        tracing::info!("reloading accounts and categories after a gap on the admin-change bus");
        if let Err(e) = self.appliers.resync().await {
            tracing::warn!(error = %e, "could not reload accounts and categories after a bus gap");
        }
    }

    async fn received(&self, payload: String) {
        let Ok(envelope) = serde_json::from_str::<Envelope>(&payload) else {
            tracing::warn!("ignored a malformed message on the admin-change bus");
            return;
        };
        if envelope.from == self.node_id {
            return;
        }
        tracing::info!(from = %envelope.from, change = ?envelope.change, "applying an admin change made on another node");
        if let Err(e) = self.appliers.apply(envelope.change).await {
            tracing::warn!(error = %e, "could not apply an admin change from another node");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_as_tagged_json_without_tokens() {
        let change = AdminChange::SessionsEnded {
            ids: vec!["hash".into()],
        };
        let text = serde_json::to_string(&Envelope {
            from: "n1".into(),
            change: change.clone(),
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"from":"n1","change":{"kind":"sessions_ended","ids":["hash"]}}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.change, change);
    }

    #[test]
    fn a_token_revocation_names_the_token_only() {
        let change = AdminChange::ApiTokenRevoked { id: "t1".into() };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(text, r#"{"kind":"api_token_revoked","id":"t1"}"#);
        assert_eq!(serde_json::from_str::<AdminChange>(&text).unwrap(), change);
    }
}
