-- Admits one delivery for a subscription, for every delivery replica at
-- once: an in-flight slot (leases that expire on their own, so a crashed
-- process frees its slots after the request timeout) and, when the
-- subscription has a rate limit, a token from its bucket.
-- KEYS: 1 in-flight zset, 2 rate bucket (hash)
-- ARGV: 1 now (ms), 2 lease expiry (ms), 3 delivery id, 4 max in flight,
--       5 rate per second (0: unlimited), 6 burst
-- Returns 1 when admitted, 0 when in-flight is full, -N when rate-limited
-- (the next token is N ms away).
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
local rate = tonumber(ARGV[5])
if rate > 0 then
  local burst = tonumber(ARGV[6])
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  local tokens = tonumber(bucket[1]) or burst
  local since = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - since) * rate / 1000)
  if tokens < 1 then
    redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'ts', now)
    return -math.ceil((1 - tokens) * 1000 / rate)
  end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'ts', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst * 1000 / rate) + 1000)
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
return 1
