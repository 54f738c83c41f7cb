-- A node's claim of its buddy chats after Redis lost its data (docs/cluster.md §15,
-- "Redis back empty"): the chats' seq counters and logs went with it, and a line stamped
-- just before may have reached only some nodes. Each node that re-asserts raises each
-- chat's counter to the highest seq it holds (only ever up) and writes back into the
-- chat's log the lines it holds above the counter as it found it, so the log holds each
-- seq once and a node missing a line finds it at its next read. Stamps wait until every
-- node alive at the restore has claimed (`{sb}:bchat-pending`, written by restore.lua's
-- restore, expiring with the claim window): a stamp before would take a seq a node holds.
-- KEYS[1]: {sb}:routing-events (the hash tag's slot).
-- ARGV: node, incarnation, chats (JSON: { { chat, highest seq, { { seq, p, sender, id,
--       time, text, client id }, ... } in seq order }, ... }), '1' on the node's last call
--       (it has claimed every chat), log bound, the log's lifetime after its last line (s).
-- Replies 1, or an error FENCED.
-- (The caller's fencing, `P`, `node` and `incarnation` come first: lua/fencing.lua.)
for _, c in ipairs(cjson.decode(ARGV[3])) do
  local chat, highest = c[1], tonumber(c[2])
  local seq_key, log_key = P .. 'bchat-seq:' .. chat, P .. 'bchat-log:' .. chat
  local top = tonumber(redis.call('GET', seq_key) or '0')
  for _, l in ipairs(c[3]) do
    local seq = tonumber(l[1])
    if seq > top then
      redis.call('XADD', log_key, 'MAXLEN', '~', ARGV[5], '*',
        's', string.format('%d', seq), 'p', l[2], 'w', l[3], 'i', l[4], 't', l[5], 'x', l[6], 'c', l[7])
      if seq > highest then highest = seq end
    end
  end
  -- The counter never expires while the chat runs (buddy_message.lua); the log goes as
  -- a stamp leaves it.
  if highest > top then redis.call('SET', seq_key, string.format('%d', highest)) end
  if redis.call('EXISTS', log_key) == 1 then redis.call('EXPIRE', log_key, ARGV[6]) end
end
if ARGV[4] == '1' then redis.call('SREM', P .. 'bchat-pending', node) end
return 1
