-- A node's claim of its buddy chats after Redis lost its data (docs/cluster.md §15,
-- "Redis back empty"): the chats' seq counters and logs went with it, and a line stamped
-- just before may have reached only some nodes. Each node that re-asserts raises each
-- chat's counter to the highest seq it holds (only ever up) and writes back into the
-- chat's log the lines it holds that no claim wrote yet (`{sb}:bchat-claimed:<chat>`, the
-- seqs written back), so the log holds each seq once whatever the claims' order, and a
-- node missing a line finds it at its next read. Stamps wait until every node that
-- offered its replica to the restore has claimed (`{sb}:bchat-pending`, written by
-- restore.lua's restore, expiring with the claim window). A claim after that (a node
-- late, or the window over) writes back only lines above the counter: below it, the chat
-- may have stamped new lines since.
-- KEYS[1]: {sb}:routing-events (the hash tag's slot).
-- ARGV: node, incarnation, chats (JSON: { { chat, highest seq, { { seq, p, sender, id,
--       time, text, client id, files }, ... } in seq order }, ... }), '1' on the node's last call
--       (it has claimed every chat), log bound, the log's lifetime after its last line (s).
-- Replies 1, or an error FENCED.
-- (The caller's fencing, `P`, `node` and `incarnation` come first: lua/fencing.lua; then
-- the resend guard's key: lua/chat_resend.lua.)
local pending = redis.call('EXISTS', P .. 'bchat-pending') == 1
for _, c in ipairs(cjson.decode(ARGV[3])) do
  local chat, highest = c[1], tonumber(c[2])
  local seq_key, log_key = P .. 'bchat-seq:' .. chat, P .. 'bchat-log:' .. chat
  local claimed_key = P .. 'bchat-claimed:' .. chat
  local top = tonumber(redis.call('GET', seq_key) or '0')
  for _, l in ipairs(c[3]) do
    local seq = tonumber(l[1])
    local seq_text = string.format('%d', seq)
    local write
    if pending then
      write = redis.call('SADD', claimed_key, seq_text) == 1
    else
      write = seq > top and redis.call('SADD', claimed_key, seq_text) == 1
    end
    if write then
      redis.call('XADD', log_key, 'MAXLEN', '~', ARGV[5], '*',
        's', seq_text, 'p', l[2], 'w', l[3], 'i', l[4], 't', l[5], 'x', l[6], 'c', l[7], 'a', l[8] or '')
      if seq > highest then highest = seq end
      -- Its resend guard too, for what is left of it: the line sent again by a client whose
      -- ack the restart lost is answered with this stamp, not stamped twice.
      local left_ms = l[7] ~= '' and resend_guard_left_ms(l[5]) or 0
      if left_ms > 0 then
        redis.call('SET', buddy_client_key(chat, l[3], l[7], l[6]), cjson.encode({ seq_text, l[2], l[4], l[5] }),
          'PX', left_ms)
      end
    end
  end
  -- The counter never expires while the chat runs (buddy_message.lua); the log goes as
  -- a stamp leaves it, the seqs written back with it.
  if highest > top then redis.call('SET', seq_key, string.format('%d', highest)) end
  if redis.call('EXISTS', log_key) == 1 then redis.call('EXPIRE', log_key, ARGV[6]) end
  if redis.call('EXISTS', claimed_key) == 1 then redis.call('EXPIRE', claimed_key, ARGV[6]) end
end
if ARGV[4] == '1' then redis.call('SREM', P .. 'bchat-pending', node) end
return 1
