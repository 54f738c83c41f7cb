//! Owed sweeps of dead nodes' bot conversations, in Redis (`{sb}:bot-sweeps:<node>`: the
//! dead nodes whose bot stages `<node>` took over and has not swept yet). A node that takes
//! a dead node over records what it now owes (that node, and what that node still owed:
//! `core::bots::lost_stages_to_sweep`) before it waits its grace period, and clears each
//! once swept; so if it dies too before it swept, its own heir inherits the debt and no
//! customer is left with a dead bot stage.

use crate::cluster::node::Cluster;
use crate::core::bots as rules;

/// The set of dead nodes `node` owes a sweep of.
fn owed_key(node: &str) -> String {
    format!("{{sb}}:bot-sweeps:{node}")
}

/// This node replays `lost`'s loss made by `heir`: the nodes whose bot stages it now
/// sweeps, recorded as its debt (and `lost`'s debt, taken over, deleted) in one
/// transaction. None unless this node is the heir.
pub async fn owe_lost_sweeps(cluster: &Cluster, lost: &str, heir: &str) -> redis::RedisResult<Vec<String>> {
    let this_node = cluster.node_id();
    if heir != this_node {
        return Ok(vec![]);
    }
    let owed_by_lost: Vec<String> = redis::cmd("SMEMBERS")
        .arg(owed_key(lost))
        .query_async(&mut cluster.conn())
        .await?;
    let sweeps = rules::lost_stages_to_sweep(heir, lost, &owed_by_lost, this_node);
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("DEL").arg(owed_key(lost)).ignore();
    if !sweeps.is_empty() {
        pipe.cmd("SADD").arg(owed_key(this_node)).arg(&sweeps).ignore();
    }
    pipe.query_async::<()>(&mut cluster.conn()).await?;
    Ok(sweeps)
}

/// This node swept `lost`'s bot stages: it owes that no more.
pub async fn swept(cluster: &Cluster, lost: &str) -> redis::RedisResult<()> {
    redis::cmd("SREM")
        .arg(owed_key(cluster.node_id()))
        .arg(lost)
        .query_async(&mut cluster.conn())
        .await
}
