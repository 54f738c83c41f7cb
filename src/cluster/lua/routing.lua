-- The routing domain of a Switchboard cluster, in Redis: the same rules as
-- src/core/routing.rs (the oracle; tests/cluster_routing/ runs both on the same random
-- events and requires the same decisions), one atomic script call per transition.
--
-- Each script is this file followed by `return run('<transition>')` (see
-- src/cluster/routing_scripts.rs). ARGV[1] and ARGV[2] are the calling node's id and
-- incarnation (fencing, docs/cluster.md); the transition's own arguments follow.
-- KEYS[1] is `{sb}:counter`, only so that Redis Cluster sends the call to the slot of the
-- `{sb}` hash tag: every key below shares that tag, so all live in that one slot.
--
-- Every check comes before the first write, so a refused transition changes nothing,
-- as in the core. Ids are decimal strings throughout; ids and orderings come from one
-- counter, drawn in the same order as the core draws its own, so both hand out the same
-- ids for the same events. Decisions are emitted, and routing happens, in the core's order
-- (offers included: src/core/routing/offers.rs), so both emit the same list.
-- Sorts use `bytes_less` (Rust's order), from `bytes_order.lua`, which the adapter puts
-- before this file.

local P = '{sb}:'
local K_COUNTER = P .. 'counter'        -- string: the one counter for ids, tickets, epochs, stamps
local K_CATEGORIES = P .. 'categories'  -- zset, all scores 0: known categories, bytewise order
local K_AGENTS = P .. 'agents'          -- zset, all scores 0: online agents, bytewise order
local K_CHATS = P .. 'chats'            -- zset chat id -> chat id: running chats
local K_ROOM = P .. 'pairing-room'      -- string: chats that may still open; absent = no limit
local K_HELD = P .. 'held-back'         -- string '1': a pairing waited for room
local K_CLOSED = P .. 'closed'          -- set: categories closed now (outside their hours)
local K_OFFER_MODE = P .. 'offer-mode'  -- set: categories in offer mode (the others assign)
local K_MODE_SET_AT = P .. 'mode-set-at' -- hash category -> when its mode in force was stored (ms)
local K_OPEN_SET_AT = P .. 'open-set-at' -- hash category -> stamp of the hours its open/closed state in force was read from (ms)
local K_OFFERS = P .. 'offers'          -- zset offer id -> offer id: offers standing
local K_NODES = P .. 'nodes'            -- hash node id -> incarnation (shared contract)
local K_LEASES = P .. 'leases'          -- zset node id -> lease deadline, ms, Redis clock
local K_EVENTS = P .. 'routing-events'  -- stream of every transition's decisions
local K_CLUSTER_ID = P .. 'cluster-id'  -- string: the routing domain's id (chats are named by it)

-- Bound of the events stream. Nodes read it within milliseconds; a node that falls this
-- far behind (about ten seconds of events at 10,000 transitions/s) reloads the queues
-- with the snapshot script instead. `~` lets Redis trim whole macro-nodes, cheaply.
local EVENTS_MAXLEN = '100000'

local function k_queue(c) return P .. 'q:' .. c end              -- zset ticket -> customer: all waiting
-- zset ticket -> customer: waiting, connected and not offered (who routing may take next)
local function k_ready(c) return P .. 'qready:' .. c end
local function k_cat_agents(c) return P .. 'cat-agents:' .. c end -- set: online agents holding c
-- zset agent -> load * 2^48 + last assignment stamp (load: chats running plus offers
-- standing): the agents holding c who may take a chat now, best first (least loaded, then
-- idle longest), so pairing reads one member instead of scanning every agent. Exact while stamps stay below 2^48 (docs/cluster.md:
-- centuries at 10,000 transitions/s).
local function k_cat_ready(c) return P .. 'cat-ready:' .. c end
-- hash: cat, ticket, chat?, away?, node, offer? (the offer standing for this waiting customer)
local function k_customer(id) return P .. 'customer:' .. id end
-- set: the agents who declined this customer or let their offer lapse, this round
local function k_passed(id) return P .. 'passed:' .. id end
-- hash: limit, available, away?, last, node, busy? ('1': busy until their chats end), reason?,
-- lapses? (offers they let lapse in a row; absent: none)
local function k_agent(id) return P .. 'agent:' .. id end
local function k_agent_cats(id) return P .. 'agent-cats:' .. id end   -- set: the agent's categories
local function k_agent_chats(id) return P .. 'agent-chats:' .. id end -- zset chat id -> chat id
local function k_agent_offers(id) return P .. 'agent-offers:' .. id end -- zset offer id -> offer id
local function k_chat(id) return P .. 'chat:' .. id end          -- hash: customer, agent, category
local function k_offer(id) return P .. 'offer:' .. id end        -- hash: customer, agent, category
local function k_node_customers(n) return P .. 'node-customers:' .. n end -- zset id -> id
local function k_node_agents(n) return P .. 'node-agents:' .. n end       -- zset, scores 0
-- string: the reply to a join with this request id, kept a minute so a retry after a lost
-- answer gets the same customer instead of a second place in line
local function k_request(id) return P .. 'request:' .. id end
local REQUEST_TTL_SECONDS = 60
-- A conversation continued in a live chat, or begun by one (docs/cluster.md,
-- "Conversations"): its one seq counter, shared by its live chats and the lines its agent
-- writes while the customer is away (lua/chat_message.lua, lua/conversation_line.lua), so
-- its seq stays gapless across nodes; and the customer continuing it (waiting or
-- chatting), so it has one at most. The core keeps the latter as the customer's
-- `conversation` (its `live` index); the counter is not routing state.
local function k_conv_seq(id) return P .. 'conv-seq:' .. id end
local function k_conv_live(id) return P .. 'conv-live:' .. id end
-- The counter outlives the last line by a day, as a chat's log does: by then the archive
-- (which a node reads before continuing) has every line.
local CONV_SEQ_TTL_SECONDS = 86400

-- The customer continuing conversation `conv` now, if any (a key whose customer is gone,
-- or continues another, holds nothing: one left behind never locks a conversation).
local function live_customer(conv)
  local holder = redis.call('GET', k_conv_live(conv))
  if holder and redis.call('HGET', k_customer(holder), 'conv') == conv then return holder end
  return nil
end

-- The conversation chat `chat` begins (its customer continues none), named as every node
-- names the chat: a name-based UUID (SHA-1, as v5) of the routing domain's id and the chat
-- id, as `ConversationId::of_chat` (core/routing.rs). nil before the domain has an id.
local function conversation_of(chat)
  local domain = redis.call('GET', K_CLUSTER_ID)
  if not domain then return nil end
  local h = redis.sha1hex(domain .. '/' .. chat)
  -- The 13th hex digit is the version (5), the 17th the RFC 4122 variant (8 to b).
  local variant = string.format('%x', 8 + tonumber(string.sub(h, 17, 17), 16) % 4)
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5' .. string.sub(h, 14, 16)
    .. '-' .. variant .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
end

-- Offers (src/core/routing/offers.rs): an agent who lets this many offers in a row lapse
-- is set away, with this reason.
local LAPSES_BEFORE_AWAY = 2
local MISSED_OFFERS_REASON = 'Missed two chat offers'

-- The decisions of this call, in order; encoded once for the reply and the stream.
local out = {}
local function emit(d) out[#out + 1] = d end

local function next_id()
  return string.format('%d', redis.call('INCR', K_COUNTER))
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A node is alive iff the incarnation it claims is the registered one and its lease has
-- not run out by Redis's own clock.
local function alive(node, incarnation)
  if redis.call('HGET', K_NODES, node) ~= incarnation then return false end
  local deadline = redis.call('ZSCORE', K_LEASES, node)
  return deadline ~= false and tonumber(deadline) >= now_ms()
end

-- ---- who holds whom ---------------------------------------------------------------
-- A person is held by the node that has their connection or runs their grace timer, so
-- that `node_lost` can hand them on.

local function hold_customer(id, node)
  local previous = redis.call('HGET', k_customer(id), 'node')
  if previous and previous ~= node then redis.call('ZREM', k_node_customers(previous), id) end
  redis.call('HSET', k_customer(id), 'node', node)
  redis.call('ZADD', k_node_customers(node), id, id)
end

local function forget_customer(id)
  local f = redis.call('HMGET', k_customer(id), 'node', 'conv')
  local node, conv = f[1], f[2]
  if node then redis.call('ZREM', k_node_customers(node), id) end
  -- Their conversation may be continued again (by them or on another page).
  if conv and redis.call('GET', k_conv_live(conv)) == id then redis.call('DEL', k_conv_live(conv)) end
  redis.call('DEL', k_customer(id), k_passed(id))
end

local function hold_agent(id, node)
  local previous = redis.call('HGET', k_agent(id), 'node')
  if previous and previous ~= node then redis.call('ZREM', k_node_agents(previous), id) end
  redis.call('HSET', k_agent(id), 'node', node)
  redis.call('ZADD', k_node_agents(node), 0, id)
end

-- ---- queues -------------------------------------------------------------------------

local function category_exists(c)
  return redis.call('ZSCORE', K_CATEGORIES, c) ~= false
end

local function category_closed(c)
  return redis.call('SISMEMBER', K_CLOSED, c) == 1
end

-- Puts a customer (new, or back from a vanished agent) into their queue and tells them their place.
local function enqueue(id, category, ticket, requeued)
  local q = k_queue(category)
  redis.call('ZADD', q, ticket, id)
  local waiting = redis.call('ZCARD', q)
  local place = redis.call('ZRANK', q, id) + 1
  redis.call('HSET', k_customer(id), 'cat', category, 'ticket', ticket)
  redis.call('HDEL', k_customer(id), 'chat')
  redis.call('DEL', k_passed(id))
  if redis.call('HEXISTS', k_customer(id), 'away') == 0 then
    redis.call('ZADD', k_ready(category), ticket, id)
  end
  emit({ 'queued', id, category, place, requeued, ticket })
  emit({ 'waiting', category, waiting })
end

-- `category`, when the caller knows it, saves reading it.
-- A customer who just joined: held by `node`, at the back of the line (their ticket is the
-- newest id, above every ticket waiting), with nothing to clear (no chat, no passes, not
-- away); `enqueue`'s decisions, from fewer calls.
local function enqueue_new(id, category, ticket, node)
  local q = k_queue(category)
  redis.call('HSET', k_customer(id), 'node', node, 'cat', category, 'ticket', ticket)
  redis.call('ZADD', k_node_customers(node), id, id)
  redis.call('ZADD', q, ticket, id)
  local waiting = redis.call('ZCARD', q)
  redis.call('ZADD', k_ready(category), ticket, id)
  emit({ 'queued', id, category, waiting, false, ticket })
  emit({ 'waiting', category, waiting })
end

local function dequeue(id, category)
  category = category or redis.call('HGET', k_customer(id), 'cat')
  local q = k_queue(category)
  redis.call('ZREM', q, id)
  redis.call('ZREM', k_ready(category), id)
  emit({ 'waiting', category, redis.call('ZCARD', q) })
end

-- The longest-waiting customer of a category who can be offered or paired now (connected,
-- no offer standing): id and ticket, or nil.
local function front_ready(category)
  local front = redis.call('ZRANGE', k_ready(category), 0, 0)
  if #front == 0 then return nil end
  return front[1], redis.call('HGET', k_customer(front[1]), 'ticket')
end

-- ---- agents -------------------------------------------------------------------------

-- Chats running and offers standing: what the limit bounds.
local function load_of(agent)
  return redis.call('ZCARD', k_agent_chats(agent)) + redis.call('ZCARD', k_agent_offers(agent))
end

-- The agent's load and last assignment stamp when they may take a chat now, else nil.
local function eligible(agent)
  local f = redis.call('HMGET', k_agent(agent), 'limit', 'available', 'away', 'last')
  if f[1] == false or f[2] ~= '1' or f[3] ~= false then return nil end
  local load = load_of(agent)
  if load >= tonumber(f[1]) then return nil end
  return load, tonumber(f[4])
end

local STAMP_SPAN = 2 ^ 48

-- Puts the agent in, or takes them out of, the ready index of each of their categories,
-- after anything that changes their eligibility, load or stamp.
local function refresh_agent(agent)
  local load, last = eligible(agent)
  for _, c in ipairs(redis.call('SMEMBERS', k_agent_cats(agent))) do
    if load then
      redis.call('ZADD', k_cat_ready(c), load * STAMP_SPAN + last, agent)
    else
      redis.call('ZREM', k_cat_ready(c), agent)
    end
  end
end

-- Whether one more chat may open now, and whether the room is counted (a limit is set);
-- remembers a pairing held back for want of room.
local function may_pair()
  local room = redis.call('GET', K_ROOM)
  if room == '0' then
    redis.call('SET', K_HELD, '1')
    return false
  end
  return true, room ~= false
end

-- Opens the chat of a waiting customer with an agent (the room was counted by the caller).
local function open_chat(customer, ticket, category, agent)
  dequeue(customer, category)
  -- A customer transferred to a category goes on in the chat they were in (its seq too).
  local chat = redis.call('HGET', k_customer(customer), 'continuing')
  if chat then
    redis.call('HDEL', k_customer(customer), 'continuing')
  else
    chat = next_id()
  end
  local stamp = next_id()
  redis.call('ZADD', k_agent_chats(agent), chat, chat)
  redis.call('HSET', k_agent(agent), 'last', stamp)
  redis.call('HSET', k_customer(customer), 'chat', chat)
  redis.call('DEL', k_passed(customer))
  redis.call('HSET', k_chat(chat), 'customer', customer, 'agent', agent, 'category', category)
  -- A chat that begins a conversation: its customer holds it, as one continuing it does
  -- (the core's open_chat).
  local conv = redis.call('HGET', k_customer(customer), 'conv')
  if not conv then
    conv = conversation_of(chat)
    if conv and not live_customer(conv) then
      redis.call('SET', k_conv_live(conv), customer)
      redis.call('HSET', k_customer(customer), 'conv', conv)
      -- A chat going on (a transfer, an agent gone) that counted on its own counter so far
      -- (opened before chats named their conversation): its counter goes on from there.
      local counted = tonumber(redis.call('GET', P .. 'chat-seq:' .. chat) or '0')
      if counted > tonumber(redis.call('GET', k_conv_seq(conv)) or '0') then
        redis.call('SET', k_conv_seq(conv), counted, 'EX', CONV_SEQ_TTL_SECONDS)
      end
    else
      conv = nil
    end
  end
  -- The chat's lines take its conversation's seqs, from its one counter.
  if conv then redis.call('HSET', k_chat(chat), 'conv', conv) end
  redis.call('ZADD', K_CHATS, chat, chat)
  refresh_agent(agent)
  emit({ 'paired', chat, customer, agent, category, ticket })
end

-- `counted`: the room is limited (may_pair's answer), so this chat takes one.
local function pair(customer, ticket, category, agent, counted)
  if counted then redis.call('DECR', K_ROOM) end
  open_chat(customer, ticket, category, agent)
end

-- ---- offers (src/core/routing/offers.rs) ----------------------------------------------

local function in_offer_mode(category)
  return redis.call('SISMEMBER', K_OFFER_MODE, category) == 1
end

-- The agent whose turn it is to be offered or given `customer`: the best eligible agent holding
-- `category` who has not passed them; when all have, the best of them, with true (a new
-- round: make_offer forgets who passed). nil: nobody eligible.
local function choose_agent(customer, category)
  -- Nobody passed this customer (the common case): the best ready agent, one read.
  if redis.call('EXISTS', k_passed(customer)) == 0 then
    local best = redis.call('ZRANGE', k_cat_ready(category), 0, 0)[1]
    if best then return best, false end
    return nil
  end
  local first
  for _, agent in ipairs(redis.call('ZRANGE', k_cat_ready(category), 0, -1)) do
    if redis.call('SISMEMBER', k_passed(customer), agent) == 0 then return agent, false end
    first = first or agent
  end
  if first then return first, true end
  return nil
end

-- Offers a ready customer to an agent (chosen by choose_agent).
local function make_offer(customer, ticket, category, agent, new_round, counted)
  if counted then redis.call('DECR', K_ROOM) end
  local offer = next_id()
  if new_round then redis.call('DEL', k_passed(customer)) end
  redis.call('HSET', k_customer(customer), 'offer', offer)
  redis.call('ZREM', k_ready(category), customer)
  redis.call('ZADD', k_agent_offers(agent), offer, offer)
  redis.call('HSET', k_offer(offer), 'customer', customer, 'agent', agent, 'category', category)
  redis.call('ZADD', K_OFFERS, offer, offer)
  refresh_agent(agent)
  emit({ 'offered', offer, customer, agent, category, ticket })
end

-- Gives `customer` to `agent`: an offer where the category is in offer mode (`offering`),
-- else a chat.
local function offer_or_pair(offering, customer, ticket, category, agent, new_round, counted)
  if offering then
    make_offer(customer, ticket, category, agent, new_round, counted)
  else
    pair(customer, ticket, category, agent, counted)
  end
end

-- Ends a standing offer without a chat ('declined', 'lapsed' or 'withdrawn'): the customer
-- is ready again if connected (routing them is the caller's), the room it reserved is free,
-- the agent is told. Returns the offer's customer, agent and category.
local function withdraw_offer(offer, why)
  local f = redis.call('HMGET', k_offer(offer), 'customer', 'agent', 'category')
  local customer, agent, category = f[1], f[2], f[3]
  redis.call('DEL', k_offer(offer))
  redis.call('ZREM', K_OFFERS, offer)
  redis.call('ZREM', k_agent_offers(agent), offer)
  if redis.call('EXISTS', k_agent(agent)) == 1 then refresh_agent(agent) end
  local c = redis.call('HMGET', k_customer(customer), 'cat', 'ticket', 'away', 'chat')
  if c[1] then
    redis.call('HDEL', k_customer(customer), 'offer')
    if c[3] == false and c[4] == false then redis.call('ZADD', k_ready(c[1]), c[2], customer) end
  end
  if redis.call('EXISTS', K_ROOM) == 1 then redis.call('INCR', K_ROOM) end
  emit({ 'offer_ended', offer, customer, agent, why })
  return customer, agent, category
end

-- Withdraws the offer standing for a customer, if any; the agent it was made to.
local function withdraw_customer_offer(customer)
  local offer = redis.call('HGET', k_customer(customer), 'offer')
  if not offer then return nil end
  local _, agent = withdraw_offer(offer, 'withdrawn')
  return agent
end

-- Withdraws every offer standing in `category`, oldest first; the agents it freed, without
-- repeats, bytewise order (the core's BTreeSet).
local function withdraw_offers_in(category)
  local seen, freed = {}, {}
  for _, offer in ipairs(redis.call('ZRANGE', K_OFFERS, 0, -1)) do
    if redis.call('HGET', k_offer(offer), 'category') == category then
      local _, agent = withdraw_offer(offer, 'withdrawn')
      if not seen[agent] then
        seen[agent] = true
        freed[#freed + 1] = agent
      end
    end
  end
  table.sort(freed, bytes_less)
  return freed
end

-- Withdraws the agent's offers that no longer stand after a change to them: all of them
-- when they are disconnected or not available, those of a category they no longer hold,
-- then the newest while chats and offers exceed their limit. The categories of the
-- customers this made ready, possibly repeated (route_categories sorts them out).
local function release_unfit_offers(agent)
  local touched = {}
  if redis.call('EXISTS', k_agent(agent)) == 0 then return touched end
  local f = redis.call('HMGET', k_agent(agent), 'available', 'away', 'limit')
  local absent = f[2] ~= false or f[1] ~= '1'
  for _, offer in ipairs(redis.call('ZRANGE', k_agent_offers(agent), 0, -1)) do
    local category = redis.call('HGET', k_offer(offer), 'category')
    if absent or redis.call('SISMEMBER', k_agent_cats(agent), category) == 0 then
      local _, _, c = withdraw_offer(offer, 'withdrawn')
      touched[#touched + 1] = c
    end
  end
  while load_of(agent) > tonumber(f[3]) do
    local newest = redis.call('ZRANGE', k_agent_offers(agent), -1, -1)
    if #newest == 0 then break end
    local _, _, c = withdraw_offer(newest[1], 'withdrawn')
    touched[#touched + 1] = c
  end
  return touched
end

-- ---- routing ------------------------------------------------------------------------

-- Pairs (or, in offer mode, offers) the longest-waiting ready customers of a category to
-- the best eligible agents (least loaded, then longest since their last chat), until one
-- side runs out.
local function route_one_category(category)
  -- Nobody ready to take a customer of it (the common case under load): nothing to pair,
  -- and nothing below changes anything before it finds that out.
  if redis.call('EXISTS', k_cat_ready(category)) == 0 then return end
  if category_closed(category) then return end
  local offering = in_offer_mode(category)
  while true do
    local customer, ticket = front_ready(category)
    if not customer then return end
    local agent, new_round = choose_agent(customer, category)
    if not agent then return end
    local may, counted = may_pair()
    if not may then return end
    offer_or_pair(offering, customer, ticket, category, agent, new_round, counted)
  end
end

-- Routes every category once if a pairing was held back for want of room and room has
-- come back since: raised by `set_pairing_room`, or given back by an offer withdrawn in
-- another category (the core's `route_held_back`). Every routing pass ends with it.
local function route_held_back()
  local f = redis.call('MGET', K_ROOM, K_HELD)
  if f[1] ~= '0' and f[2] then
    redis.call('DEL', K_HELD)
    for _, category in ipairs(redis.call('ZRANGE', K_CATEGORIES, 0, -1)) do
      route_one_category(category)
    end
  end
end

local function route_category(category)
  route_one_category(category)
  route_held_back()
end

-- Routes each of a list of categories once, in bytewise order (the core's BTreeSet).
local function route_categories(list)
  table.sort(list, bytes_less)
  local last
  for _, category in ipairs(list) do
    if category ~= last then route_category(category) end
    last = category
  end
end

-- Gives an agent the longest-waiting connected customer across their categories, until full.
local function fill_agent(agent)
  while true do
    if not eligible(agent) then return end
    local best, best_ticket, best_category
    for _, category in ipairs(redis.call('SMEMBERS', k_agent_cats(agent))) do
      local customer, ticket
      if not category_closed(category) then customer, ticket = front_ready(category) end
      if customer and (best == nil or tonumber(ticket) < tonumber(best_ticket)) then
        best, best_ticket, best_category = customer, ticket, category
      end
    end
    if not best then return end
    local may, counted = may_pair()
    if not may then return end
    -- Whoever's turn it is for this customer: this agent, unless they passed them.
    local to, new_round = choose_agent(best, best_category)
    offer_or_pair(in_offer_mode(best_category), best, best_ticket, best_category, to, new_round, counted)
  end
end

local function route_agent(agent)
  fill_agent(agent)
  route_held_back()
end

-- An offer declined or lapsed: the agent has passed the customer; whatever else of the
-- agent's no longer stands goes back too (they were set away); then routes.
local function pass(offer, why)
  local customer, agent, category = withdraw_offer(offer, why)
  redis.call('SADD', k_passed(customer), agent)
  local touched = release_unfit_offers(agent)
  touched[#touched + 1] = category
  route_categories(touched)
  route_agent(agent)
end

-- The known ones of a list of categories, without repeats.
local function known_categories(list)
  local seen, known = {}, {}
  for _, c in ipairs(list) do
    if not seen[c] and category_exists(c) then
      seen[c] = true
      known[#known + 1] = c
    end
  end
  return known
end

local function set_agent_categories(agent, categories)
  for _, old in ipairs(redis.call('SMEMBERS', k_agent_cats(agent))) do
    redis.call('SREM', k_cat_agents(old), agent)
    redis.call('ZREM', k_cat_ready(old), agent)
  end
  redis.call('DEL', k_agent_cats(agent))
  for _, c in ipairs(categories) do
    redis.call('SADD', k_agent_cats(agent), c)
    redis.call('SADD', k_cat_agents(c), agent)
  end
  refresh_agent(agent)
end

-- A busy agent with no chat left is available again.
local function end_busy_when_free(agent)
  if redis.call('HGET', k_agent(agent), 'busy') == '1' and redis.call('ZCARD', k_agent_chats(agent)) == 0 then
    redis.call('HDEL', k_agent(agent), 'busy')
    redis.call('HSET', k_agent(agent), 'available', '1')
    refresh_agent(agent)
    emit({ 'busy_ended', agent })
  end
end

-- ---- chats --------------------------------------------------------------------------

local function end_chat_inner(chat, by, reason)
  local f = redis.call('HMGET', k_chat(chat), 'customer', 'agent')
  local customer, agent = f[1], f[2]
  redis.call('DEL', k_chat(chat))
  redis.call('ZREM', K_CHATS, chat)
  forget_customer(customer)
  emit({ 'chat_ended', chat, customer, agent, by, reason })
  if redis.call('EXISTS', k_agent(agent)) == 1 then
    redis.call('ZREM', k_agent_chats(agent), chat)
    refresh_agent(agent)
    end_busy_when_free(agent)
    route_agent(agent)
  end
end

-- The agent goes offline at once: their offers are withdrawn, chats are withdrawn and
-- customers re-queued at the front with their original wait, to go on in the same chat
-- when paired again (or dropped when their category is gone).
local function agent_offline(agent)
  if redis.call('EXISTS', k_agent(agent)) == 0 then return end
  local touched = {}
  for _, offer in ipairs(redis.call('ZRANGE', k_agent_offers(agent), 0, -1)) do
    local _, _, category = withdraw_offer(offer, 'withdrawn')
    touched[#touched + 1] = category
  end
  local node = redis.call('HGET', k_agent(agent), 'node')
  if node then redis.call('ZREM', k_node_agents(node), agent) end
  set_agent_categories(agent, {})
  local chats = redis.call('ZRANGE', k_agent_chats(agent), 0, -1)
  redis.call('DEL', k_agent(agent), k_agent_chats(agent), k_agent_offers(agent))
  redis.call('ZREM', K_AGENTS, agent)
  for _, chat in ipairs(chats) do
    local f = redis.call('HMGET', k_chat(chat), 'customer', 'category')
    local customer, category = f[1], f[2]
    redis.call('DEL', k_chat(chat))
    redis.call('ZREM', K_CHATS, chat)
    emit({ 'chat_withdrawn', chat, customer, agent })
    if category_exists(category) then
      -- Paired again, they go on in the same chat (its id and seq): open_chat reads it.
      redis.call('HSET', k_customer(customer), 'continuing', chat)
      enqueue(customer, category, redis.call('HGET', k_customer(customer), 'ticket'), true)
      touched[#touched + 1] = category
    else
      -- Their category was removed while they chatted: nowhere to go back to.
      forget_customer(customer)
      emit({ 'dequeued', customer, 'category_removed' })
    end
  end
  route_categories(touched)
end

-- ---- customers ----------------------------------------------------------------------

local function customer_disconnected(id, node)
  local epoch = next_id()
  local f = redis.call('HMGET', k_customer(id), 'cat', 'chat')
  redis.call('HSET', k_customer(id), 'away', epoch)
  hold_customer(id, node)
  if f[2] then
    emit({ 'customer_away', f[2], redis.call('HGET', k_chat(f[2]), 'agent') })
  else
    redis.call('ZREM', k_ready(f[1]), id)
  end
  emit({ 'customer_grace', id, epoch })
  -- Nobody can accept a customer who is not there: their offer goes back.
  local offered_to = withdraw_customer_offer(id)
  if offered_to then route_agent(offered_to) end
end

local function agent_disconnected(id, node)
  local epoch = next_id()
  redis.call('HSET', k_agent(id), 'away', epoch)
  refresh_agent(id)
  hold_agent(id, node)
  for _, chat in ipairs(redis.call('ZRANGE', k_agent_chats(id), 0, -1)) do
    emit({ 'agent_away', chat, redis.call('HGET', k_chat(chat), 'customer') })
  end
  emit({ 'agent_grace', id, epoch })
  -- Their offers go to someone who is there.
  route_categories(release_unfit_offers(id))
end

local function valid_limit(s)
  local n = tonumber(s)
  return n ~= nil and n >= 1 and n <= 4 and n == math.floor(n)
end

-- ---- the transitions ----------------------------------------------------------------
-- Each takes the calling node and its arguments (strings); it returns nil, or an error
-- code (`RoutingError::code()`) before it has changed anything; what it returns besides
-- goes back to the caller as the reply's third element (a new customer's id).

local T = {}

function T.add_category(_, a)
  if category_exists(a[1]) then return 'already_exists' end
  redis.call('ZADD', K_CATEGORIES, 0, a[1])
end

function T.remove_category(_, a)
  local category = a[1]
  if not category_exists(category) then return 'unknown_category' end
  local freed = withdraw_offers_in(category)
  for _, customer in ipairs(redis.call('ZRANGE', k_queue(category), 0, -1)) do
    forget_customer(customer)
    emit({ 'dequeued', customer, 'category_removed' })
  end
  redis.call('DEL', k_queue(category), k_ready(category), k_cat_ready(category))
  for _, agent in ipairs(redis.call('SMEMBERS', k_cat_agents(category))) do
    redis.call('SREM', k_agent_cats(agent), category)
  end
  redis.call('DEL', k_cat_agents(category))
  redis.call('ZREM', K_CATEGORIES, category)
  redis.call('SREM', K_CLOSED, category)
  redis.call('SREM', K_OFFER_MODE, category)
  redis.call('HDEL', K_MODE_SET_AT, category)
  redis.call('HDEL', K_OPEN_SET_AT, category)
  emit({ 'waiting', category, 0 })
  for _, agent in ipairs(freed) do route_agent(agent) end
end

-- a[2], optional: the caller's request id (see k_request).
function T.join(node, a)
  local category, request = a[1], a[2]
  if request == '' then request = nil end
  if request then
    local earlier = redis.call('GET', k_request(request))
    if earlier then return nil, nil, earlier end
  end
  if not category_exists(category) then return 'unknown_category' end
  if category_closed(category) then return 'category_closed' end
  -- a[10], a[11], optional: the conversation the customer continues and the last seq
  -- their node read of it. One customer continues it at a time, whatever the node.
  local conv = a[10]
  if conv == '' then conv = nil end
  if conv then
    if live_customer(conv) then return 'already_live' end
  end
  -- Two ids at once: the customer's, then their ticket (as two next_id() would give).
  local last = redis.call('INCRBY', K_COUNTER, 2)
  local id, ticket = string.format('%d', last - 1), string.format('%d', last)
  -- a[5], a[6], optional: the key of the customer's resume token and its lifetime (ms).
  -- Recorded with the join itself, so a token the node sends in its `welcome` is known
  -- cluster-wide before the customer can see it.
  local token_key, token_ms = a[5], tonumber(a[6])
  if token_key and string.sub(token_key, 1, 12) == '{sb}:resume:' and token_ms then
    redis.call('SET', token_key, id, 'PX', token_ms)
  end
  enqueue_new(id, category, ticket, node)
  if conv then
    -- Its lines go on after the last one anyone stamped (a line its agent wrote on
    -- another node may not be in the archive the node read yet). The event carries the
    -- seq this settles on (the node of either side starts its line there).
    local seq = math.max(tonumber(a[11]) or 0, tonumber(redis.call('GET', k_conv_seq(conv)) or '0'))
    a[11] = string.format('%d', seq)
    redis.call('SET', k_conv_seq(conv), a[11], 'EX', CONV_SEQ_TTL_SECONDS)
    redis.call('SET', k_conv_live(conv), id)
    redis.call('HSET', k_customer(id), 'conv', conv)
  end
  -- a[9], optional: the agent holding the conversation the customer returns to, who gets
  -- them at once when they hold the category and may take a chat now, in either routing
  -- mode (the core's join_preferring).
  local preferred = a[9]
  if preferred and preferred ~= '' and eligible(preferred)
      and redis.call('SISMEMBER', k_agent_cats(preferred), category) == 1 then
    local allowed, counted = may_pair()
    if allowed then pair(id, ticket, category, preferred, counted) end
  end
  route_category(category)
  return nil, id
end

function T.leave(_, a)
  local id = a[1]
  local f = redis.call('HMGET', k_customer(id), 'cat', 'chat')
  if f[1] == false then return 'unknown_customer' end
  if f[2] then
    end_chat_inner(f[2], 'customer', 'ended')
  else
    local offered_to = withdraw_customer_offer(id)
    dequeue(id)
    forget_customer(id)
    emit({ 'dequeued', id, 'left' })
    if offered_to then route_agent(offered_to) end
  end
end

-- A node speaks of the people it holds only (as a message, chat_message.lua): a page
-- closed on a node whose customer resumed on another since (its disconnect queued behind
-- a restore, or said again after one) changes nothing, or it would mark them away where
-- they are connected, and each of their lines there would be refused.
local function held_elsewhere(key, node)
  local holder = redis.call('HGET', key, 'node')
  return holder and holder ~= node
end

function T.customer_disconnected(node, a)
  if redis.call('EXISTS', k_customer(a[1])) == 0 then return 'unknown_customer' end
  if held_elsewhere(k_customer(a[1]), node) then return 'not_held' end
  customer_disconnected(a[1], node)
end

function T.customer_resumed(node, a)
  local id = a[1]
  local f = redis.call('HMGET', k_customer(id), 'cat', 'chat', 'away', 'ticket')
  if f[1] == false then return 'unknown_customer' end
  if f[3] == false then return 'wrong_state' end
  redis.call('HDEL', k_customer(id), 'away')
  hold_customer(id, node)
  if f[2] then
    emit({ 'customer_back', f[2], redis.call('HGET', k_chat(f[2]), 'agent') })
  else
    redis.call('ZADD', k_ready(f[1]), f[4], id)
    route_category(f[1])
  end
end

function T.customer_grace_expired(_, a)
  local id, epoch = a[1], a[2]
  local f = redis.call('HMGET', k_customer(id), 'away', 'chat')
  if f[1] ~= epoch then return end -- unknown, connected, or a stale timer
  if f[2] then
    end_chat_inner(f[2], 'system', 'customer_gone')
  else
    dequeue(id)
    forget_customer(id)
    emit({ 'dequeued', id, 'left' })
  end
end

function T.agent_online(node, a)
  local id, limit, available = a[1], a[2], a[3]
  if not valid_limit(limit) then return 'invalid_limit' end
  if redis.call('EXISTS', k_agent(id)) == 1 then return 'already_online' end
  -- An empty argument ends the categories: the sign-in after it rides in the event only.
  local categories = {}
  for i = 4, #a do
    if a[i] == '' then break end
    categories[#categories + 1] = a[i]
  end
  local last = next_id()
  redis.call('HSET', k_agent(id), 'limit', limit, 'available', available, 'last', last)
  redis.call('ZADD', K_AGENTS, 0, id)
  hold_agent(id, node)
  set_agent_categories(id, known_categories(categories))
  route_agent(id)
end

-- A take-back's a[2], the sign-in whose coming back it takes back, rides in the event only.
function T.agent_disconnected(node, a)
  if redis.call('EXISTS', k_agent(a[1])) == 0 then return 'unknown_agent' end
  if held_elsewhere(k_agent(a[1]), node) then return 'not_held' end
  agent_disconnected(a[1], node)
end

function T.agent_resumed(node, a)
  local id = a[1]
  if redis.call('EXISTS', k_agent(id)) == 0 then return 'unknown_agent' end
  if redis.call('HEXISTS', k_agent(id), 'away') == 0 then return 'wrong_state' end
  redis.call('HDEL', k_agent(id), 'away')
  refresh_agent(id)
  hold_agent(id, node)
  for _, chat in ipairs(redis.call('ZRANGE', k_agent_chats(id), 0, -1)) do
    emit({ 'agent_back', chat, redis.call('HGET', k_chat(chat), 'customer') })
  end
  route_agent(id)
end

function T.agent_grace_expired(_, a)
  if redis.call('HGET', k_agent(a[1]), 'away') == a[2] then agent_offline(a[1]) end
end

function T.agent_offline(_, a)
  agent_offline(a[1])
end

-- The agent's status: 'available', 'away' (a[3]: the reason, optional) or 'busy'.
local function set_status(id, status, reason)
  if redis.call('EXISTS', k_agent(id)) == 0 then return 'unknown_agent' end
  redis.call('HSET', k_agent(id), 'available', status == 'available' and '1' or '0')
  redis.call('HDEL', k_agent(id), 'busy', 'reason')
  if status == 'busy' then redis.call('HSET', k_agent(id), 'busy', '1') end
  if status == 'away' and reason and reason ~= '' then redis.call('HSET', k_agent(id), 'reason', reason) end
  refresh_agent(id)
  end_busy_when_free(id)
  route_categories(release_unfit_offers(id))
  route_agent(id)
end

function T.set_available(_, a)
  return set_status(a[1], a[2] == '1' and 'available' or 'away', nil)
end

function T.set_status(_, a)
  local status = a[2]
  if status ~= 'available' and status ~= 'away' and status ~= 'busy' then return 'wrong_state' end
  return set_status(a[1], status, a[3])
end

-- Whether `stamp` (the number's text, or nil) is one the replicas read alike (`u64`):
-- digits only, no sign, exponent, hex or spaces.
local function stamp_readable(stamp)
  return stamp == nil or stamp:match('^%d+$') ~= nil
end

-- Whether a change stamped `stamp` (ms, as the number's text, or nil) applies over the one
-- in force for `category` in the hash `key`, its stamp kept there (as sent: Lua's numbers
-- would print large ones otherwise) if so: an older stamp does not; no stamp (a node of a
-- build before stamps sends none) always does and leaves the stamp in force as it is.
local function take_stamp(key, category, stamp)
  if stamp == nil then return true end
  if tonumber(stamp) < tonumber(redis.call('HGET', key, category) or '0') then return false end
  redis.call('HSET', key, category, stamp)
  return true
end

-- a[2]: '1' to open, '0' to close; a[3]: the stamp of the hours it was read from (ms;
-- absent: none, see take_stamp). Setting the state it has changes nothing, and neither
-- does a state read from older hours than the one in force (a node's read that an admin's
-- newer change overtook).
function T.set_category_open(_, a)
  local category, open = a[1], a[2] == '1'
  if not category_exists(category) then return 'unknown_category' end
  if not stamp_readable(a[3]) then return 'wrong_state' end
  if not take_stamp(K_OPEN_SET_AT, category, a[3]) then return end
  if open then
    if redis.call('SREM', K_CLOSED, category) == 1 then
      emit({ 'category_open', category, true })
      route_category(category)
    end
  elseif redis.call('SADD', K_CLOSED, category) == 1 then
    emit({ 'category_open', category, false })
    -- Nobody is paired in a closed category: its offers go back (the customers keep their place).
    for _, agent in ipairs(withdraw_offers_in(category)) do route_agent(agent) end
  end
end

function T.set_limit(_, a)
  local id, limit = a[1], a[2]
  if not valid_limit(limit) then return 'invalid_limit' end
  if redis.call('EXISTS', k_agent(id)) == 0 then return 'unknown_agent' end
  redis.call('HSET', k_agent(id), 'limit', limit)
  refresh_agent(id)
  route_categories(release_unfit_offers(id))
  route_agent(id)
end

function T.set_categories(_, a)
  local id = a[1]
  if redis.call('EXISTS', k_agent(id)) == 0 then return 'unknown_agent' end
  local categories = {}
  for i = 2, #a do categories[#categories + 1] = a[i] end
  set_agent_categories(id, known_categories(categories))
  route_categories(release_unfit_offers(id))
  route_agent(id)
end

-- a[2]: 'assign' or 'offer'; a[3]: when it was stored (ms; absent: none, see take_stamp).
-- Leaving offer mode takes back its offers (the customers are then assigned); setting the
-- mode it has changes nothing, and neither does a mode stored before the one in force (a
-- node's read that an admin's newer change overtook).
function T.set_category_mode(_, a)
  local category, mode = a[1], a[2]
  if not category_exists(category) then return 'unknown_category' end
  if mode ~= 'assign' and mode ~= 'offer' then return 'wrong_state' end
  if not stamp_readable(a[3]) then return 'wrong_state' end
  if not take_stamp(K_MODE_SET_AT, category, a[3]) then return end
  if mode == 'offer' then
    -- Assigning left nobody ready beside an eligible agent: nothing to route.
    redis.call('SADD', K_OFFER_MODE, category)
  elseif redis.call('SREM', K_OFFER_MODE, category) == 1 then
    local freed = withdraw_offers_in(category)
    route_category(category)
    for _, agent in ipairs(freed) do route_agent(agent) end
  end
end

-- The offer a[2], if it stands for the agent a[1]: its customer and category, else nil.
local function offer_of(agent, offer)
  local f = redis.call('HMGET', k_offer(offer), 'customer', 'agent', 'category')
  if f[1] == false or f[2] ~= agent then return nil end
  return f[1], f[3]
end

-- The agent accepts an offer made to them: the chat opens, in the room the offer reserved.
function T.accept_offer(_, a)
  local agent, offer = a[1], a[2]
  local customer, category = offer_of(agent, offer)
  if not customer then return 'unknown_offer' end
  redis.call('DEL', k_offer(offer))
  redis.call('ZREM', K_OFFERS, offer)
  redis.call('ZREM', k_agent_offers(agent), offer)
  redis.call('HDEL', k_agent(agent), 'lapses')
  redis.call('HDEL', k_customer(customer), 'offer')
  open_chat(customer, redis.call('HGET', k_customer(customer), 'ticket'), category, agent)
end

-- The agent declines an offer made to them: the customer is offered to the next eligible
-- agent (to this one again only once every eligible agent has passed).
function T.decline_offer(_, a)
  local agent, offer = a[1], a[2]
  if not offer_of(agent, offer) then return 'unknown_offer' end
  redis.call('HDEL', k_agent(agent), 'lapses')
  pass(offer, 'declined')
end

-- An offer's timer fired. Unanswered, it lapses as a decline; the agent's second lapse in
-- a row sets them away. An offer no longer standing is ignored.
function T.offer_expired(_, a)
  local offer = a[1]
  local agent = redis.call('HGET', k_offer(offer), 'agent')
  if not agent then return end
  local set_away = redis.call('HINCRBY', k_agent(agent), 'lapses', 1) >= LAPSES_BEFORE_AWAY
  if set_away then
    redis.call('HDEL', k_agent(agent), 'lapses', 'busy')
    redis.call('HSET', k_agent(agent), 'available', '0', 'reason', MISSED_OFFERS_REASON)
    refresh_agent(agent)
  end
  pass(offer, 'lapsed')
  if set_away then emit({ 'away_missed_offers', agent }) end
end

-- a: chat, by ('customer' | 'agent' | 'system'), and for an agent who ends their own chat,
-- their id: refused unless the chat is theirs (a transfer of theirs may have applied first).
function T.end_chat(_, a)
  if redis.call('EXISTS', k_chat(a[1])) == 0 then return 'unknown_chat' end
  if a[3] and a[3] ~= '' and redis.call('HGET', k_chat(a[1]), 'agent') ~= a[3] then
    return 'not_your_chat'
  end
  end_chat_inner(a[1], a[2], 'ended')
end

-- ---- transfers (src/core/routing/transfers.rs) -----------------------------------------

-- The running chat a[1]'s customer, agent and category, if the agent `by` runs it; else
-- nil and the refusal.
local function chat_run_by(chat, by)
  local f = redis.call('HMGET', k_chat(chat), 'customer', 'agent', 'category')
  if not f[1] then return nil, 'unknown_chat' end
  if f[2] ~= by then return nil, 'not_your_chat' end
  return f
end

-- a: chat, by, to, note (not read here), category ('' or absent: none). The chat goes on
-- with the agent `to`, who could take a chat now (never `by` themselves), whether or not
-- they hold its category; with `category` (one `to` holds) it moves into that category.
-- Its id and seq stay.
function T.transfer_to_agent(_, a)
  local chat, by, to = a[1], a[2], a[3]
  local into = a[5]
  if into == '' then into = nil end
  local f, refused = chat_run_by(chat, by)
  if not f then return refused end
  local customer, category = f[1], f[3]
  if into and not category_exists(into) then return 'unknown_category' end
  if to == by or not eligible(to)
    or (into and redis.call('SISMEMBER', k_agent_cats(to), into) == 0) then
    return 'agent_not_eligible'
  end
  if into == category then into = nil end
  local stamp = next_id()
  redis.call('ZREM', k_agent_chats(by), chat)
  refresh_agent(by)
  redis.call('ZADD', k_agent_chats(to), chat, chat)
  redis.call('HSET', k_agent(to), 'last', stamp)
  refresh_agent(to)
  redis.call('HSET', k_chat(chat), 'agent', to)
  if into then
    redis.call('HSET', k_chat(chat), 'category', into)
    redis.call('HSET', k_customer(customer), 'cat', into)
  end
  emit({ 'chat_transferred', chat, customer, by, to, into or '' })
  end_busy_when_free(by)
  route_agent(by)
end

-- a: chat, by, category. The customer waits in the category's line again with their
-- original ticket (ahead of everyone who joined it later), `by` having passed them;
-- paired again, they go on in the same chat (open_chat reads `continuing`).
function T.transfer_to_category(_, a)
  local chat, by, category = a[1], a[2], a[3]
  local f, refused = chat_run_by(chat, by)
  if not f then return refused end
  if not category_exists(category) then return 'unknown_category' end
  if category_closed(category) then return 'category_closed' end
  local customer = f[1]
  redis.call('DEL', k_chat(chat))
  redis.call('ZREM', K_CHATS, chat)
  redis.call('ZREM', k_agent_chats(by), chat)
  refresh_agent(by)
  redis.call('HSET', k_customer(customer), 'continuing', chat)
  emit({ 'chat_to_category', chat, customer, by, category })
  enqueue(customer, category, redis.call('HGET', k_customer(customer), 'ticket'), true)
  redis.call('SADD', k_passed(customer), by)
  route_category(category)
  end_busy_when_free(by)
  route_agent(by)
end

-- a[1]: the room, or '' for no limit.
function T.set_pairing_room(_, a)
  local room = a[1]
  if room == '' then redis.call('DEL', K_ROOM) else redis.call('SET', K_ROOM, room) end
  route_held_back()
end

-- Hands the people of a lost node's set `held` (customers or agents, by their own key
-- `k_person`, `hold`, grace event and disconnect) to `node`: those away get their grace
-- timer again with their epoch, the connected are disconnected.
local function take_over(node, held, k_person, hold, grace, disconnected)
  for _, id in ipairs(redis.call('ZRANGE', held, 0, -1)) do
    local away = redis.call('HGET', k_person(id), 'away')
    if away then
      hold(id, node)
      emit({ grace, id, away })
    else
      disconnected(id, node)
    end
  end
end

-- A node is gone (its lease ran out; or it is the caller itself, just restarted, whose
-- previous incarnation's people are still on record). Everyone it held is handed to the
-- caller: connected customers, then agents, are disconnected as by
-- `customer_disconnected`/`agent_disconnected` (the grace period starts now, on the
-- caller's timers; their offers are withdrawn and routed on, one person at a time, as the
-- core's disconnects do); those already away get their grace timer started again on the caller,
-- with their current epoch. The dead node is removed from the registry.
function T.node_lost(node, a)
  local lost = a[1]
  if lost ~= node then
    local incarnation = redis.call('HGET', K_NODES, lost)
    if incarnation and alive(lost, incarnation) then return 'node_alive' end
  end
  take_over(node, k_node_customers(lost), k_customer, hold_customer, 'customer_grace', customer_disconnected)
  take_over(node, k_node_agents(lost), k_agent, hold_agent, 'agent_grace', agent_disconnected)
  if lost ~= node then
    redis.call('DEL', k_node_customers(lost), k_node_agents(lost))
    redis.call('HDEL', K_NODES, lost)
    redis.call('ZREM', K_LEASES, lost)
  end
end

-- Runs one transition for the node in ARGV[1..2]: refused with FENCED unless that node
-- is alive, refused with the rule's error code, or applied. An applied transition, even
-- one that decided nothing (an agent online with nobody waiting changes the state too),
-- becomes one entry of the events stream — its name, node, arguments and decisions, so
-- the stream is the whole history in the order Redis applied it — and its decisions go
-- back to the caller: { decisions as JSON, stream entry id, extra }.
local function run(name)
  local node, incarnation = ARGV[1], ARGV[2]
  if not alive(node, incarnation) then
    return redis.error_reply('FENCED node ' .. node .. ' incarnation ' .. incarnation .. ' is not alive')
  end
  local args = {}
  for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
  local refused, extra, earlier = T[name](node, args)
  if refused then return redis.error_reply(refused .. ' refused by the routing rules') end
  -- A retried request: the first reply again, and nothing changes.
  if earlier then return cjson.decode(earlier) end
  local decisions = cjson.encode(out)
  local entry = redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    't', name, 'n', node, 'a', cjson.encode(args), 'd', decisions)
  local reply = { decisions, entry, extra or '' }
  if name == 'join' and args[2] and args[2] ~= '' then
    redis.call('SET', k_request(args[2]), cjson.encode(reply), 'EX', REQUEST_TTL_SECONDS)
  end
  return reply
end
