//! The in-memory store: the reference implementation of the storage contract,
//! used by tests and by `STORE=memory` (nothing survives a restart).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
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
    // ---- offline messages ----
    offline: HashMap<String, OfflineMessage>,
    // ---- a customer's data erased on request ----
    /// Erased conversations' ids: nothing of them is archived again.
    erased: std::collections::HashSet<String>,
    erasures: Vec<ErasureRecord>,
    // ---- the facts the reports read ----
    /// Customers who left the line unserved, in arrival order, once by id.
    abandoned: Vec<QueueAbandoned>,
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

impl Inner {
    // ---- appointments ----
    /// The unique key checked and the appointment stored under the caller's one lock.
    fn book(&mut self, appointment: Appointment) -> StoreResult<()> {
        let taken = self.appointments.iter().any(|a| {
            a.id == appointment.id
                || a.cancel_token_hash == appointment.cancel_token_hash
                || (a.status == AppointmentStatus::Booked
                    && appointment.status == AppointmentStatus::Booked
                    && a.representative_id == appointment.representative_id
                    && a.start == appointment.start)
        });
        if taken {
            return Err(StoreError::Conflict);
        }
        self.appointments.push(appointment);
        Ok(())
    }

    fn cancel(&mut self, id: &str, at: Millis, reason: Option<String>) -> StoreResult<Cancellation> {
        let a = self
            .appointments
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or(StoreError::NotFound)?;
        if a.status == AppointmentStatus::Cancelled {
            return Ok(Cancellation::AlreadyCancelled(a.clone()));
        }
        a.status = AppointmentStatus::Cancelled;
        a.cancelled_at = Some(at);
        a.cancel_reason = reason;
        a.sequence += 1;
        Ok(Cancellation::Cancelled(a.clone()))
    }

    /// The checks and the move under the caller's one lock: one decision.
    fn reschedule(&mut self, moved: Appointment) -> StoreResult<Rescheduling> {
        let current = self
            .appointments
            .iter()
            .find(|a| a.id == moved.id)
            .ok_or(StoreError::NotFound)?;
        if current.status != AppointmentStatus::Booked || current.sequence + 1 != moved.sequence {
            return Ok(Rescheduling::Changed(current.clone()));
        }
        let taken = self.appointments.iter().any(|a| {
            a.id != moved.id
                && a.status == AppointmentStatus::Booked
                && a.representative_id == moved.representative_id
                && a.start == moved.start
        });
        if taken {
            return Err(StoreError::Conflict);
        }
        let slot = self
            .appointments
            .iter_mut()
            .find(|a| a.id == moved.id)
            .ok_or(StoreError::NotFound)?;
        *slot = moved.clone();
        Ok(Rescheduling::Moved(moved))
    }

    /// Stores `mail` unless one of its id is there (then it is the same mail).
    fn put_mail(&mut self, mail: OutboxMail) {
        if !self.mails.iter().any(|m| m.id == mail.id) {
            self.mails.push(mail);
        }
    }

    /// Applies one archive event; applying it again changes nothing.
    fn apply(&mut self, event: &ArchiveEvent) {
        let conversation = match event {
            ArchiveEvent::Opened(o) => &o.id,
            ArchiveEvent::Message { conversation_id, .. } => conversation_id,
            ArchiveEvent::Transferred(t) => &t.id,
            ArchiveEvent::Note(n) => &n.conversation_id,
            ArchiveEvent::Closed(c) => &c.id,
            ArchiveEvent::Abandoned(a) => {
                if !self.abandoned.iter().any(|kept| kept.id == a.id) {
                    self.abandoned.push(a.clone());
                }
                return;
            }
        };
        if self.erased.contains(conversation) {
            return; // erased on request: a late event of it is dropped
        }
        match event {
            ArchiveEvent::Opened(opened) => {
                if !self.by_id.contains_key(&opened.id) {
                    self.by_id.insert(opened.id.clone(), self.conversations.len());
                    self.conversations.push(Conversation {
                        opened: opened.clone(),
                        closed: None,
                        messages: Vec::new(),
                        rating: None,
                        transfers: Vec::new(),
                        notes: Vec::new(),
                    });
                }
            }
            ArchiveEvent::Message {
                conversation_id,
                message,
            } => {
                let Some(&index) = self.by_id.get(conversation_id) else {
                    return;
                };
                // A transcript is kept in seq order, and a seq names one message of its
                // conversation: a retry finds its seq taken and is dropped, with no index of ids.
                let messages = &mut self.conversations[index].messages;
                if messages.last().is_none_or(|m| m.seq < message.seq) {
                    messages.push(message.clone());
                } else {
                    let at = messages.partition_point(|m| m.seq < message.seq);
                    if messages.get(at).is_none_or(|m| m.seq != message.seq) {
                        messages.insert(at, message.clone());
                    }
                }
            }
            ArchiveEvent::Transferred(transfer) => {
                // Dropped for an unknown conversation, as a message is.
                if let Some(&index) = self.by_id.get(&transfer.id) {
                    let c = &mut self.conversations[index];
                    add_transfer(&mut c.opened, &mut c.transfers, transfer);
                }
            }
            ArchiveEvent::Note(note) => {
                // Kept whether or not its conversation is opened (yet).
                add_note(self.notes.entry(note.conversation_id.clone()).or_default(), note);
            }
            ArchiveEvent::Closed(closed) => {
                if let Some(&index) = self.by_id.get(&closed.id) {
                    self.conversations[index].closed.get_or_insert_with(|| closed.clone());
                }
            }
            ArchiveEvent::Abandoned(_) => {}
        }
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

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn create_account(&self, account: Account) -> StoreResult<()> {
        self.with(|s| {
            if s.accounts
                .iter()
                .any(|a| a.id == account.id || a.username == account.username)
            {
                return Err(StoreError::Conflict);
            }
            s.accounts.push(account);
            Ok(())
        })
    }

    async fn update_account(&self, account: Account) -> StoreResult<()> {
        self.with(|s| {
            if s.accounts
                .iter()
                .any(|a| a.id != account.id && a.username == account.username)
            {
                return Err(StoreError::Conflict);
            }
            let slot = s
                .accounts
                .iter_mut()
                .find(|a| a.id == account.id)
                .ok_or(StoreError::NotFound)?;
            *slot = account;
            Ok(())
        })
    }

    async fn account(&self, id: &str) -> StoreResult<Account> {
        self.with(|s| {
            s.accounts
                .iter()
                .find(|a| a.id == id)
                .cloned()
                .ok_or(StoreError::NotFound)
        })
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Account> {
        self.with(|s| {
            s.accounts
                .iter()
                .find(|a| a.username == username)
                .cloned()
                .ok_or(StoreError::NotFound)
        })
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        self.with(|s| Ok(s.accounts.clone()))
    }

    async fn categories(&self) -> StoreResult<Vec<Category>> {
        self.with(|s| Ok(s.categories.clone()))
    }

    async fn create_category(&self, category: Category) -> StoreResult<()> {
        self.with(|s| {
            if s.categories.iter().any(|c| c.id == category.id) {
                return Err(StoreError::Conflict);
            }
            s.categories.push(category);
            Ok(())
        })
    }

    async fn rename_category(&self, id: &str, name: &str) -> StoreResult<()> {
        self.with(|s| {
            let c = s
                .categories
                .iter_mut()
                .find(|c| c.id == id)
                .ok_or(StoreError::NotFound)?;
            c.name = name.to_string();
            Ok(())
        })
    }

    async fn delete_category(&self, id: &str) -> StoreResult<()> {
        self.with(|s| {
            let before = s.categories.len();
            s.categories.retain(|c| c.id != id);
            if s.categories.len() == before {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }

    async fn archive(&self, batch: &[ArchiveEvent]) -> StoreResult<()> {
        self.with(|s| batch.iter().for_each(|e| s.apply(e)));
        Ok(())
    }

    async fn conversations(&self, filter: &ConversationFilter, page: Page) -> StoreResult<(Vec<Conversation>, u64)> {
        self.with(|s| {
            let mut hits: Vec<&Conversation> = s
                .conversations
                .iter()
                .filter(|c| matches(filter, &c.opened, &c.transfers))
                // The reference store scans: every conversation's text, checked by the shared rule.
                .filter(|c| filter.text.as_ref().is_none_or(|q| search::matches(q, c)))
                .collect();
            hits.sort_by(|a, b| {
                b.opened
                    .paired_at
                    .cmp(&a.opened.paired_at)
                    .then_with(|| b.opened.id.cmp(&a.opened.id))
            });
            let (mut page, total) = one_page(hits, page);
            for c in &mut page {
                c.rating = s.ratings.get(&c.opened.id).cloned();
            }
            Ok((page, total))
        })
    }

    async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
        self.with(|s| {
            let mut c = s
                .conversations
                .iter()
                .find(|c| c.opened.id == id)
                .cloned()
                .ok_or(StoreError::NotFound)?;
            c.rating = s.ratings.get(id).cloned();
            c.notes = s.notes.get(id).cloned().unwrap_or_default();
            Ok(c)
        })
    }

    async fn conversation_notes(&self, conversation_id: &str) -> StoreResult<Vec<ConversationNote>> {
        self.with(|s| Ok(s.notes.get(conversation_id).cloned().unwrap_or_default()))
    }

    // ---- sessions in the shared store ----
    async fn create_session(&self, session: StoredSession) -> StoreResult<()> {
        self.with(|s| {
            if s.sessions.contains_key(&session.id) {
                return Err(StoreError::Conflict);
            }
            s.sessions.insert(session.id.clone(), session);
            Ok(())
        })
    }

    // ---- rooms and 1-to-1 video ----
    async fn create_room(&self, room: Room) -> StoreResult<()> {
        self.with(|s| {
            if s.rooms.contains_key(&room.id) || s.open_rooms.contains_key(&room.agent_id) {
                return Err(StoreError::Conflict);
            }
            s.open_rooms.insert(room.agent_id.clone(), room.id.clone());
            s.rooms.insert(room.id.clone(), room);
            Ok(())
        })
    }

    async fn session(&self, id: &str) -> StoreResult<StoredSession> {
        self.with(|s| s.sessions.get(id).cloned().ok_or(StoreError::NotFound))
    }

    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        self.with(|s| Ok(s.sessions.remove(id).is_some()))
    }

    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        self.with(|s| {
            let ids: Vec<String> = s
                .sessions
                .values()
                .filter(|x| x.account_id == account_id)
                .map(|x| x.id.clone())
                .collect();
            for id in &ids {
                s.sessions.remove(id);
            }
            Ok(ids)
        })
    }

    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        self.with(|s| {
            let before = s.sessions.len();
            s.sessions.retain(|_, x| x.expires_at > now);
            Ok((before - s.sessions.len()) as u64)
        })
    }

    async fn room(&self, id: &str) -> StoreResult<Room> {
        self.with(|s| s.rooms.get(id).cloned().ok_or(StoreError::NotFound))
    }

    async fn open_room_of(&self, agent_id: &str) -> StoreResult<Option<Room>> {
        self.with(|s| Ok(s.open_rooms.get(agent_id).and_then(|id| s.rooms.get(id)).cloned()))
    }

    async fn update_room(&self, mut room: Room) -> StoreResult<Room> {
        self.with(|s| {
            let stored = s.rooms.get(&room.id).ok_or(StoreError::NotFound)?;
            super::rooms::may_replace(stored, &room)?;
            room.revision += 1;
            if room.state == RoomState::Ended && s.open_rooms.get(&room.agent_id) == Some(&room.id) {
                s.open_rooms.remove(&room.agent_id);
            }
            s.rooms.insert(room.id.clone(), room.clone());
            Ok(room)
        })
    }

    async fn guest_for(&self, guest: Guest) -> StoreResult<Guest> {
        self.with(|s| {
            for key in super::rooms::contact_keys(&guest) {
                if let Some(found) = s
                    .guests
                    .iter_mut()
                    .find(|g| super::rooms::contact_keys(g).contains(&key))
                {
                    found.name = guest.name.clone();
                    return Ok(found.clone());
                }
            }
            s.guests.push(guest.clone());
            Ok(guest)
        })
    }

    async fn save_call_log(&self, log: CallLog) -> StoreResult<()> {
        self.with(|s| {
            match s.call_logs.iter_mut().find(|l| l.id == log.id) {
                Some(slot) => *slot = log,
                None => s.call_logs.push(log),
            }
            Ok(())
        })
    }

    // ---- appointments ----
    /// The unique key is checked and the appointment stored under one lock: one decision.
    async fn book_appointment(&self, appointment: Appointment) -> StoreResult<()> {
        self.with(|s| s.book(appointment))
    }

    async fn call_logs(&self, agent_id: Option<&str>, page: Page) -> StoreResult<(Vec<CallLog>, u64)> {
        self.with(|s| {
            let mut hits: Vec<&CallLog> = s
                .call_logs
                .iter()
                .filter(|l| agent_id.is_none_or(|a| l.agent_id == a))
                .collect();
            hits.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| b.id.cmp(&a.id)));
            Ok(one_page(hits, page))
        })
    }

    async fn appointment(&self, id: &str) -> StoreResult<Appointment> {
        self.with(|s| {
            s.appointments
                .iter()
                .find(|a| a.id == id)
                .cloned()
                .ok_or(StoreError::NotFound)
        })
    }

    async fn appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment> {
        self.with(|s| {
            s.appointments
                .iter()
                .find(|a| a.cancel_token_hash == token_hash)
                .cloned()
                .ok_or(StoreError::NotFound)
        })
    }

    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation> {
        self.with(|s| s.cancel(id, at, None))
    }

    async fn appointments(
        &self,
        from: Millis,
        to: Millis,
        representative: Option<&str>,
    ) -> StoreResult<Vec<Appointment>> {
        self.with(|s| {
            let mut hits: Vec<Appointment> = s
                .appointments
                .iter()
                .filter(|a| a.start >= from && a.start < to)
                .filter(|a| representative.is_none_or(|r| a.representative_id == r))
                .cloned()
                .collect();
            hits.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
            Ok(hits)
        })
    }

    // ---- appointment mail outbox ----
    /// Booking and mail under one lock: one decision.
    async fn book_appointment_with_mail(&self, appointment: Appointment, mail: OutboxMail) -> StoreResult<()> {
        self.with(|s| {
            s.book(appointment)?;
            s.put_mail(mail);
            Ok(())
        })
    }

    async fn cancel_appointment_with_mail(
        &self,
        id: &str,
        at: Millis,
        reason: Option<String>,
        mail: OutboxMail,
    ) -> StoreResult<Cancellation> {
        self.with(|s| {
            let done = s.cancel(id, at, reason)?;
            if matches!(done, Cancellation::Cancelled(_)) {
                s.put_mail(mail);
            }
            Ok(done)
        })
    }

    async fn reschedule_appointment_with_mail(
        &self,
        moved: Appointment,
        mail: OutboxMail,
    ) -> StoreResult<Rescheduling> {
        self.with(|s| {
            let done = s.reschedule(moved)?;
            if matches!(done, Rescheduling::Moved(_)) {
                s.put_mail(mail);
            }
            Ok(done)
        })
    }

    async fn claim_mails(
        &self,
        node: &str,
        now: Millis,
        claim_until: Millis,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        self.with(|s| {
            let mut due: Vec<&mut OutboxMail> = s.mails.iter_mut().filter(|m| m.claimable(now)).collect();
            due.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.id.cmp(&b.id)));
            Ok(due
                .into_iter()
                .take(limit)
                .map(|m| {
                    m.claimed_by = Some(node.to_string());
                    m.claim_until = Some(claim_until);
                    m.clone()
                })
                .collect())
        })
    }

    async fn finish_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool> {
        self.with(|s| {
            let Some(m) = s.mails.iter_mut().find(|m| m.id == id) else {
                return Err(StoreError::NotFound);
            };
            if m.status != MailStatus::Pending || m.claimed_by.as_deref() != Some(node) {
                return Ok(false);
            }
            apply_outcome(m, outcome);
            Ok(true)
        })
    }

    async fn mail(&self, id: &str) -> StoreResult<OutboxMail> {
        self.with(|s| s.mails.iter().find(|m| m.id == id).cloned().ok_or(StoreError::NotFound))
    }

    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)> {
        self.with(|s| {
            let mut hits: Vec<&OutboxMail> = s
                .mails
                .iter()
                .filter(|m| status.is_none_or(|st| m.status == st))
                .collect();
            hits.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
            Ok(one_page(hits, page))
        })
    }

    // ---- desk settings ----
    async fn desk_setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.with(|s| Ok(s.desk_settings.get(key).cloned()))
    }

    async fn set_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()> {
        self.with(|s| {
            match value {
                Some(v) => s.desk_settings.insert(key.to_string(), v),
                None => s.desk_settings.remove(key),
            };
            Ok(())
        })
    }

    // ---- canned replies ----
    async fn canned_replies(&self, owner: Option<&str>) -> StoreResult<Vec<CannedReply>> {
        self.with(|s| {
            let mut out: Vec<CannedReply> = s
                .canned
                .iter()
                .filter(|r| r.owner.as_deref() == owner)
                .cloned()
                .collect();
            out.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
            Ok(out)
        })
    }

    async fn canned_reply(&self, id: &str) -> StoreResult<CannedReply> {
        self.with(|s| {
            s.canned
                .iter()
                .find(|r| r.id == id)
                .cloned()
                .ok_or(StoreError::NotFound)
        })
    }

    async fn create_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.with(|s| {
            let taken = s
                .canned
                .iter()
                .any(|r| r.id == reply.id || (r.owner_key() == reply.owner_key() && r.shortcut == reply.shortcut));
            if taken {
                return Err(StoreError::Conflict);
            }
            s.canned.push(reply);
            Ok(())
        })
    }

    async fn update_canned_reply(&self, reply: CannedReply) -> StoreResult<()> {
        self.with(|s| {
            let index = s
                .canned
                .iter()
                .position(|r| r.id == reply.id)
                .ok_or(StoreError::NotFound)?;
            let stored = &s.canned[index];
            let taken = s
                .canned
                .iter()
                .any(|r| r.id != reply.id && r.owner_key() == stored.owner_key() && r.shortcut == reply.shortcut);
            if taken {
                return Err(StoreError::Conflict);
            }
            let stored = &mut s.canned[index];
            *stored = CannedReply {
                owner: stored.owner.clone(),
                created_at: stored.created_at,
                ..reply
            };
            Ok(())
        })
    }

    async fn delete_canned_reply(&self, id: &str) -> StoreResult<bool> {
        self.with(|s| {
            let before = s.canned.len();
            s.canned.retain(|r| r.id != id);
            Ok(s.canned.len() != before)
        })
    }

    // ---- ratings ----
    async fn rate_conversation(&self, id: &str, rating: Rating) -> StoreResult<()> {
        self.with(|s| match s.ratings.entry(id.to_string()) {
            _ if s.erased.contains(id) => Err(StoreError::NotFound),
            std::collections::hash_map::Entry::Occupied(_) => Err(StoreError::Conflict),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(rating);
                Ok(())
            }
        })
    }

    // ---- offline messages: each change one decision under the lock ----
    async fn add_offline_message(&self, message: OfflineMessage, mail: Option<OutboxMail>) -> StoreResult<()> {
        self.with(|s| {
            if s.offline.contains_key(&message.id) {
                return Err(StoreError::Conflict);
            }
            s.offline.insert(message.id.clone(), message);
            if let Some(mail) = mail {
                s.put_mail(mail);
            }
            Ok(())
        })
    }

    async fn offline_message(&self, id: &str) -> StoreResult<OfflineMessage> {
        self.with(|s| s.offline.get(id).cloned().ok_or(StoreError::NotFound))
    }

    async fn offline_messages(&self, filter: &OfflineFilter, page: Page) -> StoreResult<(Vec<OfflineMessage>, u64)> {
        self.with(|s| {
            let mut hits: Vec<&OfflineMessage> = s.offline.values().filter(|m| filter.matches(m)).collect();
            hits.sort_by(|a, b| newest_first(a, b));
            Ok(one_page(hits, page))
        })
    }

    async fn take_offline_message(&self, id: &str, agent: &str) -> StoreResult<OfflineMessage> {
        self.with(|s| s.change_offline(id, |m| m.take_by(agent)))
    }

    async fn mark_offline_message_handled(&self, id: &str, by: &str) -> StoreResult<OfflineMessage> {
        self.with(|s| s.change_offline(id, |m| Ok(m.mark_handled(by, crate::clock::now_ms()))))
    }

    async fn reply_offline_message(
        &self,
        id: &str,
        reply: OfflineReply,
        mail: OutboxMail,
    ) -> StoreResult<OfflineMessage> {
        self.with(|s| {
            let mut added = false;
            let m = s.change_offline(id, |m| {
                added = m.add_reply(reply);
                Ok(())
            })?;
            if added {
                s.put_mail(mail);
            }
            Ok(m)
        })
    }

    // ---- customers: their details, earlier conversations ----
    async fn customer_conversations(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>> {
        self.with(|s| {
            let mut hits: Vec<&Conversation> = s
                .conversations
                .iter()
                .filter(|c| key.matches(&c.opened.customer))
                .collect();
            hits.sort_by(|a, b| {
                b.opened
                    .paired_at
                    .cmp(&a.opened.paired_at)
                    .then_with(|| b.opened.id.cmp(&a.opened.id))
            });
            let (mut page, _) = one_page(hits, Page { offset: 0, limit });
            for c in &mut page {
                c.rating = s.ratings.get(&c.opened.id).cloned();
            }
            Ok(page)
        })
    }

    async fn set_customer_email(&self, id: &str, email: &str) -> StoreResult<()> {
        self.with(|s| {
            let index = *s.by_id.get(id).ok_or(StoreError::NotFound)?;
            s.conversations[index].opened.customer.email = Some(email.to_string());
            Ok(())
        })
    }

    // ---- a customer's data erased on request ----
    async fn erase_conversations(&self, ids: &[String]) -> StoreResult<Erased> {
        self.with(|s| {
            let mut erased = Erased::default();
            for id in ids {
                s.erased.insert(id.clone());
                erased.notes += s.notes.remove(id).map_or(0, |n| n.len() as u64);
                erased.ratings += u64::from(s.ratings.remove(id).is_some());
                if let Some(index) = s.by_id.remove(id) {
                    let gone = s.conversations.remove(index);
                    erased.conversations += 1;
                    erased.messages += gone.messages.len() as u64;
                    for i in s.by_id.values_mut() {
                        if *i > index {
                            *i -= 1;
                        }
                    }
                }
            }
            Ok(erased)
        })
    }

    async fn erase_offline_messages_of(&self, email: &str) -> StoreResult<u64> {
        let email = email.to_lowercase();
        self.with(|s| {
            let before = s.offline.len();
            s.offline.retain(|_, m| m.email.to_lowercase() != email);
            Ok((before - s.offline.len()) as u64)
        })
    }

    async fn add_erasure_record(&self, record: ErasureRecord) -> StoreResult<()> {
        self.with(|s| s.erasures.push(record));
        Ok(())
    }

    async fn erasure_records(&self, page: Page) -> StoreResult<(Vec<ErasureRecord>, u64)> {
        self.with(|s| {
            let mut all: Vec<&ErasureRecord> = s.erasures.iter().collect();
            all.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
            Ok(one_page(all, page))
        })
    }

    // ---- transcripts by mail ----
    async fn customer_transcript(&self, id: &str) -> StoreResult<CustomerTranscript> {
        self.with(|s| {
            let index = *s.by_id.get(id).ok_or(StoreError::NotFound)?;
            // The notes live in `s.notes`, which this never reads.
            let c = &s.conversations[index];
            Ok(CustomerTranscript {
                opened: c.opened.clone(),
                closed: c.closed.clone(),
                messages: c.messages.clone(),
                rating: s.ratings.get(id).cloned(),
            })
        })
    }

    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        self.with(|s| {
            if s.mails.iter().any(|m| m.id == mail.id) {
                return Err(StoreError::Conflict);
            }
            s.mails.push(mail);
            Ok(())
        })
    }

    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        self.with(|s| {
            let mut hits: Vec<OutboxMail> = s.mails.iter().filter(|m| m.id.starts_with(prefix)).cloned().collect();
            hits.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(hits)
        })
    }

    // ---- the facts the reports read ----
    async fn report_facts(&self, from: Millis, to: Millis) -> StoreResult<ReportFacts> {
        self.with(|s| {
            let within = |at: Millis| from <= at && at < to;
            let conversations = s
                .conversations
                .iter()
                .filter(|c| c.opened.kind == ConversationKind::Service && within(c.opened.paired_at))
                .map(|c| ConversationFacts {
                    id: c.opened.id.clone(),
                    category: c.opened.category.clone(),
                    agent_id: c.opened.agent_id.clone(),
                    agent_name: c.opened.agent_name.clone(),
                    queued_at: c.opened.queued_at,
                    paired_at: c.opened.paired_at,
                    first_agent_at: reports::first_agent_at(&c.messages),
                    ended_at: c.closed.as_ref().map(|closed| closed.ended_at),
                    rating: s.ratings.get(&c.opened.id).map(|r| (r.scale, r.score)),
                })
                .collect();
            let abandoned = s.abandoned.iter().filter(|a| within(a.left_at)).cloned().collect();
            let offline = s
                .offline
                .values()
                .filter(|m| within(m.created_at))
                .map(reports::offline_facts)
                .collect();
            Ok(ReportFacts {
                conversations,
                abandoned,
                offline,
            })
        })
    }
}

// ---- offline messages ----
impl Inner {
    /// The message `id` changed by `change` under the caller's lock, and as it is then.
    fn change_offline<T>(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut OfflineMessage) -> StoreResult<T>,
    ) -> StoreResult<OfflineMessage> {
        let m = self.offline.get_mut(id).ok_or(StoreError::NotFound)?;
        let mut changed = m.clone();
        change(&mut changed)?;
        *m = changed;
        Ok(m.clone())
    }
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
