-- Publishes one event: idempotency check, event record, stream entry, atomically.
-- KEYS: 1 idempotency key, 2 event record (hash), 3 events stream
-- ARGV: 1 '1' when an idempotency key was given, 2 event id,
--       3 idempotency window (s), 4 event retention (s), 5 occurred at (ms),
--       6 idempotency key text, 7 payload variants (JSON or ''),
--       8.. the stream entry's field/value pairs
-- Returns {1, event id} when published, {0, first event id} for a duplicate.
if ARGV[1] == '1' then
  local first = redis.call('GET', KEYS[1])
  if first then return {0, first} end
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
local entry_id = redis.call('XADD', KEYS[3], '*', unpack(fields))
redis.call('HSET', KEYS[2], 'st', 'pending', 'sid', entry_id, 'oa', ARGV[5], 'ik', ARGV[6], 'pv', ARGV[7], unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, ARGV[2]}
