-- Takes a delivery off the stream without an attempt, atomically with the
-- ack: 'defer' (retry later without spending an attempt: the
-- subscription's in-flight limit or rate reached), 'await' (the same, for
-- an endpoint whose circuit is open; also noted in the subscription's
-- endpoint-wait set, so that wake.lua brings it forward when the circuit
-- closes), 'hold' (subscription paused) or 'cancel' (subscription deleted
-- or disabled).
-- A task deferred before its first attempt that has no record yet waits
-- in the deferred set as its packed stream value, and goes back on the
-- stream as it is (requeue.lua, 'due'): no record, no delivery-log entry,
-- nothing to rebuild. Like any task on the stream, it gets those at its
-- first attempt. (Writing them here cost more than a whole delivery, for
-- every task of a hanging endpoint held back by its in-flight limit.)
-- KEYS: 1 deliveries stream, 2 record, 3 retry zset, 4 held list,
--       5 held index, 6 subscription log, 7 tenant log,
--       8 endpoint-wait zset, 9 deferred zset
-- ARGV: 1 group, 2 entry id, 3 delivery id, 4 action, 5 due (ms, defer),
--       6 now (ms), 7 record retention (s), 8 event id, 9 subscription id,
--       10 tenant, 11 event type, 12 traceparent, 13 enqueued at (ms),
--       14 attempts made so far, 15 why (cancel: the record's `sr`),
--       16 the task's packed value (defer before a first attempt; else '')
-- Replies 1 (parked), -1 (another consumer had acknowledged the entry:
-- nothing written) or -2 (the stream is gone, Redis restarted empty: XACK
-- replies 0 there too, not an error; nothing written).
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return redis.call('EXISTS', KEYS[1]) == 1 and -1 or -2
end
if ARGV[4] == 'defer' and ARGV[16] ~= '' and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZADD', KEYS[9], ARGV[5], ARGV[16])
  return 1
end
ensure_record(KEYS[2], KEYS[6], KEYS[7], ARGV[7], ARGV[3], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12],
  ARGV[13], ARGV[14], ARGV[6])
redis.call('HSET', KEYS[2], 'u', ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[7])
if ARGV[4] == 'defer' or ARGV[4] == 'await' then
  redis.call('HSET', KEYS[2], 'st', 'scheduled', 'na', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
  if ARGV[4] == 'await' then
    -- Entries already due were requeued by now: they go.
    redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', ARGV[6])
    redis.call('ZADD', KEYS[8], ARGV[5], ARGV[3])
    redis.call('EXPIRE', KEYS[8], ARGV[7])
  end
elseif ARGV[4] == 'hold' then
  redis.call('HSET', KEYS[2], 'st', 'held', 'na', '')
  redis.call('RPUSH', KEYS[4], ARGV[3])
  redis.call('SADD', KEYS[5], ARGV[9])
else
  redis.call('HSET', KEYS[2], 'st', 'cancelled', 'na', '', 'sr', ARGV[15])
end
return 1
