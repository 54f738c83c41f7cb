//! The pure, synchronous rules of Switchboard: no async, no I/O, no serde, no clock.
//!
//! Adapters (the hub actor, sockets, storage) feed these modules events and carry
//! out the decisions they return, so every rule can be tested exhaustively without
//! a network or a runtime.

// a change its client names for its retries (`client_id`)
pub mod client_id;
// what a customer may tell about themselves
pub mod customer_details;
// a customer's identity, as the embedding site vouches for it
pub mod guesses;
pub mod identity;
// several nodes through Redis
pub mod lease;
pub mod names;
pub mod places;
pub mod presence;
pub mod readiness;
// the manager's numbers over the archive
pub mod reports;
pub mod routing;
// conversations beyond the live chat: statuses, reopen, snooze
pub mod conversation;
// chat opening hours per category, in the desk's zone
pub mod opening_hours;
// estimated wait from recent handle times
pub mod schedule;
pub mod wait_estimate;
// ---- rooms and 1-to-1 video ----
pub mod room;
// appointments
pub mod representatives;
// which slots and days are free, and moving a booking
pub mod availability;
pub mod reschedule;
// appointment mail outbox
pub mod mail_retry;
// ---- webhooks: event types, reachable addresses, retries, order ----
pub mod webhooks;
// ---- API tokens: shape, scopes, expiry, last use ----
pub mod api_tokens;
// an API token's rate: a burst, then a steady rate (one due time per token)
pub mod token_rate;
// agent bots: the bot stage before a category's line, its reply timer, its outcome
pub mod bots;
// how much a bot may have queued for a customer, and for itself
pub mod bot_lines;
// the order a webhook bot's calls go in: per conversation, a few conversations at once
pub mod bot_call_order;
// mail customers send back: dropped, a bounce, threaded or new
pub mod inbound_mail;
// a duty one node does at a time (reading the mailbox), held as long as its membership
pub mod duty;
// ---- transcripts by mail ----
pub mod transcript_requests;
// ---- archive search: words, queries, matching ----
pub mod search;
// attachments: which a message may carry, the names files are kept under
pub mod attachments;
// which API operations only whitelisted addresses reach, from the declared routes
pub mod staff_routes;
