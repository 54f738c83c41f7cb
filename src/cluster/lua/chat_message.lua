-- One chat message between nodes (docs/cluster.md §7), atomically: the caller's fencing,
-- the sender is that side of the running chat, the chat's next seq, the message appended
-- to the chat's log (a stream, bounded), and published to the peer's node when that is
-- another node. Only once this returns is the sender acknowledged: an acknowledged
-- message is in the log, from which a receiver fills any gap its subscription left.
-- KEYS[1]: {sb}:counter (routes the call to the tag's slot).
-- ARGV: node, incarnation, chat, from ('customer' | 'agent'), sender id, message id,
--       time (ms), text, client id ('' for none), log bound, log lifetime (s).
-- Replies the seq, or an error: FENCED (also: the sender is held by another node),
-- unknown_chat, not_your_chat, RESTORING.
local P = '{sb}:'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node, incarnation = ARGV[1], ARGV[2]
if redis.call('HGET', P .. 'nodes', node) ~= incarnation then
  return redis.error_reply('FENCED node ' .. node .. ' incarnation ' .. incarnation .. ' is not alive')
end
local deadline = redis.call('ZSCORE', P .. 'leases', node)
if not deadline or tonumber(deadline) < now then
  return redis.error_reply('FENCED node ' .. node .. ' incarnation ' .. incarnation .. ' is not alive')
end
local chat, from, sender = ARGV[3], ARGV[4], ARGV[5]
local sides = redis.call('HMGET', P .. 'chat:' .. chat, 'customer', 'agent')
if not sides[1] then return redis.error_reply('unknown_chat the chat is over') end
-- A chat restored after Redis lost its data goes on only once both sides' nodes raised its
-- seq to what they recorded (restore.lua's claim): a seq stamped before would collide.
if redis.call('EXISTS', P .. 'chat-pending:' .. chat) == 1 then
  return redis.error_reply('RESTORING the chat is being restored after a Redis restart; try again')
end
local peer_node, sender_key
if from == 'customer' then
  if sides[1] ~= sender then return redis.error_reply('not_your_chat that chat is not yours') end
  sender_key = P .. 'customer:' .. sender
  peer_node = redis.call('HGET', P .. 'agent:' .. sides[2], 'node')
else
  if sides[2] ~= sender then return redis.error_reply('not_your_chat that chat is not yours') end
  sender_key = P .. 'agent:' .. sender
  peer_node = redis.call('HGET', P .. 'customer:' .. sides[1], 'node')
end
-- A node speaks only for the people it holds: after a node's loss its people are held by
-- the reaper, so a connection the lost node still believed in can say nothing more.
if redis.call('HGET', sender_key, 'node') ~= node then
  return redis.error_reply('FENCED node ' .. node .. ' does not hold the sender any more')
end
local seq_key, log_key = P .. 'chat-seq:' .. chat, P .. 'chat-log:' .. chat
local seq = redis.call('INCR', seq_key)
local seq_text = string.format('%d', seq)
redis.call('XADD', log_key, 'MAXLEN', '~', ARGV[10], '*',
  's', seq_text, 'i', ARGV[6], 't', ARGV[7], 'f', from, 'x', ARGV[8], 'c', ARGV[9])
-- A chat's log outlives its chat by this much at most (nothing deletes it at the end:
-- a late gap fill or a resume may still read it).
redis.call('EXPIRE', seq_key, ARGV[11])
redis.call('EXPIRE', log_key, ARGV[11])
if peer_node and peer_node ~= node then
  redis.call('PUBLISH', P .. 'to:' .. peer_node, cjson.encode({
    k = 'm', chat = chat, seq = seq_text, id = ARGV[6], at = ARGV[7], from = from, text = ARGV[8], client = ARGV[9],
  }))
end
return seq
