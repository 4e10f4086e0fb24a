-- Publishes a batch of events (one partition's), each atomically:
-- idempotency check, stream entry, event record.
-- KEYS: 1 events stream, then per event: idempotency key, event record
-- ARGV: 1 idempotency window (s), 2 event retention (s), 3 stream entry
--       items per event f (field/value pairs, flattened), 4 the payload's
--       place among them (it ends the record), then per event: '1' when an
--       idempotency key was given, event id, the record up to its payload
--       (`RecordMeta::head`), then its f stream entry items
-- Returns, per event, {1, event id} when published, {0, first event id}
-- for a duplicate (a key seen before, also earlier in the same batch).
local window, retention = ARGV[1], ARGV[2]
local f, payload_at = tonumber(ARGV[3]), tonumber(ARGV[4])
local replies = {}
local a = 4
for e = 2, #KEYS, 2 do
  local given, id, head = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local first = a + 4
  a = a + 3 + f
  local duplicate = false
  if given == '1' then
    duplicate = redis.call('GET', KEYS[e])
    if not duplicate then redis.call('SET', KEYS[e], id, 'EX', window) end
  end
  if duplicate then
    replies[#replies + 1] = { 0, duplicate }
  else
    redis.call('XADD', KEYS[1], '*', unpack(ARGV, first, first + f - 1))
    redis.call('SET', KEYS[e + 1], head .. ARGV[first + payload_at - 1], 'EX', retention)
    replies[#replies + 1] = { 1, id }
  end
end
return replies
