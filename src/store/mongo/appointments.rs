//! Appointments in MongoDB: collection `appointments`, `_id` the appointment's
//! id. A unique index on (representative_id, start) that only covers documents with
//! `status: "booked"` (a partial index) is the booking's one decision: of concurrent
//! inserts for one slot the server accepts one and answers the others with a
//! duplicate-key error, even across nodes; a cancelled appointment leaves the index, so
//! its slot can be booked again. A unique index on the token hash finds the cancel link's
//! appointment. The writes with a mail write the mail first (`mongo/outbox.rs` says why).

use std::ops::Range;

use async_trait::async_trait;

use bson::doc;
use mongodb::options::IndexOptions;
use serde::{Deserialize, Serialize};

use super::{
    MongoStore, Named, all, conflict_or_unavailable, ensure_indexes, index, index_with, insert_new, one, unavailable,
    unique_index, updated_after,
};
use crate::store::{
    Appointment, AppointmentCancel, AppointmentStatus, AppointmentStore, Cancellation, Millis, OutboxMail, OwesMail,
    Rescheduling, StoreError, StoreResult,
};

/// An appointment with its `_id` and its `status` (which the partial index reads).
#[derive(Serialize, Deserialize)]
struct AppointmentDoc {
    #[serde(rename = "_id")]
    id: String,
    status: AppointmentStatus,
    #[serde(flatten)]
    appointment: Appointment,
}

const APPOINTMENTS: Named<AppointmentDoc> = Named::new("appointments");

impl From<Appointment> for AppointmentDoc {
    fn from(appointment: Appointment) -> Self {
        AppointmentDoc {
            id: appointment.id.clone(),
            status: appointment.status,
            appointment,
        }
    }
}

impl From<AppointmentDoc> for Appointment {
    fn from(d: AppointmentDoc) -> Self {
        Appointment {
            id: d.id,
            status: d.status,
            ..d.appointment
        }
    }
}

impl MongoStore {
    pub(super) async fn create_appointment_indexes(&self) -> StoreResult<()> {
        let one_booking_per_slot = index_with(
            doc! {"representative_id": 1, "start": 1},
            IndexOptions::builder()
                .name("booked_slot_unique".to_string())
                .unique(true)
                .partial_filter_expression(doc! {"status": "booked"})
                .build(),
        );
        let by_token = unique_index(doc! {"cancel_token_hash": 1}, "cancel_token_unique");
        let by_start = index(doc! {"start": 1}, "start");
        ensure_indexes(
            &self.collection(APPOINTMENTS),
            [one_booking_per_slot, by_token, by_start],
        )
        .await
    }

    /// One conditional update (only a booked appointment is changed), so two cancels at
    /// once raise the sequence once; the loser reads the appointment as already cancelled.
    pub(super) async fn mark_appointment_cancelled(
        &self,
        id: &str,
        at: Millis,
        reason: Option<String>,
    ) -> StoreResult<Cancellation> {
        let updated = self
            .collection(APPOINTMENTS)
            .find_one_and_update(
                doc! {"_id": id, "status": "booked"},
                doc! {"$set": {"status": "cancelled", "cancelled_at": at, "cancel_reason": reason},
                "$inc": {"sequence": 1}},
            )
            .with_options(updated_after())
            .await
            .map_err(unavailable)?;
        match updated {
            Some(d) => Ok(Cancellation::Cancelled(d.into())),
            None => Ok(Cancellation::AlreadyCancelled(self.appointment(id).await?)),
        }
    }

    /// One conditional update of the one document: its (representative, start) changes in
    /// place, so the partial unique index drops the old key and takes the new one in the
    /// same atomic write (a duplicate key refuses it whole: `Conflict`). The filter holds
    /// the sequence it was read at, so of two moves of one appointment one applies.
    pub(super) async fn move_appointment(&self, moved: &Appointment) -> StoreResult<Rescheduling> {
        let updated = self
            .collection(APPOINTMENTS)
            .find_one_and_update(
                doc! {"_id": &moved.id, "status": "booked", "sequence": moved.sequence.saturating_sub(1)},
                doc! {"$set": {"start": moved.start, "end": moved.end,
                "representative_id": &moved.representative_id, "sequence": moved.sequence}},
            )
            .with_options(updated_after())
            .await
            .map_err(conflict_or_unavailable)?;
        match updated {
            Some(d) => Ok(Rescheduling::Moved(d.into())),
            None => Ok(Rescheduling::Changed(self.appointment(&moved.id).await?)),
        }
    }
}

#[async_trait]
impl AppointmentStore for MongoStore {
    async fn book_appointment(&self, a: Appointment) -> StoreResult<()> {
        insert_new(&self.collection(APPOINTMENTS), &AppointmentDoc::from(a)).await
    }

    async fn appointment(&self, id: &str) -> StoreResult<Appointment> {
        Ok(one(self.collection(APPOINTMENTS).find_one(doc! {"_id": id}))
            .await?
            .into())
    }

    async fn appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment> {
        let appointments = self.collection(APPOINTMENTS);
        Ok(one(appointments.find_one(doc! {"cancel_token_hash": token_hash}))
            .await?
            .into())
    }

    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation> {
        self.mark_appointment_cancelled(id, at, None).await
    }

    async fn appointments(&self, starts: Range<Millis>, representative: Option<&str>) -> StoreResult<Vec<Appointment>> {
        let Range { start: from, end: to } = starts;
        let mut filter = doc! {"start": {"$gte": from, "$lt": to}};
        if let Some(r) = representative {
            filter.insert("representative_id", r);
        }
        let mut found: Vec<Appointment> = all(self.collection(APPOINTMENTS).find(filter))
            .await?
            .into_iter()
            .map(Appointment::from)
            .collect();
        found.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        Ok(found)
    }

    async fn book_appointment_with_mail(&self, a: Appointment, mail: OutboxMail) -> StoreResult<()> {
        let mail_id = mail.id.clone();
        self.put_mail(mail).await?;
        match self.book_appointment(a).await {
            Err(StoreError::Conflict) => {
                // Best effort: a mail left behind is given up by the worker (module comment).
                if let Err(e) = self
                    .collection(super::outbox::OUTBOX)
                    .delete_one(doc! {"_id": &mail_id})
                    .await
                {
                    tracing::warn!(error = %e, mail = %mail_id, "the refused booking's mail stays; the worker will drop it");
                }
                Err(StoreError::Conflict)
            }
            other => other,
        }
    }

    async fn cancel_appointment_with_mail(
        &self,
        cancel: AppointmentCancel,
        mail: OutboxMail,
    ) -> StoreResult<Cancellation> {
        // Written first even if the appointment turns out cancelled already: its id is the
        // one that earlier cancel wrote, so it is no second mail.
        let (mail_id, due_at) = (mail.id.clone(), mail.due_at);
        self.put_mail(mail).await?;
        let done = self
            .mark_appointment_cancelled(&cancel.id, cancel.at, cancel.reason)
            .await?;
        if done.owes_mail() {
            // A mail of this id written by an earlier attempt whose cancellation never landed
            // may have been given up by the worker meanwhile; this cancellation is real, so
            // its mail goes out after all.
            self.collection(super::outbox::OUTBOX)
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

    /// The mail first, as for a booking (module comment): a move refused (the slot taken,
    /// or the appointment changed meanwhile) deletes it again; a crash between leaves a
    /// mail whose appointment is not at its sequence, which the worker gives up.
    async fn reschedule_appointment_with_mail(
        &self,
        moved: Appointment,
        mail: OutboxMail,
    ) -> StoreResult<Rescheduling> {
        let mail_id = mail.id.clone();
        self.put_mail(mail).await?;
        let done = self.move_appointment(&moved).await;
        if !done.as_ref().is_ok_and(OwesMail::owes_mail)
            && let Err(e) = self
                .collection(super::outbox::OUTBOX)
                .delete_one(doc! {"_id": &mail_id})
                .await
        {
            tracing::warn!(error = %e, mail = %mail_id, "the refused move's mail stays; the worker will drop it");
        }
        done
    }
}
