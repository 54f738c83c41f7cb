//! The opening several cluster tests share: one chat whose two sides are on different
//! nodes. A memory store and one real `redis-server` shared by in-process nodes (resume
//! grace 10 s, so a side may move to another node and come back in time); the agent
//! "ann" (limit 1, category "general") signs in on the second node and is available;
//! the customer "Carla" joins on the first and both are told of the chat.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard::store::{MemoryStore, SharedStore};

use crate::archive::TempDir;
use crate::cluster_hub::node_with;
use crate::common::{TestHub, Ws};
use crate::redis_server::RedisServer;

/// A chat across nodes, as [`chat_across_nodes`] opened it. The fields drop in order:
/// the clients, then the nodes, then Redis and the scratch directory they use. A test
/// that takes it apart binds `servers` to a name (`servers: _servers`): a field left to
/// `..` would be dropped at once, stopping Redis under the nodes.
pub(crate) struct ChatAcrossNodes<const N: usize> {
    /// Ann, on `nodes[1]`, and her session token (to sign in again elsewhere).
    pub agent: Ws,
    pub agent_token: String,
    /// Carla, on `nodes[0]`.
    pub customer: Ws,
    /// The chat's id as both sides were told it.
    pub chat: String,
    pub nodes: [TestHub; N],
    pub store: SharedStore,
    pub servers: Servers,
}

/// What the nodes use until they stop: the redis-server (a test may pause or kill it)
/// and their data directories.
pub(crate) struct Servers {
    pub redis: RedisServer,
    _scratch: TempDir,
}

/// Starts one node per name (N ≥ 2) and opens the chat: Carla on the first, Ann on the second.
pub(crate) async fn chat_across_nodes<const N: usize>(scratch: &str, names: [&str; N]) -> ChatAcrossNodes<N> {
    chat_across_nodes_with(scratch, names, |s| s.resume_grace = Duration::from_secs(10)).await
}

/// As [`chat_across_nodes`], every node's settings changed by `tweak` after the cluster's.
pub(crate) async fn chat_across_nodes_with<const N: usize>(
    scratch: &str,
    names: [&str; N],
    tweak: impl Fn(&mut switchboard::config::Settings) + Copy,
) -> ChatAcrossNodes<N> {
    assert!(N >= 2, "a chat across nodes needs two of them");
    let scratch = TempDir::new(scratch);
    let redis = RedisServer::start().await;
    let store: SharedStore = Arc::new(MemoryStore::new());
    let mut nodes = Vec::with_capacity(N);
    for name in names {
        nodes.push(node_with(store.clone(), &redis, name, &scratch, tweak).await);
    }
    let nodes: [TestHub; N] = nodes.try_into().unwrap_or_else(|_| unreachable!("one node per name"));
    let token = nodes[1].agent_account("ann", &["general"], 1).await;
    let mut agent = Ws::agent(&nodes[1], &token).await;
    agent.send(json!({"type": "set_available", "available": true})).await;
    let mut customer = nodes[0].customer("Carla", "general").await;
    let chat = customer.next_of("chat_started").await["chat_id"]
        .as_str()
        .expect("a chat id")
        .to_string();
    agent.next_of("chat_started").await;
    ChatAcrossNodes {
        agent,
        agent_token: token,
        customer,
        chat,
        nodes,
        store,
        servers: Servers {
            redis,
            _scratch: scratch,
        },
    }
}
