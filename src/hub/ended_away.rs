//! How agents' chats ended lately, for their next `agent_welcome` (`ended`): a
//! `chat_ended` sent while the agent had no connection (away within their grace period, or
//! past it) reached nobody. A console that held such a chat shows its end as it was (its
//! customer left, it was handed back to the line, someone ended it) rather than guessing
//! from the archive, whose latest closing may be an earlier turn's of the conversation.
//! Every ending is kept, not only those while away (a connection that dies unnoticed for a
//! moment misses its frames too): the console reads only those of chats it still shows
//! running, and only one after the chat's start.
//!
//! Two ways ([`EndedAway`]): on one node every chat is logged, and every agent
//! welcomed, here, so memory is enough ([`Kept`]). On several nodes the node that tells an
//! agent a chat ended (each node logging the chat: the agent's, the customer's) also keeps
//! it in Redis (`cluster::agent_endings`), written off the hub's task by a [`Writer`] of
//! its own, and the node an agent signs in on reads them there before its welcome
//! ([`EndedAway::absorb`]; `docs/cluster.md` §13). Either way the latest few per agent,
//! one per chat.

use std::collections::{HashMap, VecDeque};

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::cluster::agent_endings;
use crate::cluster::node::Cluster;
use crate::core::routing::AgentId;
use crate::protocol::{EndedChat, From};

/// The most endings kept per agent (oldest forgotten first): more than the chats an agent
/// runs at once, so every chat of one disconnection is told.
pub const KEPT_PER_AGENT: usize = 32;

/// Endings waiting for Redis at most (each one small write): beyond, one is dropped and
/// logged, and a console back on another node reads that chat from the archive instead.
const WRITES_WAITING: usize = 4_096;

/// Where agents' endings are kept: this node's memory, and on several nodes Redis too.
#[derive(Debug, Default)]
pub struct EndedAway {
    /// Told here or read from Redis: what a welcome here says.
    kept: Kept,
    /// On several nodes: what is told here, written to Redis for a welcome elsewhere.
    shared: Option<Writer>,
}

impl EndedAway {
    /// The adapter of a node in `cluster`: endings written to its Redis as they are told.
    pub fn shared(cluster: &Cluster) -> Self {
        Self {
            kept: Kept::default(),
            shared: Some(Writer::start(cluster.clone())),
        }
    }

    /// Keeps that `agent`'s chat ended as `ended` says (their `chat_ended`, told here).
    pub fn note(&mut self, agent: &AgentId, ended: EndedChat) {
        if let Some(writer) = &self.shared {
            writer.keep(agent, &ended);
        }
        self.kept.note(agent, ended);
    }

    /// Takes in `agent`'s endings read from Redis (its entries, oldest first): each unless a
    /// later ending of its chat is kept here.
    pub fn absorb(&mut self, agent: &AgentId, entries: &[String]) {
        for entry in entries {
            match decode(entry) {
                Some(ended) => self.kept.absorb(agent, ended),
                None => {
                    tracing::debug!(agent = %agent.0, entry = %entry, "an agent's ending in Redis is unreadable: skipped")
                }
            }
        }
    }

    /// `agent`'s endings kept, oldest first: one per chat, its latest.
    pub fn of(&self, agent: &AgentId) -> Vec<EndedChat> {
        self.kept.of(agent)
    }
}

/// The latest endings of each agent in this node's memory, ordered by when they ended.
#[derive(Debug, Default)]
struct Kept {
    by_agent: HashMap<AgentId, VecDeque<EndedChat>>,
}

impl Kept {
    /// Keeps `ended` as its chat's latest ending.
    fn note(&mut self, agent: &AgentId, ended: EndedChat) {
        let kept = self.by_agent.entry(agent.clone()).or_default();
        kept.retain(|e| e.chat_id != ended.chat_id);
        let at = kept.partition_point(|e| e.at <= ended.at);
        kept.insert(at, ended);
        while kept.len() > KEPT_PER_AGENT {
            kept.pop_front();
        }
    }

    /// Keeps `ended`, read from elsewhere, unless an ending of its chat as late is kept.
    fn absorb(&mut self, agent: &AgentId, ended: EndedChat) {
        let later = self
            .by_agent
            .get(agent)
            .is_some_and(|kept| kept.iter().any(|e| e.chat_id == ended.chat_id && e.at >= ended.at));
        if !later {
            self.note(agent, ended);
        }
    }

    fn of(&self, agent: &AgentId) -> Vec<EndedChat> {
        self.by_agent
            .get(agent)
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Writes endings to Redis in the order told, on a task of its own: the hub only queues
/// them (never waits on Redis), and the routing's calls never wait behind them.
#[derive(Debug)]
struct Writer {
    tx: mpsc::Sender<(AgentId, String)>,
}

impl Writer {
    fn start(cluster: Cluster) -> Self {
        let (tx, mut rx) = mpsc::channel::<(AgentId, String)>(WRITES_WAITING);
        tokio::spawn(async move {
            let mut conn = cluster.conn();
            while let Some((agent, entry)) = rx.recv().await {
                // Once more after a broken connection: a repeat takes the first's place.
                let mut kept = agent_endings::keep(&mut conn, &agent.0, &entry, KEPT_PER_AGENT).await;
                if kept.is_err() {
                    kept = agent_endings::keep(&mut conn, &agent.0, &entry, KEPT_PER_AGENT).await;
                }
                if let Err(e) = kept {
                    tracing::warn!(agent = %agent.0, error = %e, "an agent's chat ending was not kept in Redis: another node's welcome will not tell it");
                }
            }
        });
        Self { tx }
    }

    fn keep(&self, agent: &AgentId, ended: &EndedChat) {
        let entry = serde_json::to_string(ended).expect("an ending is plain JSON");
        if self.tx.try_send((agent.clone(), entry)).is_err() {
            tracing::warn!(agent = %agent.0, chat = %ended.chat_id, "an agent's chat ending was not queued for Redis: Redis is far behind");
        }
    }
}

/// The `reason`s a `chat_ended` tells an agent (`HubState::chat_ended_to_agent`'s callers):
/// an ending read back from Redis names one of these.
const REASONS: [&str; 4] = ["ended", "customer_gone", "agent_gone", "shutdown"];

/// One ending as [`Writer::keep`] wrote it, `None` if unreadable or of an unknown reason.
fn decode(entry: &str) -> Option<EndedChat> {
    #[derive(Deserialize)]
    struct Entry {
        chat_id: String,
        ended_by: From,
        reason: String,
        at: i64,
    }
    let entry: Entry = serde_json::from_str(entry).ok()?;
    let reason = REASONS.into_iter().find(|r| *r == entry.reason)?;
    Some(EndedChat {
        chat_id: entry.chat_id,
        ended_by: entry.ended_by,
        reason,
        at: entry.at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn endings_read_from_redis_join_those_told_here_in_order_each_chat_its_latest() {
        let ann = AgentId("ann".into());
        let mut kept = EndedAway::default();
        kept.note(&ann, ended("c2", "ended", 20));
        kept.note(&ann, ended("c3", "customer_gone", 30));
        let entry = |e: &EndedChat| serde_json::to_string(e).unwrap();
        let read = [
            entry(&ended("c1", "agent_gone", 10)),
            // An earlier turn's ending of a chat whose later one is kept here: not taken.
            entry(&ended("c3", "agent_gone", 5)),
            // A later one than kept here: taken.
            entry(&ended("c2", "customer_gone", 25)),
            "not json".to_string(),
            r#"{"chat_id":"c9","ended_by":"system","reason":"unheard_of","at":1}"#.to_string(),
        ];
        kept.absorb(&ann, &read);
        assert_eq!(
            kept.of(&ann),
            vec![
                ended("c1", "agent_gone", 10),
                ended("c2", "customer_gone", 25),
                ended("c3", "customer_gone", 30),
            ]
        );
    }

    #[test]
    fn an_ending_reads_back_as_written() {
        for reason in REASONS {
            let e = EndedChat {
                chat_id: "0193".into(),
                ended_by: From::Agent,
                reason,
                at: 1_795_279_860_000,
            };
            assert_eq!(decode(&serde_json::to_string(&e).unwrap()), Some(e));
        }
    }
}
