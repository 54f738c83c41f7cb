//! This node's place in the cluster: the Redis connection (the `redis` crate's
//! `ConnectionManager`, which reconnects by itself), the lease task and the status they
//! keep. Started by `server::run` when `REDIS_URL` is set.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::health::Status;
use super::lease::{LeaseTask, NodeLost};
use crate::config::cluster::ClusterSettings;

/// How long one Redis request may take before it counts as failed: a Redis that does not
/// answer must show as down within about a renewal, not hang the lease task.
const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(1);

/// A cheap, cloneable handle on this node's membership.
#[derive(Clone)]
pub struct Cluster {
    node_id: Arc<str>,
    client: redis::Client,
    conn: ConnectionManager,
    status: watch::Receiver<Status>,
    /// The lease task's status, for [`Cluster::redis_answered`] to say Redis is up.
    status_tx: watch::Sender<Status>,
}

impl Cluster {
    /// Opens the (lazy) connection and starts the lease task; nothing waits for Redis,
    /// so a node starts, and stays up, while Redis is away (its health says so).
    pub fn start(
        settings: &ClusterSettings,
        hook: Arc<dyn NodeLost>,
        shutdown: CancellationToken,
    ) -> redis::RedisResult<(Cluster, JoinHandle<()>)> {
        let url = settings.redis_url.as_deref().expect("started only with REDIS_URL");
        let client = redis::Client::open(url)?;
        let timeout = settings.renew.min(REQUEST_TIMEOUT_MAX);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // A failed request fails fast; the next one reconnects (the lease task retries
            // every renewal), so a Redis outage never queues work up.
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let (status_tx, status) = watch::channel(Status::STARTING);
        let task = LeaseTask {
            conn: conn.clone(),
            node_id: settings.node_id.clone(),
            lease: settings.lease,
            renew: settings.renew,
            status: status_tx.clone(),
            hook,
        };
        let handle = tokio::spawn(task.run(shutdown));
        Ok((
            Cluster {
                node_id: settings.node_id.as_str().into(),
                client,
                conn,
                status,
                status_tx,
            },
            handle,
        ))
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The shared connection (multiplexed; clone it per task).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The node's standing now.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// Another task of this node got an answer from Redis: the status says Redis is up
    /// (the lease task's next answer, or the lack of one, says what it says then; whether
    /// the node is a member stays the lease's to say). Otherwise it stayed "down" until the
    /// lease task's renewal came back, which after Redis was busy could be a few
    /// milliseconds after the follower delivered what Redis did meanwhile: a customer
    /// welcomed by it who wrote at once had their first message refused
    /// `cluster_unavailable` by the router, which refuses while Redis is down.
    pub fn redis_answered(&self) {
        // Read first: the follower calls this after every read, and Redis is nearly always
        // up already, so the write lock (which the router's reads wait on) is rarely taken.
        if !self.status.borrow().redis_up {
            self.status_tx
                .send_if_modified(|status| !std::mem::replace(&mut status.redis_up, true));
        }
    }

    /// Changes of the node's standing (a new incarnation after a rejoin, Redis down or up).
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }
}
