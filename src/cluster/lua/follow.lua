-- The routing events after a follower's last one, or word that it fell behind.
-- KEYS[1]: the events stream. ARGV[1]: the last entry id the follower applied;
-- ARGV[2]: how many entries were ever added up to it (its ordinal); ARGV[3]: at most
-- how many entries to return; ARGV[4] (optional): the routing domain's id
-- ({sb}:cluster-id) the follower started under.
-- Replies { 'lost', {} } when that id is gone or another (Redis lost its data: what the
-- follower applied is gone, and the stream starts again).
-- Replies { 'gap', {} } when entries the follower has not read were trimmed away (or the
-- stream is younger than what the follower saw: Redis lost its data), so the follower
-- must reload from a snapshot; else { 'ok', entries as XRANGE gives them }.
-- Streams count every entry ever added (`entries-added`) and keep the last `length`:
-- the oldest kept has ordinal added - length + 1, which must not be past seen + 1.
local key, last, seen, count = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
-- Undeclared, as the routing scripts' derived keys: it shares the {sb} slot.
if ARGV[4] and redis.call('GET', '{sb}:cluster-id') ~= ARGV[4] then return { 'lost', {} } end
if redis.call('EXISTS', key) == 0 then
  if seen > 0 then return { 'gap', {} } end
  return { 'ok', {} }
end
local info = redis.call('XINFO', 'STREAM', key)
local added, length = 0, 0
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'length' then length = info[i + 1] end
end
if added < seen or seen < added - length then return { 'gap', {} } end
return { 'ok', redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', count) }
