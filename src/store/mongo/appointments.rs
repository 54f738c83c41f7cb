//! Appointments in MongoDB: collection `appointments`, `_id` the appointment's
//! id. A unique index on (representative_id, start) that only covers documents with
//! `status: "booked"` (a partial index) is the booking's one decision: of concurrent
//! inserts for one slot the server accepts one and answers the others with a
//! duplicate-key error, even across nodes; a cancelled appointment leaves the index, so
//! its slot can be booked again. A unique index on the token hash finds the cancel link's
//! appointment.

use bson::doc;
use futures_util::TryStreamExt;
use mongodb::options::{FindOneAndUpdateOptions, IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};

use super::{MongoStore, conflict_or_unavailable, unavailable};
use crate::store::{Appointment, AppointmentStatus, Cancellation, Millis, Rescheduling, StoreError, StoreResult};

#[derive(Serialize, Deserialize)]
struct AppointmentDoc {
    #[serde(rename = "_id")]
    id: String,
    start: Millis,
    end: Millis,
    representative_id: String,
    category: Option<String>,
    name: String,
    email: String,
    comment: String,
    status: AppointmentStatus,
    cancel_token_hash: String,
    created_at: Millis,
    cancelled_at: Option<Millis>,
    sequence: u32,
    #[serde(default)]
    customer_zone: Option<String>,
    #[serde(default)]
    customer_hour12: bool,
    #[serde(default)]
    cancel_reason: Option<String>,
}

impl From<Appointment> for AppointmentDoc {
    fn from(a: Appointment) -> Self {
        AppointmentDoc {
            id: a.id,
            start: a.start,
            end: a.end,
            representative_id: a.representative_id,
            category: a.category,
            name: a.name,
            email: a.email,
            comment: a.comment,
            status: a.status,
            cancel_token_hash: a.cancel_token_hash,
            created_at: a.created_at,
            cancelled_at: a.cancelled_at,
            sequence: a.sequence,
            customer_zone: a.customer_zone,
            customer_hour12: a.customer_hour12,
            cancel_reason: a.cancel_reason,
        }
    }
}

impl From<AppointmentDoc> for Appointment {
    fn from(d: AppointmentDoc) -> Self {
        Appointment {
            id: d.id,
            start: d.start,
            end: d.end,
            representative_id: d.representative_id,
            category: d.category,
            name: d.name,
            email: d.email,
            comment: d.comment,
            status: d.status,
            cancel_token_hash: d.cancel_token_hash,
            created_at: d.created_at,
            cancelled_at: d.cancelled_at,
            sequence: d.sequence,
            customer_zone: d.customer_zone,
            customer_hour12: d.customer_hour12,
            cancel_reason: d.cancel_reason,
        }
    }
}

impl MongoStore {
    fn appointments_collection(&self) -> Collection<AppointmentDoc> {
        self.db.collection("appointments")
    }

    pub(super) async fn create_appointment_indexes(&self) -> StoreResult<()> {
        let one_booking_per_slot = IndexModel::builder()
            .keys(doc! {"representative_id": 1, "start": 1})
            .options(
                IndexOptions::builder()
                    .name("booked_slot_unique".to_string())
                    .unique(true)
                    .partial_filter_expression(doc! {"status": "booked"})
                    .build(),
            )
            .build();
        let by_token = IndexModel::builder()
            .keys(doc! {"cancel_token_hash": 1})
            .options(
                IndexOptions::builder()
                    .name("cancel_token_unique".to_string())
                    .unique(true)
                    .build(),
            )
            .build();
        let by_start = IndexModel::builder()
            .keys(doc! {"start": 1})
            .options(IndexOptions::builder().name("start".to_string()).build())
            .build();
        self.appointments_collection()
            .create_indexes([one_booking_per_slot, by_token, by_start])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn insert_appointment(&self, a: Appointment) -> StoreResult<()> {
        self.appointments_collection()
            .insert_one(AppointmentDoc::from(a))
            .await
            .map_err(conflict_or_unavailable)?;
        Ok(())
    }

    pub(super) async fn find_appointment(&self, id: &str) -> StoreResult<Appointment> {
        self.appointments_collection()
            .find_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?
            .map(Appointment::from)
            .ok_or(StoreError::NotFound)
    }

    pub(super) async fn find_appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment> {
        self.appointments_collection()
            .find_one(doc! {"cancel_token_hash": token_hash})
            .await
            .map_err(unavailable)?
            .map(Appointment::from)
            .ok_or(StoreError::NotFound)
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
            .appointments_collection()
            .find_one_and_update(
                doc! {"_id": id, "status": "booked"},
                doc! {"$set": {"status": "cancelled", "cancelled_at": at, "cancel_reason": reason},
                "$inc": {"sequence": 1}},
            )
            .with_options(
                FindOneAndUpdateOptions::builder()
                    .return_document(ReturnDocument::After)
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        match updated {
            Some(d) => Ok(Cancellation::Cancelled(d.into())),
            None => Ok(Cancellation::AlreadyCancelled(self.find_appointment(id).await?)),
        }
    }

    /// One conditional update of the one document: its (representative, start) changes in
    /// place, so the partial unique index drops the old key and takes the new one in the
    /// same atomic write (a duplicate key refuses it whole: `Conflict`). The filter holds
    /// the sequence it was read at, so of two moves of one appointment one applies.
    pub(super) async fn move_appointment(&self, moved: &Appointment) -> StoreResult<Rescheduling> {
        let updated = self
            .appointments_collection()
            .find_one_and_update(
                doc! {"_id": &moved.id, "status": "booked", "sequence": moved.sequence.saturating_sub(1)},
                doc! {"$set": {"start": moved.start, "end": moved.end,
                "representative_id": &moved.representative_id, "sequence": moved.sequence}},
            )
            .with_options(
                FindOneAndUpdateOptions::builder()
                    .return_document(ReturnDocument::After)
                    .build(),
            )
            .await
            .map_err(conflict_or_unavailable)?;
        match updated {
            Some(d) => Ok(Rescheduling::Moved(d.into())),
            None => Ok(Rescheduling::Changed(self.find_appointment(&moved.id).await?)),
        }
    }

    pub(super) async fn appointments_between(
        &self,
        from: Millis,
        to: Millis,
        representative: Option<&str>,
    ) -> StoreResult<Vec<Appointment>> {
        let mut filter = doc! {"start": {"$gte": from, "$lt": to}};
        if let Some(r) = representative {
            filter.insert("representative_id", r);
        }
        let mut found: Vec<Appointment> = self
            .appointments_collection()
            .find(filter)
            .await
            .map_err(unavailable)?
            .map_ok(Appointment::from)
            .try_collect()
            .await
            .map_err(unavailable)?;
        found.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        Ok(found)
    }
}
