//! What the nodes say to each other about rooms: the Lua scripts of home claims and
//! liveness, the key and channel names, and the JSON messages on the channels.

use redis::Script;
use serde::{Deserialize, Serialize};

use super::PeerView;
use crate::rooms::token::RoomClaims;

pub use crate::rooms::frames::HOME_LOST;

pub(super) const NOW_MS: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function alive(id, inc)
  if redis.call('HGET', KEYS[1], id) ~= inc then return false end
  local d = redis.call('ZSCORE', KEYS[2], id)
  return d ~= false and d ~= nil and tonumber(d) >= now
end
";

/// KEYS: nodes, leases, the room's home key. ARGV: node, incarnation, claim ttl ms.
/// Fenced: a caller that is not alive changes nothing. Returns the home: the current one
/// while it is alive, else the caller (who now holds the claim).
pub(super) const CLAIM: &str = "if not alive(ARGV[1], ARGV[2]) then
  return redis.error_reply('FENCED node ' .. ARGV[1] .. ' incarnation ' .. ARGV[2] .. ' is not alive')
end
local mine = ARGV[1] .. ' ' .. ARGV[2]
local cur = redis.call('GET', KEYS[3])
if cur then
  local id, inc = string.match(cur, '^(.*) (%d+)$')
  if id and alive(id, inc) then
    if cur == mine then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
    return cur
  end
end
redis.call('SET', KEYS[3], mine, 'PX', ARGV[3])
return mine";

/// KEYS: nodes, leases, then home keys. ARGV: the caller as `"<node> <incarnation>"`,
/// claim ttl ms. Renews the claims still the caller's; returns 1 (kept) or 0 (lost) each.
pub(super) const RENEW: &str = "local out = {}
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out";

/// KEYS: nodes, leases. ARGV: `"<node> <incarnation>"` each. Returns 1 (alive) or 0 each.
pub(super) const ALIVE: &str = "local out = {}
for i = 1, #ARGV do
  local id, inc = string.match(ARGV[i], '^(.*) (%d+)$')
  out[#out + 1] = (id and alive(id, inc)) and 1 or 0
end
return out";

pub(super) fn script(body: &str) -> Script {
    Script::new(&format!("{NOW_MS}{body}"))
}

pub fn home_key(room: &str) -> String {
    format!("{{sb}}:room-home:{room}")
}

pub fn channel(node: &str) -> String {
    format!("{{sb}}:rooms:to:{node}")
}

/// A node as the claims name it: `"<node id> <incarnation>"`.
pub(super) fn split_node(home: &str) -> (&str, &str) {
    home.rsplit_once(' ').unwrap_or((home, ""))
}

/// What the members' and homes' nodes tell each other, one JSON message each.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(super) enum Wire {
    /// Member's node → home: seat this member (`conn` is their socket on `from`).
    Connect {
        req: u64,
        from: String,
        /// The member's node's incarnation, so the home can watch that node for its death.
        from_incarnation: u64,
        conn: u64,
        claims: RoomClaims,
        agent_id: String,
        conversation_id: Option<String>,
    },
    /// Home → member's node: the answer to `Connect`.
    Admitted {
        req: u64,
        result: Result<WireAdmitted, String>,
    },
    /// Member's node → home: a room frame the member sent (already checked for size,
    /// rate and shape on the member's node).
    Frame {
        from: String,
        conn: u64,
        text: String,
    },
    /// Member's node → home: the member's socket closed.
    Disconnect {
        from: String,
        conn: u64,
    },
    /// Home → member's node: a frame for the member, or a Close.
    Out {
        conn: u64,
        frame: Option<String>,
        close: Option<(u16, String)>,
    },
    /// Any node → home: the live state, for the join check and the agent's view.
    View {
        req: u64,
        from: String,
        room: String,
    },
    Viewed {
        req: u64,
        view: Option<WireView>,
    },
    /// Any node → home: the agent ended the room (the store says so already).
    End {
        room: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireAdmitted {
    pub(super) visitor: bool,
    pub(super) peer: Option<PeerView>,
    pub(super) call: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireView {
    pub(super) agent_present: bool,
    /// Absent from a node of an older version.
    #[serde(default)]
    pub(super) agent: Option<String>,
    pub(super) visitor: Option<String>,
    pub(super) visitor_present: bool,
    pub(super) call: String,
    pub(super) visitor_person: Option<String>,
}

/// The call states' names are a closed set: back to the `'static` names the frames use.
pub(super) fn call_name(name: &str) -> &'static str {
    match name {
        "ringing_in" => "ringing_in",
        "ringing_out" => "ringing_out",
        "ringing" => "ringing",
        "active" => "active",
        _ => "idle",
    }
}

/// The Close reasons the rooms task gives, back to `'static`.
pub(super) fn close_reason(reason: &str) -> &'static str {
    match reason {
        "the room ended" => "the room ended",
        "you left" => "you left",
        "replaced by a newer connection" => "replaced by a newer connection",
        "not reading" => "not reading",
        "the hub is shutting down" => "the hub is shutting down",
        "the room's server stopped" => "the room's server stopped",
        _ => "closed by the room's server",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_split_at_their_last_space_and_names_come_back_static() {
        assert_eq!(split_node("node a 12"), ("node a", "12"));
        assert_eq!(call_name("ringing_in"), "ringing_in");
        assert_eq!(call_name("anything"), "idle");
        assert_eq!(close_reason("the room ended"), "the room ended");
        assert_eq!(home_key("r1"), "{sb}:room-home:r1");
        assert_eq!(channel("n1"), "{sb}:rooms:to:n1");
    }
}
