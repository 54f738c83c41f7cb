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

use bson::doc;
use futures_util::TryStreamExt;
use mongodb::options::{FindOneAndUpdateOptions, IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};

use super::{MongoStore, is_duplicate_key, unavailable};
use crate::store::{
    Appointment, Cancellation, MailAttachment, MailOutcome, MailPurpose, MailStatus, Millis, OutboxMail, Page,
    Rescheduling, StoreError, StoreResult,
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

    pub(super) async fn book_with_mail(&self, a: Appointment, mail: OutboxMail) -> StoreResult<()> {
        let mail_id = mail.id.clone();
        self.put_mail(mail).await?;
        match self.insert_appointment(a).await {
            Err(StoreError::Conflict) => {
                // Best effort: a mail left behind is given up by the worker (module comment).
                if let Err(e) = self.outbox().delete_one(doc! {"_id": &mail_id}).await {
                    tracing::warn!(error = %e, mail = %mail_id, "the refused booking's mail stays; the worker will drop it");
                }
                Err(StoreError::Conflict)
            }
            other => other,
        }
    }

    /// The mail first, as for a booking (module comment): a move refused (the slot taken,
    /// or the appointment changed meanwhile) deletes it again; a crash between leaves a
    /// mail whose appointment is not at its sequence, which the worker gives up.
    pub(super) async fn reschedule_with_mail(&self, moved: Appointment, mail: OutboxMail) -> StoreResult<Rescheduling> {
        let mail_id = mail.id.clone();
        self.put_mail(mail).await?;
        let done = self.move_appointment(&moved).await;
        if !matches!(done, Ok(Rescheduling::Moved(_)))
            && let Err(e) = self.outbox().delete_one(doc! {"_id": &mail_id}).await
        {
            tracing::warn!(error = %e, mail = %mail_id, "the refused move's mail stays; the worker will drop it");
        }
        done
    }

    pub(super) async fn cancel_with_mail(
        &self,
        id: &str,
        at: Millis,
        reason: Option<String>,
        mail: OutboxMail,
    ) -> StoreResult<Cancellation> {
        // Written first even if the appointment turns out cancelled already: its id is the
        // one that earlier cancel wrote, so it is no second mail.
        let (mail_id, due_at) = (mail.id.clone(), mail.due_at);
        self.put_mail(mail).await?;
        let done = self.mark_appointment_cancelled(id, at, reason).await?;
        if matches!(done, Cancellation::Cancelled(_)) {
            // A mail of this id written by an earlier attempt whose cancellation never landed
            // may have been given up by the worker meanwhile; this cancellation is real, so
            // its mail goes out after all.
            self.outbox()
                .update_one(
                    doc! {"_id": &mail_id, "status": "dead"},
                    doc! {"$set": {"status": "pending", "attempts": 0, "due_at": due_at,
                    "claim_until": null, "last_error": null}},
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(done)
    }

    pub(super) async fn claim_due_mails(
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

    pub(super) async fn finish_claimed_mail(&self, id: &str, node: &str, outcome: MailOutcome) -> StoreResult<bool> {
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
        self.find_mail(id).await.map(|_| false)
    }

    pub(super) async fn find_mail(&self, id: &str) -> StoreResult<OutboxMail> {
        self.outbox()
            .find_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?
            .map(OutboxMail::from)
            .ok_or(StoreError::NotFound)
    }

    pub(super) async fn list_mails(
        &self,
        status: Option<MailStatus>,
        page: Page,
    ) -> StoreResult<(Vec<OutboxMail>, u64)> {
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
}

// ---- desk settings set through the admin API ----

#[derive(Serialize, Deserialize)]
struct DeskSettingDoc {
    #[serde(rename = "_id")]
    key: String,
    value: String,
}

impl MongoStore {
    fn desk_settings(&self) -> Collection<DeskSettingDoc> {
        self.db.collection("desk_settings")
    }

    pub(super) async fn read_desk_setting(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .desk_settings()
            .find_one(doc! {"_id": key})
            .await
            .map_err(unavailable)?
            .map(|d| d.value))
    }

    pub(super) async fn write_desk_setting(&self, key: &str, value: Option<String>) -> StoreResult<()> {
        match value {
            Some(value) => {
                self.desk_settings()
                    .replace_one(
                        doc! {"_id": key},
                        DeskSettingDoc {
                            key: key.to_string(),
                            value,
                        },
                    )
                    .upsert(true)
                    .await
                    .map_err(unavailable)?;
            }
            None => {
                self.desk_settings()
                    .delete_one(doc! {"_id": key})
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(())
    }
}
