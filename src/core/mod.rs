//! The pure, synchronous rules of Switchboard: no async, no I/O, no serde, no clock.
//!
//! Adapters (the hub actor, sockets, storage) feed these modules events and carry
//! out the decisions they return, so every rule can be tested exhaustively without
//! a network or a runtime.

pub mod guesses;
pub mod names;
pub mod presence;
pub mod readiness;
pub mod routing;
// ---- rooms and 1-to-1 video (issue 16) ----
pub mod room;
