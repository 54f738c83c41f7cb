//! What the cluster link's tasks share: the router (`link`), the follower and the
//! subscriber (`follower`) each hand the hub commands with [`tell`], pause
//! [`RETRY_PAUSE`] after a failed exchange with Redis, and read or write agents' display
//! names under [`AGENT_NAMES_KEY`].

use std::time::Duration;

use tokio::sync::mpsc;

use crate::hub::Command;

/// Pause after a failed exchange with Redis before the next try.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Where the hub's display names of agents are kept, for the nodes of their customers.
pub(super) const AGENT_NAMES_KEY: &str = "{sb}:agent-names";

/// Hands a command to the hub, unless it is gone.
pub(super) async fn tell(hub: &mpsc::WeakSender<Command>, command: Command) {
    if let Some(tx) = hub.upgrade() {
        let _ = tx.send(command).await;
    }
}
