//! A line an agent writes into a conversation whose customer is away
//! (`service::follow_up`), as it waits for its seq: on several nodes it travels to the
//! cluster's router and back while Redis draws one (`cluster::conversation_seq`).

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::core::routing::AgentId;
use crate::hub::delivery::ConnId;

/// A line an agent asked to write, waiting for the conversation's count.
pub(crate) struct FollowUpLine {
    /// The connection it came from ([`ELSEWHERE`]: none, no one is told its ack).
    pub conn: ConnId,
    pub agent: AgentId,
    pub text: String,
    /// The files a customer's mail carried (kept already); none for an agent's line.
    pub files: Vec<crate::attachments::AttachmentMeta>,
    pub client_id: Option<String>,
    /// It went to the customer by mail already (an answer to an offline message): it is
    /// not mailed again as a follow-up.
    pub mailed: bool,
    /// Who wrote it: its agent, or its customer (`agent` is then nobody: it goes to
    /// whoever holds the conversation).
    pub writer: Writer,
    /// Who waits to hear whether it was stamped (a line from elsewhere: no socket to tell).
    pub outcome: Option<Outcome>,
    /// The archive's room, taken before Redis draws its seq (several nodes): a line the
    /// archive refused after its seq was drawn would leave a gap. Given back if dropped.
    pub room: Option<crate::archive::HeldMessageRoom>,
}

/// Who wrote a line into a conversation whose customer is not in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writer {
    /// The agent whose list it is in.
    Agent,
    /// Its customer, by mail: the line says so (`via: "email"`) and reopens it for its holder.
    CustomerByMail,
    /// Its customer, on the socket they wait on in line to continue it: acknowledged to
    /// them, shown to its holder, and in the chat their pairing opens.
    CustomerWaiting(crate::core::routing::CustomerId),
}

impl Writer {
    pub fn is_customer(self) -> bool {
        self != Self::Agent
    }
}

/// Tells a caller once whether their line was stamped (`Err`: why not): whichever step
/// settles it first, the others find it told.
#[derive(Clone)]
pub(crate) struct Outcome(Arc<Mutex<Option<Teller>>>);

/// Where the outcome goes, until told.
type Teller = oneshot::Sender<Result<(), String>>;

impl Outcome {
    pub fn new() -> (Self, oneshot::Receiver<Result<(), String>>) {
        let (tx, rx) = oneshot::channel();
        (Self(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    pub fn tell(&self, result: Result<(), String>) {
        let taken = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = taken {
            let _ = tx.send(result);
        }
    }
}

/// The connection of a line the agent wrote elsewhere than on a socket (the answer form of
/// an offline message): sockets are numbered from 1, so it names none; the agent's
/// consoles get the line as a `message`.
pub(crate) const ELSEWHERE: ConnId = ConnId(0);

/// Why Redis drew no seq for a line (several nodes).
#[derive(Debug)]
pub(crate) enum SeqRefused {
    /// A customer continues the conversation now.
    Live,
    /// Redis did not answer, or this node is rejoining: the agent sends it again.
    Unavailable(String),
}
