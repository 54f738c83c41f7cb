//! Archive search on MongoDB, without `$text`.
//!
//! MongoDB's text indexes would do, but MongoDB-compatible servers do not all have them:
//! SecantusDB, which the tests and the bench run on, refuses text indexes and `$text`. So
//! the store keeps its own normalized terms ([`crate::core::search`], the same words as
//! the embedded store's index): a conversation document holds its names' terms and each
//! message bucket the distinct terms of its messages, both in a `terms` array with a
//! multikey index, written with the document (the opening's upsert, a transfer's update,
//! the bucket's insert), so the archive's writes stay one command per batch. Portable to
//! any server with multikey indexes (an equality on an array field).
//!
//! A query counts, for each of its terms, the documents posted under it (the index), asks
//! for those of the rarest term (a plain equality on `terms`, which every server serves
//! from a multikey index; SecantusDB scans for `$all`), once on the conversations (their
//! names) and once on the buckets, then checks every candidate here: it holds every term,
//! and a bucket holding the words in different messages is not a match
//! ([`crate::store::search`]: every word in the names or in one message). The listing's
//! filters (category, time, agent: their agent now or any a transfer names, status and
//! label: the copies of `archive/desk_state.rs`) are checked here too. Erasure deletes the documents, and their terms with them.
//!
//! Documents written before search existed have no `terms`: they are indexed once at
//! start-up ([`MongoStore::index_old_documents`]), which leaves a marker in `migrations`.

use super::*;
use crate::store::memory::matches;
use crate::store::search::{SearchQuery, first_hit, names_match};

/// The `migrations` marker saying old documents have their terms.
const INDEXED_MARKER: &str = "search_terms";

/// The term of `terms` fewest documents of `collection` are posted under, by the index's
/// counts; `None` when one of them has none (nothing there can match). One plain equality
/// per term: SecantusDB serves `{terms: t}` from the multikey index but scans the
/// collection for `$all` and `$and` (measured: 1.4 ms against 450 ms on 20,000 buckets).
async fn rarest<'t>(collection: &Collection<Document>, terms: &'t [String]) -> StoreResult<Option<&'t str>> {
    let mut rarest: Option<(u64, &str)> = None;
    for term in terms {
        let count = collection
            .count_documents(doc! {SEARCH_TERMS: term.as_str()})
            .await
            .map_err(unavailable)?;
        if count == 0 {
            return Ok(None);
        }
        if rarest.is_none_or(|(fewest, _)| count < fewest) {
            rarest = Some((count, term));
        }
    }
    Ok(rarest.map(|(_, term)| term))
}

/// A conversation document's (id, paired time) when it passes `filter`'s category, time
/// and agent (its agent now, or any a transfer names: `served_by`), status and label.
fn passes(d: &Document, filter: &ConversationFilter) -> Option<(String, Millis)> {
    let id = d.get_str("_id").ok()?;
    let paired_at = match d.get("paired_at")? {
        Bson::Int64(t) => *t,
        Bson::Int32(t) => i64::from(*t),
        _ => return None,
    };
    let category_ok = filter
        .category
        .as_deref()
        .is_none_or(|c| d.get_str("category").ok() == Some(c));
    let agent_ok = filter.agent_id.as_deref().is_none_or(|a| {
        d.get_str("agent_id").ok() == Some(a)
            || d.get_array(SERVED_BY)
                .is_ok_and(|served| served.iter().any(|s| s.as_str() == Some(a)))
    });
    let time_ok = filter.from.is_none_or(|from| paired_at >= from) && filter.to.is_none_or(|to| paired_at < to);
    (category_ok && agent_ok && time_ok && desk_state::desk_passes(d, filter)).then(|| (id.to_string(), paired_at))
}

impl MongoStore {
    /// [`ArchiveStore::conversations`] with a text (see the module comment).
    pub(in crate::store::mongo) async fn search(
        &self,
        filter: &ConversationFilter,
        query: &SearchQuery,
        page: Page,
    ) -> StoreResult<(Vec<Conversation>, u64)> {
        let terms = query.terms();
        let rest = ConversationFilter {
            text: None,
            ..filter.clone()
        };
        let raw_conversations: Collection<Document> = self.conversations.clone_with_type();
        let raw_buckets: Collection<Document> = self.buckets.clone_with_type();
        let mut hits: HashMap<String, Millis> = HashMap::new();
        // Names (and the messages the earlier schema embedded in the document): the
        // documents posted under the query's rarest term, checked whole here.
        if let Some(term) = rarest(&raw_conversations, terms).await? {
            let docs: Vec<ConversationDoc> = all(self.conversations.find(doc! {SEARCH_TERMS: term})).await?;
            for mut d in docs {
                if !d.desk_passes(&rest) {
                    continue;
                }
                let embedded = std::mem::take(&mut d.messages);
                let c = d.into_conversation(Vec::new(), None);
                if matches(&rest, &c.opened, &c.transfers)
                    && (names_match(query, &c.opened, &c.transfers) || first_hit(query, &embedded).is_some())
                {
                    hits.insert(c.opened.id, c.opened.paired_at);
                }
            }
        }
        // Messages: the buckets posted under the rarest term, holding every term, one of
        // whose messages holds every word (with one word, posted is enough).
        let mut by_messages: HashSet<String> = HashSet::new();
        if let Some(term) = rarest(&raw_buckets, terms).await? {
            let one_word = terms.len() == 1;
            let projection = if one_word {
                doc! {"conversation_id": 1}
            } else {
                doc! {"conversation_id": 1, SEARCH_TERMS: 1, "messages.text": 1}
            };
            let mut cursor = raw_buckets
                .find(doc! {SEARCH_TERMS: term})
                .projection(projection)
                .await
                .map_err(unavailable)?;
            while let Some(bucket) = cursor.try_next().await.map_err(unavailable)? {
                let Ok(id) = bucket.get_str("conversation_id") else {
                    continue;
                };
                if hits.contains_key(id) || by_messages.contains(id) {
                    continue;
                }
                let holds = one_word
                    || (bucket.get_array(SEARCH_TERMS).is_ok_and(|posted| {
                        terms
                            .iter()
                            .all(|t| posted.iter().any(|p| p.as_str() == Some(t.as_str())))
                    }) && bucket.get_array("messages").is_ok_and(|ms| {
                        ms.iter()
                            .filter_map(|m| m.as_document()?.get_str("text").ok())
                            .any(|text| query.matches(text))
                    }));
                if holds {
                    by_messages.insert(id.to_string());
                }
            }
        }
        // Their conversations' keys, checked against the listing's filters here (a query
        // mixing `_id` with the filters is no cheaper on SecantusDB).
        let ids: Vec<&str> = by_messages.iter().map(String::as_str).collect();
        for chunk in ids.chunks(IN_CHUNK) {
            let docs: Vec<Document> = all(raw_conversations
                .find(doc! {"_id": {"$in": chunk}})
                .projection(doc! {"paired_at": 1, "category": 1, "agent_id": 1, SERVED_BY: 1,
                desk_state::DESK_STATUS: 1, desk_state::DESK_LABELS: 1}))
            .await?;
            for d in docs {
                if let Some((id, paired_at)) = passes(&d, &rest) {
                    hits.insert(id, paired_at);
                }
            }
        }
        let mut ordered: Vec<(Millis, String)> = hits.into_iter().map(|(id, at)| (at, id)).collect();
        ordered.sort_unstable_by(|a, b| b.cmp(a));
        let total = ordered.len() as u64;
        Ok((self.page_whole(ordered, page).await?, total))
    }

    /// Gives documents written before search existed their `terms`, once per database
    /// (then a marker in `migrations` says it is done). Safe to run twice, or on two nodes
    /// at once: each document's terms are a function of its own text.
    pub(in crate::store::mongo) async fn index_old_documents(&self) -> StoreResult<()> {
        if self.migrated(INDEXED_MARKER).await? {
            return Ok(());
        }
        let old = doc! {SEARCH_TERMS: {"$exists": false}};
        let (mut conversations, mut buckets) = (0u64, 0u64);
        let docs: Vec<ConversationDoc> = all(self.conversations.find(old.clone())).await?;
        for mut d in docs {
            let embedded = std::mem::take(&mut d.messages);
            let c = d.into_conversation(Vec::new(), None);
            let terms: Vec<String> = crate::store::search::conversation_terms(&c.opened, &c.transfers, &embedded)
                .into_iter()
                .collect();
            self.conversations
                .update_one(doc! {"_id": &c.opened.id}, doc! {"$set": {SEARCH_TERMS: terms}})
                .await
                .map_err(unavailable)?;
            conversations += 1;
        }
        let raw: Collection<Document> = self.buckets.clone_with_type();
        let mut cursor = raw
            .find(old)
            .projection(doc! {"messages.text": 1})
            .await
            .map_err(unavailable)?;
        let mut updates = Vec::new();
        while let Some(bucket) = cursor.try_next().await.map_err(unavailable)? {
            let Some(id) = bucket.get("_id").cloned() else { continue };
            let texts: Vec<&str> = bucket
                .get_array("messages")
                .map(|ms| {
                    ms.iter()
                        .filter_map(|m| m.as_document()?.get_str("text").ok())
                        .collect()
                })
                .unwrap_or_default();
            let terms: Vec<String> = crate::core::search::term_set(texts).into_iter().collect();
            updates.push((id, terms));
        }
        for (id, terms) in updates {
            raw.update_one(doc! {"_id": id}, doc! {"$set": {SEARCH_TERMS: terms}})
                .await
                .map_err(unavailable)?;
            buckets += 1;
        }
        if conversations + buckets > 0 {
            tracing::info!(
                conversations,
                buckets,
                "indexed the archive's older documents for search"
            );
        }
        self.mark_migrated(INDEXED_MARKER).await
    }
}
