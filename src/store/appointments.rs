//! Appointments customers book with a representative, and the writes that store their
//! mails with them.

use std::ops::Range;

use super::{Millis, OutboxMail, StoreResult};
use async_trait::async_trait;

/// Whether an appointment still holds its slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    #[default]
    Booked,
    Cancelled,
}

/// A booked (or cancelled) appointment. While `Booked`, it holds the key
/// (`representative_id`, `start`): the store refuses a second booked appointment with the
/// same key, which is what makes one of two simultaneous bookings of a slot win.
///
/// The serialising backends store it without its id and its status: they key it by the
/// id (the embedded store's row key, MongoDB's `_id` beside these fields), store the
/// status each its own way (the embedded store as `cancelled`, MongoDB as `status`, which
/// its partial index reads) and put both back when reading.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Appointment {
    #[serde(skip)]
    pub id: String,
    pub start: Millis,
    pub end: Millis,
    /// The agent account that serves it.
    pub representative_id: String,
    pub category: Option<String>,
    pub name: String,
    pub email: String,
    pub comment: String,
    #[serde(skip)]
    pub status: AppointmentStatus,
    /// The SHA-256 (hex) of the cancel link's token; the token itself is never stored.
    pub cancel_token_hash: String,
    pub created_at: Millis,
    pub cancelled_at: Option<Millis>,
    /// The ICS `SEQUENCE`: 0 when booked, raised by each change (rescheduling, cancelling).
    pub sequence: u32,
    /// The customer's IANA time zone, as their browser gave it when booking (validated):
    /// what their mails and pages show times in. `None` for bookings made without one.
    #[serde(default)]
    pub customer_zone: Option<String>,
    /// The customer's clock shows 12 hours (10:00 AM), as their browser's locale said when
    /// booking: their mails give times as the booking page showed them. `false` (24 hours)
    /// for bookings made without one.
    #[serde(default)]
    pub customer_hour12: bool,
    /// Why the customer cancelled, if they said.
    #[serde(default)]
    pub cancel_reason: Option<String>,
}

/// A cancellation asked of [`AppointmentStore::cancel_appointment_with_mail`]: which
/// appointment, when, and the customer's reason if they gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentCancel {
    pub id: String,
    pub at: Millis,
    pub reason: Option<String>,
}

impl AppointmentCancel {
    pub fn new(id: impl Into<String>, at: Millis, reason: Option<String>) -> Self {
        Self {
            id: id.into(),
            at,
            reason,
        }
    }
}

/// What [`AppointmentStore::cancel_appointment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// This call cancelled it; the appointment as it is now.
    Cancelled(Appointment),
    /// It was cancelled before; the appointment unchanged.
    AlreadyCancelled(Appointment),
}

/// What [`AppointmentStore::reschedule_appointment_with_mail`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rescheduling {
    /// This call moved it; the appointment as it is now.
    Moved(Appointment),
    /// It was cancelled or changed since it was read (another sequence); the appointment
    /// as it is, unchanged. Nothing was written.
    Changed(Appointment),
}

/// A cancellation's or a move's outcome: is its mail owed? Only when this call made the
/// change (one refused, or made before, sends none).
pub trait OwesMail {
    fn owes_mail(&self) -> bool;
}

impl OwesMail for Cancellation {
    fn owes_mail(&self) -> bool {
        matches!(self, Cancellation::Cancelled(_))
    }
}

impl OwesMail for Rescheduling {
    fn owes_mail(&self) -> bool {
        matches!(self, Rescheduling::Moved(_))
    }
}

/// `done`, once `put_mail` has stored its mail if it is owed: for the stores that decide
/// and write the mail in one step (the in-memory store's lock, the embedded store's write).
pub fn with_mail_if_owed<D: OwesMail>(done: D, put_mail: impl FnOnce() -> StoreResult<()>) -> StoreResult<D> {
    if done.owes_mail() {
        put_mail()?;
    }
    Ok(done)
}

/// Booked appointments. The `_with_mail` writes store the appointment's mail in the
/// same write as the booking decision they follow: the appointment owns that
/// transaction (its slot key decides), the mail only rides along; they sit here so one
/// backend file holds the whole decision.
#[async_trait]
pub trait AppointmentStore: Send + Sync {
    /// Stores a new booked appointment. `Conflict` when its representative already has a
    /// booked appointment starting at the same instant (or its id or token hash is
    /// taken): decided by a unique key inside the store, so of any number of concurrent
    /// bookings of one (representative, start) exactly one succeeds.
    async fn book_appointment(&self, appointment: Appointment) -> StoreResult<()>;
    /// One appointment by id; `NotFound` when absent.
    async fn appointment(&self, id: &str) -> StoreResult<Appointment>;
    /// The appointment whose cancel token hashes to `token_hash`; `NotFound` when none.
    async fn appointment_by_token(&self, token_hash: &str) -> StoreResult<Appointment>;
    /// Cancels a booked appointment at `at` (its slot is free again, its sequence raised);
    /// a cancelled one is left as it is. `NotFound` when absent.
    async fn cancel_appointment(&self, id: &str, at: Millis) -> StoreResult<Cancellation>;
    /// Appointments (booked and cancelled) whose start falls in `starts` (`from..to`, the
    /// end excluded), of one representative when given, by start then id.
    async fn appointments(&self, starts: Range<Millis>, representative: Option<&str>) -> StoreResult<Vec<Appointment>>;
    /// [`AppointmentStore::book_appointment`] and the confirmation `mail` as one write: when the
    /// booking is refused (`Conflict`) no mail stays; when it succeeds the mail is stored.
    async fn book_appointment_with_mail(&self, appointment: Appointment, mail: OutboxMail) -> StoreResult<()>;
    /// [`AppointmentStore::cancel_appointment`] and the cancellation `mail` as one write: the mail is
    /// stored only when this call cancelled (`Cancellation::Cancelled`), and so is the
    /// customer's `reason`.
    async fn cancel_appointment_with_mail(
        &self,
        cancel: AppointmentCancel,
        mail: OutboxMail,
    ) -> StoreResult<Cancellation>;
    /// Moves a booked appointment to another slot, with its mail, as one decision:
    /// `moved` is the appointment as read (same id, token, customer) with its new `start`,
    /// `end` and `representative_id` and its `sequence` raised by one. It is moved only when
    /// the stored one is still booked at `moved.sequence - 1` (else `Changed`, nothing
    /// written), and only when the new (representative, start) is free (else `Conflict`,
    /// nothing written): the old slot is freed and the new one held in the same atomic
    /// write, so there is no moment where both or neither is held, and of concurrent moves
    /// to one slot exactly one succeeds. `mail` is stored only when it moved.
    async fn reschedule_appointment_with_mail(&self, moved: Appointment, mail: OutboxMail)
    -> StoreResult<Rescheduling>;
}
