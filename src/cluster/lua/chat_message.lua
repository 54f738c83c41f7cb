-- One chat message between nodes (docs/cluster.md §7), atomically: the caller's fencing,
-- the sender is that side of the running chat, the chat's next seq, the message appended
-- to the chat's log (a stream, bounded), and published to the peer's node when that is
-- another node. Only once this returns is the sender acknowledged: an acknowledged
-- message is in the log, from which a receiver fills any gap its subscription left.
-- KEYS[1]: {sb}:counter (routes the call to the tag's slot).
-- ARGV: node, incarnation, chat, from ('customer' | 'agent'), sender id, message id,
--       time (ms), text, client id ('' for none), log bound, log lifetime (s), the files
--       it carries (their metadata as a JSON array, '' for none), how it came ('email'
--       for a customer's mail, '' for over the chat).
-- Replies the seq, or an error: FENCED, not_held (the sender is held by another node: a
-- matter of that person, not of the calling node), unknown_chat, not_your_chat,
-- RESTORING. A message whose id was stamped within the last ten seconds gets
-- that seq again and changes nothing: a call retried after an answer lost in transit (a
-- connection that broke under it, e.g. across a Redis restart) is not stamped twice.
-- A message the client sends again with the same client id and text, from the same side
-- of the chat, within CLIENT_RESEND_SECS of its stamping, is not stamped again either: it
-- replies {seq, id, time} of the first, which its node acknowledges. (A node refuses a
-- message `cluster_unavailable` when its calls time out; the call may still have been
-- applied, late, by a Redis that was only slow, and the client sends the message again,
-- on any node, as the protocol asks.)
-- (The caller's fencing, `P`, `node` and `incarnation` come first: lua/fencing.lua; then
-- the resend guard's key: lua/chat_resend.lua.)
local stamped_key = P .. 'chat-msg:' .. ARGV[6]
local stamped = redis.call('GET', stamped_key)
if stamped then return tonumber(stamped) end
local chat, from, sender = ARGV[3], ARGV[4], ARGV[5]
local sides = redis.call('HMGET', P .. 'chat:' .. chat, 'customer', 'agent', 'conv')
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
-- A node speaks only for the people it holds: a connection that is not theirs (a second
-- page of a customer held by another node) can say nothing. Not FENCED: the calling node
-- is alive (checked above) and only this person's connection here is stale. (A lost
-- node's own calls are refused by the checks above: its incarnation is gone.)
if redis.call('HGET', sender_key, 'node') ~= node then
  return redis.error_reply('not_held the sender is held by another node')
end
-- The resend guard (lua/chat_resend.lua): CLIENT_RESEND_SECS from the first stamping.
local client_key
if ARGV[9] ~= '' then
  client_key = chat_client_key(chat, from, sender, ARGV[9], ARGV[8])
  local first = redis.call('GET', client_key)
  if first then
    local seq_text, id, at = string.match(first, '^(%d+) (%S+) (%-?%d+)$')
    if seq_text then return {tonumber(seq_text), id, at} end
  end
end
local seq_key, log_key = P .. 'chat-seq:' .. chat, P .. 'chat-log:' .. chat
-- A chat that names its conversation (continued, or begun by it: routing.lua's open_chat)
-- counts on from that conversation's one counter (k_conv_seq): lines its agent wrote while
-- the customer was away came first, and lines written after it go on after it.
if sides[3] then
  seq_key = P .. 'conv-seq:' .. sides[3]
  -- After a restore, only once every node raised it to what it stamped (restore.lua's claim).
  if redis.call('EXISTS', P .. 'conv-pending') == 1 then
    return redis.error_reply('RESTORING the conversation is being restored after a Redis restart; try again')
  end
end
local seq = redis.call('INCR', seq_key)
local seq_text = string.format('%d', seq)
redis.call('XADD', log_key, 'MAXLEN', '~', ARGV[10], '*',
  's', seq_text, 'i', ARGV[6], 't', ARGV[7], 'f', from, 'x', ARGV[8], 'c', ARGV[9], 'a', ARGV[12] or '',
  'v', ARGV[13] or '')
-- A chat's log outlives its chat by this much at most (nothing deletes it at the end:
-- a late gap fill or a resume may still read it).
redis.call('EXPIRE', seq_key, ARGV[11])
redis.call('EXPIRE', log_key, ARGV[11])
-- Ten seconds: the router retries at once (within a response timeout, at most 1 s), and
-- at 10,000 messages/s this keeps ~100,000 small keys.
redis.call('SET', stamped_key, seq_text, 'EX', 10)
if client_key then
  redis.call('SET', client_key, chat_client_stamp(seq_text, ARGV[6], ARGV[7]), 'EX', CLIENT_RESEND_SECS)
end
if peer_node and peer_node ~= node then
  redis.call('PUBLISH', P .. 'to:' .. peer_node, cjson.encode({
    k = 'm', chat = chat, seq = seq_text, id = ARGV[6], at = ARGV[7], from = from, text = ARGV[8], client = ARGV[9],
    files = ARGV[12] or '', via = ARGV[13] or '',
  }))
end
return seq
