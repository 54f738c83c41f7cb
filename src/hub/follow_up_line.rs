//! A line an agent writes into a conversation whose customer is away
//! (`service::follow_up`), as it waits for its seq: on several nodes it travels to the
//! cluster's router and back while Redis draws one (`cluster::conversation_seq`).

use crate::core::routing::AgentId;
use crate::hub::delivery::ConnId;

/// A line an agent asked to write, waiting for the conversation's count.
pub(crate) struct FollowUpLine {
    pub conn: ConnId,
    pub agent: AgentId,
    pub text: String,
    pub client_id: Option<String>,
}

/// Why Redis drew no seq for a line (several nodes).
#[derive(Debug)]
pub(crate) enum SeqRefused {
    /// A customer continues the conversation now.
    Live,
    /// Redis did not answer, or this node is rejoining: the agent sends it again.
    Unavailable(String),
}
