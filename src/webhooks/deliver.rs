//! The deliverer, one per node: takes the pending deliveries that may go now
//! (`core::webhooks::ready`: the first of each conversation per endpoint, due, not claimed
//! by another node, endpoint enabled), claims each for `WEBHOOK_LEASE_SECS` (one atomic
//! step in the store: of two nodes one gets it, so a delivery is sent by one node at a
//! time), sends it signed, with a timeout and a cap on the answer read, and records the
//! attempt (status, latency, the answer's start) under its claim. A 2xx delivers; anything
//! else is tried again later, and the last failure disables the endpoint (logged as an
//! error, and mailed to the admins of `ADMIN_MAIL_TO` through the mail outbox by the node
//! that disabled it, once: `disabled_mail`). A node killed mid-send leaves a claim that runs out, and
//! another node sends the delivery again (at least once).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Webhooks;
use super::disabled_mail;
use super::sign::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use super::target;
use crate::clock::now_ms;
use crate::core::webhooks::{Failed, after_failure, goes_at, ready};
use crate::store::{DeliveryAttempt, DeliveryStatus, SharedStore, WebhookDelivery, WebhookEndpoint};

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer read; the rest is not waited for.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of an answer the log keeps.
const EXCERPT_CHARS: usize = 500;
/// The longest the deliverer sleeps without being woken (retries come due meanwhile).
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// Pending deliveries looked at in one round.
const BATCH: usize = 1_000;

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

pub async fn run(store: SharedStore, hooks: Webhooks, claims: Claims, shutdown: CancellationToken) {
    loop {
        if let Err(e) = round(&store, &hooks, &claims).await {
            tracing::warn!(error = %e, "webhook deliveries wait for the store");
        }
        tokio::select! {
            _ = hooks.wake.notified() => {}
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn round(store: &SharedStore, hooks: &Webhooks, claims: &Claims) -> crate::store::StoreResult<()> {
    let endpoints: HashMap<String, WebhookEndpoint> =
        store.webhooks().await?.into_iter().map(|e| (e.id.clone(), e)).collect();
    // Changed through another node: its admin bus message tells this node at once; this
    // look catches one missed (Redis away), within `LOOK_EVERY`.
    hooks.seen(endpoints.values());
    let enabled: Vec<String> = endpoints.values().filter(|e| e.enabled).map(|e| e.id.clone()).collect();
    let pending = store.pending_deliveries(&enabled, BATCH).await?;
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
    let mut attempts = JoinSet::new();
    for i in go {
        let mut delivery = pending[i].clone();
        let Some(endpoint) = endpoints.get(&delivery.endpoint_id).cloned() else {
            continue;
        };
        // Another node took it since it was read (and sends it), or it was finished.
        if !store.claim_delivery(&delivery, &claims.node, now, until).await? {
            continue;
        }
        delivery.claimed_by = Some(claims.node.clone());
        let allow_private = hooks.allow_private;
        attempts.spawn(async move {
            let attempt = attempt(&endpoint, &delivery, allow_private).await;
            (endpoint, delivery, attempt)
        });
    }
    let mut endpoints_changed = false;
    while let Some(done) = attempts.join_next().await {
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

/// Stores how this node's attempt went, under its claim (which ends); true when its
/// endpoint was disabled. A disabling's mails to the admins are written first, so one
/// recorded is never left untold (their ids make a second writing of them nothing).
async fn record(
    store: &SharedStore,
    claims: &Claims,
    mut endpoint: WebhookEndpoint,
    mut delivery: WebhookDelivery,
    attempt: DeliveryAttempt,
    ok: bool,
) -> crate::store::StoreResult<bool> {
    let failed_before = u32::try_from(delivery.attempts.len()).unwrap_or(u32::MAX);
    let at = attempt.at;
    delivery.attempts.push(attempt);
    delivery.claim_until = None;
    let mut disabled = false;
    if ok {
        delivery.status = DeliveryStatus::Delivered;
    } else {
        match after_failure(failed_before, at) {
            Failed::RetryAt(when) => delivery.due_at = when,
            Failed::DisableEndpoint => {
                delivery.status = DeliveryStatus::Dead;
                disabled = true;
            }
        }
    }
    if disabled {
        tell_admins(store, claims, &endpoint, &delivery).await?;
    }
    let node = claims.node.as_str();
    match store.finish_delivery(delivery.clone(), node).await {
        Ok(true) => {}
        // The lease ran out mid-send and another node took it: it may have gone twice
        // (at least once), and that node records its own attempt.
        Ok(false) => {
            tracing::warn!(delivery = %delivery.id, "a webhook delivery's claim was lost while sending it");
            return Ok(false);
        }
        // Deleted with its endpoint meanwhile.
        Err(crate::store::StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e),
    }
    if disabled {
        tracing::error!(endpoint = %endpoint.id, url = %endpoint.url, "a webhook endpoint failed {} times in a row and is disabled; its deliveries wait until an admin enables it", delivery.attempts.len());
        endpoint.enabled = false;
        endpoint.disabled_reason = Some(format!(
            "delivery {} failed {} times",
            delivery.id,
            delivery.attempts.len()
        ));
        endpoint.failures_in_a_row = endpoint.failures_in_a_row.saturating_add(1);
    } else if ok && endpoint.failures_in_a_row != 0 {
        endpoint.failures_in_a_row = 0;
    } else {
        return Ok(false);
    }
    match store.put_webhook(endpoint).await {
        Err(crate::store::StoreError::NotFound) => Ok(false),
        other => other.map(|()| disabled),
    }
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
        // Written already by an earlier try of this same disabling: nothing to do.
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
        Err(e) => return failed(format!("no answer: {e}")),
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
