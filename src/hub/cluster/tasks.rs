//! What the cluster link's tasks share: the router (`link`), the follower and the
//! subscriber (`follower`) each pause [`RETRY_PAUSE`] after a failed exchange with Redis,
//! and read or write agents' display names under [`AGENT_NAMES_KEY`]. They hand the hub
//! commands with `hub::tell`.

use std::time::Duration;

/// Pause after a failed exchange with Redis before the next try.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Where the hub's display names of agents are kept, for the nodes of their customers.
pub(super) const AGENT_NAMES_KEY: &str = "{sb}:agent-names";
