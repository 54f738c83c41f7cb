-- One buddy-list event (docs/cluster.md §15), appended to the routing events stream
-- after the caller's fencing check, atomically: every node replays the stream through
-- its replica of the buddy desk (src/hub/buddy.rs, the rules of src/core/presence.rs),
-- so all of them apply the same events in the same order, node losses included.
-- KEYS[1]: {sb}:routing-events. ARGV: node, incarnation, the event (JSON), stream bound,
-- the process that made it (a node id outlives a process: connection ids do not), and
-- (may be '') the event's own id: a node's own events carry one so that one sent again
-- after an answer lost in transit (the node's outbox) is recorded once.
-- Replies the entry's id ('repeat' for an event already recorded), or an error FENCED
-- when the caller is not alive.
-- (The caller's fencing, `P`, `node` and `incarnation` come first: lua/fencing.lua.)
if ARGV[6] and ARGV[6] ~= '' then
  -- Kept a minute: an outbox replays within the lease, or is thrown away when fenced.
  if not redis.call('SET', P .. 'buddy-once:' .. ARGV[6], '1', 'NX', 'EX', 60) then
    return 'repeat'
  end
end
-- The routing entries' shape: `a` a JSON list of string arguments, `d` no decisions.
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
  't', 'buddy', 'n', node, 'a', cjson.encode({ ARGV[3], ARGV[5] }), 'd', '[]')
