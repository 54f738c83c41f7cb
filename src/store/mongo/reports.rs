//! The reports' facts in MongoDB, with a cache of each day's facts so a report over
//! 100,000 conversations reads tens of documents, not 100,000.
//!
//! Why a cache: a server pays per document returned (the MongoDB-wire server the tests
//! run took ~3 s to return 100,000 small documents, ~0.3 s for the same facts packed in
//! 30). What is cached is derived, never the truth:
//! - the truth is each conversation's document (its opening, closing, agent now, and
//!   `first_agent_at`, kept by the archive writer with `$min`), the `ratings` collection,
//!   `abandoned` (customers who left unserved, `_id` their record's id) and the offline
//!   messages;
//! - every write of the archive that changes a conversation's facts also raises its
//!   `touched_at` (the writer's clock), and so does a rating;
//! - `report_days` holds, per UTC day of pairing, the facts of that day's service
//!   conversations and `built_at`, the time its reader started. A report reads the days
//!   it covers, builds the missing ones from the conversations, then patches them with
//!   every conversation touched since the oldest `built_at` less
//!   [`CLOCK_MARGIN`] (nodes' clocks differ), with their ratings, and saves the patched
//!   days. A write that
//!   lands while a day is read has a `touched_at` after that read's start, so the next
//!   report patches it in: a report is never older than the writes done before it began.
//! - An erasure drops the whole cache (it is rebuilt on the next report).
//!
//! Customers who left unserved and offline messages are read by their own time indexes:
//! they are one small document each, and far fewer than conversations.

use std::collections::HashMap;

use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};

use super::{IN_CHUNK, MongoStore, unavailable};
use crate::store::{ConversationFacts, Millis, QueueAbandoned, RatingScale, ReportFacts, StoreResult};

const DAY_MS: i64 = 86_400_000;
/// How far apart the nodes' clocks may be: writes this much older than a cached day's
/// read are patched in again (harmless: a patch replaces a conversation's facts whole).
const CLOCK_MARGIN: i64 = 5 * 60 * 1000;

/// One conversation's facts in a cached day (short names: a day holds thousands).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    i: String,
    c: Option<String>,
    a: String,
    n: String,
    q: Millis,
    p: Millis,
    f: Option<Millis>,
    e: Option<Millis>,
    /// Rating scale ("stars"/"thumbs") and score.
    s: Option<RatingScale>,
    r: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DayDoc {
    /// Days since the Unix epoch (UTC).
    #[serde(rename = "_id")]
    day: i64,
    built_at: Millis,
    entries: Vec<Entry>,
}

/// The facts a conversation document holds, read with a projection.
#[derive(Debug, Deserialize)]
struct FactsDoc {
    #[serde(rename = "_id")]
    id: String,
    category: Option<String>,
    agent_id: String,
    agent_name: String,
    queued_at: Millis,
    paired_at: Millis,
    #[serde(default)]
    first_agent_at: Option<Millis>,
    #[serde(default)]
    closed: Option<ClosedAt>,
}

#[derive(Debug, Deserialize)]
struct ClosedAt {
    ended_at: Millis,
}

#[derive(Debug, Serialize, Deserialize)]
struct AbandonedDoc {
    #[serde(rename = "_id")]
    id: String,
    category: String,
    queued_at: Millis,
    left_at: Millis,
}

fn projection() -> Document {
    doc! {"category": 1, "agent_id": 1, "agent_name": 1, "queued_at": 1, "paired_at": 1,
    "first_agent_at": 1, "closed.ended_at": 1}
}

impl FactsDoc {
    fn entry(self) -> Entry {
        Entry {
            i: self.id,
            c: self.category,
            a: self.agent_id,
            n: self.agent_name,
            q: self.queued_at,
            p: self.paired_at,
            f: self.first_agent_at,
            e: self.closed.map(|c| c.ended_at),
            s: None,
            r: None,
        }
    }
}

impl MongoStore {
    fn report_days(&self) -> Collection<DayDoc> {
        self.db.collection("report_days")
    }

    fn abandoned(&self) -> Collection<AbandonedDoc> {
        self.db.collection("abandoned")
    }

    pub(super) async fn create_report_indexes(&self) -> StoreResult<()> {
        let index = |keys: Document, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_string()).build())
                .build()
        };
        self.conversations
            .create_index(index(doc! {"touched_at": 1}, "touched"))
            .await
            .map_err(unavailable)?;
        self.abandoned()
            .create_index(index(doc! {"left_at": 1}, "left_at"))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Keeps the customers who left unserved, once each by id.
    pub(super) async fn keep_abandoned(&self, abandoned: &[&QueueAbandoned]) -> StoreResult<()> {
        for a in abandoned {
            let set = doc! {"category": &a.category, "queued_at": a.queued_at, "left_at": a.left_at};
            let written = self
                .abandoned()
                .update_one(doc! {"_id": &a.id}, doc! {"$setOnInsert": set})
                .upsert(true)
                .await;
            match written {
                // Two writers upserted the same new id at once: it is kept, once.
                Err(e) if !super::is_duplicate_key(&e) => return Err(unavailable(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Forgets every cached day (after an erasure): they are rebuilt from the truth.
    pub(super) async fn drop_report_cache(&self) -> StoreResult<()> {
        self.report_days().delete_many(doc! {}).await.map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn facts(&self, from: Millis, to: Millis) -> StoreResult<ReportFacts> {
        let mut facts = ReportFacts {
            conversations: self.conversation_facts(from, to).await?,
            ..ReportFacts::default()
        };
        let cursor = self
            .abandoned()
            .find(doc! {"left_at": {"$gte": from, "$lt": to}})
            .await
            .map_err(unavailable)?;
        let abandoned: Vec<AbandonedDoc> = cursor.try_collect().await.map_err(unavailable)?;
        facts.abandoned = abandoned
            .into_iter()
            .map(|a| QueueAbandoned {
                id: a.id,
                category: a.category,
                queued_at: a.queued_at,
                left_at: a.left_at,
            })
            .collect();
        facts.offline = self.offline_facts_in(from, to).await?;
        Ok(facts)
    }

    async fn conversation_facts(&self, from: Millis, to: Millis) -> StoreResult<Vec<ConversationFacts>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let (first_day, last_day) = (from.div_euclid(DAY_MS), (to - 1).div_euclid(DAY_MS));
        let started = crate::clock::now_ms();
        let cursor = self
            .report_days()
            .find(doc! {"_id": {"$gte": first_day, "$lte": last_day}})
            .await
            .map_err(unavailable)?;
        let cached: Vec<DayDoc> = cursor.try_collect().await.map_err(unavailable)?;
        let mut days: HashMap<i64, (Millis, HashMap<String, Entry>, bool)> = cached
            .into_iter()
            .map(|d| {
                (
                    d.day,
                    (
                        d.built_at,
                        d.entries.into_iter().map(|e| (e.i.clone(), e)).collect(),
                        false,
                    ),
                )
            })
            .collect();
        // The oldest cached day's read start decides what must be patched in.
        let since = days.values().map(|(built, _, _)| *built).min().unwrap_or(started) - CLOCK_MARGIN;
        for day in first_day..=last_day {
            if !days.contains_key(&day) {
                let entries = self.build_day(day).await?;
                days.insert(day, (started, entries, true));
            }
        }
        // Patch what changed since: conversations touched, then ratings given.
        let range = doc! {"$gte": first_day * DAY_MS, "$lt": (last_day + 1) * DAY_MS};
        let cursor = self
            .conversations
            .clone_with_type::<FactsDoc>()
            .find(doc! {"touched_at": {"$gte": since}, "paired_at": range.clone(), "kind": "service"})
            .projection(projection())
            .await
            .map_err(unavailable)?;
        let touched: Vec<FactsDoc> = cursor.try_collect().await.map_err(unavailable)?;
        let mut patches: HashMap<String, Entry> = touched.into_iter().map(|d| (d.id.clone(), d.entry())).collect();
        self.join_ratings(&mut patches).await?;
        for (id, entry) in patches {
            let day = entry.p.div_euclid(DAY_MS);
            if let Some((_, entries, changed)) = days.get_mut(&day) {
                entries.insert(id, entry);
                *changed = true;
            }
        }
        // Save what was built or patched, as read from `started` on.
        for (day, (_, entries, changed)) in &days {
            if *changed {
                let doc = DayDoc {
                    day: *day,
                    built_at: started,
                    entries: entries.values().cloned().collect(),
                };
                self.report_days()
                    .replace_one(doc! {"_id": day}, &doc)
                    .upsert(true)
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(days
            .into_values()
            .flat_map(|(_, entries, _)| entries.into_values())
            .filter(|e| from <= e.p && e.p < to)
            .map(|e| ConversationFacts {
                rating: e.s.zip(e.r.map(|r| r.clamp(0, 255) as u8)),
                id: e.i,
                category: e.c,
                agent_id: e.a,
                agent_name: e.n,
                queued_at: e.q,
                paired_at: e.p,
                first_agent_at: e.f,
                ended_at: e.e,
            })
            .collect())
    }

    /// A day's entries, read from the conversations and their ratings.
    async fn build_day(&self, day: i64) -> StoreResult<HashMap<String, Entry>> {
        let cursor = self
            .conversations
            .clone_with_type::<FactsDoc>()
            .find(doc! {"paired_at": {"$gte": day * DAY_MS, "$lt": (day + 1) * DAY_MS}, "kind": "service"})
            .projection(projection())
            .await
            .map_err(unavailable)?;
        let docs: Vec<FactsDoc> = cursor.try_collect().await.map_err(unavailable)?;
        let mut entries: HashMap<String, Entry> = docs.into_iter().map(|d| (d.id.clone(), d.entry())).collect();
        self.join_ratings(&mut entries).await?;
        Ok(entries)
    }

    /// Fills in the ratings of `entries` (by conversation id).
    async fn join_ratings(&self, entries: &mut HashMap<String, Entry>) -> StoreResult<()> {
        let ids: Vec<String> = entries.keys().cloned().collect();
        for chunk in ids.chunks(IN_CHUNK * 32) {
            let cursor = self
                .db
                .collection::<Document>("ratings")
                .find(doc! {"_id": {"$in": chunk}})
                .await
                .map_err(unavailable)?;
            let rated: Vec<Document> = cursor.try_collect().await.map_err(unavailable)?;
            for rating in rated {
                if let (Ok(id), Some((scale, score))) = (rating.get_str("_id"), rating_of(&rating))
                    && let Some(entry) = entries.get_mut(id)
                {
                    (entry.s, entry.r) = (Some(scale), Some(score));
                }
            }
        }
        Ok(())
    }
}

fn rating_of(doc: &Document) -> Option<(RatingScale, i32)> {
    let scale = match doc.get_str("scale").ok()? {
        "thumbs" => RatingScale::Thumbs,
        _ => RatingScale::Stars,
    };
    let score = doc
        .get_i32("score")
        .ok()
        .or_else(|| doc.get_i64("score").ok().and_then(|v| i32::try_from(v).ok()))?;
    Some((scale, score))
}
