//! The store a running hub reads through: every read answered within
//! `STORE_READ_TIMEOUT_MS`, or `Unavailable`.
//!
//! Why a wrapper around the whole store, and not the driver's options: a MongoDB server
//! that is frozen (SIGSTOP, a stalled disk or VM) keeps its TCP connection open and
//! answers nothing, and the Rust driver has no socket timeout (`socketTimeoutMS` is
//! parsed and ignored) nor a client-side operation timeout; `maxTimeMS` is enforced by the
//! server, which is not running; server selection and connect timeouts bound only finding
//! a server and opening a connection. The driver's monitor does notice a server that stops
//! answering its heartbeats and then breaks the connections in use, but only after
//! `heartbeatFrequencyMS` + `connectTimeoutMS` (about 12 s here), and a server whose
//! heartbeats answer while its reads hang (a stalled disk) is never noticed. Meanwhile an
//! HTTP request holds its connection and the page spins. One wrapper bounds every read of
//! every backend the same way, so a handler written tomorrow is bounded too.
//!
//! Only reads are bounded here. A write that outlived a timeout may still be carried out
//! when the server thaws, so each writer decides what a timeout means for it: the archive
//! writer retries or spools (`ARCHIVE_WRITE_TIMEOUT_MS`), `deadline::within` and
//! `deadline::write_within` bound the changes someone waits on (a conversation's, an
//! offline message's). Writes and the backend's own calls (`archive`,
//! `ready_reports`, `repair_record_copies`, `ping`, `shared_attachments`) go through
//! untouched.
//!
//! After a timeout the read's future is dropped; the driver closes the connection that
//! was waiting for its answer, and once the server answers again the next read works,
//! with no restart.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::deadline::within;
use super::*;

/// `inner` with each read bounded by `limit` (see the module comment).
pub fn bounded_reads(inner: SharedStore, limit: Duration) -> SharedStore {
    Arc::new(BoundedReads { inner, limit })
}

struct BoundedReads {
    inner: SharedStore,
    limit: Duration,
}

/// Implements `$concern` for [`BoundedReads`]: each method calls the inner store's, a
/// `read` within the limit, a `write` as it is.
macro_rules! bounded {
    ($concern:ident { $($kind:ident $name:ident($($arg:ident: $ty:ty),*) -> $answer:ty;)* }) => {
        #[async_trait]
        impl $concern for BoundedReads {
            $(async fn $name(&self, $($arg: $ty),*) -> StoreResult<$answer> {
                bounded!(@$kind self.limit, self.inner.$name($($arg),*))
            })*
        }
    };
    (@read $limit:expr, $call:expr) => {
        within($limit, $call).await
    };
    (@write $limit:expr, $call:expr) => {
        $call.await
    };
}

bounded!(AccountStore {
    write create_account(account: Account) -> ();
    write update_account(account: Account) -> ();
    read account(id: &str) -> Account;
    read account_by_username(username: &str) -> Account;
    read accounts() -> Vec<Account>;
    write create_session(session: StoredSession) -> ();
    read session(id: &str) -> StoredSession;
    write delete_session(id: &str) -> bool;
    write delete_sessions_of(account_id: &str) -> Vec<String>;
    write sweep_sessions(now: Millis) -> u64;
});

bounded!(DeskStore {
    read categories() -> Vec<Category>;
    write create_category(category: Category) -> ();
    write rename_category(id: &str, name: &str) -> ();
    write delete_category(id: &str) -> ();
    read desk_setting(key: &str) -> Option<String>;
    write set_desk_setting(key: &str, value: Option<String>) -> ();
});

bounded!(ArchiveStore {
    write archive(batch: &[ArchiveEvent]) -> ();
    read conversations(filter: &ConversationFilter, page: Page) -> (Vec<Conversation>, u64);
    read conversation(id: &str) -> Conversation;
    read conversation_notes(conversation_id: &str) -> Vec<ConversationNote>;
});

bounded!(ConversationStore {
    read conversation_record(id: &str) -> ConversationRecord;
    write put_conversation_record(record: &ConversationRecord) -> ();
    write put_conversation_records(records: &[ConversationRecord]) -> Vec<StoreResult<()>>;
    read conversation_records(ids: &[String]) -> Vec<ConversationRecord>;
    read inbox(query: &InboxQuery) -> Vec<ConversationRecord>;
    read count_inbox(query: &InboxQuery) -> u64;
    read customer_conversation_records(customer_key: &str, limit: usize) -> Vec<ConversationRecord>;
    read snoozes_due(now: Millis, limit: usize) -> Vec<ConversationRecord>;
    // Has a default: named here, so the backend's own runs, not the default.
    write repair_record_copies() -> u64;
});

bounded!(LabelStore {
    read labels() -> Vec<Label>;
    write create_label(label: Label) -> ();
    write update_label(label: Label) -> ();
    write delete_label(id: &str) -> ();
});

bounded!(CustomerStore {
    read customer_conversations(key: &CustomerKey, limit: u64) -> Vec<Conversation>;
    write set_customer_email(id: &str, email: &str) -> ();
    read customer_transcript(id: &str) -> CustomerTranscript;
});

bounded!(RatingStore {
    write rate_conversation(id: &str, rating: Rating) -> ();
});

bounded!(RoomStore {
    write create_room(room: Room) -> ();
    read room(id: &str) -> Room;
    read open_room_of(agent_id: &str) -> Option<Room>;
    write update_room(room: Room) -> Room;
    write guest_for(guest: Guest) -> Guest;
    write save_call_log(log: CallLog) -> ();
    read call_logs(agent_id: Option<&str>, page: Page) -> (Vec<CallLog>, u64);
});

bounded!(AppointmentStore {
    write book_appointment(appointment: Appointment) -> ();
    read appointment(id: &str) -> Appointment;
    read appointment_by_token(token_hash: &str) -> Appointment;
    write cancel_appointment(id: &str, at: Millis) -> Cancellation;
    read appointments(starts: std::ops::Range<Millis>, representative: Option<&str>) -> Vec<Appointment>;
    write book_appointment_with_mail(appointment: Appointment, mail: OutboxMail) -> ();
    write cancel_appointment_with_mail(cancel: AppointmentCancel, mail: OutboxMail) -> Cancellation;
    write reschedule_appointment_with_mail(moved: Appointment, mail: OutboxMail) -> Rescheduling;
});

bounded!(OutboxStore {
    write add_mail(mail: OutboxMail) -> ();
    write claim_mails(node: &str, now: Millis, until: Millis, limit: usize) -> Vec<OutboxMail>;
    write finish_mail(id: &str, node: &str, outcome: MailOutcome) -> bool;
    read mail(id: &str) -> OutboxMail;
    read mails(status: Option<MailStatus>, page: Page) -> (Vec<OutboxMail>, u64);
    read mails_by_id_prefix(prefix: &str) -> Vec<OutboxMail>;
    write bounce_mail(id: &str, reason: &str) -> bool;
});

bounded!(OfflineStore {
    write add_offline_message(message: OfflineMessage, mail: Option<OutboxMail>) -> ();
    read offline_message(id: &str) -> OfflineMessage;
    read offline_messages(filter: &OfflineFilter, page: Page) -> (Vec<OfflineMessage>, u64);
    write take_offline_message(id: &str, agent: &str) -> OfflineMessage;
    write mark_offline_message_handled(id: &str, by: &str) -> OfflineMessage;
    write reply_offline_message(id: &str, mailed: MailedReply) -> OfflineMessage;
});

bounded!(CannedStore {
    read canned_replies(owner: Option<&str>) -> Vec<CannedReply>;
    read canned_reply(id: &str) -> CannedReply;
    write create_canned_reply(reply: CannedReply) -> ();
    write update_canned_reply(reply: CannedReply) -> ();
    write delete_canned_reply(id: &str) -> bool;
});

bounded!(ErasureStore {
    write erase_conversations(ids: &[String]) -> Erased;
    write erase_offline_messages_of(email: &str) -> u64;
    write add_erasure_record(record: ErasureRecord) -> ();
    read erasure_records(page: Page) -> (Vec<ErasureRecord>, u64);
});

// `ready_reports` has a default: named here, so the backend's own runs, not the default.
bounded!(ReportStore {
    read report_facts(from: Millis, to: Millis) -> ReportFacts;
    write ready_reports(now: Millis) -> ();
});

bounded!(ReplyTokenStore {
    write remember(token: &str, conversation_id: &str) -> ();
    read conversation_of(token: &str) -> Option<String>;
    read token_of(conversation_id: &str) -> Option<String>;
});

bounded!(InboundMailStore {
    read inbound_seen(key: &str) -> bool;
    write first_seen(key: &str, at: Millis) -> bool;
});

bounded!(WebhookStore {
    write add_webhook(endpoint: WebhookEndpoint) -> ();
    read webhooks() -> Vec<WebhookEndpoint>;
    read webhook(id: &str) -> WebhookEndpoint;
    write put_webhook(endpoint: WebhookEndpoint) -> ();
    write delete_webhook(id: &str) -> ();
    read webhook_private_addresses() -> Option<PrivateAddressesChoice>;
    write set_webhook_private_addresses(choice: PrivateAddressesChoice) -> ();
    write add_delivery(delivery: WebhookDelivery) -> ();
    write claim_delivery(delivery: &WebhookDelivery, claim: DeliveryClaim) -> bool;
    write finish_delivery(delivery: WebhookDelivery, node: &str) -> bool;
    read pending_deliveries(of: &[String], limit: usize) -> Vec<WebhookDelivery>;
    read dying_deliveries(limit: usize) -> Vec<WebhookDelivery>;
    write bury_delivery(delivery: &WebhookDelivery) -> ();
    read deliveries_of(endpoint_id: &str, limit: usize) -> Vec<WebhookDelivery>;
    write next_delivery_seq() -> u64;
    write prune_deliveries(before: Millis) -> u64;
});

bounded!(ApiTokenStore {
    write add_api_token(token: ApiToken) -> ();
    read api_tokens() -> Vec<ApiToken>;
    read api_token_by_hash(hash: &str) -> ApiToken;
    write revoke_api_token(id: &str, at: Millis) -> ApiToken;
    write touch_api_token(id: &str, at: Millis) -> ();
});

// Every method, defaults included, is the inner store's: its batch size, its ping (the
// readiness check bounds its own), its attachments.
#[async_trait]
impl Store for BoundedReads {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn shared_attachments(
        &self,
    ) -> Option<std::io::Result<(crate::attachments::SharedAttachmentStore, Vec<u8>)>> {
        self.inner.shared_attachments().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrapper is the inner store's: what a write keeps, a read finds, and the
    /// backend's own answers. (A read that hangs is `deadline::within`'s test, and the hub
    /// test `reads_outage` freezes a real MongoDB-wire server.)
    #[tokio::test]
    async fn reads_and_writes_are_the_inner_stores() {
        let inner: SharedStore = Arc::new(MemoryStore::new());
        let store = bounded_reads(inner.clone(), Duration::from_secs(5));
        let label = Label {
            id: "vip".into(),
            name: "VIP".into(),
            colour: "#d29922".into(),
            created_at: 1,
        };
        store.create_label(label.clone()).await.unwrap();
        assert_eq!(store.labels().await.unwrap(), vec![label.clone()]);
        assert_eq!(inner.labels().await.unwrap(), vec![label]);
        assert!(matches!(store.account("nobody").await, Err(StoreError::NotFound)));
        assert_eq!(
            (store.backend(), store.max_batch()),
            (inner.backend(), inner.max_batch())
        );
    }
}
