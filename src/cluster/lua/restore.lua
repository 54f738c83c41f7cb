-- Redis restarted EMPTY while nodes still hold people (docs/cluster.md §9, "Back empty:
-- re-assertion"): the lost routing domain is written back from the longest replica any
-- node offers, and each node then claims the people it still holds.
--
-- Appended to routing.lua (its keys and helpers: hold_customer, set_agent_categories, ...),
-- then `return R.<name>()` (see src/cluster/restore.rs). KEYS[1]: {sb}:counter (the hash
-- tag's slot); ARGV[1], ARGV[2]: the calling node and its incarnation.

local K_OFFER = P .. 'restore-offer'  -- hash: node, ms, seq (the longest replica offered), closes (ms)
local K_RESTORED = P .. 'restored'    -- string: when the restore ran (ms, Redis clock); set once
-- The pseudo-node holding every restored person until their node claims them; its lease
-- runs one claim window, after which the usual reaping hands the unclaimed on (node_lost).
local RESTORED_NODE = '{restored}'
-- set of the sides ('customer', 'agent') of a restored chat not claimed yet: the chat's
-- messages wait for both sides' seq raise (chat_message.lua); expires with the window
local function k_pending(chat) return P .. 'chat-pending:' .. chat end
-- set of the nodes that offered their replica (each went through the loss and claims)
local K_OFFERED = P .. 'restore-offered'
-- set of those nodes that have not claimed their buddy chats yet: buddy stamps wait for
-- it (buddy_message.lua, buddy_claim.lua); expires with the window
local K_BUDDY_PENDING = P .. 'bchat-pending'
-- set of those nodes that have not claimed yet: a conversation's seq counter (k_conv_seq)
-- is drawn from only once they all raised it to what they stamped (chat_message.lua,
-- conversation_line.lua); expires with the window
local K_CONV_PENDING = P .. 'conv-pending'

local R = {}

local function fenced()
  return redis.error_reply('FENCED node ' .. ARGV[1] .. ' incarnation ' .. ARGV[2] .. ' is not alive')
end

-- ARGV[3], ARGV[4]: the two parts (ms, seq) of the last routing event the caller's replica
-- applied; ARGV[5]: how long offers stay open after the first (ms).
-- Replies { the node with the longest replica so far, ms until the offers close (<= 0: closed) }.
function R.offer()
  if not alive(ARGV[1], ARGV[2]) then return fenced() end
  local node, ms, seq = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
  local now = now_ms()
  if redis.call('EXISTS', K_RESTORED) == 0 then redis.call('SADD', K_OFFERED, node) end
  local f = redis.call('HMGET', K_OFFER, 'node', 'ms', 'seq', 'closes')
  if not f[1] then
    local closes = now + tonumber(ARGV[5])
    redis.call('HSET', K_OFFER, 'node', node, 'ms', ARGV[3], 'seq', ARGV[4], 'closes', string.format('%d', closes))
    return { node, closes - now }
  end
  local closes = tonumber(f[4])
  if now < closes then
    local best_ms, best_seq = tonumber(f[2]), tonumber(f[3])
    -- Stream ids compare as (ms, seq) pairs; a tie keeps the first offer.
    if ms > best_ms or (ms == best_ms and seq > best_seq) then
      redis.call('HSET', K_OFFER, 'node', node, 'ms', ARGV[3], 'seq', ARGV[4])
      f[1] = node
    end
  end
  return { f[1], closes - now }
end

-- ARGV[3]: the winner's replica state (JSON, written by src/cluster/restore.rs);
-- ARGV[4]: the lost routing domain's id (chats keep their wire ids); ARGV[5]: the window (ms);
-- ARGV[6]: the winner's buddy list (JSON, src/hub/buddy/snapshot.rs), carried to every node.
-- Refused (nothing written) unless the offers are closed and the caller offered the longest
-- replica — or the winner has had two more windows and has not written (it may be dead) —
-- and unless nothing was restored yet: one writer, once.
function R.restore()
  if not alive(ARGV[1], ARGV[2]) then return fenced() end
  local node, window = ARGV[1], tonumber(ARGV[5])
  local now = now_ms()
  if redis.call('EXISTS', K_RESTORED) == 1 then
    return redis.error_reply('RESTORED the routing domain was restored already')
  end
  local f = redis.call('HMGET', K_OFFER, 'node', 'closes')
  if not f[1] or now < tonumber(f[2]) then
    return redis.error_reply('NOT_WINNER the offers are not closed yet')
  end
  if f[1] ~= node and now < tonumber(f[2]) + 2 * window then
    return redis.error_reply('NOT_WINNER node ' .. f[1] .. ' offered a longer replica')
  end
  local s = cjson.decode(ARGV[3])
  -- Ids drawn before the restore (a node that joined the empty Redis) stay unique.
  local counter = redis.call('GET', K_COUNTER)
  if not counter or tonumber(counter) < tonumber(s.counter) then redis.call('SET', K_COUNTER, s.counter) end
  if s.room ~= '' then redis.call('SET', K_ROOM, s.room) end
  if s.held_back then redis.call('SET', K_HELD, '1') end
  for _, c in ipairs(s.categories) do redis.call('ZADD', K_CATEGORIES, 0, c) end
  for _, c in ipairs(s.closed or {}) do redis.call('SADD', K_CLOSED, c) end
  for _, c in ipairs(s.offer_mode or {}) do redis.call('SADD', K_OFFER_MODE, c) end
  for _, c in ipairs(s.mode_set_at or {}) do redis.call('HSET', K_MODE_SET_AT, c[1], c[2]) end
  for _, c in ipairs(s.open_set_at or {}) do redis.call('HSET', K_OPEN_SET_AT, c[1], c[2]) end
  -- { id, category, ticket, chat or '', away epoch or '', agents who passed them,
  --   the chat a waiting customer goes on in or '', the conversation they continue or '' }
  for _, c in ipairs(s.customers) do
    local id, category, ticket, chat, away = c[1], c[2], c[3], c[4], c[5]
    redis.call('HSET', k_customer(id), 'cat', category, 'ticket', ticket)
    if c[7] and c[7] ~= '' then redis.call('HSET', k_customer(id), 'continuing', c[7]) end
    -- Its one live customer again (routing.lua's k_conv_live).
    if c[8] and c[8] ~= '' then
      redis.call('HSET', k_customer(id), 'conv', c[8])
      redis.call('SET', k_conv_live(c[8]), id)
    end
    for _, agent in ipairs(c[6] or {}) do redis.call('SADD', k_passed(id), agent) end
    if chat ~= '' then redis.call('HSET', k_customer(id), 'chat', chat) end
    if away ~= '' then redis.call('HSET', k_customer(id), 'away', away) end
    hold_customer(id, RESTORED_NODE)
    if chat == '' then
      redis.call('ZADD', k_queue(category), ticket, id)
      if away == '' then redis.call('ZADD', k_ready(category), ticket, id) end
    end
  end
  -- { id, limit, available, away epoch or '', last assignment stamp, categories, busy,
  --   away reason or '', lapses }
  for _, a in ipairs(s.agents) do
    local id = a[1]
    redis.call('HSET', k_agent(id), 'limit', a[2], 'available', a[3] and '1' or '0', 'last', a[5])
    if a[4] ~= '' then redis.call('HSET', k_agent(id), 'away', a[4]) end
    if a[9] and a[9] ~= '0' then redis.call('HSET', k_agent(id), 'lapses', a[9]) end
    if a[7] then redis.call('HSET', k_agent(id), 'busy', '1') end
    if a[8] and a[8] ~= '' then redis.call('HSET', k_agent(id), 'reason', a[8]) end
    redis.call('ZADD', K_AGENTS, 0, id)
    hold_agent(id, RESTORED_NODE)
  end
  -- { id, customer, agent, category }
  for _, c in ipairs(s.chats) do
    local id, agent = c[1], c[3]
    redis.call('HSET', k_chat(id), 'customer', c[2], 'agent', agent, 'category', c[4])
    -- A continued conversation's chat counts on from its conversation's counter (open_chat).
    local conv = redis.call('HGET', k_customer(c[2]), 'conv')
    if conv then redis.call('HSET', k_chat(id), 'conv', conv) end
    redis.call('ZADD', K_CHATS, id, id)
    redis.call('ZADD', k_agent_chats(agent), id, id)
    redis.call('SADD', k_pending(id), 'customer', 'agent')
    redis.call('PEXPIRE', k_pending(id), window)
  end
  -- { id, customer, agent, category }: an offered customer keeps their place but is not ready.
  for _, o in ipairs(s.offers or {}) do
    local id, customer, agent, category = o[1], o[2], o[3], o[4]
    redis.call('HSET', k_offer(id), 'customer', customer, 'agent', agent, 'category', category)
    redis.call('ZADD', K_OFFERS, id, id)
    redis.call('ZADD', k_agent_offers(agent), id, id)
    redis.call('HSET', k_customer(customer), 'offer', id)
    redis.call('ZREM', k_ready(category), customer)
  end
  -- After the chats and offers: an agent's rank in the ready indexes depends on their load.
  for _, a in ipairs(s.agents) do set_agent_categories(a[1], a[6]) end
  -- Buddy chats stamp again once every node that offered has claimed its buddy chats
  -- (their seqs and the lines it holds: buddy_claim.lua), or the window is over. (A node
  -- that joined the empty Redis afresh holds no buddy chat and offers nothing.)
  if redis.call('EXISTS', K_OFFERED) == 1 then
    redis.call('SUNIONSTORE', K_CONV_PENDING, K_OFFERED)
    redis.call('PEXPIRE', K_CONV_PENDING, window)
    redis.call('RENAME', K_OFFERED, K_BUDDY_PENDING)
    redis.call('PEXPIRE', K_BUDDY_PENDING, window)
  end
  redis.call('HSET', K_NODES, RESTORED_NODE, '0')
  redis.call('ZADD', K_LEASES, now + window, RESTORED_NODE)
  redis.call('SET', K_CLUSTER_ID, ARGV[4])
  redis.call('SET', K_RESTORED, string.format('%d', now))
  -- Replicas load the restored state from this entry and apply the events after it, so
  -- each node carries out every decision made since. Its arguments: the state, and the
  -- entry's ordinal in the stream (`entries-added`, which followers count on from), and
  -- the buddy list.
  local added = 0
  if redis.call('EXISTS', K_EVENTS) == 1 then
    local info = redis.call('XINFO', 'STREAM', K_EVENTS)
    for i = 1, #info, 2 do
      if info[i] == 'entries-added' then added = info[i + 1] end
    end
  end
  return redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    't', 'restore', 'n', node, 'a', cjson.encode({ ARGV[3], string.format('%d', added + 1), ARGV[6] or '' }), 'd', '[]')
end

-- Refused unless the caller is alive, the domain restored and the window not over.
local function claim_refused()
  if not alive(ARGV[1], ARGV[2]) then return fenced() end
  local restored = redis.call('GET', K_RESTORED)
  if not restored then return redis.error_reply('NOT_RESTORED the routing domain is not restored yet') end
  if now_ms() > tonumber(restored) + tonumber(ARGV[4]) then
    return redis.error_reply('FENCED node ' .. ARGV[1] .. ' claimed its people after the window')
  end
  return nil
end

local function raise(key, seq, lifetime)
  if tonumber(seq) > tonumber(redis.call('GET', key) or '0') then
    redis.call('SET', key, seq, 'EX', lifetime)
  end
end

-- A chat's seq counter, or its conversation's for a continued chat (open_chat), raised to
-- `seq` (only ever up). ARGV[5]: a chat seq counter's lifetime (s).
local function raise_chat(chat, seq)
  local conv = redis.call('HGET', k_chat(chat), 'conv')
  if conv then
    raise(k_conv_seq(conv), seq, CONV_SEQ_TTL_SECONDS)
  else
    raise(P .. 'chat-seq:' .. chat, seq, ARGV[5])
  end
end

-- The resend guard of line `l` (as `write_back` takes it), as its stamping set it
-- (lua/chat_resend.lua), for what is left of its CLIENT_RESEND_SECS: it went with Redis's
-- data, and a client whose ack the restart lost sends the line again once the chat goes
-- on, to be answered with this stamp, not stamped twice.
local function guard_resend(chat, l)
  local client = l[7]
  if client == '' then return end
  local left_ms = resend_guard_left_ms(l[5])
  if left_ms <= 0 then return end
  local sides = redis.call('HMGET', k_chat(chat), 'customer', 'agent')
  local sender = l[3] == 'customer' and sides[1] or sides[2]
  if not sender then return end
  redis.call('SET', chat_client_key(chat, l[3], sender, client, l[6]), chat_client_stamp(l[2], l[4], l[5]),
    'PX', left_ms)
end

-- Writes `lines` back (see `claim`): each line of a chat still pending whose seq no claim
-- wrote yet, the chat's seq raised to it. ARGV[5], ARGV[6]: the log's lifetime and bound.
local function write_back(lines)
  for _, l in ipairs(lines) do
    local chat, seq = l[1], l[2]
    if redis.call('EXISTS', k_pending(chat)) == 1 then
      local claimed_key, log_key = P .. 'chat-claimed:' .. chat, P .. 'chat-log:' .. chat
      if redis.call('SADD', claimed_key, seq) == 1 then
        redis.call('XADD', log_key, 'MAXLEN', '~', ARGV[6], '*',
          's', seq, 'i', l[4], 't', l[5], 'f', l[3], 'x', l[6], 'c', l[7], 'a', l[8], 'v', l[9])
        guard_resend(chat, l)
      end
      redis.call('EXPIRE', log_key, ARGV[5])
      redis.call('EXPIRE', claimed_key, ARGV[5])
      -- A line held past a gap is above the last seq its side recorded: the next stamp
      -- comes after it, or it would reuse a seq every reader already has.
      raise_chat(chat, seq)
    end
  end
end

-- ARGV[3]: { lines = ... } as `claim`'s (JSON); ARGV[4..6] as `claim`'s. A node holding
-- many chats writes their lines back in several of these calls, each bounded (none holds
-- Redis long or sends it a huge argument: src/cluster/restore.rs), before its `claim`,
-- while its chats are still pending.
function R.claim_lines()
  local refused = claim_refused()
  if refused then return refused end
  write_back(cjson.decode(ARGV[3]).lines)
  return 1
end

-- ARGV[3]: { customers = ids, agents = ids, chats = { { chat, side, last seq recorded } },
-- conversations = { { id, highest seq stamped } }, lines = { { chat, seq, from, id, time,
-- text, client id, files, via }, ... } } (JSON); ARGV[4]: the window (ms); ARGV[5]: the
-- lifetime of a chat's seq counter and log (s); ARGV[6]: a chat log's bound.
-- Moves the caller's people from the pseudo-node to the caller and raises each of its
-- chats' seq, and each conversation's (k_conv_seq: a continued chat's is its
-- conversation's), to the last one it recorded or wrote back (only ever up). Refused as FENCED past the
-- window: by then the unclaimed are being handed on.
-- The latest lines the caller holds of its chats go back into their logs, each seq once
-- whatever the claims' order (`{sb}:chat-claimed:<chat>`, the seqs written back): a line
-- stamped and acknowledged just before the loss that the other side's node never got
-- reaches it at its read once every claim is in (docs/cluster.md §9). Only while the chat
-- is restoring (a side still pending): no line is stamped meanwhile (chat_message.lua),
-- so what goes back is all the log holds below the next stamp. The log is read sorted by
-- seq (chat_log.rs's read_after).
function R.claim()
  local refused = claim_refused()
  if refused then return refused end
  local node = ARGV[1]
  local c = cjson.decode(ARGV[3])
  for _, id in ipairs(c.customers) do
    if redis.call('HGET', k_customer(id), 'node') == RESTORED_NODE then hold_customer(id, node) end
  end
  for _, id in ipairs(c.agents) do
    if redis.call('HGET', k_agent(id), 'node') == RESTORED_NODE then hold_agent(id, node) end
  end
  write_back(c.lines or {})
  for _, x in ipairs(c.chats) do
    local chat, side, seq = x[1], x[2], x[3]
    raise_chat(chat, seq)
    redis.call('SREM', k_pending(chat), side)
  end
  for _, x in ipairs(c.conversations or {}) do raise(k_conv_seq(x[1]), x[2], CONV_SEQ_TTL_SECONDS) end
  redis.call('SREM', K_CONV_PENDING, node)
  return 1
end
