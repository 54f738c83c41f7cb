-- The routing events after a follower's last one, or word that it fell behind.
-- Runs after `follow_check.lua` (the checks; `routing_events.rs` joins the two).
-- KEYS[1]: the events stream. ARGV[1]: the last entry id the follower applied;
-- ARGV[2]: how many entries were ever added up to it (its ordinal); ARGV[3]: at most
-- how many entries to return; ARGV[4] (optional): the routing domain's id
-- ({sb}:cluster-id) the follower started under.
-- Replies { 'lost', {} } or { 'gap', {} } as the checks say, else { 'ok', entries as
-- XRANGE gives them }.
local key, last, seen, count = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local status = follow_check(key, seen, ARGV[4])
if status ~= 'ok' then return { status, {} } end
return { 'ok', redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', count) }
