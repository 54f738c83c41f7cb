//! The seq of a line written into a conversation whose customer is not in a chat (its
//! agent's while the customer is away, the customer's while they wait to continue it), on a
//! cluster (`lua/conversation_line.lua`): drawn from the conversation's one counter in
//! Redis, which its live chats count on from too, so lines written on two nodes, and a
//! customer continuing it on a third, never share a seq (docs/cluster.md, "Conversations").

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;

use super::chat_log::LOG_LIFETIME_SECS;
use super::routing_scripts::ClusterRoutingError;

static LINE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fencing.lua"),
        include_str!("lua/conversation_line.lua")
    ))
});

/// Why no seq was drawn.
#[derive(Debug, thiserror::Error)]
pub enum SeqError {
    /// A customer continues the conversation now (waiting for an agent, or in its chat):
    /// the line belongs in that chat.
    #[error("a customer continues this conversation now")]
    Live,
    #[error(transparent)]
    Cluster(#[from] ClusterRoutingError),
}

/// The next seq of conversation `id`, whose last line the caller read from the archive as
/// `archived`; fenced by `(node, incarnation)`. `customer`: the customer writing it while
/// they wait in line to continue it (the conversation is live for them), `None` for its
/// agent.
pub async fn next(
    conn: &mut ConnectionManager,
    (node, incarnation): (&str, u64),
    id: &str,
    archived: u64,
    customer: Option<u64>,
) -> Result<u64, SeqError> {
    let drawn: redis::RedisResult<u64> = LINE
        .key("{sb}:counter")
        .arg(node)
        .arg(incarnation)
        .arg(id)
        .arg(archived)
        .arg(LOG_LIFETIME_SECS)
        .arg(customer.map(|c| c.to_string()).unwrap_or_default())
        .invoke_async(conn)
        .await;
    match drawn {
        Ok(seq) => Ok(seq),
        Err(e) if e.code() == Some("live") => Err(SeqError::Live),
        Err(e) => Err(SeqError::Cluster(e.into())),
    }
}

/// The highest seq drawn so far for conversation `id` (0: none, or its counter expired):
/// lines other nodes numbered may not be in the archive yet, but they come before it.
pub async fn drawn(conn: &mut ConnectionManager, id: &str) -> redis::RedisResult<u64> {
    let counted: Option<u64> = redis::cmd("GET")
        .arg(format!("{{sb}}:conv-seq:{id}"))
        .query_async(conn)
        .await?;
    Ok(counted.unwrap_or(0))
}
