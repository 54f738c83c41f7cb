//! The in-memory store: the reference implementation of the storage contract,
//! used by tests and by `STORE=memory` (nothing survives a restart).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;

mod accounts;
mod api_tokens;
mod appointments;
mod archive;
mod canned;
mod conversations;
mod customers;
mod desk;
mod erasure;
mod inbound_mail;
mod labels;
mod offline;
mod outbox;
mod ratings;
mod reply_tokens;
mod reports;
mod rooms;
mod webhooks;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Tests of the archive writer: the most events it may hand over in one call (`None`:
    /// the default), and the size of each call, to see its batches without a store double.
    #[cfg(test)]
    pub(crate) max_batch: Option<usize>,
    #[cfg(test)]
    pub(crate) archive_calls: Mutex<Vec<usize>>,
    /// Tests of the archive writer during an outage: archive calls fail while set.
    #[cfg(test)]
    pub(crate) archive_down: std::sync::atomic::AtomicBool,
    /// Tests of the archive writer against a store too slow for large batches: calls with
    /// more events than this (when not 0) never answer, so the writer's timeout ends them.
    #[cfg(test)]
    pub(crate) archive_hangs_above: std::sync::atomic::AtomicUsize,
    /// Tests of the webhook deliverer: replacing an endpoint fails while set (a node that
    /// dies, or a store that fails, between a delivery's last attempt and its endpoint's
    /// disabling).
    #[cfg(test)]
    pub(crate) webhook_puts_down: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Inner {
    accounts: Vec<Account>,
    categories: Vec<Category>,
    /// In opening order; listings sort by paired time.
    conversations: Vec<Conversation>,
    /// Conversation id → index in `conversations`, so archiving a message costs O(1), not a scan.
    by_id: HashMap<String, usize>,
    /// Conversation id → its notes (in [`note_order`]): apart from `conversations`, as a
    /// note is kept before its conversation's opening too.
    notes: HashMap<String, Vec<ConversationNote>>,
    /// Conversation id → its lasting state (status, holder, labels).
    records: HashMap<String, ConversationRecord>,
    /// The desk's labels, in creation order.
    labels: Vec<Label>,
    // ---- sessions in the shared store ----
    sessions: HashMap<String, StoredSession>,
    // ---- rooms and 1-to-1 video ----
    rooms: HashMap<String, Room>,
    /// Agent id → their open room's id: the unique key "one open room per agent".
    open_rooms: HashMap<String, String>,
    guests: Vec<Guest>,
    /// In order of first saving.
    call_logs: Vec<CallLog>,
    // ---- appointments ----
    appointments: Vec<Appointment>,
    // ---- appointment mail outbox ----
    /// In order of writing.
    mails: Vec<OutboxMail>,
    // ---- desk settings ----
    desk_settings: HashMap<String, String>,
    // ---- canned replies and ratings ----
    canned: Vec<CannedReply>,
    /// Conversation id → its rating: the unique key "one rating per conversation".
    ratings: HashMap<String, Rating>,
    // ---- mail customers send back ----
    /// Inbound mail key → when it was handled.
    inbound_mail: HashMap<String, Millis>,
    // ---- offline messages ----
    offline: HashMap<String, OfflineMessage>,
    // ---- a customer's data erased on request ----
    /// Erased conversations' ids: nothing of them is archived again.
    erased: std::collections::HashSet<String>,
    erasures: Vec<ErasureRecord>,
    // ---- the facts the reports read ----
    /// Customers who left the line unserved, in arrival order, once by id.
    abandoned: Vec<QueueAbandoned>,
    // ---- reply addresses of follow-up mails ----
    /// Token → conversation id.
    reply_tokens: HashMap<String, String>,
    // ---- webhooks ----
    /// In order of adding (listed by `created_at`).
    webhooks: Vec<WebhookEndpoint>,
    /// (seq, id) → delivery: in the order they are sent.
    deliveries: std::collections::BTreeMap<(u64, String), WebhookDelivery>,
    /// The last `seq` handed out.
    delivery_seq: u64,
    webhook_private_addresses: Option<PrivateAddressesChoice>,
    // ---- API tokens ----
    /// In order of adding.
    api_tokens: Vec<ApiToken>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock means a panic mid-update elsewhere; the data is plain values, so go on.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

/// Does the conversation `c` with `transfers` pass `filter`? Shared by backends that
/// filter in process. The agent filter takes every agent who served it ([`served_by`]).
/// The text is not read here: it needs the messages ([`search::matches`]).
pub(crate) fn matches(
    filter: &ConversationFilter,
    c: &ConversationOpened,
    transfers: &[ConversationTransferred],
) -> bool {
    filter
        .category
        .as_ref()
        .is_none_or(|cat| c.category.as_ref() == Some(cat))
        && filter.agent_id.as_ref().is_none_or(|a| served_by(c, transfers, a))
        && filter.from.is_none_or(|from| c.paired_at >= from)
        && filter.to.is_none_or(|to| c.paired_at < to)
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    #[cfg(test)]
    fn max_batch(&self) -> usize {
        self.max_batch.unwrap_or(DEFAULT_MAX_BATCH)
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// The item a look-up found, cloned; `NotFound` when it found none.
fn found<T: Clone>(item: Option<&T>) -> StoreResult<T> {
    item.cloned().ok_or(StoreError::NotFound)
}

/// Adds `item` to `items` unless one stored has a key it `takes`: then `Conflict`.
fn add_new<T>(items: &mut Vec<T>, item: T, takes: impl Fn(&T, &T) -> bool) -> StoreResult<()> {
    if items.iter().any(|stored| takes(stored, &item)) {
        return Err(StoreError::Conflict);
    }
    items.push(item);
    Ok(())
}

/// Removes the items `gone` picks; true when there was one.
fn remove_where<T>(items: &mut Vec<T>, gone: impl Fn(&T) -> bool) -> bool {
    let before = items.len();
    items.retain(|item| !gone(item));
    items.len() != before
}

impl Inner {
    /// One page of `hits`, newest paired first (ties: the greater id first), each with
    /// its rating; and how many there were in all.
    fn newest_paired(&self, hits: Vec<&Conversation>, page: Page) -> (Vec<Conversation>, u64) {
        let (mut page, total) = newest_page(hits, |c| (c.opened.paired_at, c.opened.id.as_str()), page);
        for c in &mut page {
            c.rating = self.ratings.get(&c.opened.id).cloned();
        }
        (page, total)
    }
}

/// One page of `hits` newest first by `key` (a time, then an id: the greater first), and
/// how many there were in all.
fn newest_page<T: Clone>(mut hits: Vec<&T>, key: impl Fn(&T) -> (Millis, &str), page: Page) -> (Vec<T>, u64) {
    hits.sort_by(|a, b| key(b).cmp(&key(a)));
    one_page(hits, page)
}

/// One page of sorted hits, and how many there were in all.
fn one_page<T: Clone>(hits: Vec<&T>, page: Page) -> (Vec<T>, u64) {
    let total = hits.len() as u64;
    let items = hits
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .cloned()
        .collect();
    (items, total)
}
