//! The deliverer, one per node: takes the pending deliveries that may go now
//! (`core::webhooks::ready`: the first of each conversation per endpoint, due, not claimed
//! by another node, endpoint enabled), claims each for `WEBHOOK_LEASE_SECS` (one atomic
//! step in the store: of two nodes one gets it, so a delivery is sent by one node at a
//! time), sends it signed, with a timeout and a cap on the answer read, and records the
//! attempt (status, latency, the answer's start) under its claim. A 2xx delivers; anything
//! else is tried again later. The last failure is stored, under the claim, as the
//! delivery `dying`; then the endpoint is disabled (logged as an error), the admins of
//! `ADMIN_MAIL_TO` are mailed through the mail outbox (`disabled_mail`), and the delivery
//! is marked `dead`. A node that dies (or whose store fails) midway leaves it `dying`, and
//! the next round of any node finishes those steps first, so an endpoint whose delivery
//! died is always disabled and its admins mailed once; a node whose claim ran out stores
//! nothing and so neither disables nor mails. A node killed mid-send leaves a claim that
//! runs out, and another node sends the delivery again (at least once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Webhooks;
use super::disabled_mail;
use super::sign::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use super::target;
use crate::clock::now_ms;
use crate::core::webhooks::{Failed, after_failure, goes_at, ready};
use crate::store::{
    DeliveryAttempt, DeliveryClaim, DeliveryStatus, SharedStore, StoreError, WebhookDelivery, WebhookEndpoint,
};

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer read; the rest is not waited for.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of an answer the log keeps.
const EXCERPT_CHARS: usize = 500;
/// The longest the deliverer sleeps without being woken (retries come due meanwhile).
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// Pending deliveries looked at in one round, per endpoint.
const BATCH: usize = 1_000;
/// Attempts this node has in flight at once, across endpoints: each holds a connection for
/// up to [`TIMEOUT`]; the rest wait for the next round (their claims are not taken).
const IN_FLIGHT: usize = 64;
/// Attempts in flight at once to one endpoint: a receiver that hangs (a firewall dropping
/// its packets) holds at most these of [`IN_FLIGHT`] until its timeouts, so the other
/// endpoints' deliveries still go. A quarter: up to four such receivers at once.
const IN_FLIGHT_PER_ENDPOINT: usize = IN_FLIGHT / 4;

/// This node's attempts in flight, per endpoint.
#[derive(Clone, Default)]
struct PerEndpoint(Arc<Mutex<HashMap<String, usize>>>);

/// One attempt to an endpoint, counted until it is dropped (the attempt's task ended,
/// however).
struct Counted {
    per_endpoint: PerEndpoint,
    endpoint: String,
}

impl PerEndpoint {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Plain counts: a panic while holding the lock leaves them usable.
        crate::poison::lock(&self.0)
    }

    /// One more attempt to `endpoint`, unless it has [`IN_FLIGHT_PER_ENDPOINT`] already.
    fn take(&self, endpoint: &str) -> Option<Counted> {
        let mut counts = self.lock();
        let count = counts.entry(endpoint.to_string()).or_default();
        if *count >= IN_FLIGHT_PER_ENDPOINT {
            return None;
        }
        *count += 1;
        Some(Counted {
            per_endpoint: self.clone(),
            endpoint: endpoint.to_string(),
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut counts = self.per_endpoint.lock();
        if let Some(count) = counts.get_mut(&self.endpoint) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.endpoint);
            }
        }
    }
}

/// Whose claims this deliverer takes and for how long.
pub struct Claims {
    /// This node's id (`NODE_ID`).
    pub node: String,
    /// `WEBHOOK_LEASE_SECS`: longer than an attempt may take ([`TIMEOUT`]), so a claim
    /// never runs out while its holder still sends.
    pub lease: Duration,
    /// `ADMIN_MAIL_TO`: who is mailed when this node disables an endpoint.
    pub admins: Vec<String>,
    /// The admin page's Webhooks view, where such an endpoint is enabled again.
    pub admin_page: String,
}

/// An attempt's outcome: the endpoint as read when it was sent, the delivery claimed, and
/// the attempt with whether it delivered.
type Sent = (WebhookEndpoint, WebhookDelivery, (DeliveryAttempt, bool));

pub async fn run(store: SharedStore, hooks: Webhooks, claims: Claims, shutdown: CancellationToken) {
    // Attempts in flight, across rounds: a receiver that hangs until the timeout holds only
    // its own conversation's next events (its delivery stays claimed, so `ready` passes the
    // conversation over), never another endpoint's or another conversation's.
    let mut attempts: JoinSet<Sent> = JoinSet::new();
    let per_endpoint = PerEndpoint::default();
    loop {
        if let Err(e) = round(&store, &hooks, &claims, (&mut attempts, &per_endpoint)).await {
            tracing::warn!(error = %e, "webhook deliveries wait for the store");
        }
        tokio::select! {
            Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                let mut finished = vec![done];
                while let Some(done) = attempts.try_join_next() {
                    finished.push(done);
                }
                if let Err(e) = record_all(&store, &hooks, &claims, finished).await {
                    tracing::warn!(error = %e, "webhook deliveries wait for the store");
                }
            }
            _ = hooks.wake.notified() => {}
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Records the attempts that finished; the endpoints are read again if one was disabled.
/// An attempt left unrecorded (the store failed) is sent again once its claim runs out.
async fn record_all(
    store: &SharedStore,
    hooks: &Webhooks,
    claims: &Claims,
    finished: Vec<Result<Sent, tokio::task::JoinError>>,
) -> crate::store::StoreResult<()> {
    let mut endpoints_changed = false;
    for done in finished {
        let Ok((endpoint, delivery, (attempt, ok))) = done else {
            continue;
        };
        endpoints_changed |= record(store, claims, endpoint, delivery, attempt, ok).await?;
    }
    if endpoints_changed {
        hooks.refresh().await;
    }
    Ok(())
}

async fn round(
    store: &SharedStore,
    hooks: &Webhooks,
    claims: &Claims,
    (attempts, per_endpoint): (&mut JoinSet<Sent>, &PerEndpoint),
) -> crate::store::StoreResult<()> {
    // The admins' choice on private addresses, changed through another node: its admin bus
    // message tells this node at once; this look catches one missed (Redis away).
    hooks.private.refresh(store).await?;
    // Deaths a node left unsettled (it died, or its store failed, between storing the last
    // attempt and disabling the endpoint): settled before anything is sent, so the
    // endpoint is disabled before any more of its deliveries go.
    for dying in store.dying_deliveries(BATCH).await? {
        settle(store, claims, &dying).await?;
    }
    let reading = hooks.reading_begun();
    let endpoints: HashMap<String, WebhookEndpoint> =
        store.webhooks().await?.into_iter().map(|e| (e.id.clone(), e)).collect();
    // Changed through another node: its admin bus message tells this node at once; this
    // look catches one missed (Redis away), within `LOOK_EVERY`.
    hooks.seen(reading, endpoints.values());
    // Each endpoint's own batch: one whose receiver is down piles up a backlog that would
    // otherwise fill a shared batch and leave the others' deliveries unread.
    let mut pending = Vec::new();
    for endpoint in endpoints.values().filter(|e| e.enabled) {
        pending.extend(
            store
                .pending_deliveries(std::slice::from_ref(&endpoint.id), BATCH)
                .await?,
        );
    }
    if pending.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let go = ready(
        pending.iter().map(|d| {
            let enabled = endpoints.get(&d.endpoint_id).is_some_and(|e| e.enabled);
            let at = goes_at(d.due_at, d.claim_until);
            (d.endpoint_id.as_str(), d.ordering_key.as_str(), at, enabled)
        }),
        now,
    );
    let until = now + i64::try_from(claims.lease.as_millis()).unwrap_or(i64::MAX);
    for i in go {
        if attempts.len() >= IN_FLIGHT {
            break;
        }
        let mut delivery = pending[i].clone();
        let Some(endpoint) = endpoints.get(&delivery.endpoint_id).cloned() else {
            continue;
        };
        // Its endpoint has all it may have in flight: the next round.
        let Some(counted) = per_endpoint.take(&endpoint.id) else {
            continue;
        };
        // Another node took it since it was read (and sends it), or it was finished.
        if !store
            .claim_delivery(&delivery, DeliveryClaim::new(claims.node.clone(), now, until))
            .await?
        {
            continue;
        }
        delivery.claimed_by = Some(claims.node.clone());
        // As the node knows it now: an admin's change applies to the next attempt.
        let allow_private = hooks.private.allowed();
        attempts.spawn(async move {
            let attempt = attempt(&endpoint, &delivery, allow_private).await;
            drop(counted);
            (endpoint, delivery, attempt)
        });
    }
    Ok(())
}

/// Stores how this node's attempt went, under its claim (which ends); true when its
/// endpoint was disabled. A last failure is stored as `dying` in that same claimed step and
/// only then settled ([`settle`]): a node that lost its claim (stalled past its lease while
/// another node sent it) stores nothing, so it neither disables nor mails, and one that
/// dies before settling leaves the duty in the store for the next round of any node.
async fn record(
    store: &SharedStore,
    claims: &Claims,
    endpoint: WebhookEndpoint,
    mut delivery: WebhookDelivery,
    attempt: DeliveryAttempt,
    ok: bool,
) -> crate::store::StoreResult<bool> {
    let failed_before = u32::try_from(delivery.attempts.len()).unwrap_or(u32::MAX);
    let at = attempt.at;
    delivery.attempts.push(attempt);
    delivery.claim_until = None;
    if ok {
        delivery.status = DeliveryStatus::Delivered;
    } else {
        let next = match after_failure(failed_before, at) {
            Failed::RetryAt(when) => {
                delivery.due_at = when;
                Some(when)
            }
            Failed::DisableEndpoint => {
                delivery.status = DeliveryStatus::Dying;
                None
            }
        };
        let last = delivery.attempts.last().expect("pushed above");
        // The status, or why there was none (a cause, never a body the receiver wrote).
        let answer = match last.status_code {
            Some(code) => format!("HTTP {code}"),
            None => last.excerpt.clone(),
        };
        super::failure_log::failed(
            &endpoint.id,
            &host_of(&endpoint.url),
            &delivery.id,
            delivery.attempts.len(),
            &answer,
            next,
        );
    }
    match store.finish_delivery(delivery.clone(), &claims.node).await {
        Ok(true) => {}
        // The lease ran out mid-send and another node took it: it may have gone twice
        // (at least once), and that node records its own attempt (and disables, if so).
        Ok(false) => {
            tracing::warn!(delivery = %delivery.id, "a webhook delivery's claim was lost while sending it");
            return Ok(false);
        }
        // Deleted with its endpoint meanwhile.
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e),
    }
    if delivery.status == DeliveryStatus::Dying {
        settle(store, claims, &delivery).await?;
        return Ok(true);
    }
    if ok && endpoint.failures_in_a_row != 0 {
        // Read again: only the count is reset, whatever else changed since the round began
        // (a disabling by another attempt of this round stays).
        let mut now = match store.webhook(&endpoint.id).await {
            Err(StoreError::NotFound) => return Ok(false),
            other => other?,
        };
        if now.failures_in_a_row != 0 {
            now.failures_in_a_row = 0;
            match store.put_webhook(now).await {
                Err(StoreError::NotFound) => {}
                other => other?,
            }
        }
    }
    Ok(false)
}

/// Finishes the death of `delivery` (stored `dying`): disables its endpoint, writes the
/// admins' mails, marks it `dead`, in that order, each step the same when done twice. Run by
/// the node whose attempt was the last, and at the start of every round for any left
/// `dying` (that node died or its store failed midway), so the disabling always follows,
/// on whichever node looks first. Its mails are written only once the disabling is
/// recorded, and their ids name the delivery, so two nodes settling it write one mail each.
async fn settle(store: &SharedStore, claims: &Claims, delivery: &WebhookDelivery) -> crate::store::StoreResult<()> {
    let mut endpoint = match store.webhook(&delivery.endpoint_id).await {
        // Deleted, with its deliveries: nothing to disable or tell.
        Err(StoreError::NotFound) => return Ok(()),
        other => other?,
    };
    let reason = format!("delivery {} failed {} times", delivery.id, delivery.attempts.len());
    // Recorded already by an earlier settling of this same death (an admin may have
    // enabled it again since, which clears the reason).
    if endpoint.disabled_reason.as_deref() != Some(reason.as_str()) {
        let host = host_of(&endpoint.url);
        tracing::error!(endpoint = %endpoint.id, %host, "a webhook endpoint failed {} times in a row and is disabled; its deliveries wait until an admin enables it", delivery.attempts.len());
        endpoint.enabled = false;
        endpoint.disabled_reason = Some(reason);
        endpoint.failures_in_a_row = endpoint.failures_in_a_row.saturating_add(1);
        match store.put_webhook(endpoint.clone()).await {
            Err(StoreError::NotFound) => return Ok(()),
            other => other?,
        }
    }
    tell_admins(store, claims, &endpoint, delivery).await?;
    store.bury_delivery(delivery).await
}

/// An endpoint's host, for the log: not its URL, whose path or query may hold the
/// receiver's secret.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// Writes the admins' mails about `endpoint`, disabled as `delivery` died, to the outbox.
async fn tell_admins(
    store: &SharedStore,
    claims: &Claims,
    endpoint: &WebhookEndpoint,
    delivery: &WebhookDelivery,
) -> crate::store::StoreResult<()> {
    if claims.admins.is_empty() {
        tracing::warn!(endpoint = %endpoint.id, "no admin is mailed about a disabled webhook endpoint: ADMIN_MAIL_TO is empty");
    }
    for mail in disabled_mail::mails(endpoint, delivery, &claims.admins, &claims.admin_page, now_ms()) {
        // Written already by an earlier settling of this same death: nothing to do.
        crate::store::add_mail_once(&**store, mail).await?;
    }
    Ok(())
}

/// One signed POST of `delivery` to `endpoint`: the attempt as logged, and whether the
/// endpoint answered 2xx.
async fn attempt(
    endpoint: &WebhookEndpoint,
    delivery: &WebhookDelivery,
    allow_private: bool,
) -> (DeliveryAttempt, bool) {
    let at = now_ms();
    let started = Instant::now();
    let signed = Signed {
        url: &endpoint.url,
        secret: &endpoint.secret,
        body: &delivery.body,
        event_id: &delivery.event_id,
        event_type: &delivery.event_type,
    };
    let posted = post_signed(&signed, at, allow_private, TIMEOUT).await;
    let attempt = DeliveryAttempt {
        at,
        status_code: posted.status,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        excerpt: posted.excerpt,
    };
    (attempt, posted.ok)
}

/// A signed request to make: where, the secret it is signed with, the body as sent, and
/// the event's id and type for the headers.
pub struct Signed<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub body: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
}

/// How a signed POST went: the answer's status (none when there was no answer), the start
/// of the answer (or why it was not sent), and whether it was 2xx.
pub struct Posted {
    pub status: Option<u16>,
    pub excerpt: String,
    pub ok: bool,
}

/// POSTs `signed` (JSON, signed at `at` ms) to its URL after checking the address it goes
/// to ([`target`]: private ones refused unless `allow_private`), redirects not followed,
/// within `timeout`, reading at most [`MAX_ANSWER_BYTES`] of the answer. Webhook
/// deliveries and webhook bots are sent this one way.
pub async fn post_signed(signed: &Signed<'_>, at: i64, allow_private: bool, timeout: Duration) -> Posted {
    let failed = |excerpt: String| Posted {
        status: None,
        excerpt,
        ok: false,
    };
    let url = match target::parse(signed.url) {
        Ok(url) => url,
        Err(e) => return failed(e.to_string()),
    };
    let addr = match target::resolve(&url, allow_private).await {
        Ok(addr) => addr,
        Err(e) => return failed(format!("not sent: {e}")),
    };
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .no_proxy();
    if let Some(url::Host::Domain(name)) = url.host() {
        // To the address just checked, not whatever a second lookup says.
        client = client.resolve(name, addr);
    }
    let client = match client.build() {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let timestamp = at / 1000;
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature(signed.secret, timestamp, signed.body))
        .header(EVENT_ID_HEADER, signed.event_id)
        .header(EVENT_TYPE_HEADER, signed.event_type)
        .body(signed.body.to_string())
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => return failed(format!("no answer: {}", why_no_answer(e))),
    };
    let status = response.status();
    let mut read = Vec::new();
    // The answer is read up to the cap within the same timeout; the rest is dropped.
    while read.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read.extend_from_slice(&chunk),
            _ => break,
        }
    }
    Posted {
        status: Some(status.as_u16()),
        excerpt: String::from_utf8_lossy(&read).chars().take(EXCERPT_CHARS).collect(),
        ok: status.is_success(),
    }
}

/// Why a request had no answer, for the delivery log, the admins' mail and a bot call's
/// warning: the error and each of its causes ("error sending request: client error
/// (Connect): tcp connect error: Connection refused (os error 111)", "...: operation timed
/// out"), never the URL, whose path or query may hold the receiver's secret.
fn why_no_answer(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut why = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(c) = cause {
        let text = c.to_string();
        // hyper repeats a cause's text in its own at times.
        if !why.contains(&text) {
            why.push_str(": ");
            why.push_str(&text);
        }
        cause = c.source();
    }
    if error.is_timeout() && !why.contains("timed out") {
        why.push_str(": timed out");
    }
    why
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;

    #[test]
    fn one_endpoint_holds_at_most_its_share_of_the_attempts_until_they_end() {
        let per_endpoint = PerEndpoint::default();
        let hanging: Vec<Counted> = (0..IN_FLIGHT_PER_ENDPOINT)
            .map(|_| per_endpoint.take("hanging").expect("below its share"))
            .collect();
        assert!(per_endpoint.take("hanging").is_none(), "its share is taken");
        let other = per_endpoint.take("other");
        assert!(other.is_some(), "another endpoint still sends");
        drop(hanging);
        let again = per_endpoint.take("hanging");
        assert!(again.is_some(), "ended attempts give their place back");
        drop(other);
        assert_eq!(per_endpoint.lock().len(), 1, "only counts in flight are kept");
        drop(again);
        assert!(per_endpoint.lock().is_empty());
    }
    use crate::store::{MemoryStore, OutboxStore, WebhookStore};

    const DAY_MS: i64 = 24 * 3_600_000;

    /// An enabled endpoint nothing listens at (port 1 on loopback: refused at once).
    fn endpoint() -> WebhookEndpoint {
        WebhookEndpoint {
            id: "e1".into(),
            url: "http://127.0.0.1:1/hook".into(),
            events: vec!["offline_message.created".into()],
            secret: "s".into(),
            enabled: true,
            disabled_reason: None,
            failures_in_a_row: 0,
            created_at: 0,
        }
    }

    /// A delivery to [`endpoint`] that failed for a day: its next failed attempt is its last.
    fn failing_for_a_day(now: i64) -> WebhookDelivery {
        let failed = DeliveryAttempt {
            at: now - DAY_MS,
            status_code: Some(500),
            latency_ms: 3,
            excerpt: "down".into(),
        };
        WebhookDelivery {
            id: "ev-1-e1".into(),
            endpoint_id: "e1".into(),
            seq: 1,
            ordering_key: "ev-1".into(),
            event_id: "ev-1".into(),
            event_type: "offline_message.created".into(),
            body: "{}".into(),
            status: DeliveryStatus::Pending,
            due_at: now,
            attempts: vec![failed; 35],
            created_at: now - DAY_MS,
            claimed_by: None,
            claim_until: None,
        }
    }

    /// Polls `done` until it says yes; panics naming `what` when it never does.
    async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
        for _ in 0..200 {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what} never happened");
    }

    /// A store failing (or the node dying) between the delivery's last attempt and its
    /// endpoint's disabling: the endpoint is disabled once the store answers again, by the
    /// deliverer's next round, and the admin mailed once.
    #[tokio::test]
    async fn an_endpoint_whose_delivery_died_is_disabled_even_when_its_disabling_failed_at_first() {
        let store = Arc::new(MemoryStore::new());
        let now = now_ms();
        store.add_webhook(endpoint()).await.unwrap();
        store.add_delivery(failing_for_a_day(now)).await.unwrap();
        store.webhook_puts_down.store(true, Ordering::Relaxed);
        let mut settings = crate::config::Settings::for_tests();
        settings.webhooks.allow_private = Some(true);
        settings.webhooks.admin_mail_to = vec!["ops@example.org".into()];
        let shutdown = CancellationToken::new();
        let journal = crate::webhooks::journal::JournalFile::in_memory().unwrap();
        let _hooks = Webhooks::start(store.clone(), &settings, journal, shutdown.clone());

        until("the last attempt", async || {
            let logged = store.deliveries_of("e1", 1).await.unwrap();
            logged[0].attempts.len() == 36 && logged[0].status != DeliveryStatus::Pending
        })
        .await;
        store.webhook_puts_down.store(false, Ordering::Relaxed);
        until("the endpoint's disabling", async || {
            !store.webhook("e1").await.unwrap().enabled
        })
        .await;
        until("its delivery's end", async || {
            store.deliveries_of("e1", 1).await.unwrap()[0].status == DeliveryStatus::Dead
        })
        .await;
        let disabled = store.webhook("e1").await.unwrap();
        assert_eq!(
            disabled.disabled_reason.as_deref(),
            Some("delivery ev-1-e1 failed 36 times")
        );
        assert_eq!(disabled.failures_in_a_row, 1);
        let mails = store.mails_by_id_prefix(disabled_mail::ID_PREFIX).await.unwrap();
        assert_eq!(mails.len(), 1, "{mails:?}");
        shutdown.cancel();
    }

    /// A node whose claim ran out while it sent (stalled) and whose last attempt failed,
    /// while another node took the delivery over: it records nothing, disables nothing and
    /// mails no one (the other node's attempt decides).
    #[tokio::test]
    async fn a_node_that_lost_its_claim_neither_disables_nor_mails() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let now = now_ms();
        store.add_webhook(endpoint()).await.unwrap();
        let mut delivery = failing_for_a_day(now);
        store.add_delivery(delivery.clone()).await.unwrap();
        // Alpha claimed it, stalled past its lease; beta claimed it since and still sends.
        assert!(
            store
                .claim_delivery(&delivery, DeliveryClaim::new("alpha", now, now + 1))
                .await
                .unwrap()
        );
        let beta = DeliveryClaim::new("beta", now + 1, now + 60_000);
        assert!(store.claim_delivery(&delivery, beta).await.unwrap());
        delivery.claimed_by = Some("alpha".into());
        delivery.claim_until = Some(now + 1);
        let claims = Claims {
            node: "alpha".into(),
            lease: Duration::from_secs(1),
            admins: vec!["ops@example.org".into()],
            admin_page: disabled_mail::admin_page("https://desk.example.com"),
        };
        let failed = DeliveryAttempt {
            at: now + 2,
            status_code: None,
            latency_ms: 10_000,
            excerpt: "no answer: timed out".into(),
        };
        let disabled = record(&store, &claims, endpoint(), delivery, failed, false)
            .await
            .unwrap();
        assert!(!disabled);
        let mails = store.mails_by_id_prefix(disabled_mail::ID_PREFIX).await.unwrap();
        assert!(
            mails.is_empty(),
            "a mail about a disabling that did not happen: {mails:?}"
        );
        assert!(store.webhook("e1").await.unwrap().enabled);
        let stored = store.deliveries_of("e1", 1).await.unwrap();
        assert_eq!(
            (stored[0].status, stored[0].claimed_by.as_deref()),
            (DeliveryStatus::Pending, Some("beta"))
        );
    }
}
