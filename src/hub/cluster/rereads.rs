//! Every chat's log read again at once — after this node's chat channel was cut, and once
//! every claim is in after Redis lost its data (`docs/cluster.md` §7, §9, §15) — outside
//! the router's queue of calls: a node holds more chats (about 20,000, customers' and
//! buddies') than that queue has slots (8,192), and a read dropped for a full queue left a
//! missed line waiting for its chat's next line. The hub names its chats' logs here, each
//! once with the seq to read after (so this holds at most one entry a log: bounded, and
//! nothing is dropped); the router reads them a batch at a time between its other calls
//! (`link::router`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::core::routing::ChatId;

/// Logs read again at most between two of the router's other calls.
pub(crate) const REREAD_BATCH: usize = 64;

/// A chat log to read again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Log {
    /// A customer's chat (`Command::ChatLogRead`).
    Chat(ChatId),
    /// A buddy chat, by its wire id (`Command::BuddyLogReread`).
    Buddy(String),
}

/// The logs to be read again, and the seq to read each after.
#[derive(Default)]
pub(crate) struct Rereads {
    logs: Mutex<BTreeMap<Log, u64>>,
    asked: Notify,
}

impl Rereads {
    /// Asks for each log to be read after its seq. A log asked for again before its read
    /// is read once, after the lower seq (which reads more).
    pub(crate) fn ask(&self, logs: impl IntoIterator<Item = (Log, u64)>) {
        let mut waiting = self.lock();
        for (log, after) in logs {
            waiting
                .entry(log)
                .and_modify(|at| *at = (*at).min(after))
                .or_insert(after);
        }
        drop(waiting);
        self.asked.notify_one();
    }

    /// Up to `n` logs to read now, taken out.
    pub(crate) fn take(&self, n: usize) -> Vec<(Log, u64)> {
        let mut waiting = self.lock();
        let mut taken = Vec::with_capacity(n.min(waiting.len()));
        while taken.len() < n {
            let Some(next) = waiting.pop_first() else { break };
            taken.push(next);
        }
        taken
    }

    /// How many logs wait for their read.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Returns once a log waits for its read (at once if one does).
    pub(crate) async fn wanted(&self) {
        loop {
            // Made before looking, so an `ask` between the look and the wait wakes it.
            let asked = self.asked.notified();
            if self.len() > 0 {
                return;
            }
            asked.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Log, u64>> {
        self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More chats than the router's queue holds (8,192), customers' and buddies', are all
    /// read, each once, in batches.
    #[tokio::test]
    async fn every_chat_asked_for_is_read_once_in_batches() {
        let rereads = Rereads::default();
        let chats = 9_000;
        rereads.ask((1..=chats).map(|c| (Log::Chat(ChatId(c)), c)));
        rereads.ask((1..=chats).map(|c| (Log::Buddy(format!("b{c:05}")), c)));
        // Asked again before its read: once, after the lower seq.
        rereads.ask([(Log::Chat(ChatId(1)), 0), (Log::Chat(ChatId(2)), 9)]);
        rereads.ask([(Log::Buddy("b00001".into()), 0), (Log::Buddy("b00002".into()), 9)]);
        let mut read = vec![];
        loop {
            rereads.wanted().await;
            let batch = rereads.take(REREAD_BATCH);
            assert!(batch.len() <= REREAD_BATCH);
            read.extend(batch);
            if rereads.len() == 0 {
                break;
            }
        }
        assert_eq!(read.len() as u64, 2 * chats);
        let (customers, buddies) = read.split_at(chats as usize);
        assert_eq!(customers[0], (Log::Chat(ChatId(1)), 0));
        assert_eq!(customers[1], (Log::Chat(ChatId(2)), 2));
        assert!(
            customers
                .iter()
                .enumerate()
                .all(|(i, (log, _))| *log == Log::Chat(ChatId(i as u64 + 1)))
        );
        assert_eq!(buddies[0], (Log::Buddy("b00001".into()), 0));
        assert_eq!(buddies[1], (Log::Buddy("b00002".into()), 2));
        assert!(
            buddies
                .iter()
                .enumerate()
                .all(|(i, (log, _))| *log == Log::Buddy(format!("b{:05}", i + 1)))
        );
    }
}
