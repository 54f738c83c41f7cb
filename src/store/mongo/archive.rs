//! The MongoDB store's archive: conversation documents and their message buckets (the
//! why of this layout is in `mongo.rs`'s opening comment): writing a batch of archive
//! events, each message into exactly one bucket, and reading conversations back whole.

mod chain;
// ---- status and labels copied from the records ----
pub(super) mod desk_state;
// ---- archive search: terms on the documents ----
mod search;

use async_trait::async_trait;

use super::notes::NoteDoc;
use super::*;
pub(super) use chain::Chain;

impl MongoStore {
    /// Keeps each conversation's first agent line's time (`$min`, so any order and any
    /// retry keep the earliest) and marks the conversation touched for the reports' cache;
    /// only for conversations not known to have one already.
    async fn note_first_agent_lines(&self, firsts: Vec<(String, Millis)>) -> StoreResult<()> {
        let fresh: Vec<(String, Millis)> = {
            let known = self.first_agent_known.lock().expect("first-agent lock");
            firsts
                .into_iter()
                .filter(|(id, at)| known.get(id).is_none_or(|first| at < first))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        for chunk in fresh.chunks(UPDATE_CHUNK) {
            let statements = chunk
                .iter()
                .map(|(id, at)| doc! {"q": {"_id": id}, "u": {"$min": {"first_agent_at": at}, "$currentDate": {TOUCHED: true}}})
                .collect();
            if let Some((_, code, message)) = self.update_command(statements, false).await?.into_iter().next() {
                return Err(unavailable(format!("noting a first agent line: {message} ({code})")));
            }
        }
        let mut known = self.first_agent_known.lock().expect("first-agent lock");
        for (id, at) in fresh {
            if known.len() >= KNOWN_MAX {
                known.clear();
            }
            let first = known.entry(id).or_insert(at);
            *first = (*first).min(at);
        }
        Ok(())
    }

    /// Did the one-time migration of older documents named `marker` finish (its marker is
    /// in `migrations`)?
    async fn migrated(&self, marker: &str) -> StoreResult<bool> {
        let migrations: Collection<Document> = self.db.collection("migrations");
        let done = migrations.find_one(doc! {"_id": marker}).await.map_err(unavailable)?;
        Ok(done.is_some())
    }

    /// Leaves the marker of the one-time migration `marker`, finished.
    async fn mark_migrated(&self, marker: &str) -> StoreResult<()> {
        let migrations: Collection<Document> = self.db.collection("migrations");
        match migrations
            .insert_one(doc! {"_id": marker, "at": crate::clock::now_ms()})
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()), // another node finished it too
            Err(e) => Err(unavailable(e)),
        }
    }

    fn remember<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut known = self.known.lock().expect("known-ids lock");
        for id in ids {
            if known.len() >= KNOWN_MAX {
                known.clear();
            }
            known.insert(id.to_string());
        }
    }

    /// Which of `ids` are conversations in the database: from memory, and by asking for the rest.
    async fn existing<'a>(&self, ids: &HashSet<&'a str>) -> StoreResult<HashSet<&'a str>> {
        let (mut found, unknown): (HashSet<&str>, Vec<&str>) = {
            let known = self.known.lock().expect("known-ids lock");
            let (found, unknown): (Vec<&str>, Vec<&str>) = ids.iter().partition(|id| known.contains(**id));
            (found.into_iter().collect(), unknown)
        };
        let raw: Collection<Document> = self.conversations.clone_with_type();
        for chunk in unknown.chunks(IN_CHUNK) {
            let docs: Vec<Document> = all(raw.find(doc! {"_id": {"$in": chunk}}).projection(doc! {"_id": 1})).await?;
            let here: HashSet<&str> = docs.iter().filter_map(|d| d.get_str("_id").ok()).collect();
            let hits: Vec<&str> = chunk.iter().copied().filter(|id| here.contains(id)).collect();
            self.remember(hits.iter().copied());
            found.extend(hits);
        }
        Ok(found)
    }

    /// Upserts the openings, one `update` command per [`UPDATE_CHUNK`] of them.
    async fn open_all(&self, opens: &[&ConversationOpened]) -> StoreResult<()> {
        for chunk in opens.chunks(UPDATE_CHUNK) {
            let statements = chunk
                .iter()
                .map(|o| {
                    let mut set = bson::to_document(&ConversationDoc::new(o)).map_err(unavailable)?;
                    set.remove("_id");
                    Ok(doc! {"q": {"_id": &o.id}, "u": {"$setOnInsert": set, "$currentDate": {TOUCHED: true}}, "upsert": true})
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let errors = self.update_command(statements, false).await?;
            for (index, code, message) in errors {
                match chunk.get(index) {
                    // Two upserts of the same new id raced (another writer); the one-by-one path settles it.
                    Some(o) if code == DUPLICATE_KEY => self.open(o).await?,
                    _ => return Err(unavailable(format!("opening a conversation: {message} ({code})"))),
                }
            }
            self.remember(chunk.iter().map(|o| o.id.as_str()));
            // A record stored before its opening was not copied then: now.
            let ids: Vec<String> = chunk.iter().map(|o| o.id.clone()).collect();
            self.copy_desk_state_of(&ids).await?;
        }
        Ok(())
    }

    async fn open(&self, o: &ConversationOpened) -> StoreResult<()> {
        let fresh = ConversationDoc::new(o);
        let mut set = bson::to_document(&fresh).map_err(unavailable)?;
        set.remove("_id");
        let upsert = || {
            self.conversations
                .update_one(
                    doc! {"_id": &o.id},
                    doc! {"$setOnInsert": set.clone(), "$currentDate": {TOUCHED: true}},
                )
                .upsert(true)
        };
        match upsert().await {
            Ok(_) => Ok(()),
            // Two upserts of the same new id raced; the loser retries and now matches the winner's document.
            Err(e) if is_duplicate_key(&e) => upsert().await.map(|_| ()).map_err(unavailable),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Records the closings in batch order: an ordered command, so of two closings of one
    /// conversation the first wins, as when they are applied one by one.
    async fn close_all(&self, closes: &[&ConversationClosed]) -> StoreResult<()> {
        for chunk in closes.chunks(UPDATE_CHUNK) {
            let statements = chunk
                .iter()
                .map(|c| {
                    let closed = bson::to_bson(&ClosedRecord::from(*c)).map_err(unavailable)?;
                    // `ConversationClosed::replaces` as one match: the later visit's (a
                    // conversation continued after it ended closes again), the real over an
                    // inferred one, the later of one kind.
                    let q = match c.inferred {
                        Some(inferred) => doc! {"_id": &c.id, "$or": [
                            {"closed": Bson::Null},
                            {"closed.ended_at": {"$lt": inferred.visit_paired_at}},
                            {"closed.inferred": {"$ne": Bson::Null}, "closed.ended_at": {"$lt": c.ended_at}},
                        ]},
                        None => doc! {"_id": &c.id, "$or": [
                            {"closed": Bson::Null},
                            {"closed.inferred": Bson::Null, "closed.ended_at": {"$lt": c.ended_at}},
                            {"closed.inferred.visit_paired_at": {"$lte": c.ended_at}},
                        ]},
                    };
                    Ok(doc! {"q": q, "u": {"$set": {"closed": closed}, "$currentDate": {TOUCHED: true}}})
                })
                .collect::<StoreResult<Vec<_>>>()?;
            if let Some((_, code, message)) = self.update_command(statements, true).await?.into_iter().next() {
                return Err(unavailable(format!("closing a conversation: {message} ({code})")));
            }
        }
        Ok(())
    }

    /// Records the transfers, each once, in one ordered `update` command per
    /// [`UPDATE_CHUNK`] of them. Each is one or two statements, each an atomic check and
    /// write on its conversation's document, so a retry or another hub applying the same
    /// transfer at the same time adds nothing:
    /// 1. (to an agent) where it is not stored and no transfer later by `at` went to an
    ///    agent: push it, add its agents to `served_by`, and make `to_agent` the agent;
    /// 2. where it is not stored (still): push it and add its agents to `served_by`.
    ///
    /// Stored in arrival order; readers sort them by `at` (stably).
    async fn transfer_all(&self, transfers: &[&ConversationTransferred]) -> StoreResult<()> {
        for chunk in transfers.chunks(UPDATE_CHUNK) {
            let mut statements = Vec::with_capacity(chunk.len() * 2);
            for t in chunk {
                let record = bson::to_bson(&Transfer::from(*t)).map_err(unavailable)?;
                let stored = doc! {"transfers": {"$elemMatch": {
                    "at": t.at,
                    "from_agent_id": &t.from_agent_id,
                    "to_agent_id": t.to_agent_id.as_deref(),
                    "to_category": t.to_category.as_deref(),
                }}};
                let agents: Vec<&str> = std::iter::once(t.from_agent_id.as_str())
                    .chain(t.to_agent_id.as_deref())
                    .collect();
                // The agents it names are found by their names from now on.
                let names = std::iter::once(t.from_agent_name.as_str()).chain(t.to_agent_name.as_deref());
                let terms: Vec<String> = crate::core::search::term_set(names).into_iter().collect();
                let add = doc! {
                    "$push": {"transfers": record},
                    "$addToSet": {SERVED_BY: {"$each": agents}, SEARCH_TERMS: {"$each": terms}},
                    "$currentDate": {TOUCHED: true},
                };
                if let Some(to) = &t.to_agent_id {
                    let later = doc! {"transfers": {"$elemMatch": {
                        "at": {"$gt": t.at},
                        "to_agent_id": {"$ne": Bson::Null},
                    }}};
                    let mut and_take = add.clone();
                    and_take.insert(
                        "$set",
                        doc! {"agent_id": to, "agent_name": t.to_agent_name.as_deref().unwrap_or_default()},
                    );
                    statements.push(doc! {"q": {"_id": &t.id, "$nor": [stored.clone(), later]}, "u": and_take});
                }
                statements.push(doc! {"q": {"_id": &t.id, "$nor": [stored]}, "u": add});
            }
            if let Some((_, code, message)) = self.update_command(statements, true).await?.into_iter().next() {
                return Err(unavailable(format!("recording a transfer: {message} ({code})")));
            }
        }
        Ok(())
    }

    /// Runs one `update` command on the conversations; returns its write errors as
    /// (statement index, code, message). A command-level failure is an `Err`.
    async fn update_command(&self, updates: Vec<Document>, ordered: bool) -> StoreResult<Vec<(usize, i32, String)>> {
        self.update_command_on(self.conversations.name(), updates, ordered)
            .await
    }

    /// [`Self::update_command`] on the collection `collection`.
    pub(super) async fn update_command_on(
        &self,
        collection: &str,
        updates: Vec<Document>,
        ordered: bool,
    ) -> StoreResult<Vec<(usize, i32, String)>> {
        // A hand-built command gets no write concern from the database's options: add it.
        let concern = bson::to_bson(&self.write_concern).map_err(unavailable)?;
        let reply = self
            .db
            .run_command(doc! {
                "update": collection,
                "updates": updates,
                "ordered": ordered,
                "writeConcern": concern,
            })
            .await
            .map_err(unavailable)?;
        if let Ok(e) = reply.get_document("writeConcernError") {
            return Err(unavailable(format!("write concern: {e}")));
        }
        let errors = reply.get_array("writeErrors").map(|a| a.as_slice()).unwrap_or_default();
        Ok(errors
            .iter()
            .filter_map(Bson::as_document)
            .map(|e| {
                let number = |k: &str| e.get_i32(k).map(i64::from).or_else(|_| e.get_i64(k)).unwrap_or(-1);
                let message = e.get_str("errmsg").unwrap_or_default().to_string();
                (
                    usize::try_from(number("index")).unwrap_or(usize::MAX),
                    number("code") as i32,
                    message,
                )
            })
            .collect())
    }

    /// Stores the messages no bucket holds yet, each conversation's in new buckets at its
    /// next free slots (see `chain.rs`), then remembers what it learnt of the chains.
    async fn store_messages(&self, messages: HashMap<&str, Vec<&ArchivedMessage>>) -> StoreResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut chains = self.chains_of(messages.keys().copied()).await?;
        let pending = messages
            .into_iter()
            .map(|(id, mut m)| {
                m.sort_by_key(|m| m.seq);
                m.dedup_by_key(|m| m.seq);
                (id, m)
            })
            .collect();
        // What was learnt is true even when a later round failed: remembered either way.
        let written = self.fill_slots(&mut chains, pending).await;
        self.remember_chains(chains);
        written
    }

    /// Writes `pending` in rounds of one bucket per conversation, each at its chain's next
    /// slot: a conversation's bucket in slot n + 1 is sent only once slot n is known, so a
    /// write that stops half way (a timeout) leaves no bucket past a slot it never filled.
    /// One round is one unordered `insert_many`: the whole batch, unless a conversation's
    /// messages pass [`BUCKET_MAX_BYTES`] or another write took a slot first.
    async fn fill_slots<'a>(
        &self,
        chains: &mut HashMap<&'a str, Chain>,
        mut pending: Vec<(&'a str, Vec<&ArchivedMessage>)>,
    ) -> StoreResult<()> {
        loop {
            for (id, messages) in &mut pending {
                let chain = &chains[*id];
                messages.retain(|m| !chain.holds(m.seq));
            }
            pending.retain(|(_, messages)| !messages.is_empty());
            if pending.is_empty() {
                return Ok(());
            }
            let round = pending
                .iter()
                .map(|(id, messages)| bucket_at(id, chains[*id].next_slot(), messages))
                .collect::<StoreResult<Vec<_>>>()?;
            let taken = match self.buckets.insert_many(&round).ordered(false).await {
                Ok(_) => HashSet::new(),
                Err(e) => slots_taken_first(&e).ok_or_else(|| unavailable(e))?,
            };
            let mut lost = Vec::new();
            for (index, bucket) in round.iter().enumerate() {
                if taken.contains(&index) {
                    lost.push(bucket.id.as_str());
                } else if let Some(chain) = chains.get_mut(bucket.conversation_id.as_str()) {
                    chain.record(bucket.slot, bucket.messages.iter().map(|m| m.seq));
                }
            }
            if !lost.is_empty() {
                tracing::info!(
                    buckets = lost.len(),
                    "archive: bucket slots were taken by another write (a write that timed out and landed late, or another hub); writing only what they do not hold"
                );
                self.read_taken(&lost, chains).await?;
            }
        }
    }

    /// Reads what the buckets `ids` hold (slots another write took first) into their chains.
    async fn read_taken(&self, ids: &[&str], chains: &mut HashMap<&str, Chain>) -> StoreResult<()> {
        for chunk in ids.chunks(IN_CHUNK) {
            let found = self.bucket_seqs(doc! {"_id": {"$in": chunk}}).await?;
            if found.len() < chunk.len() {
                // Refused as taken, yet not there: never by this store's writes; retried later.
                return Err(unavailable(format!(
                    "buckets {chunk:?} were refused as taken but are not all there"
                )));
            }
            for bucket in found {
                if let Some(chain) = chains.get_mut(bucket.conversation_id.as_str()) {
                    chain.record(bucket.slot, bucket.messages.iter().map(|m| m.seq));
                }
            }
        }
        Ok(())
    }

    /// The chains of `ids`: remembered, or read whole (every bucket's slot and seqs, the
    /// earlier layout's too) for those this store does not know.
    async fn chains_of<'a>(&self, ids: impl Iterator<Item = &'a str>) -> StoreResult<HashMap<&'a str, Chain>> {
        let mut chains = HashMap::new();
        let mut unknown = Vec::new();
        {
            let memory = self.chains.lock().expect("chains lock");
            for id in ids {
                match memory.get(id) {
                    Some(chain) => {
                        chains.insert(id, chain.clone());
                    }
                    None => unknown.push(id),
                }
            }
        }
        for chunk in unknown.chunks(IN_CHUNK) {
            let filter = match chunk {
                [one] => doc! {"conversation_id": *one},
                _ => doc! {"conversation_id": {"$in": chunk}},
            };
            let mut read: HashMap<&str, Chain> = chunk.iter().map(|id| (*id, Chain::default())).collect();
            for bucket in self.bucket_seqs(filter).await? {
                if let Some(chain) = read.get_mut(bucket.conversation_id.as_str()) {
                    chain.record(bucket.slot, bucket.messages.iter().map(|m| m.seq));
                }
            }
            chains.extend(read);
        }
        Ok(chains)
    }

    /// The slot and seqs of the buckets `filter` matches, without their messages' text.
    async fn bucket_seqs(&self, filter: Document) -> StoreResult<Vec<BucketSeqs>> {
        let seqs = self.buckets.clone_with_type::<BucketSeqs>();
        all(seqs
            .find(filter)
            .projection(doc! {"conversation_id": 1, "slot": 1, "messages.seq": 1}))
        .await
    }

    /// Keeps what was learnt of `chains` for the next batches, where it is newer than
    /// what is remembered (another write of this store may have got further meanwhile).
    fn remember_chains(&self, chains: HashMap<&str, Chain>) {
        let mut memory = self.chains.lock().expect("chains lock");
        for (id, chain) in chains {
            match memory.get_mut(id) {
                Some(known) => *known = std::mem::take(known).newer(chain),
                None => {
                    if memory.len() >= KNOWN_MAX {
                        // Forgetting costs a read of the conversation's buckets, never a wrong write.
                        memory.clear();
                    }
                    memory.insert(id.to_string(), chain);
                }
            }
        }
    }

    /// Every message of each of `docs` by conversation id, in seq order, one per seq (buckets
    /// of the earlier layout may overlap: a retry grouped differently could store a message
    /// twice). Messages embedded by the earlier schema are taken out of the documents and
    /// merged in.
    async fn messages_of(&self, docs: &mut [ConversationDoc]) -> StoreResult<HashMap<String, Vec<ArchivedMessage>>> {
        let mut by_id: HashMap<String, Vec<ArchivedMessage>> = docs
            .iter_mut()
            .map(|d| (d.id.clone(), std::mem::take(&mut d.messages)))
            .collect();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        for chunk in ids.chunks(IN_CHUNK) {
            let filter = match chunk {
                [one] => doc! {"conversation_id": *one},
                _ => doc! {"conversation_id": {"$in": chunk}},
            };
            let mut cursor = self.buckets.find(filter).await.map_err(unavailable)?;
            while let Some(bucket) = cursor.try_next().await.map_err(unavailable)? {
                if let Some(messages) = by_id.get_mut(&bucket.conversation_id) {
                    messages.extend(bucket.messages);
                }
            }
        }
        Ok(by_id
            .into_iter()
            .map(|(id, mut messages)| {
                messages.sort_by_key(|m| m.seq);
                messages.dedup_by_key(|m| m.seq);
                (id, messages)
            })
            .collect())
    }

    /// One page of the conversations `query` matches, newest paired first, and how many
    /// match in all.
    pub(super) async fn list(&self, query: Document, page: Page) -> StoreResult<(Vec<Conversation>, u64)> {
        let (docs, total) = page_of(&self.conversations, query, newest_first("paired_at"), page).await?;
        Ok((self.whole(docs).await?, total))
    }

    /// One page of the conversations `agent` served that pass the rest of `filter`: those
    /// whose `agent_id` is theirs and those whose [`SERVED_BY`] holds them, each side
    /// found by its own index and the two merged here (see the module comment). While no
    /// transfer names the agent (the usual case) it is the plain listing and one count more.
    pub(super) async fn list_of_agent(
        &self,
        filter: &ConversationFilter,
        agent: &str,
        page: Page,
    ) -> StoreResult<(Vec<Conversation>, u64)> {
        let rest = filter_doc(&ConversationFilter {
            agent_id: None,
            ..filter.clone()
        });
        let with = |mut query: Document, field: &str| {
            query.insert(field, agent);
            query
        };
        let now = with(rest.clone(), "agent_id");
        let named = with(rest, SERVED_BY);
        let count =
            |query: Document| async move { self.conversations.count_documents(query).await.map_err(unavailable) };
        let named_total = count(named.clone()).await?;
        if named_total == 0 {
            return self.list(now, page).await;
        }
        // Those on both sides (transferred, and the agent's now) are counted once.
        let total = count(now.clone()).await? + named_total - count(with(now.clone(), SERVED_BY)).await?;
        if page.limit == 0 || page.offset >= total {
            return Ok((Vec::new(), total));
        }
        // The page is among the first `offset + limit` of each side.
        let wanted = page.offset.saturating_add(page.limit);
        let mut keys = self.newest_keys(now, wanted).await?;
        keys.extend(self.newest_keys(named, wanted).await?);
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.dedup();
        Ok((self.page_whole(keys, page).await?, total))
    }

    /// `page` of `keys` ((paired_at, id), newest first), each conversation read whole, in
    /// that order: what a listing and a search return.
    pub(super) async fn page_whole(&self, keys: Vec<(Millis, String)>, page: Page) -> StoreResult<Vec<Conversation>> {
        let ids: Vec<String> = keys
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .map(|(_, id)| id)
            .collect();
        let mut found: HashMap<String, ConversationDoc> = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let docs: Vec<ConversationDoc> = all(self.conversations.find(doc! {"_id": {"$in": chunk}})).await?;
            found.extend(docs.into_iter().map(|d| (d.id.clone(), d)));
        }
        let docs = ids.iter().filter_map(|id| found.remove(id)).collect();
        self.whole(docs).await
    }

    /// (paired_at, id) of the first `limit` conversations `query` matches, newest first.
    async fn newest_keys(&self, query: Document, limit: u64) -> StoreResult<Vec<(Millis, String)>> {
        let raw: Collection<Document> = self.conversations.clone_with_type();
        let docs: Vec<Document> = all(raw
            .find(query)
            .sort(newest_first("paired_at"))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! {"_id": 1, "paired_at": 1}))
        .await?;
        docs.iter()
            .map(|d| {
                let paired_at = match d.get("paired_at") {
                    Some(Bson::Int64(t)) => *t,
                    Some(Bson::Int32(t)) => i64::from(*t),
                    _ => return Err(unavailable("a conversation without paired_at")),
                };
                let id = d.get_str("_id").map_err(unavailable)?;
                Ok((paired_at, id.to_string()))
            })
            .collect()
    }

    pub(super) async fn whole(&self, mut docs: Vec<ConversationDoc>) -> StoreResult<Vec<Conversation>> {
        let mut messages = self.messages_of(&mut docs).await?;
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        let mut ratings = self.ratings_of(&ids).await?;
        Ok(docs
            .into_iter()
            .map(|d| {
                let m = messages.remove(&d.id).unwrap_or_default();
                let rating = ratings.remove(&d.id);
                d.into_conversation(m, rating)
            })
            .collect())
    }
}

/// The bucket of `conversation_id` in `slot`: the first of `messages` (sorted, one per seq,
/// none stored yet), as many as fit in [`BUCKET_MAX_BYTES`], at least one. Gaps in the seqs
/// do not matter: the slot, not the content, names a bucket.
fn bucket_at(conversation_id: &str, slot: u64, messages: &[&ArchivedMessage]) -> StoreResult<BucketDoc> {
    let mut bytes = 0;
    let mut taken = Vec::new();
    for m in messages {
        if !taken.is_empty() && bytes >= BUCKET_MAX_BYTES {
            break;
        }
        bytes += m.text.len() + m.id.len() + 64 + m.attachments.len() * 256;
        taken.push((*m).clone());
    }
    let (Some(first), Some(last)) = (taken.first(), taken.last()) else {
        return Err(unavailable("a bucket without messages"));
    };
    let terms = crate::core::search::term_set(taken.iter().map(|m| m.text.as_str()));
    Ok(BucketDoc {
        terms: terms.into_iter().collect(),
        id: format!("{conversation_id}#{slot}"),
        conversation_id: conversation_id.to_string(),
        slot: Some(slot),
        first_seq: to_i64(first.seq)?,
        last_seq: to_i64(last.seq)?,
        messages: taken,
    })
}

/// The indexes of the buckets an `insert_many` was refused only because their slots were
/// taken (duplicate keys); `None` when anything else failed.
fn slots_taken_first(e: &mongodb::error::Error) -> Option<HashSet<usize>> {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => {
            let errors = m.write_errors.as_ref()?;
            errors
                .iter()
                .map(|w| (w.code == DUPLICATE_KEY).then_some(w.index))
                .collect()
        }
        _ => None,
    }
}

fn to_i64(seq: u64) -> StoreResult<i64> {
    i64::try_from(seq).map_err(|_| unavailable(format!("seq {seq} does not fit a BSON int64")))
}

/// When the server last changed what the reports read of a conversation (a BSON date,
/// by the server's one clock: `$currentDate`); see `mongo/reports.rs`.
pub(super) const TOUCHED: &str = "touched";

/// The conversation document's field listing every agent a transfer names (from or
/// to): with `agent_id` (the agent now), every agent who served the conversation. Absent
/// from conversations never transferred (and from documents written before transfers).
pub(super) const SERVED_BY: &str = "served_by";

/// The search terms ([`crate::core::search`]) of a conversation document's names and of a
/// bucket's messages, each distinct, multikey-indexed (see `mongo/search.rs`).
pub(super) const SEARCH_TERMS: &str = "terms";

/// The keys the conversation's customer is found by ([`CustomerProfile::indexed_keys`]),
/// multikey-indexed with the paired time; absent when none.
pub(super) const CUSTOMER_KEYS: &str = "customer_keys";

#[derive(Serialize, Deserialize)]
pub(super) struct ConversationDoc {
    #[serde(rename = "_id")]
    id: String,
    kind: ConversationKind,
    category: Option<String>,
    customer_name: String,
    agent_id: String,
    agent_name: String,
    queued_at: Millis,
    paired_at: Millis,
    /// Absent in documents written before customers' details were kept. Its `email`
    /// (lower-cased in `customer_key`) and `visitor` are indexed.
    #[serde(default, skip_serializing_if = "CustomerProfile::is_empty")]
    customer: CustomerProfile,
    /// See [`CUSTOMER_KEYS`]; only read by queries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    customer_keys: Vec<String>,
    closed: Option<ClosedRecord>,
    /// In arrival order (see [`MongoStore::transfer_all`]); absent until the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    transfers: Vec<Transfer>,
    /// See [`SERVED_BY`]; only read by queries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    served_by: Vec<String>,
    /// See [`SEARCH_TERMS`]: its names' terms; only read by queries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    terms: Vec<String>,
    /// Only in documents of the earlier schema, which embedded the messages; read, never written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    messages: Vec<ArchivedMessage>,
    /// When an agent first wrote (kept with `$min`); for the reports. Absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_agent_at: Option<Millis>,
    /// Its record's status and labels, copied (`archive/desk_state.rs`); only read by
    /// queries, never written with the document.
    #[serde(default, skip_serializing)]
    desk_status: Option<ConversationStatus>,
    #[serde(default, skip_serializing)]
    desk_labels: Vec<String>,
}

impl ConversationDoc {
    fn new(o: &ConversationOpened) -> Self {
        Self {
            id: o.id.clone(),
            kind: o.kind,
            category: o.category.clone(),
            customer_name: o.customer_name.clone(),
            agent_id: o.agent_id.clone(),
            agent_name: o.agent_name.clone(),
            queued_at: o.queued_at,
            paired_at: o.paired_at,
            customer: o.customer.clone(),
            customer_keys: o.customer.indexed_keys(),
            closed: None,
            transfers: Vec::new(),
            served_by: Vec::new(),
            terms: crate::store::search::name_terms(o, &[]).into_iter().collect(),
            messages: Vec::new(),
            first_agent_at: None,
            desk_status: None,
            desk_labels: Vec::new(),
        }
    }

    /// Does it pass `filter`'s status and label (by its copy of its record's)?
    fn desk_passes(&self, filter: &ConversationFilter) -> bool {
        desk_state::passes_state(filter, self.desk_status, &self.desk_labels)
    }

    fn into_conversation(self, messages: Vec<ArchivedMessage>, rating: Option<Rating>) -> Conversation {
        let mut transfers: Vec<ConversationTransferred> = self.transfers.iter().map(|t| t.of(&self.id)).collect();
        // Stable: of one `at`, arrival order.
        transfers.sort_by_key(|t| t.at);
        Conversation {
            rating,
            transfers,
            // Read apart, for one conversation only (see `MongoStore::notes_of`).
            notes: Vec::new(),
            closed: self.closed.map(|c| c.of(&self.id)),
            opened: ConversationOpened {
                id: self.id,
                kind: self.kind,
                category: self.category,
                customer_name: self.customer_name,
                agent_id: self.agent_id,
                agent_name: self.agent_name,
                queued_at: self.queued_at,
                paired_at: self.paired_at,
                customer: self.customer,
            },
            messages,
        }
    }
}

/// Each conversation's earliest agent line among `messages`.
fn first_agent_lines(messages: &HashMap<&str, Vec<&ArchivedMessage>>) -> Vec<(String, Millis)> {
    messages
        .iter()
        .filter_map(|(id, m)| {
            crate::store::reports::first_agent_at(m.iter().map(|m| m.borrowed())).map(|at| (id.to_string(), at))
        })
        .collect()
}

/// Messages of one conversation that no other bucket holds, in seq order.
#[derive(Serialize, Deserialize)]
pub(super) struct BucketDoc {
    /// `<conversation_id>#<slot>`; in the earlier layout `<conversation_id>:<first_seq>-<last_seq>`.
    #[serde(rename = "_id")]
    id: String,
    conversation_id: String,
    /// The bucket's place in its conversation's chain (see `archive/chain.rs`); none in the
    /// earlier layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slot: Option<u64>,
    /// The lowest and highest seq inside. Not queried today; kept so a bucket can be read,
    /// checked or expired on its own.
    first_seq: i64,
    last_seq: i64,
    messages: Vec<ArchivedMessage>,
    /// See [`SEARCH_TERMS`]: every distinct term of its messages. Absent in buckets written
    /// before search (indexed once at start-up, see `mongo/search.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    terms: Vec<String>,
}

/// What a writer reads of a bucket: its slot and its messages' seqs (see [`Chain`]).
#[derive(Deserialize)]
struct BucketSeqs {
    conversation_id: String,
    #[serde(default)]
    slot: Option<u64>,
    messages: Vec<SeqOnly>,
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

#[async_trait]
impl ArchiveStore for MongoStore {
    /// Writes one archive batch: openings, transfers, closings, notes, then the messages as
    /// buckets.
    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
        // Which conversations does the batch touch before (or without) opening them? Applied
        // one by one, an event for a conversation not opened yet is dropped, so those must
        // be known to exist already; ask before writing this batch's openings.
        let mut opened_here: HashSet<&str> = HashSet::new();
        let mut unsure: HashSet<&str> = HashSet::new();
        for event in batch {
            let id = match event {
                ArchiveEvent::Opened(o) => {
                    opened_here.insert(&o.id);
                    continue;
                }
                ArchiveEvent::Message { conversation_id, .. } => &**conversation_id,
                ArchiveEvent::Transferred(t) => t.id.as_str(),
                ArchiveEvent::Closed(c) => c.id.as_str(),
                // Kept whether or not its conversation is there: nothing to ask.
                ArchiveEvent::Note(_) | ArchiveEvent::Abandoned(_) => continue,
            };
            if !opened_here.contains(id) {
                unsure.insert(id);
            }
        }
        let mut present = self.existing(&unsure).await?;

        // Keep what one-by-one application would keep, grouping messages per conversation.
        let mut opens: Vec<&ConversationOpened> = Vec::new();
        let mut transfers: Vec<&ConversationTransferred> = Vec::new();
        let mut closes: Vec<&ConversationClosed> = Vec::new();
        let mut notes: Vec<&ConversationNote> = Vec::new();
        let mut abandoned: Vec<&QueueAbandoned> = Vec::new();
        let mut messages: HashMap<&str, Vec<&ArchivedMessage>> = HashMap::new();
        for event in batch {
            match event {
                ArchiveEvent::Opened(o) => {
                    // Reopening a conversation that exists changes nothing ($setOnInsert): not sent.
                    if present.insert(&o.id) {
                        opens.push(o);
                    }
                }
                ArchiveEvent::Message {
                    conversation_id,
                    message,
                } if present.contains(&**conversation_id) => {
                    messages.entry(conversation_id).or_default().push(message);
                }
                ArchiveEvent::Transferred(t) if present.contains(t.id.as_str()) => transfers.push(t),
                ArchiveEvent::Closed(c) if present.contains(c.id.as_str()) => closes.push(c),
                ArchiveEvent::Note(n) => notes.push(n),
                ArchiveEvent::Abandoned(a) => abandoned.push(a),
                ArchiveEvent::Message { .. } | ArchiveEvent::Transferred(_) | ArchiveEvent::Closed(_) => {}
            }
        }
        // Erased on request: neither opened again nor noted (its messages, transfers and
        // closing need the opening, so they follow).
        let mut candidates: Vec<&str> = opens.iter().map(|o| o.id.as_str()).collect();
        candidates.extend(notes.iter().map(|n| n.conversation_id.as_str()));
        let erased = self.erased_among(&candidates).await?;
        if !erased.is_empty() {
            opens.retain(|o| !erased.contains(&o.id));
            notes.retain(|n| !erased.contains(&n.conversation_id));
            for id in &erased {
                present.remove(id.as_str());
            }
            messages.retain(|id, _| present.contains(id));
            transfers.retain(|t| present.contains(t.id.as_str()));
            closes.retain(|c| present.contains(c.id.as_str()));
        }
        // Openings first: a conversation is never left with messages but no record.
        self.open_all(&opens).await?;
        self.transfer_all(&transfers).await?;
        self.close_all(&closes).await?;
        self.note_all(&notes).await?;
        self.keep_abandoned(&abandoned).await?;
        let firsts = first_agent_lines(&messages);
        self.store_messages(messages).await?;
        self.note_first_agent_lines(firsts).await
    }

    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)> {
        if let Some(query) = &filter.text {
            return self.search(filter, query, page).await;
        }
        match &filter.agent_id {
            Some(agent) => self.list_of_agent(filter, agent, page).await,
            None => self.list(filter_doc(filter), page).await,
        }
    }

    async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
        let found = one(self.conversations.find_one(doc! {"_id": id})).await?;
        let mut conversation = self.whole(vec![found]).await?.remove(0);
        conversation.notes = self.conversation_notes(id).await?;
        Ok(conversation)
    }

    /// The notes of conversation `id`, in [`note_order`].
    async fn conversation_notes(&self, id: &str) -> StoreResult<Vec<ConversationNote>> {
        let docs: Vec<NoteDoc> = all(self
            .collection(super::notes::CONVERSATION_NOTES)
            .find(doc! {"conversation_id": id}))
        .await?;
        let mut notes: Vec<ConversationNote> = docs.into_iter().map(NoteDoc::note).collect();
        notes.sort_by(note_order);
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, text_len: usize) -> ArchivedMessage {
        ArchivedMessage::plain(
            format!("m{seq}"),
            seq,
            Side::Customer,
            "x".repeat(text_len),
            seq as Millis,
        )
    }

    #[test]
    fn a_bucket_takes_its_slot_and_the_first_messages_that_fit() {
        let ms: Vec<ArchivedMessage> = [1, 2, 3, 5, 8].iter().map(|s| message(*s, 10)).collect();
        let refs: Vec<&ArchivedMessage> = ms.iter().collect();
        let b = bucket_at("c:1", 7, &refs).unwrap();
        // Gaps stay inside: the slot names the bucket, not its first and last seq.
        assert_eq!(b.id, "c:1#7");
        assert_eq!(
            (b.conversation_id.as_str(), b.slot, b.first_seq, b.last_seq),
            ("c:1", Some(7), 1, 8)
        );
        assert_eq!(b.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 5, 8]);
        assert!(bucket_at("c", 0, &[]).is_err());
    }

    #[test]
    fn a_long_run_fills_several_slots_each_under_the_document_limit() {
        let ms: Vec<ArchivedMessage> = (1..=50).map(|s| message(s, 100_000)).collect();
        let mut left: Vec<&ArchivedMessage> = ms.iter().collect();
        let mut buckets = Vec::new();
        while !left.is_empty() {
            let b = bucket_at("c", buckets.len() as u64, &left).unwrap();
            left.drain(..b.messages.len());
            buckets.push(b);
        }
        assert!(buckets.len() >= 2);
        assert!(buckets.iter().all(|b| bson::to_vec(b).unwrap().len() < 16 << 20));
        let seqs: Vec<u64> = buckets.iter().flat_map(|b| b.messages.iter().map(|m| m.seq)).collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    }
}
