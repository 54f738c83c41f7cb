//! Signed webhooks: events of the desk (a conversation created, assigned, transferred, its
//! status changed, a message, a rating, an offline message, an appointment booked,
//! rescheduled or cancelled) sent to the endpoints admins registered.
//!
//! The hub and the HTTP handlers hand events to [`Webhooks::emit`], which never waits: the
//! event goes to the node's [`journal`] on local disk, and what was acknowledged waits for
//! that (an HTTP answer, [`Webhooks::emit_durably`]; a chat line's `ack`, the archive's
//! commit), so an acknowledged action's event survives a crash and a store outage. One
//! task reads the journal and writes a delivery per endpoint wanting each event into the
//! store (the durable queue every node's deliverer reads). The deliverer ([`deliver`])
//! sends them, signed ([`sign`]), in order per conversation, retried with capped
//! backoff (`core::webhooks`), each attempt logged in its delivery; settled deliveries
//! leave the log after `WEBHOOK_DELIVERY_RETENTION_DAYS` ([`retention`]).
//!
//! Several nodes: each emits the events of what it does (a chat's from the node that
//! archives it, a status change from the node whose change took effect, an HTTP call's
//! from the node that answered it), numbers its deliveries from the store's one counter
//! (`seq`, so they interleave in the order written whichever node wrote them), and runs a
//! deliverer that sends a delivery only under its claim: one delivery per event and
//! endpoint, sent by one node at a time.

pub mod bot_call_schema;
pub mod deliver;
pub mod disabled_mail;
pub mod event;
pub mod failure_log;
pub mod journal;
pub mod private_addresses;
pub mod readings;
pub mod retention;
pub mod schema;
pub mod sign;
pub mod target;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use self::event::Event;
use self::journal::{Journal, Journaled};
use crate::clock::now_ms;
use crate::store::{
    ArchiveEvent, ConversationKind, ConversationOpened, ConversationTransferred, DeliveryStatus, Millis, SharedStore,
    StoreError, StoreResult, WebhookDelivery, WebhookEndpoint,
};

/// Admins' "send again"s waiting to be written. Each admin waits for the answer.
const AGAIN_QUEUE: usize = 100;

/// Journaled events turned into deliveries at a time (then removed from the journal).
const FAN_OUT_CHUNK: usize = 100;

/// An admin's "send again" of a logged delivery: the new delivery, stored, is answered on
/// the channel.
type Again = (WebhookDelivery, oneshot::Sender<WebhookDelivery>);

/// The handle the hub and the HTTP handlers emit through. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    journal: Journal,
    again: mpsc::Sender<Again>,
    /// Some endpoint is enabled: otherwise events are not even made.
    active: Arc<AtomicBool>,
    /// Readings of the endpoints: an older one answering late (the start's, behind an
    /// admin's change) does not set `active`.
    readings: readings::Readings,
    /// Wakes the deliverer when deliveries were written or an endpoint was enabled.
    wake: Arc<Notify>,
    store: SharedStore,
    /// Whether deliveries and webhook bots' calls may reach private addresses, read again
    /// with the endpoints.
    pub private: private_addresses::PrivateAddresses,
    /// Buddy chats (staff among themselves) this node archives: their lines are no events.
    buddy_chats: Arc<Mutex<HashSet<String>>>,
}

impl Webhooks {
    /// Starts the journal's writer (on `journal`; whatever it holds from a previous process
    /// is handed on first), the task writing deliveries and the deliverer.
    pub fn start(
        store: SharedStore,
        settings: &crate::config::Settings,
        journal: journal::JournalFile,
        shutdown: CancellationToken,
    ) -> Self {
        let (again, again_rx) = mpsc::channel(AGAIN_QUEUE);
        let hooks = Self {
            journal: Journal::start(journal),
            again,
            active: Arc::default(),
            readings: readings::Readings::default(),
            wake: Arc::default(),
            store,
            private: private_addresses::PrivateAddresses::new(settings.webhooks.allow_private),
            buddy_chats: Arc::default(),
        };
        let claims = deliver::Claims {
            node: settings.cluster.node_id.clone(),
            lease: settings.webhooks.lease,
            admins: settings.webhooks.admin_mail_to.clone(),
            admin_page: disabled_mail::admin_page(&settings.base_url_without_request()),
        };
        tokio::spawn(fan_out(hooks.clone(), again_rx, shutdown.clone()));
        tokio::spawn(retention::run(
            hooks.store.clone(),
            settings.webhooks.delivery_retention,
            shutdown.clone(),
        ));
        tokio::spawn(deliver::run(hooks.store.clone(), hooks.clone(), claims, shutdown));
        hooks
    }

    /// Queues `event` for the endpoints that want it; never waits. Its journal ticket (0:
    /// none, no endpoint is enabled): [`Webhooks::journaled_through`] it, and it survives a crash.
    pub fn emit(&self, event: Event) -> u64 {
        if !self.active.load(Ordering::Relaxed) {
            return 0;
        }
        self.journal.add(event)
    }

    /// [`Webhooks::emit`], returning once the event is on local disk: what an HTTP handler
    /// awaits before it answers 2xx.
    pub async fn emit_durably(&self, event: Event) {
        let ticket = self.emit(event);
        self.journaled_through(ticket).await;
    }

    /// Waits until the event of journal ticket `ticket`, and every one before it, is on
    /// local disk (at once for 0).
    pub async fn journaled_through(&self, ticket: u64) {
        self.journal.written_through(ticket).await;
    }

    /// This node's journal file: its backlog and what it set aside.
    pub fn journal(&self) -> &journal::JournalFile {
        &self.journal.file
    }

    /// Queues `logged`'s event once more to its endpoint, as a new pending delivery (same
    /// event id and body, signed afresh when sent) behind the conversation's others: the
    /// new delivery once stored, `None` when the hub is stopping.
    pub async fn send_again(&self, logged: WebhookDelivery) -> Option<WebhookDelivery> {
        let (tx, rx) = oneshot::channel();
        // Waits for room rather than drop it: an admin asked and is shown the answer.
        self.again.send((logged, tx)).await.ok()?;
        rx.await.ok()
    }

    /// The event an archived conversation event makes, if any (a service chat's opening,
    /// a customer's or agent's line of one, an agent's note on one); made only while some
    /// endpoint is enabled.
    pub fn event_of(&self, event: &ArchiveEvent) -> Option<Event> {
        let mut buddies = self.buddy_chats.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            ArchiveEvent::Opened(opened) if opened.kind == ConversationKind::Buddy => {
                buddies.insert(opened.id.clone());
                None
            }
            ArchiveEvent::Closed(closed) => {
                buddies.remove(&closed.id);
                None
            }
            _ if !self.active.load(Ordering::Relaxed) => None,
            ArchiveEvent::Opened(opened) => Some(Event::conversation_created(opened)),
            ArchiveEvent::Message {
                conversation_id,
                message,
            } if !buddies.contains(&**conversation_id) => Event::message_created(conversation_id, message),
            ArchiveEvent::Note(note) if !buddies.contains(&note.conversation_id) => Some(Event::note_created(note)),
            _ => None,
        }
    }

    /// The event of a conversation opened again (a customer continuing it, or a person
    /// taking it from a bot): it was created once already, so it is `conversation.assigned`.
    pub fn reopened(&self, opened: &ConversationOpened, previous: Option<&str>) -> Option<Event> {
        self.active
            .load(Ordering::Relaxed)
            .then(|| Event::conversation_assigned(opened, previous))
    }

    /// The events of an agent handing conversation `t.id` on (in `category` now):
    /// `conversation.transferred`, and `conversation.assigned` when it went straight to a
    /// named colleague.
    pub fn handed_on(&self, t: &ConversationTransferred, category: &str) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        self.emit(Event::conversation_transferred(t, category));
        if let Some(assigned) = Event::assigned_by_transfer(t, category, t.at) {
            self.emit(assigned);
        }
    }

    /// The event of an agent taking conversation `t.id` from the line it was handed to at
    /// `handed_at`: `conversation.assigned`, from the agent who handed it on.
    pub fn taken_from_line(&self, t: &ConversationTransferred, category: &str, handed_at: Millis) {
        if let Some(assigned) = Event::assigned_by_transfer(t, category, handed_at) {
            self.emit(assigned);
        }
    }

    /// Reads the endpoints (and the admins' choice on private addresses) again after an
    /// admin changed them: events are made while one is enabled, and the deliverer looks
    /// at once.
    pub async fn endpoints_changed(&self) {
        self.refresh().await;
        self.wake.notify_one();
    }

    async fn refresh(&self) {
        let reading = self.reading_begun();
        match self.store.webhooks().await {
            Ok(endpoints) => self.seen(reading, &endpoints),
            Err(e) => tracing::warn!(error = %e, "webhook endpoints could not be read"),
        }
        if let Err(e) = self.private.refresh(&self.store).await {
            tracing::warn!(error = %e, "the admins' choice on webhooks' private addresses could not be read");
        }
    }

    /// A reading of the endpoints begins: its number, for [`Webhooks::seen`].
    fn reading_begun(&self) -> u64 {
        self.readings.begin()
    }

    /// Events are made from now on while one of `endpoints`, as reading `reading` read
    /// them, is enabled, unless a reading begun later answered first: it read a store at
    /// least as new (a deliverer's round that read before an admin's change must not undo
    /// the change's reading).
    fn seen<'a>(&self, reading: u64, endpoints: impl IntoIterator<Item = &'a WebhookEndpoint>) {
        self.readings.answered(reading, || {
            let any = endpoints.into_iter().any(|e| e.enabled);
            self.active.store(any, Ordering::Relaxed);
        });
    }
}

/// How long the fan-out waits before reading the journal again after it could not be read,
/// or before handing events on again after they could not be removed from it.
const TRIM_RETRY: Duration = Duration::from_secs(5);

/// Writes a delivery per enabled endpoint wanting each journaled event, in the order they
/// were made, each event's under a new `seq` from the store's counter, then removes them
/// from the journal; an admin's "send again" goes behind the events journaled before it.
async fn fan_out(hooks: Webhooks, mut again: mpsc::Receiver<Again>, shutdown: CancellationToken) {
    let store = hooks.store.clone();
    let file = hooks.journal.file.clone();
    let mut appended = hooks.journal.appended.clone();
    hooks.refresh().await;
    loop {
        // Marked seen before the read: an append after it wakes the wait below.
        appended.borrow_and_update();
        let read = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || file.front(FAN_OUT_CHUNK)).await
        };
        let front = match read {
            Ok(Ok(front)) => front,
            Ok(Err(e)) => {
                // Left where they are; read again after a pause rather than in a tight loop.
                tracing::error!(error = %e, "the webhook journal cannot be read; its events wait");
                tokio::select! {
                    _ = tokio::time::sleep(TRIM_RETRY) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(e) => panic!("the webhook journal's thread failed: {e}"),
        };
        for (key, why) in &front.set_aside {
            tracing::error!(
                record = key,
                journal = %file.path().display(),
                "webhook journal record {key} cannot be read ({why}): set aside in the journal's set_aside table, for an operator; the events behind it go on"
            );
        }
        file.publish_counts();
        if front.events.is_empty() && !front.set_aside.is_empty() {
            // More may be behind what was set aside.
            continue;
        }
        let front = front.events;
        let Some(&(last, _)) = front.last() else {
            tokio::select! {
                asked = again.recv() => match asked {
                    Some((logged, answer)) => if !send_again(&hooks, logged, answer, &shutdown).await { return },
                    None => return,
                },
                changed = appended.changed() => if changed.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
            continue;
        };
        for (_, event) in &front {
            if !fan_out_one(&store, event, &shutdown).await {
                return;
            }
        }
        let trimmed = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || file.remove_through(last)).await
        };
        if let Ok(Err(e)) = trimmed {
            // Left in the journal, they are handed on once more: their deliveries are kept once.
            // A pause before that, so a journal that cannot be written (its disk full or
            // failing) is not read and handed on again in a tight loop.
            tracing::warn!(error = %e, "webhook journal: events made deliveries could not be removed");
            tokio::select! {
                _ = tokio::time::sleep(TRIM_RETRY) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        file.publish_counts();
        hooks.wake.notify_one();
    }
}

/// Writes `event`'s deliveries, one per enabled endpoint wanting it; false when the hub
/// stops meanwhile.
async fn fan_out_one(store: &SharedStore, event: &Journaled, shutdown: &CancellationToken) -> bool {
    // Tried until the store takes it: the events behind it wait in the journal, in order.
    let Some(endpoints) = until_stored(shutdown, || store.webhooks()).await else {
        return false;
    };
    let wanting: Vec<_> = endpoints
        .iter()
        .filter(|e| e.enabled && e.events.contains(&event.event_type))
        .collect();
    if wanting.is_empty() {
        return true;
    }
    // One `seq` for the event: its deliveries' ids differ by endpoint.
    let Some(seq) = until_stored(shutdown, || store.next_delivery_seq()).await else {
        return false;
    };
    for endpoint in wanting {
        // One per event and endpoint: the same event made on two nodes, or handed on
        // again from the journal after a crash, is written once.
        let delivery = new_delivery(format!("{}-{}", event.id, endpoint.id), &endpoint.id, seq, event);
        if !add_delivery(store, shutdown, &delivery).await {
            return false;
        }
    }
    true
}

/// Writes an admin's "send again" of `logged` as a new pending delivery and answers it;
/// false when the hub stops meanwhile.
async fn send_again(
    hooks: &Webhooks,
    logged: WebhookDelivery,
    answer: oneshot::Sender<WebhookDelivery>,
    shutdown: &CancellationToken,
) -> bool {
    let store = &hooks.store;
    let Some(seq) = until_stored(shutdown, || store.next_delivery_seq()).await else {
        return false;
    };
    let id = format!("{}-{}-{seq}", logged.event_id, logged.endpoint_id);
    let event = Journaled {
        id: logged.event_id,
        event_type: logged.event_type,
        ordering_key: logged.ordering_key,
        body: logged.body,
    };
    let again = new_delivery(id, &logged.endpoint_id, seq, &event);
    if !add_delivery(store, shutdown, &again).await {
        return false;
    }
    hooks.wake.notify_one();
    // The admin may have gone; the delivery stands.
    let _ = answer.send(again);
    true
}

/// Delivery `id` of `event` to endpoint `endpoint_id`, numbered `seq`: pending, due now,
/// never attempted, claimed by nobody.
fn new_delivery(id: String, endpoint_id: &str, seq: u64, event: &Journaled) -> WebhookDelivery {
    WebhookDelivery {
        id,
        endpoint_id: endpoint_id.to_string(),
        seq,
        ordering_key: event.ordering_key.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        body: event.body.clone(),
        status: DeliveryStatus::Pending,
        due_at: now_ms(),
        attempts: vec![],
        created_at: now_ms(),
        claimed_by: None,
        claim_until: None,
    }
}

/// Stores a new delivery, tried until the store takes it; false when the hub stops meanwhile.
async fn add_delivery(store: &SharedStore, shutdown: &CancellationToken, delivery: &WebhookDelivery) -> bool {
    let added = until_stored(shutdown, || async {
        match store.add_delivery(delivery.clone()).await {
            // Written by an earlier try whose answer was lost, or by another node that made
            // the same event (`Event::once`).
            Err(StoreError::Conflict) => Ok(()),
            other => other,
        }
    });
    added.await.is_some()
}

/// `call`'s answer, tried again with a growing pause while the store is unavailable;
/// `None` when the hub stops meanwhile.
async fn until_stored<T, F: std::future::Future<Output = StoreResult<T>>>(
    shutdown: &CancellationToken,
    call: impl Fn() -> F,
) -> Option<T> {
    let mut pause = Duration::from_millis(100);
    loop {
        match call().await {
            Ok(answer) => return Some(answer),
            Err(e) => {
                tracing::warn!(error = %e, "webhooks wait for the store");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return None,
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    fn endpoint(enabled: bool) -> WebhookEndpoint {
        WebhookEndpoint {
            id: "e".into(),
            url: "https://crm.example.com/hook".into(),
            events: vec!["message.created".into()],
            secret: "s".into(),
            enabled,
            disabled_reason: None,
            failures_in_a_row: 0,
            created_at: 0,
        }
    }

    /// A deliverer's round that read the endpoints before an admin registered one, and
    /// answered after the registration's own reading, leaves events being made.
    #[tokio::test]
    async fn a_reading_that_answers_late_does_not_undo_a_newer_one() {
        let dir = std::env::temp_dir().join(format!("switchboard-hooks-{}", uuid::Uuid::new_v4().simple()));
        let shutdown = CancellationToken::new();
        let hooks = Webhooks::start(
            Arc::new(MemoryStore::new()),
            &crate::config::Settings::for_tests(),
            journal::JournalFile::open(&dir).unwrap(),
            shutdown.clone(),
        );
        let before_the_registration = hooks.reading_begun();
        let after_it = hooks.reading_begun();
        hooks.seen(after_it, [&endpoint(true)]);
        hooks.seen(before_the_registration, []);
        assert!(
            hooks.active.load(Ordering::Relaxed),
            "a stale reading switched events off"
        );
        shutdown.cancel();
        let _ = std::fs::remove_dir_all(dir);
    }
}
