-- Whether a follower of the routing events may read on after its last entry: the one
-- statement of the checks, shared by `follow.lua` and the hub's pipelined read
-- (`routing_events::follow_blocking`), which each put it before their own lines.
-- `seen`: how many entries were ever added up to the follower's last (its ordinal);
-- `cluster_id` (nil: not checked): the routing domain's id ({sb}:cluster-id) the follower
-- started under.
-- 'lost' when that id is gone or another (Redis lost its data: what the follower applied
-- is gone, and the stream starts again); 'gap' when entries the follower has not read
-- were trimmed away (or the stream is younger than what the follower saw: Redis lost its
-- data), so the follower must reload from a snapshot; else 'ok'.
-- Streams count every entry ever added (`entries-added`) and keep the last `length`:
-- the oldest kept has ordinal added - length + 1, which must not be past seen + 1.
local function follow_check(key, seen, cluster_id)
  -- Undeclared, as the routing scripts' derived keys: it shares the {sb} slot.
  if cluster_id and redis.call('GET', '{sb}:cluster-id') ~= cluster_id then return 'lost' end
  if redis.call('EXISTS', key) == 0 then
    if seen > 0 then return 'gap' end
    return 'ok'
  end
  local info = redis.call('XINFO', 'STREAM', key)
  local added, length = 0, 0
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'length' then length = info[i + 1] end
  end
  if added < seen or seen < added - length then return 'gap' end
  return 'ok'
end
