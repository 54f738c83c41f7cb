-- A consistent read of the whole routing domain (src/cluster/lua/routing.lua), as JSON:
-- the queues in order with tickets, agents, chats, offers, the pairing room, and the id of the
-- last routing event it includes. A node loads its place mirror from it and then reads
-- the events stream after that id; the differential test compares it with the core.
-- Read-only; no fencing (reading changes nothing). `bytes_less` comes from
-- `bytes_order.lua`, which the adapter puts before this.

local P = '{sb}:'

-- The agents who passed a customer this round (offer mode), bytewise order.
local function passed(customer)
  local agents = redis.call('SMEMBERS', P .. 'passed:' .. customer)
  table.sort(agents, bytes_less)
  return agents
end

local s = { categories = {}, agents = {}, chats = {}, offers = {} }
for _, c in ipairs(redis.call('ZRANGE', P .. 'categories', 0, -1)) do
  local queue = {}
  for _, id in ipairs(redis.call('ZRANGE', P .. 'q:' .. c, 0, -1)) do
    local f = redis.call('HMGET', P .. 'customer:' .. id, 'ticket', 'away', 'continuing', 'conv')
    queue[#queue + 1] = { id, f[1], f[2] or '', passed(id), f[3] or '', f[4] or '' }
  end
  s.categories[#s.categories + 1] = { c, queue }
end
for _, id in ipairs(redis.call('ZRANGE', P .. 'agents', 0, -1)) do
  local f = redis.call('HMGET', P .. 'agent:' .. id, 'limit', 'available', 'away', 'last', 'busy', 'reason', 'lapses')
  local categories = redis.call('SMEMBERS', P .. 'agent-cats:' .. id)
  table.sort(categories, bytes_less)
  local chats = redis.call('ZRANGE', P .. 'agent-chats:' .. id, 0, -1)
  local offers = redis.call('ZRANGE', P .. 'agent-offers:' .. id, 0, -1)
  s.agents[#s.agents + 1] = { id, tonumber(f[1]), f[2] == '1', f[3] or '', categories, chats, f[4] or '0',
    f[5] == '1', f[6] or '', tonumber(f[7] or '0'), offers }
end
for _, chat in ipairs(redis.call('ZRANGE', P .. 'chats', 0, -1)) do
  local f = redis.call('HMGET', P .. 'chat:' .. chat, 'customer', 'agent', 'category')
  local c = redis.call('HMGET', P .. 'customer:' .. f[1], 'away', 'ticket', 'cat', 'conv')
  s.chats[#s.chats + 1] = { chat, f[1], f[2], f[3], c[1] or '', c[2] or '0', c[3] or f[3], passed(f[1]),
    c[4] or '' }
end
for _, offer in ipairs(redis.call('ZRANGE', P .. 'offers', 0, -1)) do
  local f = redis.call('HMGET', P .. 'offer:' .. offer, 'customer', 'agent', 'category')
  s.offers[#s.offers + 1] = { offer, f[1], f[2], f[3] }
end
s.offer_mode = redis.call('SMEMBERS', P .. 'offer-mode')
table.sort(s.offer_mode, bytes_less)
-- { category, when its mode in force was stored (ms, a string) }, bytewise order.
s.mode_set_at = {}
local stamps = redis.call('HGETALL', P .. 'mode-set-at')
for i = 1, #stamps, 2 do s.mode_set_at[#s.mode_set_at + 1] = { stamps[i], stamps[i + 1] } end
table.sort(s.mode_set_at, function(x, y) return bytes_less(x[1], y[1]) end)
-- { category, the stamp of the hours its open or closed state in force was read from (ms, a string) }, bytewise order.
s.open_set_at = {}
local read = redis.call('HGETALL', P .. 'open-set-at')
for i = 1, #read, 2 do s.open_set_at[#s.open_set_at + 1] = { read[i], read[i + 1] } end
table.sort(s.open_set_at, function(x, y) return bytes_less(x[1], y[1]) end)
s.room = redis.call('GET', P .. 'pairing-room') or ''
s.closed = redis.call('SMEMBERS', P .. 'closed')
table.sort(s.closed, bytes_less)
-- What a replica loaded from this snapshot also needs (`Routing::from_state`): the last
-- id drawn (a string: ids pass Lua as strings) and whether a pairing waits for room.
s.counter = redis.call('GET', P .. 'counter') or '0'
s.held_back = redis.call('GET', P .. 'held-back') == '1'
local last = redis.call('XREVRANGE', P .. 'routing-events', '+', '-', 'COUNT', 1)
s.last_event = (#last > 0) and last[1][1] or '0-0'
-- How many events were ever added up to last_event (the stream's `entries-added`): a
-- follower counts on from it to notice entries trimmed before it read them.
s.added = 0
if redis.call('EXISTS', P .. 'routing-events') == 1 then
  local info = redis.call('XINFO', 'STREAM', P .. 'routing-events')
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then s.added = info[i + 1] end
  end
end
return cjson.encode(s)
