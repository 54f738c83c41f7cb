//! The hub's side of several nodes through Redis: a layer beside the single-node hub,
//! which a reader of the single-node path need not open. The hub task starts it only with
//! `REDIS_URL` (`link::start`); it hands the hub commands and never the other way round
//! but through the link's calls.

/// The follower of the routing events and the chat channel's subscriber.
mod follower;
/// The router (serialised calls to Redis) and the reaper's `node_lost` hook.
pub mod link;
/// The outbox of the node's own calls while Redis does not answer.
mod outbox;
mod own_calls;
/// Redis restarted empty: the router's and follower's part in re-asserting.
mod reassert;
/// Every chat's log read again, outside the router's queue.
pub(crate) mod rereads;
/// What the link's tasks share.
mod tasks;
