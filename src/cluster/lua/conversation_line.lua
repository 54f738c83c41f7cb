-- The seq of a line written into a conversation whose customer is not in a chat: its
-- agent's while the customer is away, or the customer's while they wait to continue it
-- (src/hub/service/follow_up.rs), drawn from the conversation's one counter (routing.lua,
-- k_conv_seq), which its live chats count on from too: so two nodes never give two lines
-- the same seq, and a customer continuing it on any node goes on after them.
-- KEYS[1]: {sb}:counter (routes the call to the tag's slot).
-- ARGV: node, incarnation, conversation id, the last seq the calling node read of it from
--       the archive, lifetime of the counter (s), and the customer writing it ('' for its
--       agent: a customer waiting in line to continue it writes into it too).
-- Replies the seq, or an error: FENCED, or `live` (another customer continues it now: the
-- line belongs in their chat, which the calling node does not hold).
-- (The caller's fencing, `P`, `node` and `incarnation` come first: lua/fencing.lua.)
local conv, archived = ARGV[3], tonumber(ARGV[4]) or 0
local holder = redis.call('GET', P .. 'conv-live:' .. conv)
if holder and holder ~= ARGV[6] and redis.call('HGET', P .. 'customer:' .. holder, 'conv') == conv then
  return redis.error_reply('live a customer continues this conversation now')
end
-- After a restore, only once every node raised the counter to what it stamped (restore.lua's claim).
if redis.call('EXISTS', P .. 'conv-pending') == 1 then
  return redis.error_reply('RESTORING the conversation is being restored after a Redis restart; try again')
end
local key = P .. 'conv-seq:' .. conv
-- The archive may know more than the counter (gone after a day, or with Redis's data).
if archived > (tonumber(redis.call('GET', key) or '0')) then
  redis.call('SET', key, string.format('%d', archived))
end
local seq = redis.call('INCR', key)
redis.call('EXPIRE', key, ARGV[5])
return seq
