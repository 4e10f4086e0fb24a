-- Admits deliveries of one subscription, for every delivery replica at
-- once: in-flight slots (leases that expire on their own, so a crashed
-- process frees its slots after the request timeout) and, when the
-- subscription has a rate limit, tokens from its bucket. One call admits
-- all of a batch's deliveries of the subscription.
-- KEYS: 1 in-flight zset, 2 rate bucket (hash)
-- ARGV: 1 now (ms), 2 lease expiry (ms), 3 max in flight,
--       4 rate per second (0: unlimited), 5 burst, 6.. delivery ids
-- Returns {admitted, wait}: the first `admitted` ids now hold a lease;
-- wait is 0 when in-flight is full, else the ms to the next rate token.
--
-- The set also holds one member that is no lease: SKIPLIST, longer than
-- Redis's `zset-max-listpack-value` (64 bytes by default), scored +inf (so
-- it never expires with the leases). It keeps the set in Redis's skiplist
-- encoding, where adding or removing a lease costs O(log n); in the
-- compact listpack encoding each costs a scan of the whole set (measured:
-- 3.1-3.4 µs to add one to a set of ~100, against 0.4-0.6 µs). It is
-- never counted as a slot (a build before it counts it as one: one slot
-- fewer, never more).
local SKIPLIST = '~ keeps this set in the skiplist encoding (not a lease): lease.lua ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'
local now = tonumber(ARGV[1])
local want = #ARGV - 5
if redis.call('ZADD', KEYS[1], '+inf', SKIPLIST) == 1 then
  -- A new set (or one of an older build): it gets an expiry now, the
  -- latest of its leases' (it has none when new; a set of no expiry would
  -- never go, and `PEXPIREAT … GT` leaves a set of none as it is).
  local latest = redis.call('ZRANGE', KEYS[1], -2, -2, 'WITHSCORES')
  local until_ms = tonumber(ARGV[2])
  if #latest == 2 and latest[1] ~= SKIPLIST and tonumber(latest[2]) > until_ms then until_ms = tonumber(latest[2]) end
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', until_ms))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = math.max(0, math.min(want, tonumber(ARGV[3]) - (redis.call('ZCARD', KEYS[1]) - 1)))
local wait = 0
local rate = tonumber(ARGV[4])
if rate > 0 and n > 0 then
  local burst = tonumber(ARGV[5])
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  local tokens = tonumber(bucket[1]) or burst
  local since = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - since) * rate / 1000)
  local whole = math.floor(tokens)
  if whole < n then
    n = whole
    wait = math.ceil((1 - (tokens - whole)) * 1000 / rate)
  end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - n), 'ts', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst * 1000 / rate) + 1000)
end
if n > 0 then
  local members = {}
  for i = 1, n do
    members[2 * i - 1] = ARGV[2]
    members[2 * i] = ARGV[5 + i]
  end
  redis.call('ZADD', KEYS[1], unpack(members))
  redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
end
return {n, wait}
