//! How agents' chats ended lately, for their next `agent_welcome` (`ended`): a
//! `chat_ended` sent while the agent had no connection (away within their grace period, or
//! past it) reached nobody. A console that held such a chat shows its end as it was (its
//! customer left, it was handed back to the line, someone ended it) rather than guessing
//! from the archive, whose latest closing may be an earlier turn's of the conversation.
//! Every ending is kept, not only those while away (a connection that dies unnoticed for a
//! moment misses its frames too): the console reads only those of chats it still shows
//! running, and only one after the chat's start.
//!
//! Kept by the node that logs the chat and tells its agent (on several nodes nothing of it
//! is shared), the latest few per agent: an agent back on another node finds none and their
//! console reads the archive instead (`docs/desk.md`).

use std::collections::{HashMap, VecDeque};

use crate::core::routing::AgentId;
use crate::protocol::EndedChat;

/// The most endings kept per agent (oldest forgotten first): more than the chats an agent
/// runs at once, so every chat of one disconnection is told.
pub const KEPT_PER_AGENT: usize = 32;

#[derive(Debug, Default)]
pub struct EndedAway {
    by_agent: HashMap<AgentId, VecDeque<EndedChat>>,
}

impl EndedAway {
    /// Keeps that `agent`'s chat ended as `ended` says while they were away.
    pub fn note(&mut self, agent: &AgentId, ended: EndedChat) {
        let kept = self.by_agent.entry(agent.clone()).or_default();
        kept.retain(|e| e.chat_id != ended.chat_id);
        if kept.len() == KEPT_PER_AGENT {
            kept.pop_front();
        }
        kept.push_back(ended);
    }

    /// `agent`'s endings kept, oldest first: one per chat, its latest.
    pub fn of(&self, agent: &AgentId) -> Vec<EndedChat> {
        self.by_agent
            .get(agent)
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::From;

    fn ended(chat_id: &str, reason: &'static str, at: i64) -> EndedChat {
        EndedChat {
            chat_id: chat_id.into(),
            ended_by: From::System,
            reason,
            at,
        }
    }

    #[test]
    fn each_chat_once_its_latest_ending_and_a_bounded_few() {
        let ann = AgentId("ann".into());
        let mut kept = EndedAway::default();
        kept.note(&ann, ended("c1", "customer_gone", 1));
        kept.note(&ann, ended("c1", "agent_gone", 2));
        assert_eq!(kept.of(&ann), vec![ended("c1", "agent_gone", 2)]);
        for n in 0..KEPT_PER_AGENT as i64 {
            kept.note(&ann, ended(&format!("d{n}"), "ended", 3 + n));
        }
        let told = kept.of(&ann);
        assert_eq!(told.len(), KEPT_PER_AGENT);
        assert_eq!(told[0].chat_id, "d0", "the oldest forgotten first");
        assert!(kept.of(&AgentId("bob".into())).is_empty());
    }
}
