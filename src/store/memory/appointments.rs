//! Appointments: every check and write (with its mail) one decision under the lock, in the in-memory store.

use std::ops::Range;

use async_trait::async_trait;

use super::*;

impl Inner {
    /// The unique key checked and the appointment stored under the caller's one lock.
    pub(super) fn book(&mut self, appointment: Appointment) -> StoreResult<()> {
        add_new(&mut self.appointments, appointment, |a, new| {
            a.id == new.id
                || a.cancel_token_hash == new.cancel_token_hash
                || (a.status == AppointmentStatus::Booked
                    && new.status == AppointmentStatus::Booked
                    && a.representative_id == new.representative_id
                    && a.start == new.start)
        })
    }

    pub(super) fn cancel(&mut self, id: &str, at: Millis, reason: Option<String>) -> StoreResult<Cancellation> {
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
    pub(super) fn reschedule(&mut self, moved: Appointment) -> StoreResult<Rescheduling> {
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
}

#[async_trait]
impl AppointmentStore for MemoryStore {
    /// The unique key is checked and the appointment stored under one lock: one decision.
    async fn book_appointment(&self, appointment: Appointment) -> StoreResult<()> {
        self.with(|s| s.book(appointment))
    }

    async fn appointment(&self, id: &str) -> StoreResult<Appointment> {
        self.with(|s| found(s.appointments.iter().find(|a| a.id == id)))
    }

    async fn appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment> {
        self.with(|s| found(s.appointments.iter().find(|a| a.cancel_token_hash == token_hash)))
    }

    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation> {
        self.with(|s| s.cancel(id, at, None))
    }

    async fn appointments(&self, starts: Range<Millis>, representative: Option<&str>) -> StoreResult<Vec<Appointment>> {
        let Range { start: from, end: to } = starts;
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
        cancel: AppointmentCancel,
        mail: OutboxMail,
    ) -> StoreResult<Cancellation> {
        self.with(|s| {
            let done = s.cancel(&cancel.id, cancel.at, cancel.reason)?;
            with_mail_if_owed(done, || {
                s.put_mail(mail);
                Ok(())
            })
        })
    }

    async fn reschedule_appointment_with_mail(
        &self,
        moved: Appointment,
        mail: OutboxMail,
    ) -> StoreResult<Rescheduling> {
        self.with(|s| {
            let done = s.reschedule(moved)?;
            with_mail_if_owed(done, || {
                s.put_mail(mail);
                Ok(())
            })
        })
    }
}
