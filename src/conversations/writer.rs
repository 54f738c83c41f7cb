//! The hub's changes to conversations, carried out in the order it made them: one task
//! takes them from a bounded queue and applies each through [`Conversations`] (read,
//! decide, compare-and-set), so a chat's opening is stored before its end, and the hub
//! never waits on the store. The same task wakes snoozed conversations whose time came.
//!
//! Every change that took effect is reported to `notify` with the record as stored, for
//! the hub to tell the agents it concerns.
//!
//! The changes queued when the task wakes (a burst of pairings: hundreds at once) are
//! decided one after another as alone, on their records read in one go, and stored in one
//! write ([`ConversationStore::put_conversation_records`]: one durable commit on the
//! embedded store, where one each took the core from the relay); a change whose record
//! another writer stored meanwhile is applied again on its own, as before.
//!
//! Several nodes each run one: a change reaching the store twice (two nodes archiving one
//! chat) applies once, as [`Conversations::change`] decides again on what is stored; a
//! snooze that ran out is woken by whichever node looks first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::{mpsc, oneshot};

use super::{ConversationError, Conversations, OpeningKnown};
use crate::clock::now_ms;
use crate::core::conversation::{Actor, Change, Status};
use crate::core::routing::AgentId;
use crate::poison::lock;
use crate::store::deadline::within;
use crate::store::{ConversationRecord, ConversationStore, InboxQuery, Millis, StoreError, StoreResult};

/// Changes waiting for the store. A change is a pairing, a transfer, an end, a click on
/// a status or a customer's line into a parked conversation (once per reopen): a busy desk makes a few a second, so this is many minutes of them through a
/// store outage. When it is full the hub drops the change and logs it (the live chat and
/// its archive go on; only the conversation's status lags).
const QUEUE: usize = 4096;

/// The most queued changes stored in one write.
const BATCH: usize = 256;

/// How often snoozes that ran out are looked for: a snooze wakes at most this late.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The most snoozes woken in one look; the next look takes the rest.
const SWEEP_BATCH: usize = 100;

/// The longest wait between two tries of a change the store refused for an outage.
const RETRY_CAP: Duration = Duration::from_secs(5);

/// Who asks for a status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asker {
    Agent(AgentId),
    Admin,
}

/// One change, as the hub asks for it.
#[derive(Debug)]
pub enum Work {
    /// A change that follows from what happened to the chat; nobody waits for it.
    Automatic(Automatic),
    /// Someone sets its status; the answer goes to `reply`.
    SetStatus {
        id: String,
        by: Asker,
        to: Status,
        at: Millis,
        reply: oneshot::Sender<Result<ConversationRecord, ConversationError>>,
    },
}

/// What happened to a conversation's chat.
#[derive(Debug)]
pub enum Automatic {
    /// A chat was paired: its conversation exists, in `agent`'s list.
    Opened {
        id: String,
        category: String,
        customer_keys: Vec<String>,
        agent: AgentId,
        at: Millis,
    },
    /// The conversation went to `agent` (a transfer, or paired again after one).
    Assigned { id: String, agent: AgentId, at: Millis },
    /// Its live chat was ended on purpose (by its customer or agent): done. Stored as
    /// `opening` and this end make it if its opening has not reached the store yet
    /// ([`Conversations::resolve_ended`]).
    Resolved {
        id: String,
        opening: OpeningKnown,
        at: Millis,
    },
    /// Its customer came back to it and was paired with `agent`: open again (a reopen
    /// when it was resolved), in `agent`'s list.
    Continued { id: String, agent: AgentId, at: Millis },
    /// Its customer wrote into its live chat at `at` while it was parked (pending,
    /// snoozed): open again, unless its status was set after the line.
    CustomerWrote { id: String, at: Millis },
}

impl Automatic {
    fn id(&self) -> &str {
        match self {
            Automatic::Opened { id, .. }
            | Automatic::Assigned { id, .. }
            | Automatic::Resolved { id, .. }
            | Automatic::Continued { id, .. }
            | Automatic::CustomerWrote { id, .. } => id,
        }
    }
}

impl Work {
    fn id(&self) -> &str {
        match self {
            Work::Automatic(change) => change.id(),
            Work::SetStatus { id, .. } => id,
        }
    }
}

/// Who made a change that took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A `SetStatus`: its asker hears the answer through its reply as well.
    Asked,
    /// The writer on its own (an opening, a transfer, an end, a snooze that ran out).
    Automatic,
}

/// What the hub is told of each change that took effect, with the record as stored and,
/// when its status changed, from what to what (webhooks tell of status changes only). It
/// returns what must be done before an asker hears the answer (the change's webhook event
/// on local disk): awaited for an `Asked` change, let go for an automatic one.
pub type Notify = Arc<dyn Fn(ConversationRecord, Origin, Option<Change>) -> Durable + Send + Sync>;

/// What a [`Notify`] hands back for the asker to wait on.
pub type Durable = futures_util::future::BoxFuture<'static, ()>;

/// The queue into the writer task. Cheap to clone; the task ends when every clone is gone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Work>,
}

impl Writer {
    /// Starts the writer task.
    pub fn start(conversations: Conversations, notify: Notify) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(conversations, rx, notify));
        Self { tx }
    }

    /// Queues `work`; `false` when the queue is full (logged here).
    pub fn push(&self, work: Work) -> bool {
        match self.tx.try_send(work) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(work)) => {
                tracing::warn!(conversation = %work.id(), "conversation changes are behind the store; this one is dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

async fn run(conversations: Conversations, mut rx: mpsc::Receiver<Work>, notify: Notify) {
    // The next look: every SWEEP_EVERY, and sooner when a snooze set here ends sooner (a
    // snooze set on another node, or before a restart, is found by the regular look).
    let mut next_look = tokio::time::Instant::now();
    loop {
        tokio::select! {
            work = rx.recv() => match work {
                Some(work) => {
                    let mut queued = vec![work];
                    while queued.len() < BATCH {
                        match rx.try_recv() {
                            Ok(work) => queued.push(work),
                            Err(_) => break,
                        }
                    }
                    if let Some(until) = apply_queued(&conversations, queued, &notify).await {
                        next_look = next_look.min(instant_of(until));
                    }
                }
                None => return,
            },
            _ = tokio::time::sleep_until(next_look) => {
                wake_snoozes(&conversations, &notify).await;
                next_look = tokio::time::Instant::now() + SWEEP_EVERY;
            }
        }
    }
}

/// When, on the runtime's clock, the wall-clock time `at` comes.
fn instant_of(at: Millis) -> tokio::time::Instant {
    let ahead = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(ahead)
}

/// Applies `queued` in order: each run of automatic changes as one batch, a status set
/// alone (its asker waits for its own answer). The earliest end of a snooze they set.
async fn apply_queued(conversations: &Conversations, queued: Vec<Work>, notify: &Notify) -> Option<Millis> {
    let mut until: Option<Millis> = None;
    let mut automatic = Vec::new();
    for work in queued {
        match work {
            Work::Automatic(change) => automatic.push(change),
            asked @ Work::SetStatus { .. } => {
                apply_batch(conversations, std::mem::take(&mut automatic), notify).await;
                if let Some(set) = apply(conversations, asked, notify).await {
                    until = Some(until.map_or(set, |u| u.min(set)));
                }
            }
        }
    }
    apply_batch(conversations, automatic, notify).await;
    until
}

/// Applies automatic changes in order, as [`apply`] does each, with one read of their
/// records and one write of what they changed. Each is decided on the records as the
/// changes before it left them ([`Staged`]); a conversation whose write was refused (it
/// was erased, or changed by another node since the read) or failed has its changes of
/// the batch applied again one by one, in order, on what is stored: none is lost, and
/// none applied twice (a change is told only once its record is stored).
async fn apply_batch(conversations: &Conversations, changes: Vec<Automatic>, notify: &Notify) {
    if changes.len() < 2 {
        for change in changes {
            apply(conversations, Work::Automatic(change), notify).await;
        }
        return;
    }
    let staged = match Staged::read(conversations, &changes).await {
        Ok(staged) => Arc::new(staged),
        Err(e) => {
            tracing::warn!(error = %e, "conversation changes could not be read together; applying them one by one");
            for change in changes {
                apply(conversations, Work::Automatic(change), notify).await;
            }
            return;
        }
    };
    let over = conversations.over(staged.clone());
    let mut decided = Vec::with_capacity(changes.len());
    for change in changes {
        let first = staged.written();
        let outcome = apply_automatic(&over, &change).await;
        decided.push((change, outcome, first..staged.written()));
    }
    let records = staged.take_writes();
    let stored: Vec<bool> = match within(
        conversations.deadline,
        conversations.records.put_conversation_records(&records),
    )
    .await
    {
        Ok(answers) => answers.iter().map(Result::is_ok).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "conversation changes were not stored together; applying them one by one");
            vec![false; records.len()]
        }
    };
    // Conversations with a write not stored: their later changes were decided on it.
    let mut again: HashSet<String> = HashSet::new();
    for (change, outcome, writes) in decided {
        let undone = again.contains(change.id())
            || !stored[writes].iter().all(|ok| *ok)
            || matches!(outcome, Err(ConversationError::Store(_)));
        if undone {
            again.insert(change.id().to_string());
            apply(conversations, Work::Automatic(change), notify).await;
            continue;
        }
        match outcome {
            Ok(Some((record, change))) => drop(notify(record, Origin::Automatic, change)),
            Ok(None) => {}
            Err(e) => tracing::warn!(conversation = %change.id(), error = ?e, "a conversation change was not applied"),
        }
    }
}

/// A batch's records, read from the store at once, as the batch's changes leave them
/// one after another; what they wrote, in order, for one write to the store after. Its
/// compare-and-set is the store's, but for erasures: the store refuses the write of an
/// erased conversation's record, and its changes are applied again on their own.
struct Staged {
    /// Each conversation of the batch: its record, `None` when it has none.
    records: Mutex<HashMap<String, Option<ConversationRecord>>>,
    /// The records written, in order.
    writes: Mutex<Vec<ConversationRecord>>,
}

impl Staged {
    async fn read(conversations: &Conversations, changes: &[Automatic]) -> StoreResult<Self> {
        let mut ids: Vec<String> = changes.iter().map(|c| c.id().to_string()).collect();
        ids.sort_unstable();
        ids.dedup();
        let found = within(conversations.deadline, conversations.records.conversation_records(&ids)).await?;
        let mut records: HashMap<String, Option<ConversationRecord>> = ids.into_iter().map(|id| (id, None)).collect();
        for record in found {
            records.insert(record.id.clone(), Some(record));
        }
        Ok(Self {
            records: Mutex::new(records),
            writes: Mutex::new(Vec::new()),
        })
    }

    /// How many records were written so far.
    fn written(&self) -> usize {
        lock(&self.writes).len()
    }

    fn take_writes(&self) -> Vec<ConversationRecord> {
        std::mem::take(&mut *lock(&self.writes))
    }

    /// The record of `id`, which must be one of the batch's.
    fn record(&self, id: &str) -> StoreResult<Option<ConversationRecord>> {
        lock(&self.records)
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::Unavailable(format!("conversation {id} is not in the batch")))
    }
}

/// Only what a change reads and writes; the listings are the store's.
#[async_trait]
impl ConversationStore for Staged {
    async fn conversation_record(&self, id: &str) -> StoreResult<ConversationRecord> {
        self.record(id)?.ok_or(StoreError::NotFound)
    }

    async fn put_conversation_record(&self, record: &ConversationRecord) -> StoreResult<()> {
        let mut records = lock(&self.records);
        let stored = records
            .get(&record.id)
            .ok_or_else(|| StoreError::Unavailable(format!("conversation {} is not in the batch", record.id)))?;
        match (stored.as_ref().map(|r| r.version), record.version) {
            (None, 1) => {}
            (None, _) => return Err(StoreError::NotFound),
            (Some(stored), version) if version > 1 && stored == version - 1 => {}
            (Some(_), _) => return Err(StoreError::Conflict),
        }
        records.insert(record.id.clone(), Some(record.clone()));
        lock(&self.writes).push(record.clone());
        Ok(())
    }

    async fn conversation_records(&self, ids: &[String]) -> StoreResult<Vec<ConversationRecord>> {
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.record(id)?);
        }
        Ok(out)
    }

    async fn inbox(&self, _: &InboxQuery) -> StoreResult<Vec<ConversationRecord>> {
        Err(not_staged())
    }

    async fn count_inbox(&self, _: &InboxQuery) -> StoreResult<u64> {
        Err(not_staged())
    }

    async fn customer_conversation_records(&self, _: &str, _: usize) -> StoreResult<Vec<ConversationRecord>> {
        Err(not_staged())
    }

    async fn snoozes_due(&self, _: Millis, _: usize) -> StoreResult<Vec<ConversationRecord>> {
        Err(not_staged())
    }
}

fn not_staged() -> StoreError {
    StoreError::Unavailable("a batch of changes reads records only".into())
}

/// Applies `work`; the end of the snooze it set, if it set one.
async fn apply(conversations: &Conversations, work: Work, notify: &Notify) -> Option<Millis> {
    match work {
        Work::SetStatus { id, by, to, at, reply } => {
            // The asker is waiting: one try, and they hear why it failed.
            let actor = match &by {
                Asker::Agent(agent) => Actor::Agent(agent),
                Asker::Admin => Actor::Admin,
            };
            let changed = conversations
                .change(&id, false, |c, rules| c.set_status(actor, to, at, rules))
                .await;
            let snoozed_until = changed.as_ref().ok().and_then(|(_, record)| record.snoozed_until);
            if let Ok((Some(change), record)) = &changed {
                if change.to == Status::Resolved && record.offline {
                    offline_handled(conversations, record, &by).await;
                }
                notify(record.clone(), Origin::Asked, Some(*change)).await;
            }
            let _ = reply.send(changed.map(|(_, record)| record));
            snoozed_until
        }
        Work::Automatic(automatic) => {
            // Nobody waits for these: tried until the store takes them (in order).
            let mut pause = Duration::from_millis(100);
            loop {
                match apply_automatic(conversations, &automatic).await {
                    Ok(Some((record, change))) => {
                        // Nobody is answered: nothing to wait for.
                        drop(notify(record, Origin::Automatic, change));
                        return None;
                    }
                    Ok(None) => return None,
                    Err(ConversationError::Store(e)) => {
                        tracing::warn!(conversation = %automatic.id(), error = %e, "a conversation change waits for the store");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_CAP);
                    }
                    Err(e) => {
                        tracing::warn!(conversation = %automatic.id(), error = ?e, "a conversation change was not applied");
                        return None;
                    }
                }
            }
        }
    }
}

/// Applies a change nobody waits for; the record when it changed, and its status change
/// if it made one.
async fn apply_automatic(
    conversations: &Conversations,
    change: &Automatic,
) -> Result<Option<(ConversationRecord, Option<Change>)>, ConversationError> {
    match change {
        Automatic::Opened {
            id,
            category,
            customer_keys,
            agent,
            at,
        } => {
            let opened = conversations
                .open(id, category, customer_keys.clone(), *at, false)
                .await?;
            // A holder stored already came with this opening, or after it (a late opening
            // of a conversation continued or handed on since, on another node): the
            // opening, the conversation's first event, never takes it back.
            if opened.holder.is_some() {
                return Ok(None);
            }
            Ok(assign(conversations, id, agent, *at).await?.map(|r| (r, None)))
        }
        Automatic::Assigned { id, agent, at } => Ok(assign(conversations, id, agent, *at).await?.map(|r| (r, None))),
        Automatic::Resolved { id, opening, at } => {
            let (change, record) = conversations.resolve_ended(id, opening, *at).await?;
            Ok(change.map(|change| (record, Some(change))))
        }
        Automatic::Continued { id, agent, at } => {
            let ((moved, reopened), record) = conversations
                .change(id, true, |c, _| {
                    let moved = c.holder() != Some(agent);
                    let reopened = c.customer_returned(*at);
                    c.assigned(agent.clone(), *at);
                    Ok((moved, reopened))
                })
                .await?;
            Ok((moved || reopened.is_some()).then_some((record, reopened)))
        }
        Automatic::CustomerWrote { id, at } => {
            let (change, record) = conversations.change(id, true, |c, _| Ok(c.customer_line(*at))).await?;
            Ok(change.map(|change| (record, Some(change))))
        }
    }
}

/// An offline message's conversation resolved: the message is handled, by whoever resolved
/// it (an admin: by its holder, who served it), however it was resolved (the console's
/// keyboard, the list, the API). A store that fails here is logged: the conversation is
/// resolved, and the message can still be marked by hand.
async fn offline_handled(conversations: &Conversations, record: &ConversationRecord, by: &Asker) {
    let by = match by {
        Asker::Agent(agent) => Some(agent.0.as_str()),
        Asker::Admin => record.holder.as_deref(),
    };
    let Some(by) = by else { return };
    if let Err(e) = conversations.store().mark_offline_message_handled(&record.id, by).await {
        tracing::warn!(id = %record.id, error = %e, "an offline message's conversation was resolved but the message not marked handled");
    }
}

async fn assign(
    conversations: &Conversations,
    id: &str,
    agent: &AgentId,
    at: Millis,
) -> Result<Option<ConversationRecord>, ConversationError> {
    let (moved, record) = conversations
        .change(id, true, |c, _| {
            let moved = c.holder() != Some(agent);
            c.assigned(agent.clone(), at);
            Ok(moved)
        })
        .await?;
    Ok(moved.then_some(record))
}

async fn wake_snoozes(conversations: &Conversations, notify: &Notify) {
    let now = now_ms();
    let due = match conversations.snoozes_due(now, SWEEP_BATCH).await {
        Ok(due) => due,
        Err(e) => return tracing::warn!(error = %e, "snoozed conversations could not be read"),
    };
    for record in due {
        match conversations.change(&record.id, false, |c, _| Ok(c.tick(now))).await {
            Ok((Some(w), woken)) => drop(notify(woken, Origin::Automatic, Some(w.change))),
            Ok((None, _)) => {}
            Err(e) => tracing::warn!(conversation = %record.id, error = ?e, "a snooze could not be woken"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::conversation::Rules;
    use crate::store::{ConversationStatus, MemoryStore};

    /// Conversation c1 of category sales opened by Ann at `at`, for the customer `keys`.
    fn opened(keys: &[&str], at: Millis) -> Automatic {
        Automatic::Opened {
            id: "c1".into(),
            category: "sales".into(),
            customer_keys: keys.iter().map(|k| k.to_string()).collect(),
            agent: AgentId("ann".into()),
            at,
        }
    }

    /// Conversation c1's end at `at`, of a chat of `category` paired at `paired_at` (all
    /// its node knew of the opening).
    fn resolved(category: &str, paired_at: Millis, at: Millis) -> Automatic {
        Automatic::Resolved {
            id: "c1".into(),
            opening: OpeningKnown {
                category: category.into(),
                paired_at,
                ..OpeningKnown::default()
            },
            at,
        }
    }

    /// Conversation c1's record as stored now.
    async fn record_of_c1(conversations: &Conversations) -> ConversationRecord {
        conversations.change("c1", false, |_, _| Ok(())).await.unwrap().1
    }

    /// Forwards to a memory store, counting the record writes, and lets a test store a
    /// rival record just before a batch is written (another node's change meanwhile).
    struct Counting {
        inner: MemoryStore,
        alone: std::sync::atomic::AtomicUsize,
        batches: std::sync::atomic::AtomicUsize,
        rival: std::sync::Mutex<Option<ConversationRecord>>,
    }

    impl Counting {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                inner: MemoryStore::new(),
                alone: Default::default(),
                batches: Default::default(),
                rival: Default::default(),
            })
        }

        fn counts(&self) -> (usize, usize) {
            use std::sync::atomic::Ordering::Relaxed;
            (self.alone.load(Relaxed), self.batches.load(Relaxed))
        }
    }

    #[async_trait]
    impl ConversationStore for Counting {
        async fn conversation_record(&self, id: &str) -> StoreResult<ConversationRecord> {
            self.inner.conversation_record(id).await
        }
        async fn put_conversation_record(&self, record: &ConversationRecord) -> StoreResult<()> {
            self.alone.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.put_conversation_record(record).await
        }
        async fn put_conversation_records(&self, records: &[ConversationRecord]) -> StoreResult<Vec<StoreResult<()>>> {
            self.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let rival = self.rival.lock().unwrap().take();
            if let Some(rival) = rival {
                self.inner.put_conversation_record(&rival).await.unwrap();
            }
            self.inner.put_conversation_records(records).await
        }
        async fn conversation_records(&self, ids: &[String]) -> StoreResult<Vec<ConversationRecord>> {
            self.inner.conversation_records(ids).await
        }
        async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<ConversationRecord>> {
            self.inner.inbox(query).await
        }
        async fn count_inbox(&self, query: &InboxQuery) -> StoreResult<u64> {
            self.inner.count_inbox(query).await
        }
        async fn customer_conversation_records(
            &self,
            customer_key: &str,
            limit: usize,
        ) -> StoreResult<Vec<ConversationRecord>> {
            self.inner.customer_conversation_records(customer_key, limit).await
        }
        async fn snoozes_due(&self, now: Millis, limit: usize) -> StoreResult<Vec<ConversationRecord>> {
            self.inner.snoozes_due(now, limit).await
        }
    }

    /// What a notify was told: each record's id and version, in order.
    type Told = Arc<std::sync::Mutex<Vec<(String, u64)>>>;

    /// Conversations over `records`, and a notify that keeps what it is told.
    fn over(records: Arc<Counting>) -> (Conversations, Notify, Told) {
        let conversations = Conversations::new(Arc::new(MemoryStore::new()), Rules::default()).over(records);
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = told.clone();
        let notify: Notify = Arc::new(move |record: ConversationRecord, _, _| {
            kept.lock().unwrap().push((record.id.clone(), record.version));
            Box::pin(async {}) as Durable
        });
        (conversations, notify, told)
    }

    /// A burst of changes to many conversations, some of one conversation.
    fn burst() -> Vec<Automatic> {
        let mut changes = Vec::new();
        for (id, agent) in [("c1", "ann"), ("c2", "bob"), ("c3", "carl")] {
            changes.push(Automatic::Opened {
                id: id.into(),
                category: "sales".into(),
                customer_keys: vec![format!("v:{id}")],
                agent: AgentId(agent.into()),
                at: 10,
            });
        }
        changes.push(Automatic::Assigned {
            id: "c2".into(),
            agent: AgentId("dora".into()),
            at: 20,
        });
        changes.push(resolved("sales", 10, 30));
        changes.push(Automatic::CustomerWrote {
            id: "c3".into(),
            at: 40,
        });
        changes
    }

    async fn stored(records: &Counting) -> Vec<ConversationRecord> {
        let ids = ["c1", "c2", "c3"].map(String::from);
        records.conversation_records(&ids).await.unwrap()
    }

    /// A burst of pairings took one durable commit (and one fold) each, at the hub's
    /// priority: the changes queued at a wake are stored in one write, each as it would
    /// have been alone, and told in the same order.
    #[tokio::test]
    async fn changes_queued_together_are_stored_in_one_write_as_each_alone() {
        let alone = Counting::new();
        let (conversations, notify, told_alone) = over(alone.clone());
        for change in burst() {
            apply(&conversations, Work::Automatic(change), &notify).await;
        }

        let batched = Counting::new();
        let (conversations, notify, told_batched) = over(batched.clone());
        let queued = burst().into_iter().map(Work::Automatic).collect();
        apply_queued(&conversations, queued, &notify).await;

        assert_eq!(batched.counts(), (0, 1));
        assert_eq!(stored(&batched).await, stored(&alone).await);
        assert_eq!(*told_batched.lock().unwrap(), *told_alone.lock().unwrap());
    }

    /// Another node stored c1 (its end, before the opening here) between the batch's read
    /// and its write: c1's changes of the batch are refused together and applied again on
    /// what is stored, so the end stands; the others are stored by the batch.
    #[tokio::test]
    async fn a_batch_change_whose_record_another_node_wrote_meanwhile_is_applied_again() {
        let records = Counting::new();
        let (conversations, notify, told) = over(records.clone());
        let rival = Conversations::new(Arc::new(MemoryStore::new()), Rules::default());
        let (_, ended) = rival
            .resolve_ended(
                "c1",
                &OpeningKnown {
                    category: "sales".into(),
                    agent: Some(AgentId("ann".into())),
                    paired_at: 10,
                    ..OpeningKnown::default()
                },
                15,
            )
            .await
            .unwrap();
        *records.rival.lock().unwrap() = Some(ended.clone());
        let queued = burst()
            .into_iter()
            .filter(|change| !matches!(change, Automatic::Resolved { .. }))
            .map(Work::Automatic)
            .collect();
        apply_queued(&conversations, queued, &notify).await;

        let c1 = records.conversation_record("c1").await.unwrap();
        assert_eq!(
            (c1.status, c1.resolved_at, c1.customer_keys.clone()),
            (ConversationStatus::Resolved, Some(15), vec!["v:c1".to_string()])
        );
        let c2 = records.conversation_record("c2").await.unwrap();
        assert_eq!((c2.holder.as_deref(), c2.version), (Some("dora"), 3));
        // c1's opening found the end's holder: it only added the keys, and tells nothing.
        let told = told.lock().unwrap().clone();
        assert!(!told.iter().any(|(id, _)| id == "c1"), "{told:?}");
    }

    /// On several nodes a chat's end is reported by the customer's node and a status by the
    /// agent's: the end's resolve can reach the store after a snooze the agent set later.
    #[tokio::test]
    async fn an_end_reported_late_does_not_undo_a_status_set_after_it() {
        let conversations = Conversations::new(Arc::new(MemoryStore::new()), Rules::default());
        let ann = AgentId("ann".into());
        let opened = opened(&[], 10);
        apply_automatic(&conversations, &opened).await.unwrap();
        let until = 50 + 3_600_000;
        conversations
            .change("c1", false, |c, rules| {
                c.set_status(Actor::Agent(&ann), Status::Snoozed { until }, 50, rules)
            })
            .await
            .unwrap();

        let late_end = resolved("sales", 40, 40);
        assert_eq!(apply_automatic(&conversations, &late_end).await.unwrap(), None);
        let record = record_of_c1(&conversations).await;
        assert_eq!(
            (record.status, record.snoozed_until, record.status_since),
            (ConversationStatus::Snoozed, Some(until), 50)
        );

        // An end after the snooze resolves it, as ending a chat does.
        let later_end = resolved("sales", 10, 70);
        let (resolved, _) = apply_automatic(&conversations, &later_end).await.unwrap().unwrap();
        assert_eq!(
            (resolved.status, resolved.status_since),
            (ConversationStatus::Resolved, 70)
        );
    }

    /// On several nodes the end can reach the store before the opening: the customer's
    /// node stalls with the opening queued, and the agent ends the chat on the node that
    /// inherited it. The end stores the conversation resolved, and the late opening
    /// completes it (keys, when it opened, its holder) but keeps its status.
    #[tokio::test]
    async fn an_end_stored_before_the_opening_stays_resolved_once_the_opening_comes() {
        let conversations = Conversations::new(Arc::new(MemoryStore::new()), Rules::default());
        let end = resolved("sales", 40, 40);
        let (ended, _) = apply_automatic(&conversations, &end).await.unwrap().unwrap();
        assert_eq!(ended.status, ConversationStatus::Resolved);

        let late_opening = opened(&["v:carla"], 10);
        apply_automatic(&conversations, &late_opening).await.unwrap();
        let record = record_of_c1(&conversations).await;
        assert_eq!(
            (
                record.status,
                record.category.as_str(),
                record.customer_keys.clone(),
                record.opened_at,
                record.holder.as_deref()
            ),
            (
                ConversationStatus::Resolved,
                "sales",
                vec!["v:carla".to_string()],
                10,
                Some("ann")
            )
        );
    }

    /// The end came first, then Carla came back and Bob took the conversation, all while
    /// the node that paired her first was stalled with her opening queued: that late
    /// opening completes what only it knows (her keys, the category) and moves nothing
    /// (it is older than Bob's turn).
    #[tokio::test]
    async fn a_late_opening_completes_a_conversation_continued_since_and_leaves_its_holder() {
        let conversations = Conversations::new(Arc::new(MemoryStore::new()), Rules::default());
        let end = resolved("", 40, 40);
        apply_automatic(&conversations, &end).await.unwrap().unwrap();
        let continued = Automatic::Continued {
            id: "c1".into(),
            agent: AgentId("bob".into()),
            at: 50,
        };
        apply_automatic(&conversations, &continued).await.unwrap();

        let late_opening = opened(&["v:carla"], 10);
        apply_automatic(&conversations, &late_opening).await.unwrap();
        let record = record_of_c1(&conversations).await;
        assert_eq!(
            (
                record.category.as_str(),
                record.customer_keys.clone(),
                record.holder.as_deref()
            ),
            ("sales", vec!["v:carla".to_string()], Some("bob"))
        );
    }

    /// The node that paired the chat died with its opening queued, and the node that
    /// inherited the chat ended it: the opening never comes. The record the end stores is
    /// the one the opening and the end would have made (its category, its customer's keys,
    /// its agent, opened when paired): listed by category, found by the customer, and its
    /// resolution timed from the pairing in reports. Before, it had no category, keys nor
    /// holder, and was opened when it ended.
    #[tokio::test]
    async fn an_end_whose_opening_never_comes_stores_the_conversation_complete() {
        let conversations = Conversations::new(Arc::new(MemoryStore::new()), Rules::default());
        let end = Automatic::Resolved {
            id: "c1".into(),
            opening: OpeningKnown {
                category: "sales".into(),
                customer_keys: vec!["v:carla".into()],
                agent: Some(AgentId("ann".into())),
                paired_at: 10,
            },
            at: 40,
        };
        apply_automatic(&conversations, &end).await.unwrap().unwrap();
        let record = record_of_c1(&conversations).await;
        assert_eq!(
            (
                record.status,
                record.category.as_str(),
                record.customer_keys.clone(),
                record.holder.as_deref(),
                record.opened_at,
                record.resolved_at,
                record.resolutions
            ),
            (
                ConversationStatus::Resolved,
                "sales",
                vec!["v:carla".to_string()],
                Some("ann"),
                10,
                Some(40),
                1
            )
        );
    }
}
