//! Webhooks as stored: the endpoints admins register, the durable queue of deliveries
//! to them, which is also each endpoint's delivery log, and the admins' choice whether
//! they may reach private addresses ([`PrivateAddressesChoice`]).
//!
//! A delivery is written once per (event, endpoint) before any attempt, so an event
//! accepted is never lost to a restart; the deliverer takes pending ones oldest first
//! (`seq` orders them, one sequence for every node: [`WebhookStore::next_delivery_seq`])
//! and records every attempt in the delivery itself. Ids are unique: adding one that is
//! stored is `Conflict`, nothing written.
//!
//! Several nodes run a deliverer over the same deliveries, so each sends one only under a
//! claim with a lease, as the mail outbox does (`store::outbox`): a claim is one atomic
//! step (of two claimers one gets it), recording an attempt succeeds only for the claim's
//! holder, and a node that dies mid-send leaves a lease that simply runs out.

use async_trait::async_trait;

use super::{Millis, StoreResult};

/// An endpoint an admin registered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookEndpoint {
    #[serde(rename = "_id")]
    pub id: String,
    pub url: String,
    /// Event types it wants (`conversation.created` …), each once.
    pub events: Vec<String>,
    /// The HMAC key deliveries are signed with; shown to the admin once, at creation.
    pub secret: String,
    pub enabled: bool,
    /// Why it was disabled by the deliverer (sustained failure), if it was.
    pub disabled_reason: Option<String>,
    /// Deliveries given up in a row; reset by a success.
    pub failures_in_a_row: u32,
    pub created_at: Millis,
}

/// The admins' choice whether webhooks (endpoints and webhook bots) may reach loopback,
/// link-local and private addresses: heeded while the operator leaves it to them
/// (`WEBHOOK_ALLOW_PRIVATE` unset). None stored is as not allowed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrivateAddressesChoice {
    pub allowed: bool,
    /// The username of the admin who made it.
    pub changed_by: String,
    pub changed_at: Millis,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its `due_at` (a first try or a retry), or being sent under a claim.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up after its last attempt failed; its endpoint's disabling and the admins'
    /// mail are not recorded yet. Written under the claim in the same step as that attempt,
    /// so whichever node's deliverer looks next (this one, or another after a crash)
    /// disables the endpoint, mails, then marks it `dead`.
    Dying,
    /// Given up after its last attempt failed, its endpoint disabled and the admins mailed.
    Dead,
}

/// One attempt at a delivery, as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    pub at: Millis,
    /// The HTTP status, when the endpoint answered.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The start of the answer's body, or why there was none.
    pub excerpt: String,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookDelivery {
    /// `<event id>-<endpoint id>` (one per event and endpoint, whichever node writes it);
    /// a delivery sent again adds `-<seq>`. Always holds the endpoint's id.
    #[serde(rename = "_id")]
    pub id: String,
    pub endpoint_id: String,
    /// Order of creation across all deliveries: the order they are sent in.
    pub seq: u64,
    /// What in-order delivery is kept within (a conversation's id; else the event's id).
    pub ordering_key: String,
    pub event_id: String,
    pub event_type: String,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
    pub status: DeliveryStatus,
    pub due_at: Millis,
    pub attempts: Vec<DeliveryAttempt>,
    pub created_at: Millis,
    /// The node holding the claim to send it, if it was ever claimed.
    #[serde(default)]
    pub claimed_by: Option<String>,
    /// The claim's end: after it, another node may claim it again.
    #[serde(default)]
    pub claim_until: Option<Millis>,
}

/// A node's claim to send a delivery: who claims it, the time it claims at (what
/// [`WebhookDelivery::claimable`] is judged at) and when the claim ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryClaim {
    pub node: String,
    pub now: Millis,
    pub until: Millis,
}

impl DeliveryClaim {
    pub fn new(node: impl Into<String>, now: Millis, until: Millis) -> Self {
        Self {
            node: node.into(),
            now,
            until,
        }
    }
}

impl WebhookDelivery {
    /// For unit tests: delivery `seq` of endpoint `a` (its own conversation), `status`,
    /// created and due at `created_at`, never attempted.
    #[cfg(test)]
    pub(crate) fn for_test(seq: u64, status: DeliveryStatus, created_at: Millis) -> Self {
        Self {
            id: format!("ev{seq}-a"),
            endpoint_id: "a".into(),
            seq,
            ordering_key: format!("c{seq}"),
            event_id: format!("ev{seq}"),
            event_type: "message.created".into(),
            body: "{}".into(),
            status,
            due_at: created_at,
            attempts: vec![],
            created_at,
            claimed_by: None,
            claim_until: None,
        }
    }

    /// For unit tests: the seqs of the deliveries `store` keeps for endpoint `a` (its
    /// newest 100, newest first).
    #[cfg(test)]
    pub(crate) async fn seqs_of_a(store: &(impl WebhookStore + ?Sized)) -> Vec<u64> {
        let deliveries = store.deliveries_of("a", 100).await.unwrap();
        deliveries.iter().map(|d| d.seq).collect()
    }

    /// Whether it is settled and was created before `before`: what
    /// [`WebhookStore::prune_deliveries`] deletes.
    pub fn prunable(&self, before: Millis) -> bool {
        matches!(self.status, DeliveryStatus::Delivered | DeliveryStatus::Dead) && self.created_at < before
    }

    /// Whether a claim at `now` may take it: pending, due, and unclaimed or its lease over.
    pub fn claimable(&self, now: Millis) -> bool {
        self.status == DeliveryStatus::Pending && self.due_at <= now && self.claim_until.is_none_or(|c| c <= now)
    }

    /// Whether `node` may record an attempt: it is pending and `node` holds its claim.
    pub fn claimed_by(&self, node: &str) -> bool {
        self.status == DeliveryStatus::Pending && self.claimed_by.as_deref() == Some(node)
    }
}

/// Webhook endpoints and their deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint; `Conflict` when its id is taken.
    async fn add_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()>;
    /// Every endpoint, oldest first.
    async fn webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>>;
    /// One endpoint; `NotFound` when absent.
    async fn webhook(&self, id: &str) -> StoreResult<WebhookEndpoint>;
    /// Replaces a stored endpoint; `NotFound` when absent.
    async fn put_webhook(&self, endpoint: WebhookEndpoint) -> StoreResult<()>;
    /// Deletes an endpoint and its deliveries; `NotFound` when absent.
    async fn delete_webhook(&self, id: &str) -> StoreResult<()>;
    /// The admins' choice on private addresses; `None` until one was made.
    async fn webhook_private_addresses(&self) -> StoreResult<Option<PrivateAddressesChoice>>;
    /// Stores the admins' choice on private addresses in place of the last one.
    async fn set_webhook_private_addresses(&self, choice: PrivateAddressesChoice) -> StoreResult<()>;
    /// Stores a new delivery; `Conflict` when its id is taken.
    async fn add_delivery(&self, delivery: WebhookDelivery) -> StoreResult<()>;
    /// Claims the stored form of `delivery` (as a listing read it) for `claim.node` until
    /// `claim.until` when that is claimable at `claim.now` ([`WebhookDelivery::claimable`]),
    /// in one atomic step: of concurrent claimers exactly one gets it. False (nothing
    /// changed) when it is not claimable (any more) or absent.
    async fn claim_delivery(&self, delivery: &WebhookDelivery, claim: DeliveryClaim) -> StoreResult<bool>;
    /// Replaces the stored delivery with `delivery` (an attempt recorded, its claim ended)
    /// only while it is pending and `node` holds its claim ([`WebhookDelivery::claimed_by`]);
    /// false (nothing changed) otherwise, e.g. when the lease ran out and another node took
    /// it; `NotFound` when absent (deleted with its endpoint).
    async fn finish_delivery(&self, delivery: WebhookDelivery, node: &str) -> StoreResult<bool>;
    /// Up to `limit` pending deliveries to the endpoints `of` (the enabled ones), by `seq`:
    /// a disabled endpoint's backlog, kept for when it is enabled again, never hides others'.
    /// The deliverer asks for one endpoint at a time, so another's backlog hides nothing
    /// either; a delivery's id holds its endpoint's id (see [`WebhookDelivery::id`]), which a
    /// backend may use to pass other endpoints' rows over unread.
    async fn pending_deliveries(&self, of: &[String], limit: usize) -> StoreResult<Vec<WebhookDelivery>>;
    /// Up to `limit` deliveries given up whose endpoint's disabling is not recorded yet
    /// ([`DeliveryStatus::Dying`]), by `seq`.
    async fn dying_deliveries(&self, limit: usize) -> StoreResult<Vec<WebhookDelivery>>;
    /// Marks the stored `delivery` `dead` if it is `dying` (its endpoint's disabling now
    /// recorded); nothing otherwise, or when it is absent (deleted with its endpoint).
    async fn bury_delivery(&self, delivery: &WebhookDelivery) -> StoreResult<()>;
    /// An endpoint's newest `limit` deliveries, newest (highest `seq`) first.
    async fn deliveries_of(&self, endpoint_id: &str, limit: usize) -> StoreResult<Vec<WebhookDelivery>>;
    /// A new `seq`, above every one handed out before and every delivery's stored when
    /// the store was opened, each handed out once across all nodes (an atomic counter in
    /// the store): the order deliveries are written in, whichever node writes them.
    async fn next_delivery_seq(&self) -> StoreResult<u64>;
    /// Deletes the settled deliveries (`delivered` or `dead`) created before `before`, from
    /// the store and so from their endpoints' logs; how many. Pending and dying ones stay,
    /// however old: they are still owed a send or a disabling. Two nodes pruning at once is
    /// harmless: each delivery is deleted once between them and neither fails.
    async fn prune_deliveries(&self, before: Millis) -> StoreResult<u64>;
}
