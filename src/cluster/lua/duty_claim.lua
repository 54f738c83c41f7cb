-- Takes the duty KEYS[1] for this node (alive, by the fencing above), or keeps it: when
-- nobody holds it, when it is this node's under this incarnation, or when its holder is no
-- longer a member under the incarnation it took it in (`core::duty::takes`, the oracle).
-- The record is `<node>:<incarnation>`. Returns 1 when this node holds the duty, else 0.
local held = redis.call('GET', KEYS[1])
if held then
  local holder, inc = string.match(held, '^(.+):(%d+)$')
  if holder == node and inc == incarnation then
    return 1
  end
  if holder and redis.call('HGET', P .. 'nodes', holder) == inc then
    return 0
  end
end
redis.call('SET', KEYS[1], node .. ':' .. incarnation)
return 1
