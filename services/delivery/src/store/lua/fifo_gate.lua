-- FIFO subscriptions: lets a task through only when it is the
-- subscription's head (its delivery in flight or awaiting a retry); every
-- other task acknowledges its entry and waits in a sorted set by fan-out
-- time. With no head, the earliest task (waiting or this one) becomes it.
-- KEYS: 1 head, 2 waiting zset, 3 FIFO index, 4 deliveries stream,
--       5 record, 6 subscription log, 7 tenant log
-- ARGV: 1 group, 2 entry id, 3 delivery id, 4 enqueued at (ms), 5 now (ms),
--       6 record retention (s), 7 record key prefix, 8 event id,
--       9 subscription id, 10 tenant, 11 event type, 12 traceparent,
--       13 attempts so far
-- Returns 1: go ahead; 0: waiting its turn; -1: already handled.
local head = redis.call('GET', KEYS[1])
if head == ARGV[3] then return 1 end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local earlier = #first > 0 and (tonumber(first[2]) < tonumber(ARGV[4])
  or (tonumber(first[2]) == tonumber(ARGV[4]) and first[1] < ARGV[3]))
if not head and not earlier then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[6])
  return 1
end
if redis.call('XACK', KEYS[4], ARGV[1], ARGV[2]) == 0 then return -1 end
ensure_record(KEYS[5], KEYS[6], KEYS[7], ARGV[6], ARGV[3], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[4],
  ARGV[13], ARGV[5])
redis.call('HSET', KEYS[5], 'st', 'pending', 'u', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[9])
if not head then
  -- An earlier delivery was waiting: its turn comes now.
  promote(KEYS[4], ARGV[7], KEYS[1], KEYS[2], first[1], ARGV[5], ARGV[6])
end
return 0
