//! Offline messages in MongoDB: collection `offline_messages`, `_id` the message's id.
//!
//! Every change (take, handled, reply) reads the message, applies the shared rule of
//! `store::offline` and writes it back only if its `revision` is still the one read (a
//! compare-and-set), else reads again: of two agents taking one message at once, one
//! wins and the other sees it taken. As for appointments (see `mongo/outbox.rs`), there is
//! no multi-document transaction: a mail is written FIRST (its id derived from the
//! message, or the reply), then the message or reply; a refused write deletes its mail
//! again, and a crash between leaves a mail the outbox worker gives up because what it
//! announces is not stored.

use async_trait::async_trait;

use bson::doc;
use serde::{Deserialize, Serialize};

use super::{MongoStore, Named, all, ensure_indexes, index, is_duplicate_key, newest_first, one, page_of, unavailable};
use crate::store::{
    CustomerProfile, MailedReply, Millis, OfflineFilter, OfflineMessage, OfflineReply, OfflineState, OfflineStore,
    OutboxMail, Page, StoreError, StoreResult,
};

#[derive(Serialize, Deserialize)]
struct OfflineDoc {
    #[serde(rename = "_id")]
    id: String,
    /// Raised by every change: the compare-and-set's key.
    revision: i64,
    category: String,
    name: String,
    email: String,
    text: String,
    created_at: Millis,
    state: OfflineState,
    taken_by: Option<String>,
    replies: Vec<OfflineReply>,
    #[serde(default)]
    handled_at: Option<Millis>,
    #[serde(default)]
    handled_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer: Option<CustomerProfile>,
}

const OFFLINE: Named<OfflineDoc> = Named::new("offline_messages");

impl OfflineDoc {
    fn of(m: OfflineMessage, revision: i64) -> Self {
        OfflineDoc {
            id: m.id,
            revision,
            category: m.category,
            name: m.name,
            email: m.email,
            text: m.text,
            created_at: m.created_at,
            state: m.state,
            taken_by: m.taken_by,
            replies: m.replies,
            handled_at: m.handled_at,
            handled_by: m.handled_by,
            customer: m.customer,
        }
    }

    fn into_model(self) -> (OfflineMessage, i64) {
        (
            OfflineMessage {
                id: self.id,
                category: self.category,
                name: self.name,
                email: self.email,
                text: self.text,
                created_at: self.created_at,
                state: self.state,
                taken_by: self.taken_by,
                replies: self.replies,
                handled_at: self.handled_at,
                handled_by: self.handled_by,
                customer: self.customer,
            },
            self.revision,
        )
    }
}

/// Compare-and-set rounds before giving up as unavailable (only a storm of changes to one
/// message could use them all).
const MAX_ROUNDS: usize = 50;

impl MongoStore {
    /// The reports' facts of the messages left in `[from, to)`.
    pub(super) async fn offline_facts_in(
        &self,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<crate::store::OfflineFacts>> {
        let docs = all(self
            .collection(OFFLINE)
            .find(doc! {"created_at": {"$gte": from, "$lt": to}}))
        .await?;
        Ok(docs
            .into_iter()
            .map(|d| crate::store::reports::offline_facts(&d.into_model().0))
            .collect())
    }

    pub(super) async fn create_offline_indexes(&self) -> StoreResult<()> {
        let created = index(doc! {"created_at": -1, "_id": -1}, "created");
        ensure_indexes(&self.collection(OFFLINE), [created]).await
    }

    async fn read_offline(&self, id: &str) -> StoreResult<(OfflineMessage, i64)> {
        Ok(one(self.collection(OFFLINE).find_one(doc! {"_id": id}))
            .await?
            .into_model())
    }

    /// Applies `change` to message `id` by compare-and-set; returns it as stored and what
    /// `change` returned. A change that returns an error writes nothing.
    async fn change_offline<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut OfflineMessage) -> StoreResult<T>,
    ) -> StoreResult<(OfflineMessage, T)> {
        for _ in 0..MAX_ROUNDS {
            let (mut m, revision) = self.read_offline(id).await?;
            let out = change(&mut m)?;
            let written = self
                .collection(OFFLINE)
                .replace_one(
                    doc! {"_id": id, "revision": revision},
                    OfflineDoc::of(m.clone(), revision + 1),
                )
                .await
                .map_err(unavailable)?;
            if written.matched_count == 1 {
                return Ok((m, out));
            }
        }
        Err(StoreError::Unavailable(format!(
            "offline message {id} kept changing while it was being changed"
        )))
    }

    async fn drop_mail(&self, mail_id: &str) {
        if let Err(e) = self
            .collection(super::outbox::OUTBOX)
            .delete_one(doc! {"_id": mail_id})
            .await
        {
            tracing::warn!(error = %e, mail = %mail_id, "a refused offline message's mail stays; the worker will drop it");
        }
    }
}

#[async_trait]
impl OfflineStore for MongoStore {
    async fn add_offline_message(&self, m: OfflineMessage, mail: Option<OutboxMail>) -> StoreResult<()> {
        let mail_id = mail.as_ref().map(|m| m.id.clone());
        if let Some(mail) = mail {
            self.put_mail(mail).await?;
        }
        match self.collection(OFFLINE).insert_one(OfflineDoc::of(m, 0)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let refused = if is_duplicate_key(&e) {
                    StoreError::Conflict
                } else {
                    unavailable(e)
                };
                // A duplicate's mail has the same id as the stored message's own: keep it.
                if let (Some(id), StoreError::Unavailable(_)) = (&mail_id, &refused) {
                    self.drop_mail(id).await;
                }
                Err(refused)
            }
        }
    }

    async fn offline_message(&self, id: &str) -> StoreResult<OfflineMessage> {
        Ok(self.read_offline(id).await?.0)
    }

    async fn offline_messages(&self, filter: &OfflineFilter, page: Page) -> StoreResult<(Vec<OfflineMessage>, u64)> {
        let mut query = doc! {};
        if let Some(state) = filter.state {
            query.insert("state", state.as_str());
        }
        if let Some(category) = &filter.category {
            query.insert("category", category.as_str());
        }
        let (docs, total) = page_of(&self.collection(OFFLINE), query, newest_first("created_at"), page).await?;
        Ok((docs.into_iter().map(|d| d.into_model().0).collect(), total))
    }

    async fn take_offline_message(&self, id: &str, agent: &str) -> StoreResult<OfflineMessage> {
        Ok(self.change_offline(id, |m| m.take_by(agent)).await?.0)
    }

    async fn mark_offline_message_handled(&self, id: &str, by: &str) -> StoreResult<OfflineMessage> {
        Ok(self
            .change_offline(id, |m| Ok(m.mark_handled(by, crate::clock::now_ms())))
            .await?
            .0)
    }

    async fn reply_offline_message(&self, id: &str, mailed: MailedReply) -> StoreResult<OfflineMessage> {
        let MailedReply { reply, mail } = mailed;
        let mail_id = mail.id.clone();
        self.put_mail(mail).await?;
        match self.change_offline(id, |m| Ok(m.add_reply(reply.clone()))).await {
            Ok((m, _)) => Ok(m),
            Err(e) => {
                self.drop_mail(&mail_id).await;
                Err(e)
            }
        }
    }
}
