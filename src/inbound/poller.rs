//! The task that reads the mailbox: it connects, takes the mails not flagged done (a
//! bounded batch, oldest first), decides each, hands it to the sink once, records it and
//! flags it. Then, where the server offers `IDLE`, it stays connected and waits in `IDLE`
//! for the mailbox to change (a mail is handled within a moment of its arrival), looking
//! again at the latest every `IMAP_POLL_SECS` as a safety net and so renewing `IDLE` well
//! within the 29 minutes servers allow (at most [`IDLE_RENEW`]); otherwise it logs out and
//! connects again every `IMAP_POLL_SECS`. A server down or slow is retried with a doubling
//! pause (1 s up to [`retry_cap`]: ten polls, at most 5 min), logged, and shown in [`InboundStatus`] and `/metrics`; it never
//! touches `/readyz`. Stops with the server's shutdown token, in `IDLE` too (the
//! connection is dropped).
//!
//! One node at a time reads a mailbox: two would each deliver a mail before either
//! records it (the store's key makes it a duplicate only after). On several nodes, every
//! node with `IMAP_URL` asks for the `imap` duty (`cluster::duty`) and reads only while it
//! holds it: when the reading node dies, another takes over once it is reaped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::duty::Duty;

use super::imap::Mailbox;
use super::{InboundMail, InboundSink, parse};
use crate::config::imap::ImapSettings;
use crate::core::guesses::FailedGuesses;
use crate::core::inbound_mail::{
    Decision, Desk, DropReason, MailFields, decide, idempotence_key, sender_allowance, spender, within_sender_limit,
};
use crate::store::SharedStore;

/// Mails handled per connection; the rest wait for the next round, which follows at once.
const BATCH: usize = 50;
/// Senders whose hourly allowance is remembered at once; past it the one closest to a
/// full allowance is forgotten (a bomb from this many addresses is not one sender's).
const SENDERS_TRACKED: usize = 10_000;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The longest pause between two tries at a mailbox that fails: ten polls, between 1 s and
/// 5 min. Tied to the poll so a server back from an outage is read again within what the
/// operator chose as acceptable lateness times ten, not always 5 minutes later.
pub fn retry_cap(poll: Duration) -> Duration {
    (poll * 10).clamp(FIRST_RETRY, MAX_RETRY)
}
/// The longest wait in one `IDLE`: RFC 2177 asks clients to renew it within 29 minutes.
pub const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);

/// `switchboard_inbound_mail_up`: 1 while the last look at the mailbox worked.
pub const UP: &str = "switchboard_inbound_mail_up";
/// `switchboard_inbound_mails_total{outcome}`: mails handled, by decision.
pub const MAILS: &str = "switchboard_inbound_mails_total";

/// What admins see of the poller (also in `/metrics`).
#[derive(Debug, Default)]
pub struct InboundStatus {
    /// Ms since the epoch of the last look that worked (0: none yet).
    pub last_ok_ms: AtomicU64,
    /// Looks that failed in a row (0: the mailbox answers).
    pub failures: AtomicU64,
    /// Mails handed to the sink, and skipped as fetched before.
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// The poller's state as admins read it (`GET /api/admin/inbound-mail`), from the node
/// reading the mailbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct InboundReport {
    /// The last look at the mailbox worked.
    pub up: bool,
    /// When a look last worked, ms since the Unix epoch (absent: none yet).
    pub last_ok_at: Option<u64>,
    /// Looks that failed in a row since.
    pub failures: u64,
    /// Why the last look failed (absent while it works).
    pub last_error: Option<String>,
    /// Mails handed over by this reader since it started, and mails skipped as seen before.
    pub delivered: u64,
    pub duplicates: u64,
}

impl InboundStatus {
    pub fn report(&self) -> InboundReport {
        let last_ok = self.last_ok_ms.load(Ordering::Relaxed);
        let failures = self.failures.load(Ordering::Relaxed);
        InboundReport {
            up: last_ok > 0 && failures == 0,
            last_ok_at: (last_ok > 0).then_some(last_ok),
            failures,
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            delivered: self.delivered.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
        }
    }
}

/// On several nodes, the reading node's report goes to Redis for the others to show.
fn publish(status: &InboundStatus, duty: Option<&Duty>) {
    if let Some(duty) = duty
        && let Ok(report) = serde_json::to_string(&status.report())
    {
        duty.report(report);
    }
}

/// Runs until `shutdown`.
pub async fn run(
    settings: ImapSettings,
    desk_address: String,
    store: SharedStore,
    sink: Arc<dyn InboundSink>,
    status: Arc<InboundStatus>,
    duty: Option<Duty>,
    shutdown: CancellationToken,
) {
    let mut held = duty.as_ref().map(Duty::watch);
    let desk = Desk {
        address: desk_address,
        max_bytes: settings.max_bytes,
        default_category: settings.default_category.clone(),
        routes: settings.routes.clone(),
    };
    tracing::info!(server = %settings.server.host, port = settings.server.port, mailbox = %settings.mailbox, "inbound mail poller started");
    let mut retry = FIRST_RETRY;
    let cap = retry_cap(settings.poll);
    let mut senders = FailedGuesses::new(sender_allowance(settings.sender_max_per_hour), SENDERS_TRACKED);
    loop {
        if let Some(held) = held.as_mut() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                now = held.wait_for(|held| *held) => if now.is_err() { break },
            }
        }
        let round = tokio::select! {
            () = shutdown.cancelled() => break,
            () = given_up(held.as_mut()) => {
                tracing::info!("inbound mail: another node reads the mailbox now");
                continue;
            }
            round = session(&settings, &desk, &store, (sink.as_ref(), &mut senders, duty.as_ref()), &status) => round,
        };
        let pause = match round {
            Ok(handled) if handled == BATCH => Duration::ZERO,
            Ok(_) => settings.poll,
            Err(e) => {
                if status.failures.load(Ordering::Relaxed) == 0 {
                    // The last look worked (a session in IDLE for hours, say): a fresh start.
                    retry = FIRST_RETRY;
                }
                let failures = status.failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(error = %e, failures, retry_in = ?retry, "inbound mail: the mailbox could not be read; trying again");
                *status.last_error.lock().unwrap() = Some(e);
                metrics::gauge!(UP).set(0.0);
                publish(&status, duty.as_ref());
                let pause = retry;
                retry = (retry * 2).min(cap);
                pause
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!("inbound mail poller stopped");
}

/// Once this node no longer holds the mailbox's duty (never, on one node).
async fn given_up(duty: Option<&mut watch::Receiver<bool>>) {
    match duty {
        Some(duty) => {
            let _ = duty.wait_for(|held| !*held).await;
        }
        None => std::future::pending().await,
    }
}

/// One connection: the pending mails, each handled; then, where the server offers `IDLE`,
/// again each time the mailbox changes or `IMAP_POLL_SECS` pass, until an error. Without
/// `IDLE` (or after a full batch, which the caller follows at once), how many it handled.
async fn session(
    settings: &ImapSettings,
    desk: &Desk,
    store: &SharedStore,
    (sink, senders, duty): (&dyn InboundSink, &mut FailedGuesses<String>, Option<&Duty>),
    status: &InboundStatus,
) -> Result<usize, String> {
    let mut mailbox = Mailbox::open(settings).await?;
    loop {
        let handled = match handle_pending(&mut mailbox, desk, store, (sink, &mut *senders, duty), status).await {
            Ok(handled) => handled,
            Err(e) => {
                mailbox.close().await;
                return Err(e);
            }
        };
        looked(status);
        publish(status, duty);
        if handled == BATCH || !mailbox.offers_idle() {
            mailbox.close().await;
            return Ok(handled);
        }
        if mailbox.told_of_new_mail() {
            continue;
        }
        let (again, changed) = mailbox.idle(settings.poll.min(IDLE_RENEW)).await?;
        tracing::debug!(changed, "inbound mail: IDLE ended; looking at the mailbox");
        mailbox = again;
    }
}

/// A look at the mailbox worked: admins and `/metrics` see it up.
fn looked(status: &InboundStatus) {
    status.failures.store(0, Ordering::Relaxed);
    status
        .last_ok_ms
        .store(crate::clock::now_ms().max(0) as u64, Ordering::Relaxed);
    *status.last_error.lock().unwrap() = None;
    metrics::gauge!(UP).set(1.0);
}

async fn handle_pending(
    mailbox: &mut Mailbox,
    desk: &Desk,
    store: &SharedStore,
    (sink, senders, duty): (&dyn InboundSink, &mut FailedGuesses<String>, Option<&Duty>),
    status: &InboundStatus,
) -> Result<usize, String> {
    let uids = mailbox.pending(BATCH).await?;
    for &uid in &uids {
        let Some(size) = mailbox.size(uid).await? else { continue };
        let (key, fields, message_id, raw) = if size > desk.max_bytes {
            // Never downloaded: the size decides, and the key is the server's view of it.
            let key = format!("too-large:{uid}:{size}");
            (
                key,
                MailFields {
                    size,
                    ..MailFields::default()
                },
                None,
                Vec::new(),
            )
        } else {
            let Some(raw) = mailbox.fetch(uid).await? else { continue };
            let fields = parse::fields(&raw);
            let key = idempotence_key(fields.message_id.as_deref(), &raw);
            let message_id = fields.message_id.clone();
            (key, fields, message_id, raw)
        };
        if store.inbound_seen(&key).await.map_err(|e| format!("the store: {e}"))? {
            status.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%key, uid, "inbound mail fetched before; flagged, nothing added");
            metrics::counter!(MAILS, "outcome" => "duplicate").increment(1);
        } else {
            if let Some(duty) = duty
                && !duty.confirm().await
            {
                // The mailbox moved to another node (this one stalled, or Redis lost its
                // data): not delivered here, so not twice. The caller's watch ends the round.
                tracing::info!(%key, uid, "inbound mail left to the node that reads the mailbox now");
                return Ok(0);
            }
            let decision = within_sender_limit(decide(&fields, desk), senders, std::time::Instant::now());
            match &decision {
                Decision::Drop(DropReason::TooLarge(size)) => {
                    tracing::warn!(%key, uid, size, max = desk.max_bytes, "inbound mail too large: recorded and dropped, left on the server");
                }
                Decision::Drop(DropReason::SenderLimit) => {
                    tracing::warn!(%key, uid, "inbound mail from a sender past IMAP_SENDER_MAX_PER_HOUR: recorded and dropped, left on the server");
                }
                _ => {}
            }
            let outcome = outcome(&decision);
            let spender = spender(&decision);
            let mail = InboundMail {
                key: key.clone(),
                message_id,
                size,
                decision,
                raw,
            };
            if let Err(e) = sink.deliver(&mail).await {
                // Tried again next round: this try spends none of the sender's allowance.
                if let Some(sender) = spender {
                    senders.give_back(&sender);
                }
                return Err(format!("handing over mail {key}: {e}"));
            }
            store
                .first_seen(&key, crate::clock::now_ms())
                .await
                .map_err(|e| format!("the store: {e}"))?;
            status.delivered.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(MAILS, "outcome" => outcome).increment(1);
        }
        mailbox.mark_done(uid).await?;
    }
    Ok(uids.len())
}

fn outcome(decision: &Decision) -> &'static str {
    match decision {
        Decision::Drop(reason) => reason.as_str(),
        Decision::Bounce { .. } => "bounce",
        Decision::Thread { .. } => "thread",
        Decision::New { .. } => "new",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test hub polling every 200 ms once waited up to 5 min for a restarted server.
    #[test]
    fn the_retry_pause_grows_to_ten_polls_within_one_second_and_five_minutes() {
        assert_eq!(retry_cap(Duration::from_millis(200)), Duration::from_secs(2));
        assert_eq!(retry_cap(Duration::from_millis(10)), Duration::from_secs(1));
        assert_eq!(retry_cap(Duration::from_secs(30)), Duration::from_secs(300));
        assert_eq!(retry_cap(Duration::from_secs(3600)), Duration::from_secs(300));
    }
}
