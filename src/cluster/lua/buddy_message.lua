-- One buddy chat message (docs/cluster.md §15), atomically: the caller's fencing, the
-- chat's next seq, and the message appended to the chat's own log (a stream, bounded)
-- with `p`, the id of the routing events stream's newest entry at this moment. Scripts
-- run one at a time, so `p` places the message exactly in the stream's order: after
-- every entry up to `p`, before every later one. Redis knows nothing of buddies: every
-- node's replica decides alike whether the message belongs to its chat (the chat was
-- running once the stream up to `p` was applied), and the sender's node publishes it to
-- the nodes that need it once its own replica has reached `p`.
-- KEYS[1]: {sb}:routing-events.
-- ARGV: node, incarnation, chat (its wire id), sender (buddy id), message id, time (ms),
--       text, client id ('' for none), floor (the highest seq of the chat the calling
--       node has: the counter starts there if Redis has none, after Redis lost its data),
--       log bound, the log's lifetime after its last line (s), the files the message
--       carries (their metadata as a JSON array, '' for none; absent from a node of an
--       earlier version).
-- Replies {seq, p, id, time}, or an error FENCED or RESTORING. A message id stamped within
-- the last ten seconds gets its first reply again (the router's retry of a call whose
-- answer was lost); the same client id and text from the same sender within
-- CLIENT_RESEND_SECS gets the first one's reply too (a client sending again what a slow
-- Redis applied late).
-- (The caller's fencing, `P`, `node` and `incarnation` come first: lua/fencing.lua; then
-- the resend guard's key: lua/chat_resend.lua.)
-- After Redis lost its data, stamps wait for every node's claim of its buddy chats
-- (buddy_claim.lua): before it, a chat's counter may be below a seq some node holds.
if redis.call('EXISTS', P .. 'bchat-pending') == 1 then
  return redis.error_reply('RESTORING the buddy chats are being restored after a Redis restart; try again')
end
local chat, sender, id, at, text, client = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local stamped_key = P .. 'bchat-msg:' .. id
local stamped = redis.call('GET', stamped_key)
if stamped then return cjson.decode(stamped) end
-- The resend guard (lua/chat_resend.lua): CLIENT_RESEND_SECS from the first stamping.
local client_key
if client ~= '' then
  client_key = buddy_client_key(chat, sender, client, text)
  local first = redis.call('GET', client_key)
  if first then return cjson.decode(first) end
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local p = '0-0'
if #newest > 0 then p = newest[1][1] end
local seq_key, log_key = P .. 'bchat-seq:' .. chat, P .. 'bchat-log:' .. chat
-- Never below what a node has seen: after Redis lost its data the counter starts again
-- from the caller's highest seq, not from 1 (which would stamp seqs the chat has).
local floor = tonumber(ARGV[9])
local current = tonumber(redis.call('GET', seq_key) or '0')
if current < floor then redis.call('SET', seq_key, string.format('%d', floor)) end
local seq_text = string.format('%d', redis.call('INCR', seq_key))
redis.call('XADD', log_key, 'MAXLEN', '~', ARGV[10], '*',
  's', seq_text, 'p', p, 'w', sender, 'i', id, 't', at, 'x', text, 'c', client, 'a', ARGV[12] or '')
-- The log goes a day after its last line; the counter only once the chat is over and
-- archived (its archiving node expires both then): restarted from a node's floor while the
-- chat runs, it could give a seq the chat has.
redis.call('EXPIRE', log_key, ARGV[11])
local reply = cjson.encode({ seq_text, p, id, at })
redis.call('SET', stamped_key, reply, 'EX', 10)
if client_key then redis.call('SET', client_key, reply, 'EX', CLIENT_RESEND_SECS) end
return { seq_text, p, id, at }
