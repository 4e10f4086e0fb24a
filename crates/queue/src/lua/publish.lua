-- Publishes a batch of events (one partition's), each atomically:
-- idempotency check, stream entry, event record.
-- KEYS: 1 events stream, then per event: idempotency key, event record
-- ARGV: 1 idempotency window (s), 2 event retention (s), 3-6 the stream
--       entry's field names and version (`EventEntry::fields`: the
--       version's field, the version, the packed fields' field, the
--       payload's field), then per event: '1' when an idempotency key was
--       given, event id, the record up to its payload (`RecordMeta::head`),
--       the packed fields (`EventEntry::packed`), the payload
-- Returns, per event, {1, event id} when published, {0, first event id}
-- for a duplicate (a key seen before, also earlier in the same batch).
local window, retention = ARGV[1], ARGV[2]
local v, version, e, p = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local replies = {}
local a = 6
for k = 2, #KEYS, 2 do
  local given, id, head, packed, payload = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  a = a + 5
  local duplicate = false
  if given == '1' then
    duplicate = redis.call('GET', KEYS[k])
    if not duplicate then redis.call('SET', KEYS[k], id, 'EX', window) end
  end
  if duplicate then
    replies[#replies + 1] = { 0, duplicate }
  else
    redis.call('XADD', KEYS[1], '*', v, version, e, packed, p, payload)
    redis.call('SET', KEYS[k + 1], head .. payload, 'EX', retention)
    replies[#replies + 1] = { 1, id }
  end
end
return replies
