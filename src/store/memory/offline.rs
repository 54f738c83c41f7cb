//! Offline messages: each change one decision under the lock, in the in-memory store.

use async_trait::async_trait;

use super::*;

impl Inner {
    /// The message `id` changed by `change` under the caller's lock, and as it is then.
    pub(super) fn change_offline<T>(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut OfflineMessage) -> StoreResult<T>,
    ) -> StoreResult<OfflineMessage> {
        let m = self.offline.get_mut(id).ok_or(StoreError::NotFound)?;
        let mut changed = m.clone();
        change(&mut changed)?;
        *m = changed;
        Ok(m.clone())
    }
}

#[async_trait]
impl OfflineStore for MemoryStore {
    async fn add_offline_message(&self, message: OfflineMessage, mail: Option<OutboxMail>) -> StoreResult<()> {
        self.with(|s| {
            if s.offline.contains_key(&message.id) {
                return Err(StoreError::Conflict);
            }
            s.offline.insert(message.id.clone(), message);
            if let Some(mail) = mail {
                s.put_mail(mail);
            }
            Ok(())
        })
    }

    async fn offline_message(&self, id: &str) -> StoreResult<OfflineMessage> {
        self.with(|s| found(s.offline.get(id)))
    }

    async fn offline_messages(&self, filter: &OfflineFilter, page: Page) -> StoreResult<(Vec<OfflineMessage>, u64)> {
        self.with(|s| {
            let mut hits: Vec<&OfflineMessage> = s.offline.values().filter(|m| filter.matches(m)).collect();
            hits.sort_by(|a, b| newest_first(a, b));
            Ok(one_page(hits, page))
        })
    }

    async fn take_offline_message(&self, id: &str, agent: &str) -> StoreResult<OfflineMessage> {
        self.with(|s| s.change_offline(id, |m| m.take_by(agent)))
    }

    async fn mark_offline_message_handled(&self, id: &str, by: &str) -> StoreResult<OfflineMessage> {
        self.with(|s| s.change_offline(id, |m| Ok(m.mark_handled(by, crate::clock::now_ms()))))
    }

    async fn reply_offline_message(&self, id: &str, mailed: MailedReply) -> StoreResult<OfflineMessage> {
        let MailedReply { reply, mail } = mailed;
        self.with(|s| {
            let mut added = false;
            let m = s.change_offline(id, |m| {
                added = m.add_reply(reply);
                Ok(())
            })?;
            if added {
                s.put_mail(mail);
            }
            Ok(m)
        })
    }
}
