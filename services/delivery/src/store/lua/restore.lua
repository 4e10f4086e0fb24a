-- Gives deliveries kept only as entries of their tenant's log (each
-- succeeded at its first attempt: `log_finished`) records of their own, so
-- that they can be attempted again (retry, replay). Each record gets the
-- entry's fields, status `succeeded` and the record retention; one that
-- has a record already is left as it is. They are listed already: nothing
-- is logged.
-- KEYS: the records
-- ARGV: 1 record retention (s), 2 arguments per record, 3 tenant, then per
--       record: event id, subscription id, event type, created (ms),
--       updated (ms), then its last attempt's field-value pairs
--       (`AttemptRecord::last_attempt_fields`)
-- Returns how many records it made.
local ttl, per, tenant = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local made = 0
for i, record in ipairs(KEYS) do
  local a = 3 + (i - 1) * per
  if redis.call('EXISTS', record) == 0 then
    write_new_record(record, ttl, ARGV[a + 1], ARGV[a + 2], tenant, ARGV[a + 3], '', ARGV[a + 4], '1',
      'u', ARGV[a + 5], 'st', 'succeeded', unpack(ARGV, a + 6, a + per))
    made = made + 1
  end
end
return made
