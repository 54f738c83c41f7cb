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
use futures_util::TryStreamExt;
use mongodb::options::{FindOneAndUpdateOptions, FindOptions, IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};

use super::{MongoStore, conflict_or_unavailable, is_duplicate_key, unavailable};
use crate::store::{
    MailAttachment, MailOutcome, MailPurpose, MailStatus, Millis, OutboxMail, OutboxStore, Page, StoreError,
    StoreResult,
};

#[derive(Serialize, Deserialize)]
pub(super) struct MailDoc {
    #[serde(rename = "_id")]
    id: String,
    appointment_id: String,
    purpose: MailPurpose,
    to: String,
    subject: String,
    text: String,
    attachments: Vec<MailAttachment>,
    status: MailStatus,
    attempts: u32,
    due_at: Millis,
    claimed_by: Option<String>,
    claim_until: Option<Millis>,
    last_error: Option<String>,
    created_at: Millis,
    sent_at: Option<Millis>,
}

impl From<OutboxMail> for MailDoc {
    fn from(m: OutboxMail) -> Self {
        MailDoc {
            id: m.id,
            appointment_id: m.appointment_id,
            purpose: m.purpose,
            to: m.to,
            subject: m.subject,
            text: m.text,
            attachments: m.attachments,
            status: m.status,
            attempts: m.attempts,
            due_at: m.due_at,
            claimed_by: m.claimed_by,
            claim_until: m.claim_until,
            last_error: m.last_error,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

impl From<MailDoc> for OutboxMail {
    fn from(d: MailDoc) -> Self {
        OutboxMail {
            id: d.id,
            appointment_id: d.appointment_id,
            purpose: d.purpose,
            to: d.to,
            subject: d.subject,
            text: d.text,
            attachments: d.attachments,
            status: d.status,
            attempts: d.attempts,
            due_at: d.due_at,
            claimed_by: d.claimed_by,
            claim_until: d.claim_until,
            last_error: d.last_error,
            created_at: d.created_at,
            sent_at: d.sent_at,
        }
    }
}

fn status_name(status: MailStatus) -> &'static str {
    match status {
        MailStatus::Pending => "pending",
        MailStatus::Sent => "sent",
        MailStatus::Dead => "dead",
    }
}

impl MongoStore {
    pub(super) fn outbox(&self) -> Collection<MailDoc> {
        self.db.collection("outbox")
    }

    pub(super) async fn create_outbox_indexes(&self) -> StoreResult<()> {
        let due = IndexModel::builder()
            .keys(doc! {"status": 1, "due_at": 1})
            .options(IndexOptions::builder().name("status_due".to_string()).build())
            .build();
        let created = IndexModel::builder()
            .keys(doc! {"created_at": -1})
            .options(IndexOptions::builder().name("created".to_string()).build())
            .build();
        self.outbox()
            .create_indexes([due, created])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Inserts `mail`; one of its id already there is the same mail.
    pub(super) async fn put_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        match self.outbox().insert_one(MailDoc::from(mail)).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl OutboxStore for MongoStore {
    async fn claim_mails(
        &self,
        node: &str,
        now: Millis,
        claim_until: Millis,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        let mut claimed = Vec::new();
        while claimed.len() < limit {
            let found = self
                .outbox()
                .find_one_and_update(
                    doc! {
                        "status": "pending",
                        "due_at": {"$lte": now},
                        "$or": [{"claim_until": null}, {"claim_until": {"$lte": now}}],
                    },
                    doc! {"$set": {"claimed_by": node, "claim_until": claim_until}},
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
            MailOutcome::Retry { error, retry_at } => doc! {
                "$set": {"due_at": retry_at, "last_error": error, "claim_until": null},
                "$inc": {"attempts": 1},
            },
            MailOutcome::Dead { error } => doc! {
                "$set": {"status": "dead", "last_error": error, "claim_until": null},
                "$inc": {"attempts": 1},
            },
            MailOutcome::Later { until } => doc! {"$set": {"due_at": until, "claim_until": null}},
        };
        let done = self
            .outbox()
            .update_one(doc! {"_id": id, "status": "pending", "claimed_by": node}, update)
            .await
            .map_err(unavailable)?;
        if done.matched_count > 0 {
            return Ok(true);
        }
        // Nothing matched: say NotFound for a mail that is not there at all, as the others do.
        self.mail(id).await.map(|_| false)
    }

    async fn mail(&self, id: &str) -> StoreResult<OutboxMail> {
        self.outbox()
            .find_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?
            .map(OutboxMail::from)
            .ok_or(StoreError::NotFound)
    }

    async fn mails(&self, status: Option<MailStatus>, page: Page) -> StoreResult<(Vec<OutboxMail>, u64)> {
        let query = match status {
            Some(s) => doc! {"status": status_name(s)},
            None => doc! {},
        };
        let total = self
            .outbox()
            .count_documents(query.clone())
            .await
            .map_err(unavailable)?;
        if page.limit == 0 || page.offset >= total {
            return Ok((Vec::new(), total));
        }
        let docs: Vec<MailDoc> = self
            .outbox()
            .find(query)
            .sort(doc! {"created_at": -1, "_id": -1})
            .skip(page.offset)
            .limit(i64::try_from(page.limit).unwrap_or(i64::MAX))
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok((docs.into_iter().map(OutboxMail::from).collect(), total))
    }

    async fn add_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        self.outbox()
            .insert_one(super::outbox::MailDoc::from(mail))
            .await
            .map(|_| ())
            .map_err(conflict_or_unavailable)
    }

    async fn mails_by_id_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        // An anchored regex of a literal: the server walks the `_id` index's range.
        let pattern = format!("^{}", escape_regex(prefix));
        let docs: Vec<_> = self
            .outbox()
            .find(doc! {"_id": {"$regex": pattern}})
            .with_options(FindOptions::builder().sort(doc! {"_id": 1}).build())
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
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
