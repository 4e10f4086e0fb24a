-- Writes an event type (hash field) or tenant settings (string) and appends
-- the change, atomically.
-- KEYS: 1 target, 2 tenants set, 3 revision counter, 4 change log, 5 log id
-- ARGV: 1 kind ('evt' | 'set'), 2 tenant, 3 event type name, 4 json,
--       5 change log max length, 6 fresh log id, 7 '1' to refuse replacing a
--       live (not archived) event type, 8 most event types per tenant
--       (0: no limit)
if ARGV[1] == 'evt' then
  local existing = redis.call('HGET', KEYS[1], ARGV[3])
  if ARGV[7] == '1' and existing and not cjson.decode(existing)['archived'] then return 'exists' end
  local limit = tonumber(ARGV[8])
  if not existing and limit > 0 and redis.call('HLEN', KEYS[1]) >= limit then return 'limit' end
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4])
end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SET', KEYS[5], ARGV[6], 'NX')
local rev = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], rev .. '-0', 'k', ARGV[1], 't', ARGV[2], 'd', ARGV[4])
return 'ok:' .. rev
