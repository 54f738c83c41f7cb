//! A duty one node of the cluster does at a time (reading the desk's mailbox over IMAP):
//! every node able to do it asks for it every [`ASK_EVERY`] by one fenced script
//! (`lua/duty_claim.lua`, the rule `core::duty::takes`), and does it while the answer is
//! yes. The record, `{sb}:duty:<name>` → `<node>:<incarnation>`, counts only while its
//! holder is a member under that incarnation: a holder killed is reaped after its lease
//! (`CLUSTER_LEASE_MS`) and the next ask of another node takes the duty; a holder stalled
//! past its lease is fenced, and on waking stops at its next ask (its script answers
//! `FENCED`). Work that must not be done twice asks first ([`Duty::confirm`]). A node
//! stopping gives its duty back at once. Redis restarted empty: the first node to ask
//! again takes it.

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

/// Duty `name` as this node holds it or not. Cheap to clone.
#[derive(Clone)]
pub struct Duty {
    cluster: Cluster,
    name: &'static str,
    held: watch::Sender<bool>,
}

impl Duty {
    /// Whether this node holds the duty now, as the last ask found.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.held.subscribe()
    }

    /// Asks Redis now, right before a piece of the duty's work that must not be done
    /// twice (a node woken from a stall learns here, before it acts, that the duty moved).
    pub async fn confirm(&self) -> bool {
        let held = self.ask().await.is_some();
        self.held.send_if_modified(|was| std::mem::replace(was, held) != held);
        held
    }

    /// One ask: the incarnation this node holds the duty under, or `None`.
    async fn ask(&self) -> Option<u64> {
        let status = self.cluster.status();
        let incarnation = status.incarnation.filter(|_| status.redis_up)?;
        let answer: redis::RedisResult<i64> = CLAIM
            .key(key(self.name))
            .arg(self.cluster.node_id())
            .arg(incarnation)
            .invoke_async(&mut self.cluster.conn())
            .await;
        match answer {
            Ok(1) => Some(incarnation),
            Ok(_) => None,
            Err(e) => {
                if *self.held.borrow() {
                    tracing::warn!(duty = self.name, error = %e, "could not confirm this node's duty: left until Redis answers");
                }
                None
            }
        }
    }
}

/// Asks for duty `name` every [`ASK_EVERY`] until `shutdown`, then gives it back.
pub fn hold(cluster: Cluster, name: &'static str, shutdown: CancellationToken) -> Duty {
    let duty = Duty {
        cluster,
        name,
        held: watch::channel(false).0,
    };
    let asking = duty.clone();
    tokio::spawn(async move {
        let duty = asking;
        let mut held: Option<u64> = None;
        loop {
            let now_held = duty.ask().await;
            if now_held.is_some() != held.is_some() {
                match now_held {
                    Some(_) => tracing::info!(duty = name, "this node does the duty now"),
                    None => tracing::info!(duty = name, "this node no longer does the duty"),
                }
            }
            held = now_held;
            duty.held
                .send_if_modified(|was| std::mem::replace(was, held.is_some()) != held.is_some());
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(ASK_EVERY) => {}
            }
        }
        duty.held.send_replace(false);
        if let Some(incarnation) = held {
            let record = format!("{}:{incarnation}", duty.cluster.node_id());
            let given: redis::RedisResult<i64> = Script::new(GIVE_BACK)
                .key(key(name))
                .arg(record)
                .invoke_async(&mut duty.cluster.conn())
                .await;
            if let Err(e) = given {
                tracing::warn!(duty = name, error = %e, "could not give the duty back: another node takes it once this one is reaped");
            }
        }
    });
    duty
}
