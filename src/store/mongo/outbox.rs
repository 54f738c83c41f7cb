//! The mail outbox in MongoDB: collection `outbox`, `_id` the mail's id.
//!
//! Why no multi-document transaction: this store works on a standalone MongoDB server
//! (transactions need a replica set), as every other rule of it does (see
//! `mongo/rooms.rs`). Instead the mail's id is derived from its appointment (and purpose),
//! and the mail is written FIRST, then the booking or cancellation:
//! - a refused booking (duplicate key) deletes its mail again;
//! - a crash between the two leaves a mail whose appointment is missing (booking) or still
//!   booked (cancellation). The worker repairs that: before sending it checks that the
//!   appointment is as the mail says, waits a little while the other write may still be on
//!   its way, and then gives such a mail up (dead, "never stored") instead of sending it;
//! - writing the same mail again (a retried cancel) is the same `_id`: one mail; and when
//!   that retry does cancel, a mail the worker gave up meanwhile is pending again.
//!
//! A claim is one `findAndModify` per mail whose filter says "pending, due, and unclaimed or
//! with its lease run out": the server applies it to one document atomically, so of several
//! nodes claiming at once one gets each mail. Finishing is conditional on the claim too.
//! The writes of an appointment with its mail sit with the appointments
//! (`mongo/appointments.rs`), which own them; they follow the order above.

use async_trait::async_trait;

use bson::doc;
use mongodb::options::{FindOneAndUpdateOptions, ReturnDocument};
use serde::{Deserialize, Serialize};

use super::{
    MongoStore, Named, all, ensure_indexes, index, insert_new, is_duplicate_key, newest_first, one, page_of,
    unavailable,
};
use crate::store::{MailOutcome, MailStatus, Millis, OutboxMail, OutboxStore, Page, StoreResult};

/// A mail with its `_id`.
#[derive(Serialize, Deserialize)]
pub(super) struct MailDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    mail: OutboxMail,
}

pub(super) const OUTBOX: Named<MailDoc> = Named::new("outbox");

impl From<OutboxMail> for MailDoc {
    fn from(mail: OutboxMail) -> Self {
        MailDoc {
            id: mail.id.clone(),
            mail,
        }
    }
}

impl From<MailDoc> for OutboxMail {
    fn from(d: MailDoc) -> Self {
        OutboxMail { id: d.id, ..d.mail }
    }
}

fn status_name(status: MailStatus) -> &'static str {
    match status {
        MailStatus::Pending => "pending",
        MailStatus::Sent => "sent",
        MailStatus::Logged => "logged",
        MailStatus::Dead => "dead",
        MailStatus::Bounced => "bounced",
    }
}

impl MongoStore {
    pub(super) async fn create_outbox_indexes(&self) -> StoreResult<()> {
        let due = index(doc! {"status": 1, "due_at": 1}, "status_due");
        let created = index(doc! {"created_at": -1}, "created");
        ensure_indexes(&self.collection(OUTBOX), [due, created]).await
    }

    /// Inserts `mail`; one of its id already there is the same mail.
    pub(super) async fn put_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        match self.collection(OUTBOX).insert_one(MailDoc::from(mail)).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl OutboxStore for MongoStore {
    async fn claim_mails(&self, node: &str, now: Millis, until: Millis, limit: usize) -> StoreResult<Vec<OutboxMail>> {
        let mut claimed = Vec::new();
        while claimed.len() < limit {
            let found = self
                .collection(OUTBOX)
                .find_one_and_update(
                    doc! {
                        "status": "pending",
                        "due_at": {"$lte": now},
                        "$or": [{"claim_until": null}, {"claim_until": {"$lte": now}}],
                    },
                    doc! {"$set": {"claimed_by": node, "claim_until": until}},
                )
                .with_options(
                    FindOneAndUpdateOptions::builder()
                        .sort(doc! {"due_at": 1, "_id": 1})
                        .return_document(ReturnDocument::After)
                        .build(),
                )
                .await
                .map_err(unavailable)?;
            match found {
                Some(d) => claimed.push(d.into()),
                None => break,
            }
        }
        Ok(claimed)
    }

    async fn finish_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool> {
        let update = match outcome {
            MailOutcome::Sent { at } => doc! {"$set": {"status": "sent", "sent_at": at, "claim_until": null}},
            MailOutcome::Logged { at } => doc! {"$set": {"status": "logged", "sent_at": at, "claim_until": null}},
            MailOutcome::Retry { error, retry_at } => doc! {
                "$set": {"due_at": retry_at, "last_error": error, "claim_until": null},
                "$inc": {"attempts": 1},
            },
            MailOutcome::Dead { error } => doc! {
                "$set": {"status": "dead", "last_error": error, "claim_until": null},
                "$inc": {"attempts": 1},
            },
            MailOutcome::Bounced { error } => doc! {
                "$set": {"status": "bounced", "last_error": error, "claim_until": null},
                "$inc": {"attempts": 1},
            },
            MailOutcome::Later { until } => doc! {"$set": {"due_at": until, "claim_until": null}},
        };
        let done = self
            .collection(OUTBOX)
            .update_one(doc! {"_id": id, "status": "pending", "claimed_by": node}, update)
            .await
            .map_err(unavailable)?;
        if done.matched_count > 0 {
            return Ok(true);
        }
        // Nothing matched: say NotFound for a mail that is not there at all, as the others do.
        self.mail(id).await.map(|_| false)
    }

    async fn bounce_mail(&self, id: &str, reason: &str) -> StoreResult<bool> {
        // One conditional update: of two reports about one mail, one changes it.
        let done = self
            .collection(OUTBOX)
            .update_one(
                doc! {"_id": id, "status": {"$ne": "bounced"}},
                doc! {"$set": {"status": "bounced", "last_error": reason, "claim_until": null}},
            )
            .await
            .map_err(unavailable)?;
        if done.matched_count > 0 {
            return Ok(true);
        }
        self.mail(id).await.map(|_| false)
    }

    async fn mail(&self, id: &str) -> StoreResult<OutboxMail> {
        Ok(one(self.collection(OUTBOX).find_one(doc! {"_id": id})).await?.into())
    }

    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)> {
        let query = match status {
            Some(s) => doc! {"status": status_name(s)},
            None => doc! {},
        };
        let (docs, total) = page_of(&self.collection(OUTBOX), query, newest_first("created_at"), page).await?;
        Ok((docs.into_iter().map(OutboxMail::from).collect(), total))
    }

    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        insert_new(&self.collection(OUTBOX), &super::outbox::MailDoc::from(mail)).await
    }

    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        // An anchored regex of a literal: the server walks the `_id` index's range.
        let pattern = format!("^{}", escape_regex(prefix));
        let docs = all(self
            .collection(OUTBOX)
            .find(doc! {"_id": {"$regex": pattern}})
            .sort(doc! {"_id": 1}))
        .await?;
        Ok(docs.into_iter().map(OutboxMail::from).collect())
    }
}

/// `text` as a regular expression matching itself: every character but letters and digits
/// escaped (PCRE takes an escaped punctuation character literally).
fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
