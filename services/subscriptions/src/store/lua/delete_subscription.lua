-- Deletes a subscription if it still has the expected version, and appends
-- the change, atomically.
-- KEYS: 1 record hash, 2 tenant index, 3 all ids, 4 tenant epoch,
--       5 endpoint set, 6 revision counter, 7 change log, 8 log id
-- ARGV: 1 id, 2 expected version, 3 change log max length, 4 tenant,
--       5 fresh log id
local current = redis.call('HGET', KEYS[1], 'v')
if not current then return 'missing' end
if tonumber(current) ~= tonumber(ARGV[2]) then return 'version:' .. current end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('INCR', KEYS[4])
redis.call('SET', KEYS[8], ARGV[5], 'NX')
local rev = redis.call('INCR', KEYS[6])
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[3], rev .. '-0', 'k', 'del', 'id', ARGV[1], 't', ARGV[4])
return 'ok:' .. rev
