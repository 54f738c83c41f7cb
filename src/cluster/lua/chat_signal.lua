-- Typing and draft preview between nodes: publish-only (losing one is harmless), to the
-- node of the chat's other side when that is another node. No fencing: it changes nothing.
-- KEYS[1]: {sb}:counter. ARGV: node, chat, from ('customer' | 'agent'), payload (JSON).
-- Replies 1 when published, 0 when the peer is on the caller's node or the chat is over.
local P = '{sb}:'
local sides = redis.call('HMGET', P .. 'chat:' .. ARGV[2], 'customer', 'agent')
if not sides[1] then return 0 end
local peer_node
if ARGV[3] == 'customer' then
  peer_node = redis.call('HGET', P .. 'agent:' .. sides[2], 'node')
else
  peer_node = redis.call('HGET', P .. 'customer:' .. sides[1], 'node')
end
if not peer_node or peer_node == ARGV[1] then return 0 end
redis.call('PUBLISH', P .. 'to:' .. peer_node, ARGV[4])
return 1
