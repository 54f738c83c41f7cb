//! Appointments in the embedded store: one table by id and, for booked
//! appointments only, the unique key (representative, start) → id. A booking checks the
//! key and writes both rows inside one redb write transaction, and redb runs one write
//! transaction at a time, so two bookings of one slot cannot both see it free.
//! Cancelling removes the key, which frees the slot for a new booking. A booking,
//! cancellation or move with its mail writes the mail in the same transaction: the
//! appointment's decision owns it, the mail rides along.

use std::ops::Range;

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::outbox::put_in;
use super::{EmbeddedStore, ReadableTable, TableDefinition, create, id_under, put, refuse_held, row, unavailable};
use crate::store::{
    Appointment, AppointmentCancel, AppointmentStatus, AppointmentStore, Cancellation, Millis, OutboxMail,
    Rescheduling, StoreError, StoreResult, with_mail_if_owed,
};

/// Appointment id → JSON [`AppointmentRec`].
const APPOINTMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("appointments");
/// (representative id, start) → appointment id, for booked appointments only: the unique key.
const BOOKED_SLOTS: TableDefinition<(&str, i64), &str> = TableDefinition::new("appointment_booked_slots");
/// (start, appointment id), for listing a range in order.
const BY_START: TableDefinition<(i64, &str), ()> = TableDefinition::new("appointments_by_start");
/// Cancel token hash → appointment id.
const BY_TOKEN: TableDefinition<&str, &str> = TableDefinition::new("appointments_by_token");

/// The on-disk form: the appointment, and its status as `cancelled`.
#[derive(Serialize, Deserialize)]
struct AppointmentRec {
    #[serde(flatten)]
    appointment: Appointment,
    cancelled: bool,
}

impl AppointmentRec {
    fn of(a: &Appointment) -> Self {
        AppointmentRec {
            appointment: a.clone(),
            cancelled: a.status == AppointmentStatus::Cancelled,
        }
    }

    fn into_model(self, id: String) -> Appointment {
        let status = if self.cancelled {
            AppointmentStatus::Cancelled
        } else {
            AppointmentStatus::Booked
        };
        Appointment {
            id,
            status,
            ..self.appointment
        }
    }
}

/// Creates the appointment tables in a new (or older) store file, at open.
pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&APPOINTMENTS, &BOOKED_SLOTS, &BY_START, &BY_TOKEN])
}

fn load(table: &impl ReadableTable<&'static str, &'static [u8]>, id: &str) -> StoreResult<Appointment> {
    Ok(super::load::<AppointmentRec>(table, id)?.into_model(id.to_string()))
}

/// Books `a` inside the caller's write transaction (see the module comment).
pub(super) fn book_in(tx: &redb::WriteTransaction, a: &Appointment) -> StoreResult<()> {
    let mut appointments = tx.open_table(APPOINTMENTS).map_err(unavailable)?;
    let mut tokens = tx.open_table(BY_TOKEN).map_err(unavailable)?;
    refuse_held(&appointments, a.id.as_str())?;
    refuse_held(&tokens, a.cancel_token_hash.as_str())?;
    if a.status == AppointmentStatus::Booked {
        let mut slots = tx.open_table(BOOKED_SLOTS).map_err(unavailable)?;
        let key = (a.representative_id.as_str(), a.start);
        refuse_held(&slots, key)?;
        slots.insert(key, a.id.as_str()).map_err(unavailable)?;
    }
    put(&mut appointments, a.id.as_str(), &AppointmentRec::of(a))?;
    tokens
        .insert(a.cancel_token_hash.as_str(), a.id.as_str())
        .map_err(unavailable)?;
    tx.open_table(BY_START)
        .map_err(unavailable)?
        .insert((a.start, a.id.as_str()), ())
        .map_err(unavailable)?;
    Ok(())
}

/// Cancels appointment `id` inside the caller's write transaction.
pub(super) fn cancel_in(
    tx: &redb::WriteTransaction,
    id: &str,
    at: Millis,
    reason: Option<String>,
) -> StoreResult<Cancellation> {
    let mut appointments = tx.open_table(APPOINTMENTS).map_err(unavailable)?;
    let mut a = load(&appointments, id)?;
    if a.status == AppointmentStatus::Cancelled {
        return Ok(Cancellation::AlreadyCancelled(a));
    }
    a.status = AppointmentStatus::Cancelled;
    a.cancelled_at = Some(at);
    a.cancel_reason = reason;
    a.sequence += 1;
    put(&mut appointments, id, &AppointmentRec::of(&a))?;
    tx.open_table(BOOKED_SLOTS)
        .map_err(unavailable)?
        .remove((a.representative_id.as_str(), a.start))
        .map_err(unavailable)?;
    Ok(Cancellation::Cancelled(a))
}

/// Moves appointment `moved.id` to `moved`'s slot inside the caller's write transaction:
/// the old key is removed and the new one inserted in it, so readers see one or the other.
pub(super) fn reschedule_in(tx: &redb::WriteTransaction, moved: &Appointment) -> StoreResult<Rescheduling> {
    let mut appointments = tx.open_table(APPOINTMENTS).map_err(unavailable)?;
    let current = load(&appointments, &moved.id)?;
    if current.status != AppointmentStatus::Booked || current.sequence + 1 != moved.sequence {
        return Ok(Rescheduling::Changed(current));
    }
    let mut slots = tx.open_table(BOOKED_SLOTS).map_err(unavailable)?;
    let new_key = (moved.representative_id.as_str(), moved.start);
    if slots
        .get(new_key)
        .map_err(unavailable)?
        .is_some_and(|holder| holder.value() != moved.id)
    {
        return Err(StoreError::Conflict);
    }
    slots
        .remove((current.representative_id.as_str(), current.start))
        .map_err(unavailable)?;
    slots.insert(new_key, moved.id.as_str()).map_err(unavailable)?;
    let mut by_start = tx.open_table(BY_START).map_err(unavailable)?;
    by_start
        .remove((current.start, moved.id.as_str()))
        .map_err(unavailable)?;
    by_start
        .insert((moved.start, moved.id.as_str()), ())
        .map_err(unavailable)?;
    put(&mut appointments, moved.id.as_str(), &AppointmentRec::of(moved))?;
    Ok(Rescheduling::Moved(moved.clone()))
}

#[async_trait]
impl AppointmentStore for EmbeddedStore {
    async fn book_appointment(&self, a: Appointment) -> StoreResult<()> {
        self.write(move |tx| book_in(tx, &a)).await
    }

    async fn appointment(&self, id: &str) -> StoreResult<Appointment> {
        let rec: AppointmentRec = self.read(row(APPOINTMENTS, id)).await?;
        Ok(rec.into_model(id.to_string()))
    }

    async fn appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment> {
        let token_hash = token_hash.to_string();
        self.read(move |tx| {
            let id = id_under(&tx.open_table(BY_TOKEN).map_err(unavailable)?, &token_hash)?;
            load(&tx.open_table(APPOINTMENTS).map_err(unavailable)?, &id)
        })
        .await
    }

    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation> {
        let id = id.to_string();
        self.write(move |tx| cancel_in(tx, &id, at, None)).await
    }

    async fn appointments(&self, starts: Range<Millis>, representative: Option<&str>) -> StoreResult<Vec<Appointment>> {
        let Range { start: from, end: to } = starts;
        let representative = representative.map(str::to_string);
        self.read(move |tx| {
            let by_start = tx.open_table(BY_START).map_err(unavailable)?;
            let appointments = tx.open_table(APPOINTMENTS).map_err(unavailable)?;
            let mut found = Vec::new();
            if from >= to {
                return Ok(found);
            }
            for row in by_start.range((from, "")..(to, "")).map_err(unavailable)? {
                let (key, _) = row.map_err(unavailable)?;
                let a = load(&appointments, key.value().1)?;
                if representative.as_ref().is_none_or(|r| &a.representative_id == r) {
                    found.push(a);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn book_appointment_with_mail(&self, a: Appointment, mail: OutboxMail) -> StoreResult<()> {
        self.write(move |tx| {
            book_in(tx, &a)?;
            put_in(tx, &mail)
        })
        .await
    }

    async fn cancel_appointment_with_mail(
        &self,
        cancel: AppointmentCancel,
        mail: OutboxMail,
    ) -> StoreResult<Cancellation> {
        self.write(move |tx| {
            with_mail_if_owed(cancel_in(tx, &cancel.id, cancel.at, cancel.reason)?, || {
                put_in(tx, &mail)
            })
        })
        .await
    }

    async fn reschedule_appointment_with_mail(
        &self,
        moved: Appointment,
        mail: OutboxMail,
    ) -> StoreResult<Rescheduling> {
        self.write(move |tx| with_mail_if_owed(reschedule_in(tx, &moved)?, || put_in(tx, &mail)))
            .await
    }
}
