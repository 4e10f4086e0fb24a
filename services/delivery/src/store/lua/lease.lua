-- Takes one of a subscription's in-flight slots, shared by every delivery
-- replica. Leases expire on their own, so a crashed process frees its
-- slots after the request timeout.
-- KEYS: 1 in-flight zset
-- ARGV: 1 now (ms), 2 lease expiry (ms), 3 delivery id, 4 max in flight
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
return 1
