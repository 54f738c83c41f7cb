-- A chat line's resend guard (docs/cluster.md §7, §15), written once for the scripts that
-- set it: chat_message.lua and buddy_message.lua, at its stamping, and restore.lua and
-- buddy_claim.lua, which write the line back after Redis lost its data (the guard went
-- with the data, and a client whose ack the restart lost sends the line again). Prepended
-- after `P` is defined.

-- Thirty seconds: a client sends a refused message again at once or after moving to
-- another node (a few seconds); at 1,000 messages/s with client ids this keeps ~30,000
-- small keys.
local CLIENT_RESEND_SECS = 30

-- Keyed by a digest of the client id and the text, so a client that reuses its ids (a
-- reloaded page counting from 1 again) loses no different message.
local function chat_client_key(chat, from, sender, client, text)
  return P .. 'chat-client:' .. chat .. ':' .. from .. ':' .. sender .. ':' .. redis.sha1hex(client .. '\n' .. text)
end

-- The guard's value: what a line sent again is answered with (its first seq, id and time).
local function chat_client_stamp(seq, id, at)
  return seq .. ' ' .. id .. ' ' .. at
end

-- A buddy chat's guard: keyed by its sender alone (both sides are buddies); its value is
-- the stamp's whole reply, as buddy_message.lua gives it.
local function buddy_client_key(chat, sender, client, text)
  return P .. 'bchat-client:' .. chat .. ':' .. sender .. ':' .. redis.sha1hex(client .. '\n' .. text)
end

-- What is left (ms) of the guard of a line stamped at `at` (ms since the epoch, as the
-- stamping node's clock had it), by Redis's clock; 0 or less: gone.
local function resend_guard_left_ms(at)
  local t = redis.call('TIME')
  return CLIENT_RESEND_SECS * 1000 - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(at))
end
