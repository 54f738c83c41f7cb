//! A conversation's lasting state, changed the same way from any node: read its record,
//! let `core::conversation` decide, write the result back by compare-and-set on the
//! record's version; when another change came first, decide again on what won. So an
//! agent resolving and a snooze running out at once on two nodes each apply once, in some
//! order, and neither is lost.

use crate::core::conversation::labels::{self, LabelChange};
use crate::core::conversation::{Actor, Conversation, Kept, Refusal, Route, Rules, Status};
use std::sync::Arc;
use std::time::Duration;

use crate::core::routing::AgentId;
use crate::store::deadline::within;
use crate::store::{ConversationRecord, ConversationStatus, ConversationStore, Millis, SharedStore, StoreError};

pub mod archived_holder;
pub mod follow_up_mail;
pub mod migration;
pub mod writer;

/// How often a change is decided again after losing a race before it gives up: more is a
/// conversation changed many times a second, which no person does.
const ATTEMPTS: usize = 8;

/// How long one store call of a change may take by default before the store counts as down
/// (the default of `ARCHIVE_WRITE_TIMEOUT_MS`).
const STORE_DEADLINE: Duration = Duration::from_secs(15);

/// Why a change was not made.
#[derive(Debug)]
pub enum ConversationError {
    /// The rules refused it; nothing changed.
    Refused(Refusal),
    /// No such conversation.
    NotFound,
    /// The store could not be read or written (or the change kept losing races).
    Store(StoreError),
}

impl From<StoreError> for ConversationError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            other => Self::Store(other),
        }
    }
}

/// What the node that ends a chat knows of its conversation's opening: enough for the
/// record its end stores when no opening has (`Conversations::resolve_ended`), so that
/// record is the one the opening and the end would have made, should the opening never
/// come (the node that queued it died).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpeningKnown {
    pub category: String,
    /// The customer's keys (`CustomerProfile::record_keys`), as the opening stores them.
    pub customer_keys: Vec<String>,
    /// Who served the chat: the holder the opening would have made.
    pub agent: Option<AgentId>,
    /// When the chat was paired: when the conversation opened.
    pub paired_at: Millis,
}

/// Conversations' lasting state over a store. Cheap to clone.
#[derive(Clone)]
pub struct Conversations {
    store: SharedStore,
    /// Where the records are read and written: the store, or the conversation writer's
    /// staging of a batch of changes (`writer::Staged`), stored in one write after.
    records: Arc<dyn ConversationStore>,
    rules: Rules,
    /// How long each store call may take: past it the change fails as the store's fault.
    deadline: Duration,
}

impl Conversations {
    pub fn new(store: SharedStore, rules: Rules) -> Self {
        let records: Arc<dyn ConversationStore> = store.clone();
        Self {
            store,
            records,
            rules,
            deadline: STORE_DEADLINE,
        }
    }

    /// The same, reading and writing the records through `records` instead of the store.
    fn over(&self, records: Arc<dyn ConversationStore>) -> Self {
        Self {
            records,
            ..self.clone()
        }
    }

    /// The same, with each store call bounded by `deadline` instead of the default.
    pub fn answering_within(self, deadline: Duration) -> Self {
        Self { deadline, ..self }
    }

    /// The store the records are in (for what a change brings along, as an offline
    /// message marked handled).
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Snoozed conversations whose time came by `now`, the earliest first.
    pub async fn snoozes_due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationRecord>, StoreError> {
        self.records.snoozes_due(now, limit).await
    }

    /// Stores the record of a conversation that starts now, waiting for an agent; the one
    /// stored when it has one already (a retried opening). `offline`: it begins as an
    /// offline message (marked so in its record), open, without an agent.
    pub async fn open(
        &self,
        id: &str,
        category: &str,
        customer_keys: Vec<String>,
        now: Millis,
        offline: bool,
    ) -> Result<ConversationRecord, StoreError> {
        let mut record = ConversationRecord {
            customer_keys,
            offline,
            ..ConversationRecord::first(id, category, ConversationStatus::Open, now)
        };
        write_back(&mut record, &Conversation::new(now));
        match self.records.put_conversation_record(&record).await {
            Ok(()) => Ok(record),
            // Stored already: its status stands (a late opening never overrides a status
            // set since, such as an end another node stored first: `resolve_ended`), and
            // what only the opening knows completes a record that end created.
            Err(StoreError::Conflict) => self.opening_completes(&record).await,
            Err(e) => Err(e),
        }
    }

    /// Conversation `opening.id` was stored before its opening reached the store (its end,
    /// applied on another node first): the opening adds what that record lacks (category,
    /// customer keys, when it opened) and changes nothing else.
    async fn opening_completes(&self, opening: &ConversationRecord) -> Result<ConversationRecord, StoreError> {
        let completed = edit_record(&*self.records, self.deadline, &opening.id, |record| {
            // Only an opening stores the category and the customer's keys (an end or a
            // continuing stored first leaves them empty, and may have set a holder since):
            // whatever is empty, it fills; a record that has them changes nothing.
            let mut changed = false;
            if record.category.is_empty() && !opening.category.is_empty() {
                record.category.clone_from(&opening.category);
                changed = true;
            }
            if record.customer_keys.is_empty() && !opening.customer_keys.is_empty() {
                record.customer_keys.clone_from(&opening.customer_keys);
                changed = true;
            }
            if opening.opened_at < record.opened_at {
                record.opened_at = opening.opened_at;
                changed = true;
            }
            Ok(((), changed))
        })
        .await;
        match completed {
            Ok(((), record)) => Ok(record),
            Err(ConversationError::NotFound) => Err(StoreError::NotFound),
            Err(ConversationError::Store(e)) => Err(e),
            Err(ConversationError::Refused(r)) => unreachable!("completing an opening refuses nothing: {r:?}"),
        }
    }

    /// Its live chat was ended on purpose at `at`: resolved, unless its status changed
    /// after that ([`Conversation::chat_ended`]). A conversation not stored yet (its
    /// opening still queued on a node that stalled right after the pairing, or lost with a
    /// node that died, while another node ended the chat) is stored as `opening` and this
    /// end would have left it: of its category, with its customer's keys and its agent,
    /// opened when paired, resolved. So it is listed, found and reported as any ended
    /// conversation, and a late opening finds it and keeps its status (`open`).
    /// Returns the change, if any, and the record as stored now.
    pub async fn resolve_ended(
        &self,
        id: &str,
        opening: &OpeningKnown,
        at: Millis,
    ) -> Result<(Option<crate::core::conversation::Change>, ConversationRecord), ConversationError> {
        for _ in 0..ATTEMPTS {
            match self.change(id, false, |c, rules| Ok(c.chat_ended(at, rules))).await {
                Err(ConversationError::NotFound) => {}
                done => return done,
            }
            let opened_at = opening.paired_at.min(at);
            let mut record = ConversationRecord {
                customer_keys: opening.customer_keys.clone(),
                ..ConversationRecord::first(id, &opening.category, ConversationStatus::Open, opened_at)
            };
            let mut conversation = Conversation::new(opened_at);
            if let Some(agent) = &opening.agent {
                conversation.assigned(agent.clone(), opened_at);
            }
            let change = conversation.chat_ended(at, &self.rules);
            write_back(&mut record, &conversation);
            match within(self.deadline, self.records.put_conversation_record(&record)).await {
                Ok(()) => return Ok((change, record)),
                // Opened meanwhile: ended as a stored one.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ConversationError::Store(StoreError::Conflict))
    }

    /// Applies `decide` to conversation `id` as stored (`live`: what the caller knows of
    /// its customer's session) and stores what it left, unless it refused. Returns
    /// `decide`'s answer and the record as stored now.
    pub async fn change<T>(
        &self,
        id: &str,
        live: bool,
        decide: impl Fn(&mut Conversation, &Rules) -> Result<T, Refusal>,
    ) -> Result<(T, ConversationRecord), ConversationError> {
        edit_record(&*self.records, self.deadline, id, |record| {
            let mut conversation = Conversation::from_kept(kept(record), live, 0);
            let answer = decide(&mut conversation, &self.rules)?;
            let changed = conversation.kept() != kept(record);
            if changed {
                write_back(record, &conversation);
            }
            Ok((answer, changed))
        })
        .await
    }
}

/// Applies `change` of `label` to conversation `id`'s labels on behalf of `by`
/// (`defined`: the desk defines the label), by compare-and-set as [`Conversations::change`]
/// does. Returns whether they changed, and the record as stored now.
pub async fn relabel(
    store: &SharedStore,
    deadline: Duration,
    id: &str,
    by: Actor<'_>,
    change: LabelChange,
    label: &str,
    defined: bool,
) -> Result<(bool, ConversationRecord), ConversationError> {
    edit_record(&**store, deadline, id, |record| {
        let holder = record.holder.clone().map(AgentId);
        let changed = labels::relabel(&mut record.labels, holder.as_ref(), by, change, label, defined)?;
        Ok((changed, changed))
    })
    .await
}

/// Reads conversation `id`'s record, lets `edit` change it (its answer, and whether it
/// changed anything) and stores a change as the next version, by compare-and-set: when
/// another change came first, reads and edits again. A refusal stores nothing.
async fn edit_record<T>(
    store: &dyn ConversationStore,
    deadline: Duration,
    id: &str,
    edit: impl Fn(&mut ConversationRecord) -> Result<(T, bool), Refusal>,
) -> Result<(T, ConversationRecord), ConversationError> {
    for _ in 0..ATTEMPTS {
        let mut record = within(deadline, store.conversation_record(id)).await?;
        let (answer, changed) = edit(&mut record).map_err(ConversationError::Refused)?;
        if !changed {
            return Ok((answer, record));
        }
        record.version += 1;
        match within(deadline, store.put_conversation_record(&record)).await {
            Ok(()) => return Ok((answer, record)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ConversationError::Store(StoreError::Conflict))
}

/// The core's view of a stored record.
fn kept(record: &ConversationRecord) -> Kept {
    let status = match record.status {
        ConversationStatus::Open => Status::Open,
        ConversationStatus::Pending => Status::Pending,
        // A snoozed record without its time is woken at once rather than parked forever.
        ConversationStatus::Snoozed => Status::Snoozed {
            until: record.snoozed_until.unwrap_or(Millis::MIN),
        },
        ConversationStatus::Resolved => Status::Resolved,
    };
    Kept {
        status,
        holder: record.holder.clone().map(AgentId),
        holder_turn_at: record.holder_turn_at,
        opened_at: record.opened_at,
        status_since: record.status_since,
        resolved_at: record.resolved_at,
        resolutions: record.resolutions,
        reopens: record.reopens,
        snooze_ended_at: record.snooze_ended_at,
    }
}

/// Writes what the core left into the record (its version is the caller's to set).
fn write_back(record: &mut ConversationRecord, conversation: &Conversation) {
    let kept = conversation.kept();
    let (status, snoozed_until) = match kept.status {
        Status::Open => (ConversationStatus::Open, None),
        Status::Pending => (ConversationStatus::Pending, None),
        Status::Snoozed { until } => (ConversationStatus::Snoozed, Some(until)),
        Status::Resolved => (ConversationStatus::Resolved, None),
    };
    record.status = status;
    record.snoozed_until = snoozed_until;
    record.holder = kept.holder.map(|agent| agent.0);
    record.holder_turn_at = kept.holder_turn_at;
    record.opened_at = kept.opened_at;
    record.status_since = kept.status_since;
    record.resolved_at = kept.resolved_at;
    record.resolutions = kept.resolutions;
    record.reopens = kept.reopens;
    record.snooze_ended_at = kept.snooze_ended_at;
}

/// Where a customer coming back live to conversation `record` goes (nobody is paired with
/// it: they come back to it from a new page).
pub fn return_route(record: &ConversationRecord, now: Millis, rules: &Rules) -> Route {
    Conversation::from_kept(kept(record), false, 0)
        .route_on_return(false, now, rules)
        .unwrap_or(Route::Line)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    fn conversations() -> Conversations {
        Conversations::new(Arc::new(MemoryStore::new()), Rules::default())
    }

    #[tokio::test]
    async fn a_change_is_stored_as_the_next_version_and_a_refusal_stores_nothing() {
        let c = conversations();
        let opened = c
            .open("c1", "sales", vec!["visitor:v".into()], 10, false)
            .await
            .unwrap();
        assert_eq!((opened.version, opened.status), (1, ConversationStatus::Open));
        assert_eq!(
            c.open("c1", "sales", vec![], 99, false).await.unwrap(),
            opened,
            "a retried opening"
        );

        let ann = AgentId("ann".into());
        let ((), held) = c
            .change("c1", true, |conv, _| {
                conv.assigned(ann.clone(), 20);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!((held.version, held.holder.as_deref()), (2, Some("ann")));

        let refused = c
            .change("c1", true, |conv, rules| {
                conv.set_status(Actor::Agent(&AgentId("bob".into())), Status::Resolved, 30, rules)
            })
            .await;
        assert!(matches!(refused, Err(ConversationError::Refused(Refusal::NotYours))));

        let (_, snoozed) = c
            .change("c1", false, |conv, rules| {
                conv.set_status(Actor::Agent(&ann), Status::Snoozed { until: 1000 }, 40, rules)
            })
            .await
            .unwrap();
        assert_eq!(
            (
                snoozed.version,
                snoozed.status,
                snoozed.snoozed_until,
                snoozed.status_since
            ),
            (3, ConversationStatus::Snoozed, Some(1000), 40)
        );
        assert!(matches!(
            c.change("nope", false, |_, _| Ok(())).await,
            Err(ConversationError::NotFound)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_at_once_each_apply_once() {
        let c = conversations();
        c.open("c1", "sales", vec![], 0, false).await.unwrap();
        let ann = AgentId("ann".into());
        c.change("c1", true, |conv, _| {
            conv.assigned(ann.clone(), 0);
            Ok(())
        })
        .await
        .unwrap();
        c.change("c1", false, |conv, _| {
            conv.set_status(Actor::Admin, Status::Resolved, 1, &Rules::default())
        })
        .await
        .unwrap();
        // Two customer messages and a resolve race: every one applies, each once.
        let writes = (0..3).map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                c.change("c1", false, |conv, rules| match i {
                    2 => conv.set_status(Actor::Admin, Status::Resolved, 12, rules).map(|_| ()),
                    _ => {
                        conv.customer_wrote(conv.next_seq(), 10 + i);
                        Ok(())
                    }
                })
                .await
                .unwrap()
            })
        });
        for write in writes.collect::<Vec<_>>() {
            write.await.unwrap();
        }
        // The first message to apply reopens it; a message into an open conversation
        // changes nothing kept (no write); the resolve may apply before or after them.
        let record = c.store.conversation_record("c1").await.unwrap();
        assert!((4..=6).contains(&record.version), "version {}", record.version);
        assert!(record.reopens >= 1 && record.reopens <= record.resolutions);
    }
}
