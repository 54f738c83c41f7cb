//! The cluster (issue 15): several Switchboard processes acting as one hub through Redis.
//! Everything shared lives under the `{sb}:` hash tag; `docs/cluster.md` is the design.

pub mod routing_events;
pub mod routing_replies;
pub mod routing_scripts;
