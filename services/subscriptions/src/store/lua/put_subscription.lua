-- Creates or replaces a subscription and appends the change, atomically.
-- The change names the subscription (id and tenant), it does not copy it:
-- a watcher replaying the log reads the record as it is then, so the log
-- stays small however large or often updated subscriptions are.
-- KEYS: 1 record hash, 2 tenant index (zset), 3 all ids (set),
--       4 tenant epoch, 5 previous endpoint set, 6 new endpoint set,
--       7 revision counter, 8 change log stream, 9 log id
-- ARGV: 1 id, 2 expected version (-1: must not exist), 3 expected tenant
--       epoch ('' to skip the check), 4 new version, 5 record json,
--       6 change log max length, 7 max subscriptions per tenant (0: none),
--       8 fresh log id (used only if none is set yet), 9 tenant
local current = redis.call('HGET', KEYS[1], 'v')
if tonumber(ARGV[2]) == -1 then
  if current then return 'exists' end
  local limit = tonumber(ARGV[7])
  if limit > 0 and redis.call('ZCARD', KEYS[2]) >= limit then return 'limit' end
else
  if not current then return 'missing' end
  if tonumber(current) ~= tonumber(ARGV[2]) then return 'version:' .. current end
end
if ARGV[3] ~= '' and (redis.call('GET', KEYS[4]) or '0') ~= ARGV[3] then
  return 'epoch'
end
redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'v', ARGV[4], 'd', ARGV[5])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
if KEYS[5] ~= KEYS[6] then redis.call('SREM', KEYS[5], ARGV[1]) end
redis.call('SADD', KEYS[6], ARGV[1])
redis.call('SET', KEYS[9], ARGV[8], 'NX')
local rev = redis.call('INCR', KEYS[7])
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[6], rev .. '-0', 'k', 'sub', 'id', ARGV[1], 't', ARGV[9])
return 'ok:' .. rev
