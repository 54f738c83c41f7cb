//! The cluster: several Switchboard processes acting as one hub through Redis.
//! Everything shared lives under the `{sb}:` hash tag; `docs/cluster.md` is the design.

// ---- the foundations: connection, health, leases, reaping, the admin bus ----
pub mod bus;
pub mod health;
pub mod lease;
pub mod node;
pub mod subscription;
// a duty one node does at a time (reading the mailbox)
pub mod duty;

// ---- the routing domain: one fenced Lua script per routing transition ----
pub mod chat_log;
pub mod conversation_seq;
pub mod replica;
pub mod routing_events;
pub mod routing_library;
pub mod routing_replies;
pub mod routing_scripts;
pub mod routing_transitions;

// ---- a customer's resume on another node; an agent's welcome on another node ----
pub mod agent_endings;
pub mod resume_tokens;

// ---- the buddy list across nodes ----
pub mod buddy_chat_log;
pub mod buddy_line;
pub mod buddy_log;

// ---- Redis restarted empty: the routing domain re-asserted from the nodes' replicas ----
pub mod restore;

// ---- an API token's rate, counted over all nodes ----
pub mod token_rate;
