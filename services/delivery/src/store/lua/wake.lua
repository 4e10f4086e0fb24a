-- Brings forward deliveries deferred for an endpoint whose circuit was
-- open (park.lua 'await'): the earliest `count` of the subscription's
-- endpoint-wait set that still wait in the retry set become due now. An
-- entry whose delivery is no longer in the retry set (requeued, retried
-- by hand) is only dropped.
-- KEYS: 1 endpoint-wait zset, 2 retry zset
-- ARGV: 1 now (ms), 2 how many at most
-- Returns how many entries were taken from the set (brought forward or
-- dropped): fewer than `count` when it is now empty.
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  local due = redis.call('ZSCORE', KEYS[2], id)
  if due and tonumber(due) > now then redis.call('ZADD', KEYS[2], now, id) end
end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
