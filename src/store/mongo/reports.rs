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
//! - every write of the archive that changes a conversation's facts also sets its
//!   `touched` to the server's time (`$currentDate`: one clock, whatever the nodes'
//!   clocks say), and so does a rating (after it is stored, and again when a retry finds
//!   it stored);
//! - per UTC day of pairing, `report_days` holds a small pointer document `{_id: day,
//!   generation, built_at, version, chunks, format}` and `report_chunks` the facts of that day's service
//!   conversations in chunks of at most [`CHUNK`] entries (`_id` `day:version:n`: no day,
//!   however busy, nears the 16 MB document limit). `built_at` is the server's time when the reader that
//!   wrote it started (`hello`'s `localTime`);
//! - the pointer and each chunk carry the [`DAY_FORMAT`] of the build that wrote them: a
//!   day whose pointer or any chunk has another (an older build's, which kept other
//!   figures or derived them otherwise; absent before formats were kept) is rebuilt from
//!   the truth on read, as a day never cached is. Both carry it so that a day saved by an
//!   older build during a rolling upgrade (its pointer swapped by a build that does not
//!   know the field, its chunks without it) is rebuilt too;
//! - a report reads the pointers of its days and the chunks of their versions, builds the
//!   missing days from the conversations (one ranged query per run of missing days), then
//!   patches in every conversation of its days touched since the oldest `built_at` less
//!   [`IN_FLIGHT_MARGIN`] (a write stamped just before the read began may commit just
//!   after it), with their ratings. It saves a changed day
//!   by writing new chunks, then swapping the pointer only if it still holds the `generation`
//!   and `version` it read (else its chunks are removed: another reader or an erasure
//!   came first), then removing the old chunks; an unchanged day only gets the new
//!   `built_at`, so a quiet day never drags `since` back. A write that lands while a day
//!   is read is stamped after that read's start (less the margin), so the next report
//!   patches it in: a report is never older than the writes done before it began.
//! - An erasure raises the `generation` of the erased conversations' days and takes their
//!   version away: they are rebuilt from the truth, and a report that read them before
//!   cannot save them back.
//!
//! - Every node readies the last [`crate::store::REPORTS_KEPT_READY_DAYS`] days at start and
//!   every [`crate::store::REPORTS_READY_EVERY`] ([`MongoStore::ready_days`]: a report over
//!   them, its facts unused), so the first report of the month after a start reads the
//!   cache (100,000 conversations: ~0.4 s against ~12 s built from the conversations, on
//!   the tests' MongoDB-wire server), and a report's patch is minutes' worth of writes.
//!   Its first pass also readies every older day back to the first conversation, window
//!   by window, newest first: a day is built once (the cache outlives the process), so
//!   a report over any range reads the cache, not only one of the last month.
//!
//! Customers who left unserved and offline messages are read by their own time indexes:
//! they are one small document each, and far fewer than conversations.

use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};

use bson::{Document, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::{IN_CHUNK, MongoStore, Named, all, ensure_indexes, index, unavailable};
use crate::core::bots::{Outcome, TakenOver};
use crate::store::{
    ConversationFacts, Millis, QueueAbandoned, RatingScale, ReportFacts, ReportStore, Side, StoreResult, Via,
};

const DAY_MS: i64 = 86_400_000;
/// Writes stamped this much before a cached day's read began are patched in again: a
/// write's stamp is taken as the server applies it, a moment before it is visible
/// (harmless: a patch replaces a conversation's facts whole).
const IN_FLIGHT_MARGIN: i64 = 5_000;
/// The `meta` document marking [`MongoStore::backfill_first_agent_lines`] done.
const BACKFILLED: &str = "reports_first_agent_backfilled";
/// Entries per cached chunk: ~200 bytes each, so a chunk stays near 2 MB.
pub(super) const CHUNK: usize = 10_000;
/// The format of a cached day. Raise it whenever what an [`Entry`] holds, or how it is
/// derived from the truth, changes: every day cached before is then rebuilt on read.
const DAY_FORMAT: u32 = 1;

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
    /// The bot outcome: 1 resolved by the bot, 2 handed over and taken by a person, 3
    /// handed over and taken by nobody, 0 (or absent, in a day cached before it was kept)
    /// no bot.
    #[serde(default, skip_serializing_if = "is_zero")]
    b: u8,
    /// Handed over: when the customer began to wait for a person, and when a person took
    /// it (absent in a day cached before they were kept: the bot's pairing, both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<Millis>,
}

fn is_zero(b: &u8) -> bool {
    *b == 0
}

const REPORT_DAYS: Named<DayDoc> = Named::new("report_days");
const REPORT_CHUNKS: Named<ChunkDoc> = Named::new("report_chunks");
const ABANDONED: Named<AbandonedDoc> = Named::new("abandoned");

impl Entry {
    /// Keeps `outcome` in `b`, `w` and `t`.
    fn with_bot(mut self, outcome: Option<Outcome>) -> Self {
        self.b = match outcome {
            None => 0,
            Some(Outcome::ResolvedByBot) => 1,
            Some(Outcome::HandedOver(Some(taken))) => {
                self.w = Some(taken.waited_from);
                self.t = Some(taken.taken_at);
                2
            }
            Some(Outcome::HandedOver(None)) => 3,
        };
        self
    }

    fn bot(&self) -> Option<Outcome> {
        match self.b {
            1 => Some(Outcome::ResolvedByBot),
            2 => Some(Outcome::HandedOver(Some(TakenOver {
                waited_from: self.w.unwrap_or(self.p),
                taken_at: self.t.unwrap_or(self.p),
            }))),
            3 => Some(Outcome::HandedOver(None)),
            _ => None,
        }
    }
}

/// A cached day's pointer: which chunks hold its facts now.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DayDoc {
    /// Days since the Unix epoch (UTC).
    #[serde(rename = "_id")]
    day: i64,
    /// Raised by an erasure of one of its conversations.
    generation: i64,
    built_at: Millis,
    /// `None` after an erasure: rebuilt on the next report.
    version: Option<String>,
    chunks: u32,
    /// [`DAY_FORMAT`] of the build that saved it (0: one from before formats were kept).
    #[serde(default)]
    format: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChunkDoc {
    /// `day:version:n`.
    #[serde(rename = "_id")]
    id: String,
    day: i64,
    version: String,
    /// The entries as one JSON array in one string: a server decodes and encodes one value
    /// per chunk, not ten per conversation (the tests' MongoDB-wire server took ~0.8 s to
    /// return 100,000 entries as BSON sub-documents; packed, the whole warm 30-day report
    /// over them went from ~1.2 s to ~0.4 s). `None` in a chunk of an older build (its
    /// entries were sub-documents): the day is rebuilt.
    #[serde(default)]
    packed: Option<String>,
    /// [`DAY_FORMAT`] of the build that wrote it (0: one from before formats were kept).
    #[serde(default)]
    format: u32,
}

impl ChunkDoc {
    /// Its entries, when it is of this build's format and reads as such.
    fn entries(&self) -> Option<Vec<Entry>> {
        if self.format != DAY_FORMAT {
            return None;
        }
        serde_json::from_str(self.packed.as_deref()?).ok()
    }
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
    /// Only `at`, `from_agent_id` and `to_agent_id` (projected): who it opened with, who
    /// handed it on, to whom.
    #[serde(default)]
    transfers: Vec<TransferFrom>,
}

#[derive(Debug, Deserialize)]
struct TransferFrom {
    at: Millis,
    from_agent_id: String,
    #[serde(default)]
    to_agent_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ClosedAt {
    ended_at: Millis,
}

/// Who wrote a line of a bucket, how it came, and when (the backfill's projection).
#[derive(Debug, Deserialize)]
struct LineWho {
    from: Side,
    at: Millis,
    #[serde(default)]
    via: Option<Via>,
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
    "first_agent_at": 1, "closed.ended_at": 1, "transfers.at": 1, "transfers.from_agent_id": 1,
    "transfers.to_agent_id": 1}
}

impl FactsDoc {
    fn entry(self) -> Entry {
        let bot = crate::store::reports::bot_outcome(
            &self.agent_id,
            self.paired_at,
            self.transfers
                .iter()
                .map(|t| (t.at, t.from_agent_id.as_str(), t.to_agent_id.as_deref())),
        );
        Entry {
            b: 0,
            w: None,
            t: None,
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
        .with_bot(bot)
    }
}

/// A day as one report holds it.
struct Held {
    /// The pointer read (`None`: the day had none).
    pointer: Option<DayDoc>,
    entries: HashMap<String, Entry>,
    /// Read whole from the cache (else built from the conversations by this report).
    cached: bool,
    /// To be saved: built, or patched.
    changed: bool,
}

fn chunk_id(day: i64, version: &str, n: u32) -> String {
    format!("{day}:{version}:{n}")
}

impl MongoStore {
    pub(super) async fn create_report_indexes(&self) -> StoreResult<()> {
        ensure_indexes(
            &self.conversations,
            [index(
                doc! {super::archive::TOUCHED: 1, "paired_at": 1},
                "touched_paired",
            )],
        )
        .await?;
        ensure_indexes(&self.collection(ABANDONED), [index(doc! {"left_at": 1}, "left_at")]).await?;
        ensure_indexes(
            &self.collection(REPORT_CHUNKS),
            [index(doc! {"day": 1, "version": 1}, "day_version")],
        )
        .await
    }

    /// Once per database: notes the first agent line of every conversation archived before
    /// the reports existed (by an older build), from its message buckets, so its reports do
    /// not count those conversations unanswered; then marks it done in `meta`. Safe to run
    /// twice or on two nodes at once (`$min`). Run in the background at connect, so it may
    /// read the buckets the archive writer is filling meanwhile (a fresh database's first
    /// conversations): it keeps the writer's rule, a person's lines only
    /// ([`reports::is_a_persons_line`](crate::store::reports::is_a_persons_line)), so both
    /// note the same first line.
    pub(super) async fn backfill_first_agent_lines(&self) -> StoreResult<()> {
        let meta = self.db.collection::<Document>("meta");
        if meta
            .find_one(doc! {"_id": BACKFILLED})
            .await
            .map_err(unavailable)?
            .is_some()
        {
            return Ok(());
        }
        let buckets: Vec<Document> = all(self
            .db
            .collection::<Document>("message_buckets")
            .find(doc! {"messages.from": "agent"})
            .projection(doc! {"conversation_id": 1, "messages.from": 1, "messages.at": 1, "messages.via": 1}))
        .await?;
        let mut firsts: HashMap<String, Millis> = HashMap::new();
        for bucket in &buckets {
            let Ok(conversation) = bucket.get_str("conversation_id") else {
                continue;
            };
            let lines = bucket.get_array("messages").map(|m| m.as_slice()).unwrap_or_default();
            // A line that does not read is skipped, not the whole backfill failed.
            let first = lines
                .iter()
                .filter_map(|m| bson::from_bson::<LineWho>(m.clone()).ok())
                .filter(|m| crate::store::reports::is_a_persons_line(m.from, m.via))
                .map(|m| m.at)
                .min();
            if let Some(at) = first {
                let known = firsts.entry(conversation.to_string()).or_insert(at);
                *known = (*known).min(at);
            }
        }
        let now = crate::clock::now_ms();
        for (id, at) in &firsts {
            self.conversations
                .update_one(
                    doc! {"_id": id},
                    doc! {"$min": {"first_agent_at": at}, "$currentDate": {super::archive::TOUCHED: true}},
                )
                .await
                .map_err(unavailable)?;
        }
        let marked = meta.insert_one(doc! {"_id": BACKFILLED, "at": now}).await;
        match marked {
            Err(e) if !super::is_duplicate_key(&e) => return Err(unavailable(e)),
            _ => {}
        }
        if !firsts.is_empty() {
            tracing::info!(
                conversations = firsts.len(),
                "noted the first agent line of conversations archived before the reports"
            );
        }
        Ok(())
    }

    /// Keeps the customers who left unserved, once each by id: one unordered `update`
    /// command of upserts per [`super::UPDATE_CHUNK`] of them.
    pub(super) async fn keep_abandoned(&self, abandoned: &[&QueueAbandoned]) -> StoreResult<()> {
        for chunk in abandoned.chunks(super::UPDATE_CHUNK) {
            let statements = chunk
                .iter()
                .map(|a| {
                    let set = doc! {"category": &a.category, "queued_at": a.queued_at, "left_at": a.left_at};
                    doc! {"q": {"_id": &a.id}, "u": {"$setOnInsert": set}, "upsert": true}
                })
                .collect();
            let errors = self.update_command_on("abandoned", statements, false).await?;
            // Two writers upserting the same new id at once: it is kept, once.
            if let Some((_, code, message)) = errors.into_iter().find(|(_, code, _)| *code != super::DUPLICATE_KEY) {
                return Err(unavailable(format!(
                    "keeping a customer who left unserved: {message} ({code})"
                )));
            }
        }
        Ok(())
    }

    /// The days (UTC) these conversations were paired on, read before an erasure removes
    /// them, so it can take those days' cached facts away after ([`Self::forget_report_days`]).
    pub(super) async fn report_days_of(&self, ids: &[String]) -> StoreResult<BTreeSet<i64>> {
        let mut days = BTreeSet::new();
        for chunk in ids.chunks(IN_CHUNK * 32) {
            let docs: Vec<Document> = all(self
                .conversations
                .clone_with_type::<Document>()
                .find(doc! {"_id": {"$in": chunk}})
                .projection(doc! {"paired_at": 1}))
            .await?;
            days.extend(
                docs.iter()
                    .filter_map(|d| d.get_i64("paired_at").ok())
                    .map(|p| p.div_euclid(DAY_MS)),
            );
        }
        Ok(days)
    }

    /// Takes the cached facts of `days` away (after an erasure): their `generation` is raised, so a
    /// report that read them before cannot save them back, and they are rebuilt.
    pub(super) async fn forget_report_days(&self, days: &BTreeSet<i64>) -> StoreResult<()> {
        for day in days {
            self.collection(REPORT_DAYS)
                .update_one(
                    doc! {"_id": day},
                    doc! {"$inc": {"generation": 1}, "$set": {"version": bson::Bson::Null, "built_at": 0_i64, "chunks": 0}},
                )
                .upsert(true)
                .await
                .map_err(unavailable)?;
            self.collection(REPORT_CHUNKS)
                .delete_many(doc! {"day": day})
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// The day of the first conversation ever paired, by the `paired` index.
    async fn first_paired_day(&self) -> StoreResult<Option<i64>> {
        let raw: Collection<Document> = self.conversations.clone_with_type();
        let first = raw
            .find_one(doc! {})
            .sort(doc! {"paired_at": 1, "_id": 1})
            .projection(doc! {"paired_at": 1})
            .await
            .map_err(unavailable)?;
        Ok(first
            .and_then(|d| d.get_i64("paired_at").ok())
            .map(|at| at.div_euclid(DAY_MS)))
    }

    /// The cached days among `first..=last` whose chunks are all there, by day.
    async fn cached_days(&self, first: i64, last: i64) -> StoreResult<HashMap<i64, Held>> {
        let pointers: Vec<DayDoc> = all(self
            .collection(REPORT_DAYS)
            .find(doc! {"_id": {"$gte": first, "$lte": last}}))
        .await?;
        let wanted: Vec<String> = pointers
            .iter()
            .filter_map(|p| p.version.as_ref().map(|v| (p, v)))
            .flat_map(|(p, v)| (0..p.chunks).map(move |n| chunk_id(p.day, v, n)))
            .collect();
        let mut chunks: HashMap<String, ChunkDoc> = HashMap::new();
        for ids in wanted.chunks(IN_CHUNK * 32) {
            let found: Vec<ChunkDoc> = all(self.collection(REPORT_CHUNKS).find(doc! {"_id": {"$in": ids}})).await?;
            chunks.extend(found.into_iter().map(|c| (c.id.clone(), c)));
        }
        let mut days = HashMap::new();
        for pointer in pointers {
            let mut entries = HashMap::new();
            let whole = match &pointer.version {
                Some(_) if pointer.format != DAY_FORMAT => false,
                Some(version) => (0..pointer.chunks).all(|n| {
                    match chunks
                        .remove(&chunk_id(pointer.day, version, n))
                        .and_then(|c| c.entries())
                    {
                        Some(read) => {
                            entries.extend(read.into_iter().map(|e| (e.i.clone(), e)));
                            true
                        }
                        None => false,
                    }
                }),
                None => false,
            };
            // A day without a version (erased), of another format, or whose chunks were
            // replaced meanwhile, is rebuilt; its pointer is kept for the swap's check.
            days.insert(
                pointer.day,
                Held {
                    entries: if whole { entries } else { HashMap::new() },
                    cached: whole,
                    changed: !whole,
                    pointer: Some(pointer),
                },
            );
        }
        Ok(days)
    }

    async fn conversation_facts(&self, from: Millis, to: Millis) -> StoreResult<Vec<ConversationFacts>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let (first_day, last_day) = (from.div_euclid(DAY_MS), (to - 1).div_euclid(DAY_MS));
        let started = self.server_time().await?;
        let mut days = self.cached_days(first_day, last_day).await?;
        // The oldest cached day's read start decides what must be patched in.
        let since = days
            .values()
            .filter(|h| h.cached)
            .filter_map(|h| h.pointer.as_ref().map(|p| p.built_at))
            .min()
            .unwrap_or(started)
            - IN_FLIGHT_MARGIN;
        // Build what is missing, one ranged query per run of missing days.
        let mut missing: Vec<i64> = (first_day..=last_day)
            .filter(|d| days.get(d).is_none_or(|h| !h.cached))
            .collect();
        missing.sort_unstable();
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for day in missing {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == day => *end = day,
                _ => runs.push((day, day)),
            }
        }
        for (start, end) in runs {
            let built = self
                .read_facts(doc! {"paired_at": {"$gte": start * DAY_MS, "$lt": (end + 1) * DAY_MS}})
                .await?;
            for day in start..=end {
                let held = days.entry(day).or_insert_with(|| Held {
                    pointer: None,
                    entries: HashMap::new(),
                    cached: false,
                    changed: true,
                });
                held.entries.clear();
                held.changed = true;
            }
            for (id, entry) in built {
                if let Some(held) = days.get_mut(&entry.p.div_euclid(DAY_MS)) {
                    held.entries.insert(id, entry);
                }
            }
        }
        // Patch what changed since in the days that were cached.
        let patches = self
            .read_facts(doc! {
                super::archive::TOUCHED: {"$gte": bson::DateTime::from_millis(since)},
                "paired_at": {"$gte": first_day * DAY_MS, "$lt": (last_day + 1) * DAY_MS},
            })
            .await?;
        for (id, entry) in patches {
            // Only days read from the cache: a day built just now holds these already.
            if let Some(held) = days.get_mut(&entry.p.div_euclid(DAY_MS))
                && held.cached
            {
                held.entries.insert(id, entry);
                held.changed = true;
            }
        }
        self.save_days(&days, started).await?;
        Ok(days
            .into_values()
            .flat_map(|h| h.entries.into_values())
            .filter(|e| from <= e.p && e.p < to)
            .map(|e| ConversationFacts {
                bot: e.bot(),
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

    /// The server's clock now (ms), the one clock `touched` is stamped by.
    async fn server_time(&self) -> StoreResult<Millis> {
        let hello = self.db.run_command(doc! {"hello": 1}).await.map_err(unavailable)?;
        hello
            .get_datetime("localTime")
            .map(|t| t.timestamp_millis())
            .map_err(|_| unavailable("the server's hello has no localTime"))
    }

    /// Saves the changed days (new chunks, then the pointer swapped if nobody came first),
    /// and gives the unchanged ones the new `built_at`.
    async fn save_days(&self, days: &HashMap<i64, Held>, started: Millis) -> StoreResult<()> {
        let mut unchanged = Vec::new();
        for (day, held) in days {
            if !held.changed {
                unchanged.push(*day);
                continue;
            }
            let version = uuid::Uuid::new_v4().simple().to_string();
            let entries: Vec<&Entry> = held.entries.values().collect();
            let chunks: Vec<ChunkDoc> = entries
                .chunks(self.report_chunk_entries)
                .enumerate()
                .map(|(n, part)| {
                    Ok(ChunkDoc {
                        id: chunk_id(*day, &version, n as u32),
                        day: *day,
                        version: version.clone(),
                        packed: Some(serde_json::to_string(part).map_err(unavailable)?),
                        format: DAY_FORMAT,
                    })
                })
                .collect::<StoreResult<_>>()?;
            let count = chunks.len() as u32;
            if !chunks.is_empty() {
                self.collection(REPORT_CHUNKS)
                    .insert_many(chunks)
                    .await
                    .map_err(unavailable)?;
            }
            let swapped = match &held.pointer {
                Some(read) => {
                    let fields = doc! {"built_at": started, "version": &version, "chunks": count, "format": DAY_FORMAT};
                    let old = read.version.clone();
                    self.collection(REPORT_DAYS)
                        .update_one(
                            doc! {"_id": day, "generation": read.generation, "version": old.as_deref()},
                            doc! {"$set": fields},
                        )
                        .await
                        .map_err(unavailable)?
                        .matched_count
                        == 1
                }
                None => {
                    let fresh = DayDoc {
                        day: *day,
                        generation: 0,
                        built_at: started,
                        version: Some(version.clone()),
                        chunks: count,
                        format: DAY_FORMAT,
                    };
                    match self.collection(REPORT_DAYS).insert_one(&fresh).await {
                        Ok(_) => true,
                        Err(e) if super::is_duplicate_key(&e) => false,
                        Err(e) => return Err(unavailable(e)),
                    }
                }
            };
            // Lost the swap: our chunks go. Won it: the chunks of the version read go.
            let stale = if swapped {
                held.pointer.as_ref().and_then(|p| p.version.clone())
            } else {
                Some(version)
            };
            if let Some(stale) = stale {
                self.collection(REPORT_CHUNKS)
                    .delete_many(doc! {"day": day, "version": stale})
                    .await
                    .map_err(unavailable)?;
            }
        }
        if !unchanged.is_empty() {
            self.collection(REPORT_DAYS)
                .update_many(doc! {"_id": {"$in": unchanged}}, doc! {"$max": {"built_at": started}})
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// The service conversations matching `filter`, as entries with their ratings.
    ///
    /// No index is named (`hint`): MongoDB's planner races the candidate plans, and for a
    /// patch the `touched` index reaches its end first (few are touched); the MongoDB-wire
    /// server the tests run walks a whole index for a hinted query (200 ms per 10,000
    /// conversations for a patch that finds none, against 3 ms unhinted).
    async fn read_facts(&self, mut filter: Document) -> StoreResult<HashMap<String, Entry>> {
        filter.insert("kind", "service");
        let docs: Vec<FactsDoc> = all(self
            .conversations
            .clone_with_type::<FactsDoc>()
            .find(filter)
            .projection(projection()))
        .await?;
        let mut entries: HashMap<String, Entry> = docs.into_iter().map(|d| (d.id.clone(), d.entry())).collect();
        let ids: Vec<String> = entries.keys().cloned().collect();
        for chunk in ids.chunks(IN_CHUNK * 32) {
            let rated: Vec<Document> = all(self
                .db
                .collection::<Document>("ratings")
                .find(doc! {"_id": {"$in": chunk}}))
            .await?;
            for rating in rated {
                if let (Ok(id), Some((scale, score))) = (rating.get_str("_id"), rating_of(&rating))
                    && let Some(entry) = entries.get_mut(id)
                {
                    (entry.s, entry.r) = (Some(scale), Some(score));
                }
            }
        }
        Ok(entries)
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

#[async_trait]
impl ReportStore for MongoStore {
    async fn report_facts(&self, from: Millis, to: Millis) -> StoreResult<ReportFacts> {
        let mut facts = ReportFacts {
            conversations: self.conversation_facts(from, to).await?,
            ..ReportFacts::default()
        };
        let abandoned: Vec<AbandonedDoc> = all(self
            .collection(ABANDONED)
            .find(doc! {"left_at": {"$gte": from, "$lt": to}}))
        .await?;
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

    /// Builds the cached days of the last [`crate::store::REPORTS_KEPT_READY_DAYS`] that are
    /// missing and patches the others, as a report over them would (its facts unused): the
    /// first report of a month after a start, or after a quiet week, reads the cache only.
    /// The first pass of this process then readies every older day with conversations,
    /// [`crate::store::REPORTS_KEPT_READY_DAYS`] at a time, newest first (built the first
    /// time only: the cache is in the database; read back once per start, ~0.4 s per
    /// 100,000 conversations on the tests' server); an older window that fails is logged
    /// and left to the reports that read it. A pass that cannot ready the recent days, or
    /// find the first conversation, is tried again next time.
    async fn ready_reports(&self, now: Millis) -> StoreResult<()> {
        use std::sync::atomic::Ordering;
        let window = crate::store::REPORTS_KEPT_READY_DAYS;
        let today = now.div_euclid(DAY_MS);
        let first = today - window + 1;
        self.conversation_facts(first * DAY_MS, (today + 1) * DAY_MS).await?;
        if self.older_days_readied.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(earliest) = self.first_paired_day().await? {
            let mut last = first - 1;
            while last >= earliest {
                let from = (last - window + 1).max(earliest);
                // A window that cannot be readied is left to the reports that read it
                // (they build what they miss), not tried again every pass from the top.
                if let Err(e) = self.conversation_facts(from * DAY_MS, (last + 1) * DAY_MS).await {
                    tracing::warn!(error = %e, first_day = from, last_day = last, "could not ready older days of the reports' cache; a report over them builds them itself");
                }
                last = from - 1;
            }
        }
        self.older_days_readied.store(true, Ordering::Relaxed);
        Ok(())
    }
}
