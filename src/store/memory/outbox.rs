//! The mail outbox, in the in-memory store.

use async_trait::async_trait;

use super::*;

impl Inner {
    /// Stores `mail` unless one of its id is there (then it is the same mail).
    pub(super) fn put_mail(&mut self, mail: OutboxMail) {
        if !self.mails.iter().any(|m| m.id == mail.id) {
            self.mails.push(mail);
        }
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn claim_mails(&self, node: &str, now: Millis, until: Millis, limit: usize) -> StoreResult<Vec<OutboxMail>> {
        self.with(|s| {
            let mut due: Vec<&mut OutboxMail> = s.mails.iter_mut().filter(|m| m.claimable(now)).collect();
            due.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.id.cmp(&b.id)));
            Ok(due
                .into_iter()
                .take(limit)
                .map(|m| {
                    m.claimed_by = Some(node.to_string());
                    m.claim_until = Some(until);
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
        self.with(|s| found(s.mails.iter().find(|m| m.id == id)))
    }

    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)> {
        self.with(|s| {
            let hits: Vec<&OutboxMail> = s
                .mails
                .iter()
                .filter(|m| status.is_none_or(|st| m.status == st))
                .collect();
            Ok(newest_page(hits, |m| (m.created_at, m.id.as_str()), page))
        })
    }

    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        self.with(|s| add_new(&mut s.mails, mail, |m, new| m.id == new.id))
    }

    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        self.with(|s| {
            let mut hits: Vec<OutboxMail> = s.mails.iter().filter(|m| m.id.starts_with(prefix)).cloned().collect();
            hits.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(hits)
        })
    }

    async fn bounce_mail(&self, id: &str, reason: &str) -> StoreResult<bool> {
        self.with(|s| {
            let Some(m) = s.mails.iter_mut().find(|m| m.id == id) else {
                return Err(StoreError::NotFound);
            };
            Ok(apply_bounce(m, reason))
        })
    }
}
