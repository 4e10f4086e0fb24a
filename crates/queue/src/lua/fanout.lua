-- Fans one event out: acknowledges its entry and enqueues one delivery task
-- per matching subscription, atomically.
-- XACK comes first and gates everything: only the consumer whose XACK
-- removes the entry from the pending list enqueues, so an entry processed
-- twice (claimed from a slow consumer) still fans out once. (XACK on a
-- stream or group that no longer exists, as after Redis restarted empty,
-- replies 0: nothing is written then either.)
-- KEYS: 1 events stream, 2 event record, 3 deliveries stream
-- ARGV: 1 group, 2 entry id, 3 event id, 4 tenant, 5 event type,
--       6 traceparent, 7 now (ms), 8 fence (the subscription revision the
--       event was matched at), 9 the record's fan-out header once done
--       (`FanoutState::header`), 10.. pairs of (delivery id, subscription id)
-- Returns the number of tasks enqueued, or -1 if the entry was already acked.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return -1 end
local n = 0
for i = 10, #ARGV, 2 do
  redis.call('XADD', KEYS[3], '*', 'v', '1', 'id', ARGV[i], 'evt', ARGV[3], 'sub', ARGV[i + 1],
    't', ARGV[4], 'et', ARGV[5], 'tp', ARGV[6], 'ts', ARGV[7], 'n', '1', 'f', ARGV[8])
  n = n + 1
end
-- The record may be gone (past its retention); one written by an older
-- build is a hash.
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind == 'string' then
  redis.call('SETRANGE', KEYS[2], 0, ARGV[9])
elseif kind == 'hash' then
  redis.call('HSET', KEYS[2], 'st', 'done', 'm', n, 'fa', ARGV[7])
end
return n
