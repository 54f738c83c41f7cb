-- The fencing every script a node calls for its own people opens with (docs/cluster.md
-- §4), prepended to each by its Rust adapter: ARGV[1] and ARGV[2] are the calling node and
-- its incarnation, and the script goes on only while Redis has that node registered under
-- that incarnation with its lease running (Redis's clock); otherwise it replies FENCED and
-- changes nothing. Gives the script `P` (the keys' prefix), `node` and `incarnation`.
local P = '{sb}:'
local node, incarnation = ARGV[1], ARGV[2]
do
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local registered = redis.call('HGET', P .. 'nodes', node) == incarnation
  local deadline = registered and redis.call('ZSCORE', P .. 'leases', node)
  if not deadline or tonumber(deadline) < now then
    return redis.error_reply('FENCED node ' .. node .. ' incarnation ' .. incarnation .. ' is not alive')
  end
end
