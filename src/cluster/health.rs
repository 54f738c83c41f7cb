//! What this node knows of its place in the cluster, for `/healthz`, `/readyz` and logs:
//! whether Redis answers and whether the node holds its lease. The lease task writes it
//! (every renewal is also a probe of Redis), and the events follower says Redis is up
//! whenever it gets an answer (`Cluster::redis_answered`); everyone else reads it through
//! a watch.

/// The node's standing in the cluster, as of the lease task's last exchange with Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The last request to Redis was answered (even if with a refusal).
    pub redis_up: bool,
    /// The incarnation this node is a member under; `None` while it is not one (not yet
    /// registered, fenced, or its lease ran out while Redis was away).
    pub incarnation: Option<u64>,
}

impl Status {
    /// Before the first exchange with Redis.
    pub const STARTING: Status = Status {
        redis_up: false,
        incarnation: None,
    };

    /// Whether work that needs the cluster may be done now.
    pub fn usable(&self) -> bool {
        self.redis_up && self.incarnation.is_some()
    }
}
