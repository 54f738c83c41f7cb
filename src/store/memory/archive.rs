//! The archive: events applied under the lock, listings scanned, in the in-memory store.

use async_trait::async_trait;

use super::*;

impl Inner {
    /// Applies one archive event; applying it again changes nothing.
    pub(super) fn apply(&mut self, event: &ArchiveEvent) {
        let conversation = match event {
            ArchiveEvent::Opened(o) => o.id.as_str(),
            ArchiveEvent::Message { conversation_id, .. } => &**conversation_id,
            ArchiveEvent::Transferred(t) => t.id.as_str(),
            ArchiveEvent::Note(n) => n.conversation_id.as_str(),
            ArchiveEvent::Closed(c) => c.id.as_str(),
            ArchiveEvent::Abandoned(a) => {
                if !self.abandoned.iter().any(|kept| kept.id == a.id) {
                    self.abandoned.push(a.clone());
                }
                return;
            }
        };
        if self.erased.contains(conversation) {
            return; // erased on request: a late event of it is dropped
        }
        match event {
            ArchiveEvent::Opened(opened) => {
                if !self.by_id.contains_key(&opened.id) {
                    self.by_id.insert(opened.id.clone(), self.conversations.len());
                    self.conversations.push(Conversation {
                        opened: opened.clone(),
                        closed: None,
                        messages: Vec::new(),
                        rating: None,
                        transfers: Vec::new(),
                        notes: Vec::new(),
                    });
                }
            }
            ArchiveEvent::Message {
                conversation_id,
                message,
            } => {
                let Some(&index) = self.by_id.get(&**conversation_id) else {
                    return;
                };
                // A transcript is kept in seq order, and a seq names one message of its
                // conversation: a retry finds its seq taken and is dropped, with no index of ids.
                let messages = &mut self.conversations[index].messages;
                if messages.last().is_none_or(|m| m.seq < message.seq) {
                    messages.push(message.clone());
                } else {
                    let at = messages.partition_point(|m| m.seq < message.seq);
                    if messages.get(at).is_none_or(|m| m.seq != message.seq) {
                        messages.insert(at, message.clone());
                    }
                }
            }
            ArchiveEvent::Transferred(transfer) => {
                // Dropped for an unknown conversation, as a message is.
                if let Some(&index) = self.by_id.get(&transfer.id) {
                    let c = &mut self.conversations[index];
                    add_transfer(&mut c.opened, &mut c.transfers, transfer);
                }
            }
            ArchiveEvent::Note(note) => {
                // Kept whether or not its conversation is opened (yet).
                add_note(self.notes.entry(note.conversation_id.clone()).or_default(), note);
            }
            ArchiveEvent::Closed(closed) => {
                if let Some(&index) = self.by_id.get(&closed.id) {
                    // The reference rule: the later visit's, the real over an inferred
                    // one, the later of one kind (a conversation continued after it ended).
                    let kept = &mut self.conversations[index].closed;
                    if closed.replaces(kept.as_ref()) {
                        *kept = Some(closed.clone());
                    }
                }
            }
            ArchiveEvent::Abandoned(_) => {}
        }
    }
}

#[async_trait]
impl ArchiveStore for MemoryStore {
    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
        #[cfg(test)]
        {
            self.archive_calls.lock().unwrap().push(batch.len());
            if self.archive_down.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(StoreError::Unavailable("down for the test".into()));
            }
            let most = self.archive_hangs_above.load(std::sync::atomic::Ordering::Relaxed);
            if most > 0 && batch.len() > most {
                std::future::pending::<()>().await;
            }
        }
        self.with(|s| batch.iter().for_each(|e| s.apply(e)));
        Ok(())
    }

    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)> {
        self.with(|s| {
            let hits: Vec<&Conversation> = s
                .conversations
                .iter()
                .filter(|c| matches(filter, &c.opened, &c.transfers))
                // Status and label: the record's, joined here.
                .filter(|c| !filter.on_desk_state() || filter.admits(s.records.get(&c.opened.id)))
                // The reference store scans: every conversation's text, checked by the shared rule.
                .filter(|c| filter.text.as_ref().is_none_or(|q| search::matches(q, c)))
                .collect();
            Ok(s.newest_paired(hits, page))
        })
    }

    async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
        self.with(|s| {
            let mut c = s
                .conversations
                .iter()
                .find(|c| c.opened.id == id)
                .cloned()
                .ok_or(StoreError::NotFound)?;
            c.rating = s.ratings.get(id).cloned();
            c.notes = s.notes.get(id).cloned().unwrap_or_default();
            Ok(c)
        })
    }

    async fn conversation_notes(&self, conversation_id: &str) -> StoreResult<Vec<ConversationNote>> {
        self.with(|s| Ok(s.notes.get(conversation_id).cloned().unwrap_or_default()))
    }
}
