//! `Store` for [`EmbeddedStore`]: the trait's calls over the store's transactions and its
//! archive writer (`embedded.rs`) and the modules of each concept (`embedded/*.rs`).

use super::*;

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|tx| {
            tx.open_table(META).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn create_account(&self, account: Account) -> StoreResult<()> {
        self.write(move |tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            let mut by_username = tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?;
            if accounts.get(account.id.as_str()).map_err(unavailable)?.is_some()
                || by_username
                    .get(account.username.as_str())
                    .map_err(unavailable)?
                    .is_some()
            {
                return Err(StoreError::Conflict);
            }
            accounts
                .insert(account.id.as_str(), encode(&AccountRecord::from(&account))?.as_slice())
                .map_err(unavailable)?;
            by_username
                .insert(account.username.as_str(), account.id.as_str())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn update_account(&self, account: Account) -> StoreResult<()> {
        self.write(move |tx| {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            let mut by_username = tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?;
            if let Some(owner) = by_username.get(account.username.as_str()).map_err(unavailable)?
                && owner.value() != account.id
            {
                return Err(StoreError::Conflict);
            }
            let old = get_account(&accounts, &account.id)?;
            if old.username != account.username {
                by_username.remove(old.username.as_str()).map_err(unavailable)?;
                by_username
                    .insert(account.username.as_str(), account.id.as_str())
                    .map_err(unavailable)?;
            }
            accounts
                .insert(account.id.as_str(), encode(&AccountRecord::from(&account))?.as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn account(&self, id: &str) -> StoreResult<Account> {
        let id = id.to_string();
        self.read(move |tx| get_account(&tx.open_table(ACCOUNTS).map_err(unavailable)?, &id))
            .await
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Account> {
        let username = username.to_string();
        self.read(move |tx| {
            let by_username = tx.open_table(ACCOUNTS_BY_USERNAME).map_err(unavailable)?;
            let id = by_username
                .get(username.as_str())
                .map_err(unavailable)?
                .ok_or(StoreError::NotFound)?
                .value()
                .to_string();
            get_account(&tx.open_table(ACCOUNTS).map_err(unavailable)?, &id)
        })
        .await
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        self.read(|tx| {
            let accounts = tx.open_table(ACCOUNTS).map_err(unavailable)?;
            let mut out: Vec<Account> = Vec::with_capacity(accounts.len().map_err(unavailable)? as usize);
            for row in accounts.iter().map_err(unavailable)? {
                let (_, value) = row.map_err(unavailable)?;
                out.push(decode::<AccountRecord>(value.value())?.into());
            }
            // Oldest first, like the reference store's insertion order (ties by id).
            out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
            Ok(out)
        })
        .await
    }

    async fn categories(&self) -> StoreResult<Vec<Category>> {
        self.read(|tx| {
            let order = tx.open_table(CATEGORY_ORDER).map_err(unavailable)?;
            let categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in order.iter().map_err(unavailable)? {
                let (_, id) = row.map_err(unavailable)?;
                let guard = categories
                    .get(id.value())
                    .map_err(unavailable)?
                    .ok_or_else(|| unavailable("category index out of step"))?;
                let rec: CategoryRec = decode(guard.value())?;
                out.push(Category {
                    id: rec.id,
                    name: rec.name,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn create_category(&self, category: Category) -> StoreResult<()> {
        self.write(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            if categories.get(category.id.as_str()).map_err(unavailable)?.is_some() {
                return Err(StoreError::Conflict);
            }
            let mut meta = tx.open_table(META).map_err(unavailable)?;
            let pos = meta
                .get(NEXT_CATEGORY_POS)
                .map_err(unavailable)?
                .map(|v| v.value())
                .unwrap_or(0);
            meta.insert(NEXT_CATEGORY_POS, pos + 1).map_err(unavailable)?;
            let rec = CategoryRec {
                id: category.id.clone(),
                name: category.name,
                pos,
            };
            categories
                .insert(category.id.as_str(), encode(&rec)?.as_slice())
                .map_err(unavailable)?;
            tx.open_table(CATEGORY_ORDER)
                .map_err(unavailable)?
                .insert(pos, category.id.as_str())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
        let (id, name) = (id.to_string(), name.to_string());
        self.write(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let mut rec: CategoryRec = {
                let guard = categories
                    .get(id.as_str())
                    .map_err(unavailable)?
                    .ok_or(StoreError::NotFound)?;
                decode(guard.value())?
            };
            rec.name = name;
            categories
                .insert(id.as_str(), encode(&rec)?.as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn delete_category(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |tx| {
            let mut categories = tx.open_table(CATEGORIES).map_err(unavailable)?;
            let rec: CategoryRec = {
                let guard = categories
                    .remove(id.as_str())
                    .map_err(unavailable)?
                    .ok_or(StoreError::NotFound)?;
                decode(guard.value())?
            };
            tx.open_table(CATEGORY_ORDER)
                .map_err(unavailable)?
                .remove(rec.pos)
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = batch.to_vec();
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
            journal.append(&batch).map_err(unavailable)?;
            let mut unfolded = lock(&archiving.unfolded);
            unfolded.extend(batch);
            let fold_now = unfolded.len() >= FOLD_EVENTS && !archiving.fold_scheduled.swap(true, Ordering::Relaxed);
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
            let mut total = 0u64;
            let mut hits = Vec::new();
            for (id, recheck) in list_ids(tx, &filter)? {
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

    // ---- sessions in the shared store: in `embedded/sessions.rs` ----
    async fn create_session(&self, session: StoredSession) -> StoreResult<()> {
        self.insert_session(session).await
    }

    async fn session(&self, id: &str) -> StoreResult<StoredSession> {
        self.find_session(id).await
    }

    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        self.remove_session(id).await
    }

    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        self.remove_sessions_of(account_id).await
    }

    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        self.sweep_expired_sessions(now).await
    }

    // ---- rooms and 1-to-1 video ----
    async fn create_room(&self, room: Room) -> StoreResult<()> {
        self.rooms_create(room).await
    }

    async fn room(&self, id: &str) -> StoreResult<Room> {
        self.rooms_get(id).await
    }

    async fn open_room_of(&self, agent_id: &str) -> StoreResult<Option<Room>> {
        self.rooms_open_of(agent_id).await
    }

    async fn update_room(&self, room: Room) -> StoreResult<Room> {
        self.rooms_update(room).await
    }

    async fn guest_for(&self, guest: Guest) -> StoreResult<Guest> {
        self.rooms_guest_for(guest).await
    }

    async fn save_call_log(&self, log: CallLog) -> StoreResult<()> {
        self.rooms_save_call_log(log).await
    }

    async fn call_logs(&self, agent_id: Option<&str>, page: Page) -> StoreResult<(Vec<CallLog>, u64)> {
        self.rooms_call_logs(agent_id, page).await
    }

    // ---- appointments: in `embedded/appointments.rs` ----
    async fn book_appointment(&self, appointment: Appointment) -> StoreResult<()> {
        self.insert_appointment(appointment).await
    }

    async fn appointment(&self, id: &str) -> StoreResult<Appointment> {
        self.find_appointment(id).await
    }

    async fn appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment> {
        self.find_appointment_by_token(token_hash).await
    }

    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation> {
        self.mark_appointment_cancelled(id, at).await
    }

    async fn appointments(
        &self,
        from: Millis,
        to: Millis,
        representative: Option<&str>,
    ) -> StoreResult<Vec<Appointment>> {
        self.appointments_between(from, to, representative).await
    }

    // ---- appointment mail outbox: in `embedded/outbox.rs` ----
    async fn book_appointment_with_mail(&self, appointment: Appointment, mail: OutboxMail) -> StoreResult<()> {
        self.book_with_mail(appointment, mail).await
    }

    async fn cancel_appointment_with_mail(
        &self,
        id: &str,
        at: Millis,
        reason: Option<String>,
        mail: OutboxMail,
    ) -> StoreResult<Cancellation> {
        self.cancel_with_mail(id, at, reason, mail).await
    }

    async fn reschedule_appointment_with_mail(
        &self,
        moved: Appointment,
        mail: OutboxMail,
    ) -> StoreResult<Rescheduling> {
        self.reschedule_with_mail(moved, mail).await
    }

    async fn claim_mails(
        &self,
        node: &str,
        now: Millis,
        claim_until: Millis,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        self.claim_due_mails(node, now, claim_until, limit).await
    }

    async fn finish_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool> {
        self.finish_claimed_mail(id, node, outcome).await
    }

    async fn mail(&self, id: &str) -> StoreResult<OutboxMail> {
        self.find_mail(id).await
    }

    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)> {
        self.list_mails(status, page).await
    }

    // ---- desk settings: in `embedded/outbox.rs` ----
    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.read_desk_setting(key).await
    }

    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()> {
        self.write_desk_setting(key, value).await
    }

    // ---- canned replies: in `embedded/canned.rs` ----
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>> {
        self.list_canned(owner).await
    }

    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply> {
        self.find_canned(id).await
    }

    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.insert_canned(reply).await
    }

    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.replace_canned(reply).await
    }

    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool> {
        self.remove_canned(id).await
    }

    // ---- ratings: in `embedded/ratings.rs` ----
    async fn rate_conversation(&self, id: &str, rating: Rating) -> StoreResult<()> {
        self.insert_rating(id, rating).await
    }
    // ---- offline messages: in `embedded/offline.rs` ----
    async fn add_offline_message(&self, message: OfflineMessage, mail: Option<OutboxMail>) -> StoreResult<()> {
        self.add_offline(message, mail).await
    }

    async fn offline_message(&self, id: &str) -> StoreResult<OfflineMessage> {
        self.find_offline(id).await
    }

    async fn offline_messages(&self, filter: &OfflineFilter, page: Page) -> StoreResult<(Vec<OfflineMessage>, u64)> {
        self.list_offline(filter, page).await
    }

    async fn take_offline_message(&self, id: &str, agent: &str) -> StoreResult<OfflineMessage> {
        self.take_offline(id, agent).await
    }

    async fn mark_offline_message_handled(&self, id: &str, by: &str) -> StoreResult<OfflineMessage> {
        self.handle_offline(id, by).await
    }

    async fn reply_offline_message(
        &self,
        id: &str,
        reply: OfflineReply,
        mail: OutboxMail,
    ) -> StoreResult<OfflineMessage> {
        self.reply_offline(id, reply, mail).await
    }

    // ---- customers: their details, earlier conversations: in `embedded/customers.rs` ----
    async fn customer_conversations(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>> {
        self.list_customer(key, limit).await
    }

    async fn set_customer_email(&self, id: &str, email: &str) -> StoreResult<()> {
        self.set_email(id, email).await
    }

    // ---- a customer's data erased on request: in `embedded/erasure.rs` ----
    async fn erase_conversations(&self, ids: &[String]) -> StoreResult<Erased> {
        self.erase_all(ids).await
    }

    async fn erase_offline_messages_of(&self, email: &str) -> StoreResult<u64> {
        self.erase_offline_of(email).await
    }

    async fn add_erasure_record(&self, record: ErasureRecord) -> StoreResult<()> {
        self.insert_erasure(record).await
    }

    async fn erasure_records(&self, page: Page) -> StoreResult<(Vec<ErasureRecord>, u64)> {
        self.list_erasures(page).await
    }

    // ---- transcripts by mail: in `embedded/transcripts.rs` ----
    async fn customer_transcript(&self, id: &str) -> StoreResult<CustomerTranscript> {
        self.read_transcript(id).await
    }

    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        self.add_new_mail(mail).await
    }

    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        self.mails_with_prefix(prefix).await
    }

    // ---- the facts the reports read ----
    async fn report_facts(&self, from: Millis, to: Millis) -> StoreResult<ReportFacts> {
        self.facts(from, to).await
    }
}
