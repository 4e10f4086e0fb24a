-- Publishes one event: idempotency check, event record, stream entry, atomically.
-- KEYS: 1 idempotency key, 2 event record (string), 3 events stream
-- ARGV: 1 '1' when an idempotency key was given, 2 event id,
--       3 idempotency window (s), 4 event retention (s),
--       5 the record up to its payload (`EventRecord::head`),
--       6 which ARGV holds the payload (it ends the record),
--       7.. the stream entry's field/value pairs
-- Returns {1, event id} when published, {0, first event id} for a duplicate.
if ARGV[1] == '1' then
  local first = redis.call('GET', KEYS[1])
  if first then return {0, first} end
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[3], '*', unpack(fields))
redis.call('SET', KEYS[2], ARGV[5] .. ARGV[tonumber(ARGV[6])], 'EX', ARGV[4])
return {1, ARGV[2]}
