-- Publishes a batch of events (one partition's), each atomically:
-- idempotency check, stream entry, event record.
-- KEYS: 1 events stream, then per event: its idempotency key (only when
--       one was given), its event record
-- ARGV: 1 idempotency window (s), 2 event retention (s), 3-6 the stream
--       entry's field names and version (`EventEntry::fields`: the
--       version's field, the version, the packed fields' field, the
--       payload's field), then per event: '1' when an idempotency key was
--       given (then its event id follows) or '0', the record up to its
--       payload (`RecordMeta::head`), the packed fields
--       (`EventEntry::packed`), the payload
-- Returns the duplicates only (a key seen before, also earlier in the
-- same batch), flat: each one's place in the batch (1-based), then the
-- first event id of its key (`PublishReply`); every other event was
-- published. (A reply per event cost more than the event's XADD.)
local window, retention = ARGV[1], ARGV[2]
local v, version, e, p = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local duplicates = {}
local a, k, n = 6, 2, 0
while a < #ARGV do
  n = n + 1
  local duplicate = false
  if ARGV[a + 1] == '1' then
    local id = ARGV[a + 2]
    a = a + 2
    duplicate = redis.call('GET', KEYS[k])
    if not duplicate then redis.call('SET', KEYS[k], id, 'EX', window) end
    k = k + 1
  else
    a = a + 1
  end
  local head, packed, payload = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  a = a + 3
  if duplicate then
    duplicates[#duplicates + 1] = n
    duplicates[#duplicates + 1] = duplicate
  else
    redis.call('XADD', KEYS[1], '*', v, version, e, packed, p, payload)
    redis.call('SET', KEYS[k], head .. payload, 'EX', retention)
  end
  k = k + 1
end
return duplicates
