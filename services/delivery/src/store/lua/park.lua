-- Takes deliveries of one partition off the stream without an attempt,
-- each atomically with its ack, in one call for a whole batch (one call a
-- task cost more than the writes themselves: arguments, Lua set-up).
-- Actions: 'wait' (retry later without spending an attempt: the
-- subscription's in-flight limit, rate or fair share, or the cache behind;
-- before the task's first attempt), 'defer' (the same, after one),
-- 'await' (the same, for an endpoint whose circuit is open; also noted in
-- the subscription's endpoint-wait set, so that wake.lua brings it
-- forward when the circuit closes), 'hold' (subscription paused) or
-- 'cancel' (subscription deleted or disabled).
--
-- A 'wait' task that has no record yet waits in the deferred set as its
-- packed stream value, and goes back on the stream as it is (requeue.lua,
-- 'due'): no record, no delivery-log entry, nothing to rebuild. Like any
-- task on the stream, it gets those at its first attempt. (Writing them
-- here cost more than a whole delivery, for every task of a hanging
-- endpoint held back by its in-flight limit.) One with a record (held,
-- then resumed) is deferred by its record, like 'defer'.
--
-- KEYS: 1 deliveries stream, 2 retry zset, 3 held index, 4 deferred zset,
--       then per task its record and, for any action but 'wait', its held
--       list, subscription log, tenant log and endpoint-wait zset
-- ARGV: 1 group, 2 now (ms), 3 record retention (s), then per task:
--       'wait', entry id, due (ms), the task's packed value; or
--       action, entry id, due (ms, defer and await), delivery id, event
--       id, subscription id, tenant, event type, traceparent, enqueued at
--       (ms), attempts made so far, why (cancel: the record's `sr`)
-- Replies one number per task, in order: 1 (parked), -1 (another
-- consumer had acknowledged the entry: nothing written) or -2 (the stream
-- is gone, Redis restarted empty: XACK replies 0 there too, not an error;
-- nothing written).
local stream, retry, held_index, deferred = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, now, ttl = ARGV[1], ARGV[2], ARGV[3]

local function defer_by_record(record, id, due)
  redis.call('HSET', record, 'u', now, 'st', 'scheduled', 'na', due)
  redis.call('EXPIRE', record, ttl)
  redis.call('ZADD', retry, due, id)
end

local replies = {}
local k, a = 5, 4
while a <= #ARGV do
  local action, entry, due, record = ARGV[a], ARGV[a + 1], ARGV[a + 2], KEYS[k]
  local reply = 1
  if redis.call('XACK', stream, group, entry) == 0 then
    reply = redis.call('EXISTS', stream) == 1 and -1 or -2
  end
  if action == 'wait' then
    if reply == 1 then
      local value = ARGV[a + 3]
      if redis.call('EXISTS', record) == 0 then
        redis.call('ZADD', deferred, due, value)
      else
        -- The packed value starts with the delivery id.
        defer_by_record(record, string.sub(value, 1, string.find(value, ' ', 1, true) - 1), due)
      end
    end
    k, a = k + 1, a + 4
  else
    if reply == 1 then
      local id, sub = ARGV[a + 3], ARGV[a + 5]
      ensure_record(record, KEYS[k + 2], KEYS[k + 3], ttl, id, ARGV[a + 4], sub, ARGV[a + 6], ARGV[a + 7],
        ARGV[a + 8], ARGV[a + 9], ARGV[a + 10], now)
      if action == 'defer' or action == 'await' then
        defer_by_record(record, id, due)
        if action == 'await' then
          -- Entries already due were requeued by now: they go.
          local wait = KEYS[k + 4]
          redis.call('ZREMRANGEBYSCORE', wait, '-inf', now)
          redis.call('ZADD', wait, due, id)
          redis.call('EXPIRE', wait, ttl)
        end
      elseif action == 'hold' then
        redis.call('HSET', record, 'u', now, 'st', 'held', 'na', '')
        redis.call('EXPIRE', record, ttl)
        redis.call('RPUSH', KEYS[k + 1], id)
        redis.call('SADD', held_index, sub)
      else
        redis.call('HSET', record, 'u', now, 'st', 'cancelled', 'na', '', 'sr', ARGV[a + 11])
        redis.call('EXPIRE', record, ttl)
      end
    end
    k, a = k + 5, a + 12
  end
  replies[#replies + 1] = reply
end
return replies
