//! Tests of `archive`.

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::store::*;

/// The memory store, taking at most 3 events a call and recording each call's size.
#[derive(Default)]
struct Small {
    inner: MemoryStore,
    calls: Mutex<Vec<usize>>,
}

#[async_trait]
impl Store for Small {
    fn backend(&self) -> &'static str {
        "memory"
    }
    fn max_batch(&self) -> usize {
        3
    }
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl AccountStore for Small {
    async fn create_account(&self, a: Account) -> StoreResult<()> {
        self.inner.create_account(a).await
    }
    async fn update_account(&self, a: Account) -> StoreResult<()> {
        self.inner.update_account(a).await
    }
    async fn account(&self, id: &str) -> StoreResult<Account> {
        self.inner.account(id).await
    }
    async fn account_by_username(&self, u: &str) -> StoreResult<Account> {
        self.inner.account_by_username(u).await
    }
    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        self.inner.accounts().await
    }
    // ---- sessions in the shared store ----
    async fn create_session(&self, s: StoredSession) -> StoreResult<()> {
        self.inner.create_session(s).await
    }
    async fn session(&self, id: &str) -> StoreResult<StoredSession> {
        self.inner.session(id).await
    }
    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_session(id).await
    }
    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        self.inner.delete_sessions_of(account_id).await
    }
    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        self.inner.sweep_sessions(now).await
    }
}

#[async_trait]
impl DeskStore for Small {
    async fn categories(&self) -> StoreResult<Vec<Category>> {
        self.inner.categories().await
    }
    async fn create_category(&self, c: Category) -> StoreResult<()> {
        self.inner.create_category(c).await
    }
    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
        self.inner.rename_category(id, name).await
    }
    async fn delete_category(&self, id: &str) -> StoreResult<()> {
        self.inner.delete_category(id).await
    }
    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.inner.desk_setting(key).await
    }
    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()> {
        self.inner.set_desk_setting(key, value).await
    }
}

#[async_trait]
impl ArchiveStore for Small {
    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
        self.calls.lock().unwrap().push(batch.len());
        self.inner.archive(batch).await
    }
    async fn conversations(&self, f: &ConversationFilter, p: Page) -> StoreResult<(Vec<Conversation>, u64)> {
        self.inner.conversations(f, p).await
    }
    async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
        self.inner.conversation(id).await
    }
    async fn conversation_notes(&self, id: &str) -> StoreResult<Vec<ConversationNote>> {
        self.inner.conversation_notes(id).await
    }
}

#[async_trait]
impl RoomStore for Small {
    // ---- rooms and 1-to-1 video ----
    async fn create_room(&self, r: crate::store::Room) -> StoreResult<()> {
        self.inner.create_room(r).await
    }
    async fn room(&self, id: &str) -> StoreResult<crate::store::Room> {
        self.inner.room(id).await
    }
    async fn open_room_of(&self, agent: &str) -> StoreResult<Option<crate::store::Room>> {
        self.inner.open_room_of(agent).await
    }
    async fn update_room(&self, r: crate::store::Room) -> StoreResult<crate::store::Room> {
        self.inner.update_room(r).await
    }
    async fn guest_for(&self, g: Guest) -> StoreResult<Guest> {
        self.inner.guest_for(g).await
    }
    async fn save_call_log(&self, l: CallLog) -> StoreResult<()> {
        self.inner.save_call_log(l).await
    }
    async fn call_logs(&self, agent: Option<&str>, p: Page) -> StoreResult<(Vec<CallLog>, u64)> {
        self.inner.call_logs(agent, p).await
    }
}

#[async_trait]
impl AppointmentStore for Small {
    // appointments
    async fn book_appointment(&self, a: Appointment) -> StoreResult<()> {
        self.inner.book_appointment(a).await
    }
    async fn appointment(&self, id: &str) -> StoreResult<Appointment> {
        self.inner.appointment(id).await
    }
    async fn appointment_by_token(&self, hash: &str) -> StoreResult<Appointment> {
        self.inner.appointment_by_token(hash).await
    }
    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation> {
        self.inner.cancel_appointment(id, at).await
    }
    async fn appointments(&self, from: Millis, to: Millis, who: Option<&str>) -> StoreResult<Vec<Appointment>> {
        self.inner.appointments(from, to, who).await
    }
    // appointment mail outbox
    async fn book_appointment_with_mail(&self, a: Appointment, m: OutboxMail) -> StoreResult<()> {
        self.inner.book_appointment_with_mail(a, m).await
    }
    async fn cancel_appointment_with_mail(
        &self,
        id: &str,
        at: Millis,
        reason: Option<String>,
        m: OutboxMail,
    ) -> StoreResult<Cancellation> {
        self.inner.cancel_appointment_with_mail(id, at, reason, m).await
    }
    async fn reschedule_appointment_with_mail(&self, a: Appointment, m: OutboxMail) -> StoreResult<Rescheduling> {
        self.inner.reschedule_appointment_with_mail(a, m).await
    }
}

#[async_trait]
impl OutboxStore for Small {
    async fn claim_mails(&self, node: &str, now: Millis, until: Millis, n: usize) -> StoreResult<Vec<OutboxMail>> {
        self.inner.claim_mails(node, now, until, n).await
    }
    async fn finish_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool> {
        self.inner.finish_mail(id, node, outcome).await
    }
    async fn mail(&self, id: &str) -> StoreResult<OutboxMail> {
        self.inner.mail(id).await
    }
    async fn mails(&self, status: Option<MailStatus>, p: Page) -> StoreResult<(Vec<OutboxMail>, u64)> {
        self.inner.mails(status, p).await
    }
    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        self.inner.add_mail(mail).await
    }
    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        self.inner.mails_by_id_prefix(prefix).await
    }
}

#[async_trait]
impl CannedStore for Small {
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>> {
        self.inner.canned_replies(owner).await
    }
    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply> {
        self.inner.canned_reply(id).await
    }
    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.inner.create_canned_reply(reply).await
    }
    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.inner.update_canned_reply(reply).await
    }
    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_canned_reply(id).await
    }
}

#[async_trait]
impl ConversationStore for Small {
    async fn conversation_record(&self, id: &str) -> StoreResult<ConversationRecord> {
        self.inner.conversation_record(id).await
    }
    async fn put_conversation_record(&self, record: &ConversationRecord) -> StoreResult<()> {
        self.inner.put_conversation_record(record).await
    }
    async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<ConversationRecord>> {
        self.inner.inbox(query).await
    }
    async fn customer_conversation_records(&self, key: &str, limit: usize) -> StoreResult<Vec<ConversationRecord>> {
        self.inner.customer_conversation_records(key, limit).await
    }
    async fn snoozes_due(&self, now: Millis, limit: usize) -> StoreResult<Vec<ConversationRecord>> {
        self.inner.snoozes_due(now, limit).await
    }
}

#[async_trait]
impl RatingStore for Small {
    async fn rate_conversation(&self, id: &str, rating: Rating) -> StoreResult<()> {
        self.inner.rate_conversation(id, rating).await
    }
}

#[async_trait]
impl OfflineStore for Small {
    async fn add_offline_message(&self, message: OfflineMessage, mail: Option<OutboxMail>) -> StoreResult<()> {
        self.inner.add_offline_message(message, mail).await
    }
    async fn offline_message(&self, id: &str) -> StoreResult<OfflineMessage> {
        self.inner.offline_message(id).await
    }
    async fn offline_messages(&self, filter: &OfflineFilter, page: Page) -> StoreResult<(Vec<OfflineMessage>, u64)> {
        self.inner.offline_messages(filter, page).await
    }
    async fn take_offline_message(&self, id: &str, agent: &str) -> StoreResult<OfflineMessage> {
        self.inner.take_offline_message(id, agent).await
    }
    async fn mark_offline_message_handled(&self, id: &str, by: &str) -> StoreResult<OfflineMessage> {
        self.inner.mark_offline_message_handled(id, by).await
    }
    async fn reply_offline_message(
        &self,
        id: &str,
        reply: OfflineReply,
        mail: OutboxMail,
    ) -> StoreResult<OfflineMessage> {
        self.inner.reply_offline_message(id, reply, mail).await
    }
}

#[async_trait]
impl CustomerStore for Small {
    async fn customer_conversations(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>> {
        self.inner.customer_conversations(key, limit).await
    }
    async fn set_customer_email(&self, id: &str, email: &str) -> StoreResult<()> {
        self.inner.set_customer_email(id, email).await
    }
    async fn customer_transcript(&self, id: &str) -> StoreResult<CustomerTranscript> {
        self.inner.customer_transcript(id).await
    }
}

#[async_trait]
impl ErasureStore for Small {
    async fn erase_conversations(&self, ids: &[String]) -> StoreResult<Erased> {
        self.inner.erase_conversations(ids).await
    }
    async fn erase_offline_messages_of(&self, email: &str) -> StoreResult<u64> {
        self.inner.erase_offline_messages_of(email).await
    }
    async fn add_erasure_record(&self, record: ErasureRecord) -> StoreResult<()> {
        self.inner.add_erasure_record(record).await
    }
    async fn erasure_records(&self, page: Page) -> StoreResult<(Vec<ErasureRecord>, u64)> {
        self.inner.erasure_records(page).await
    }
}

#[async_trait]
impl ReportStore for Small {
    async fn report_facts(&self, from: Millis, to: Millis) -> StoreResult<crate::store::ReportFacts> {
        self.inner.report_facts(from, to).await
    }
}

/// Group commit: with `group_commit_ms` set, events arriving one by one soon after a
/// write wait for the next one together (each write, on the embedded store, is an
/// fdatasync), where without it each is written alone.
#[tokio::test]
async fn events_arriving_soon_after_a_write_share_the_next_one() {
    let closed = |seq: u64| {
        ArchiveEvent::Closed(ConversationClosed {
            id: format!("c{seq}"),
            ended_at: 1,
            ended_by: Side::Agent,
            reason: EndReason::Ended,
        })
    };
    for (window_ms, most_calls) in [(0, 10), (500, 4)] {
        let store = Arc::new(Small::default());
        let (archive, task) = Archive::start(store.clone(), 100, None).unwrap();
        archive.status.group_commit_ms.store(window_ms, Ordering::Relaxed);
        for seq in 1..=10 {
            archive.push_message(closed(seq));
            // Time for the writer to take it (and, without a window, to write it).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(archive);
        task.await.unwrap();
        let calls = store.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 10);
        if window_ms == 0 {
            assert_eq!(calls.len(), most_calls, "one write each: {calls:?}");
        } else {
            // The first at once, the nine after it in the store's largest batches (3).
            assert!(calls.len() <= most_calls, "{calls:?}");
        }
    }
}

#[tokio::test]
async fn batches_are_no_larger_than_the_store_takes() {
    let store = Arc::new(Small::default());
    let (archive, task) = Archive::start(store.clone(), 100, None).unwrap();
    for seq in 1..=10 {
        archive.push_message(ArchiveEvent::Closed(ConversationClosed {
            id: format!("c{seq}"),
            ended_at: 1,
            ended_by: Side::Agent,
            reason: EndReason::Ended,
        }));
    }
    drop(archive);
    task.await.unwrap();
    let calls = store.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().sum::<usize>(), 10);
    assert!(calls.iter().all(|n| (1..=3).contains(n)), "{calls:?}");
}
