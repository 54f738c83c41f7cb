//! The MongoDB store's archive: conversation documents and their message buckets (the
//! why of this layout is in `mongo.rs`'s opening comment): writing a batch of archive
//! events, and reading conversations back whole.

use super::*;

impl MongoStore {
    /// Writes one archive batch: openings, closings, then the messages as buckets.
    pub(super) async fn archive_batch(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
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
                ArchiveEvent::Message { conversation_id, .. } => conversation_id,
                ArchiveEvent::Closed(c) => &c.id,
            };
            if !opened_here.contains(id.as_str()) {
                unsure.insert(id);
            }
        }
        let mut present = self.existing(&unsure).await?;

        // Keep what one-by-one application would keep, grouping messages per conversation.
        let mut opens: Vec<&ConversationOpened> = Vec::new();
        let mut closes: Vec<&ConversationClosed> = Vec::new();
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
                } if present.contains(conversation_id.as_str()) => {
                    messages.entry(conversation_id).or_default().push(message);
                }
                ArchiveEvent::Closed(c) if present.contains(c.id.as_str()) => closes.push(c),
                ArchiveEvent::Message { .. } | ArchiveEvent::Closed(_) => {}
            }
        }
        let mut buckets = Vec::new();
        for (id, m) in messages {
            buckets.extend(buckets_of(id, m)?);
        }
        // Openings first: a conversation is never left with messages but no record.
        self.open_all(&opens).await?;
        self.close_all(&closes).await?;
        self.insert_buckets(buckets).await
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
            let cursor = raw
                .find(doc! {"_id": {"$in": chunk}})
                .projection(doc! {"_id": 1})
                .await
                .map_err(unavailable)?;
            let docs: Vec<Document> = cursor.try_collect().await.map_err(unavailable)?;
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
                    Ok(doc! {"q": {"_id": &o.id}, "u": {"$setOnInsert": set}, "upsert": true})
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
        }
        Ok(())
    }

    async fn open(&self, o: &ConversationOpened) -> StoreResult<()> {
        let fresh = ConversationDoc::new(o);
        let mut set = bson::to_document(&fresh).map_err(unavailable)?;
        set.remove("_id");
        let upsert = || {
            self.conversations
                .update_one(doc! {"_id": &o.id}, doc! {"$setOnInsert": set.clone()})
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
                    Ok(doc! {"q": {"_id": &c.id, "closed": Bson::Null}, "u": {"$set": {"closed": closed}}})
                })
                .collect::<StoreResult<Vec<_>>>()?;
            if let Some((_, code, message)) = self.update_command(statements, true).await?.into_iter().next() {
                return Err(unavailable(format!("closing a conversation: {message} ({code})")));
            }
        }
        Ok(())
    }

    /// Runs one `update` command on the conversations; returns its write errors as
    /// (statement index, code, message). A command-level failure is an `Err`.
    async fn update_command(&self, updates: Vec<Document>, ordered: bool) -> StoreResult<Vec<(usize, i32, String)>> {
        // A hand-built command gets no write concern from the database's options: add it.
        let concern = bson::to_bson(&self.write_concern).map_err(unavailable)?;
        let reply = self
            .db
            .run_command(doc! {
                "update": self.conversations.name(),
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

    /// Stores the buckets in one unordered `insert_many` (the driver splits it only past
    /// the server's message size). A duplicate key means that very bucket is stored already.
    async fn insert_buckets(&self, buckets: Vec<BucketDoc>) -> StoreResult<()> {
        if buckets.is_empty() {
            return Ok(());
        }
        match self.buckets.insert_many(buckets).ordered(false).await {
            Ok(_) => Ok(()),
            Err(e) if only_duplicate_keys(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Every message of each of `docs` by conversation id, in seq order, one per seq (buckets
    /// overlap after a retry grouped differently). Messages embedded by the earlier schema
    /// are taken out of the documents and merged in.
    async fn messages_of(&self, docs: &mut [ConversationDoc]) -> StoreResult<HashMap<String, Vec<ArchivedMessage>>> {
        let mut by_id: HashMap<String, Vec<MessageRecord>> = docs
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
                (id, messages.into_iter().map(ArchivedMessage::from).collect())
            })
            .collect())
    }

    pub(super) async fn whole(&self, mut docs: Vec<ConversationDoc>) -> StoreResult<Vec<Conversation>> {
        let mut messages = self.messages_of(&mut docs).await?;
        Ok(docs
            .into_iter()
            .map(|d| {
                let m = messages.remove(&d.id).unwrap_or_default();
                d.into_conversation(m)
            })
            .collect())
    }
}

/// Cuts one conversation's messages of a batch into buckets: sorted by seq, one per seq,
/// each bucket a run of consecutive seqs (so its key names exactly what it holds) and
/// at most [`BUCKET_MAX_BYTES`] long.
fn buckets_of(conversation_id: &str, mut messages: Vec<&ArchivedMessage>) -> StoreResult<Vec<BucketDoc>> {
    messages.sort_by_key(|m| m.seq);
    messages.dedup_by_key(|m| m.seq);
    let mut buckets = Vec::new();
    let mut run: Vec<MessageRecord> = Vec::new();
    let mut bytes = 0;
    let mut flush = |run: &mut Vec<MessageRecord>| {
        if let (Some(first), Some(last)) = (run.first(), run.last()) {
            buckets.push(BucketDoc {
                id: format!("{conversation_id}:{}-{}", first.seq, last.seq),
                conversation_id: conversation_id.to_string(),
                first_seq: to_i64(first.seq)?,
                last_seq: to_i64(last.seq)?,
                messages: std::mem::take(run),
            });
        }
        Ok::<_, StoreError>(())
    };
    for m in messages {
        let consecutive = run.last().is_some_and(|last| last.seq + 1 == m.seq);
        if !consecutive || bytes >= BUCKET_MAX_BYTES {
            flush(&mut run)?;
            bytes = 0;
        }
        bytes += m.text.len() + m.id.len() + 64;
        run.push(MessageRecord::from(m));
    }
    flush(&mut run)?;
    Ok(buckets)
}

fn to_i64(seq: u64) -> StoreResult<i64> {
    i64::try_from(seq).map_err(|_| unavailable(format!("seq {seq} does not fit a BSON int64")))
}

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
    closed: Option<ClosedRecord>,
    /// Only in documents of the earlier schema, which embedded the messages; read, never written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    messages: Vec<MessageRecord>,
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
            closed: None,
            messages: Vec::new(),
        }
    }

    fn into_conversation(self, messages: Vec<ArchivedMessage>) -> Conversation {
        Conversation {
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
            },
            messages,
        }
    }
}

/// A run of consecutive messages of one conversation, written by one archive batch.
#[derive(Serialize, Deserialize)]
pub(super) struct BucketDoc {
    /// `<conversation_id>:<first_seq>-<last_seq>`: names exactly the messages inside.
    #[serde(rename = "_id")]
    id: String,
    conversation_id: String,
    /// Not queried today; kept so a bucket can be read, checked or expired on its own.
    first_seq: i64,
    last_seq: i64,
    messages: Vec<MessageRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, text_len: usize) -> ArchivedMessage {
        ArchivedMessage {
            id: format!("m{seq}"),
            seq,
            from: Side::Customer,
            text: "x".repeat(text_len),
            at: seq as Millis,
        }
    }

    fn keys(buckets: &[BucketDoc]) -> Vec<&str> {
        buckets.iter().map(|b| b.id.as_str()).collect()
    }

    #[test]
    fn a_bucket_is_a_run_of_consecutive_seqs() {
        let ms: Vec<ArchivedMessage> = [5, 1, 2, 2, 3, 7, 8, 5].iter().map(|s| message(*s, 10)).collect();
        let buckets = buckets_of("c:1", ms.iter().collect()).unwrap();
        // Sorted, one per seq, cut at every gap; the key names the run exactly.
        assert_eq!(keys(&buckets), ["c:1:1-3", "c:1:5-5", "c:1:7-8"]);
        let b = &buckets[0];
        assert_eq!((b.conversation_id.as_str(), b.first_seq, b.last_seq), ("c:1", 1, 3));
        assert_eq!(b.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(buckets_of("c", Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn a_long_run_is_cut_by_size_the_same_way_every_time() {
        let ms: Vec<ArchivedMessage> = (1..=50).map(|s| message(s, 100_000)).collect();
        let cut = || keys(&buckets_of("c", ms.iter().collect()).unwrap()).join(" ");
        let once = cut();
        assert!(once.split(' ').count() >= 2, "{once}");
        assert_eq!(once, cut(), "a retry of the same batch makes the same keys");
        let buckets = buckets_of("c", ms.iter().collect()).unwrap();
        assert!(buckets.iter().all(|b| bson::to_vec(b).unwrap().len() < 16 << 20));
        let seqs: Vec<u64> = buckets.iter().flat_map(|b| b.messages.iter().map(|m| m.seq)).collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    }
}
