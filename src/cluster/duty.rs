//! A duty one node of the cluster does at a time (reading the desk's mailbox over IMAP):
//! every node able to do it asks for it every [`ASK_EVERY`] by one fenced script
//! (`lua/duty_claim.lua`, the rule `core::duty::takes`), and does it while the answer is
//! yes. The record, `{sb}:duty:<name>` → `<node>:<incarnation>`, counts only while its
//! holder is a member under that incarnation: a holder killed is reaped after its lease
//! (`CLUSTER_LEASE_MS`) and the next ask of another node takes the duty; a holder stalled
//! past its lease is fenced, and on waking stops within one ask (its script answers
//! `FENCED`). A node stopping gives its duty back at once. Redis restarted empty: the
//! first node to ask again takes it.
//!
//! Between a holder's stall and its next ask, two nodes may both do the duty for up to
//! [`ASK_EVERY`] (the duty's work must stay idempotent, as the mailbox's is by each mail's
//! key).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::node::Cluster;

/// How often a node asks: the longest a duty stays undone once its holder is reaped, and
/// the longest a fenced holder goes on before it learns.
pub const ASK_EVERY: Duration = Duration::from_secs(1);

static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fencing.lua"),
        include_str!("lua/duty_claim.lua")
    ))
});

/// KEYS: the duty. ARGV: the record of this node. Deletes the duty if it is this node's.
const GIVE_BACK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// The Redis key of duty `name`.
pub fn key(name: &str) -> String {
    format!("{{sb}}:duty:{name}")
}

/// Asks for duty `name` until `shutdown`, then gives it back; the receiver says whether
/// this node holds it now (false while Redis does not answer: the node cannot know).
pub fn hold(cluster: Cluster, name: &'static str, shutdown: CancellationToken) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let key = key(name);
        let mut held: Option<u64> = None;
        loop {
            let status = cluster.status();
            let now_held = match status.incarnation.filter(|_| status.redis_up) {
                Some(incarnation) => {
                    let answer: redis::RedisResult<i64> = CLAIM
                        .key(&key)
                        .arg(cluster.node_id())
                        .arg(incarnation)
                        .invoke_async(&mut cluster.conn())
                        .await;
                    match answer {
                        Ok(1) => Some(incarnation),
                        Ok(_) => None,
                        Err(e) => {
                            if held.is_some() {
                                tracing::warn!(duty = name, error = %e, "could not confirm this node's duty: left until Redis answers");
                            }
                            None
                        }
                    }
                }
                None => None,
            };
            if now_held.is_some() != held.is_some() {
                match now_held {
                    Some(_) => tracing::info!(duty = name, "this node does the duty now"),
                    None => tracing::info!(duty = name, "this node no longer does the duty"),
                }
            }
            held = now_held;
            tx.send_if_modified(|was| std::mem::replace(was, held.is_some()) != held.is_some());
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(ASK_EVERY) => {}
            }
        }
        tx.send_replace(false);
        if let Some(incarnation) = held {
            let record = format!("{}:{incarnation}", cluster.node_id());
            let given: redis::RedisResult<i64> = Script::new(GIVE_BACK)
                .key(&key)
                .arg(record)
                .invoke_async(&mut cluster.conn())
                .await;
            if let Err(e) = given {
                tracing::warn!(duty = name, error = %e, "could not give the duty back: another node takes it once this one is reaped");
            }
        }
    });
    rx
}
