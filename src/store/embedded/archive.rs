//! The archive in the embedded store, as its callers see it: batches go to the journal
//! (durable at once) and are folded into the tables on a niced thread (`embedded.rs`,
//! `embedded/background.rs`); listings walk an index, search the postings
//! (`embedded/search_index.rs`).

use async_trait::async_trait;

use super::*;

#[async_trait]
impl ArchiveStore for EmbeddedStore {
    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Encoded here from the borrowed batch: the record is both what the journal writes
        // and what the fold reads back, so the events are not copied to cross to the pool.
        let mut record = journal::Record::encode(batch).map_err(unavailable)?;
        let (db, archiving) = (self.db.clone(), self.archiving.clone());
        let (fold_now, full) = blocking(move || {
            let mut journal = lock(&archiving.journal);
            let mut full = None;
            if journal.len() >= journal::CHECKPOINT_BYTES {
                // Waits only if the other journal's checkpoint is still running.
                let mut spare = archiving.take_spare();
                if spare.checkpointed {
                    full = Some(std::mem::replace(&mut *journal, spare.journal));
                } else {
                    // Its checkpoint failed: one durable commit now covers both journals.
                    let done = archiving.checkpoint(&db, &mut journal);
                    if done.is_ok() {
                        spare.journal.clear();
                        spare.checkpointed = true;
                    }
                    *lock(&archiving.spare) = Some(spare);
                    done?;
                }
            }
            // Durable from here: the archive acknowledges the batch once this returns.
            journal.append_record(&mut record).map_err(unavailable)?;
            let mut unfolded = lock(&archiving.unfolded);
            unfolded.push(record);
            let fold_now = unfolded.events >= archiving.fold_at.load(Ordering::Relaxed)
                && !archiving.fold_scheduled.swap(true, Ordering::Relaxed);
            Ok((fold_now, full))
        })
        .await?;
        // Off the acknowledgement's path (the batch is durable already), on the niced
        // thread: appends go on in the other journal meanwhile.
        if let Some(full) = full {
            self.background
                .send(background::Job::Retire(full), &self.db, &self.archiving);
        } else if fold_now {
            self.background.send(background::Job::Fold, &self.db, &self.archiving);
        }
        Ok(())
    }

    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)> {
        if let Some(query) = &filter.text {
            // The postings, not a listing index, choose the candidates (`embedded/search_index.rs`).
            return self.search(filter, query.clone(), page).await;
        }
        let filter = filter.clone();
        self.read(move |tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            // The index walked covers the agent (every agent who served it) and the time;
            // a recheck is for the category only.
            let rest = ConversationFilter {
                agent_id: None,
                ..filter.clone()
            };
            let desk = super::conversations::DeskCheck::of(tx, &filter)?;
            let mut total = 0u64;
            let mut hits = Vec::new();
            for (id, recheck) in list_ids(tx, &filter)? {
                if let Some(desk) = &desk
                    && !desk.admits(&filter, &id)?
                {
                    continue;
                }
                let in_page = total >= page.offset && (hits.len() as u64) < page.limit;
                if recheck || in_page {
                    let Some(rec) = load_record(&conversations, &id)? else {
                        continue;
                    };
                    if recheck && !super::memory::matches(&rest, &rec.opened(), &[]) {
                        continue;
                    }
                    if in_page {
                        hits.push(rec);
                    }
                }
                total += 1;
            }
            let mut out = Vec::with_capacity(hits.len());
            for rec in hits {
                let messages = message_log::load(tx, &rec.opened.id)?;
                let rating = ratings::load(tx, &rec.opened.id)?;
                // Listings leave the notes out (see `Conversation::notes`).
                out.push(rec.into_conversation(messages, rating, Vec::new()));
            }
            Ok((out, total))
        })
        .await
    }

    async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
        let id = id.to_string();
        self.read(move |tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            let rec = load_record(&conversations, &id)?.ok_or(StoreError::NotFound)?;
            let messages = message_log::load(tx, &id)?;
            let rating = ratings::load(tx, &id)?;
            let notes = notes::load(tx, &id)?;
            Ok(rec.into_conversation(messages, rating, notes))
        })
        .await
    }

    async fn conversation_notes(&self, conversation_id: &str) -> StoreResult<Vec<ConversationNote>> {
        let id = conversation_id.to_string();
        self.read(move |tx| notes::load(tx, &id)).await
    }
}
