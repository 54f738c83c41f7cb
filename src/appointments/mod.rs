//! Appointments: a customer books a slot of the desk's calendar and gets a
//! confirmation mail with a calendar invitation; cancelling sends its cancellation.
//! The slot rules are pure (`core::schedule`); this module holds what surrounds them.

// "add to calendar" links of the confirmation page
pub mod calendar_links;
pub mod ics;
// the mail outbox: what the mails say, and the worker that sends them
pub mod mailer;
pub mod mails;
