-- Admits deliveries, for every delivery replica at once: in-flight slots
-- (leases that expire on their own, so a crashed process frees its slots
-- after the request timeout) and, when the subscription has a rate limit,
-- tokens from its bucket. One call admits all of a batch's deliveries of
-- one partition, subscription by subscription (`Scripts::leases`).
-- KEYS: per subscription: 1 in-flight zset, 2 rate bucket (hash)
-- ARGV: 1 now (ms), then per subscription: lease expiry (ms), max in
--       flight, rate per second (0: unlimited), burst, k, then k delivery
--       ids
-- Returns, per subscription, two numbers, flat (read as `(admitted,
-- wait)` pairs): its first `admitted` ids now hold a lease; wait is 0 when
-- in-flight is full, else the ms to the next rate token. (A table per
-- subscription, and `tonumber` of each one's settings, cost more than its
-- ZADD: the settings are read through the per-call memo `number`.)
--
-- A set that grows past LISTPACK_MAX leases also holds one member that is
-- no lease: SKIPLIST, longer than Redis's `zset-max-listpack-value` (64
-- bytes by default), scored -inf (so it is neither a live nor an expired
-- lease: `(-inf` leaves it out of both). It keeps the set in Redis's
-- skiplist encoding, where adding or removing a lease costs O(log n); in
-- the compact listpack encoding each costs a scan of the whole set
-- (measured: 3.1-3.4 µs to add one to a set of ~100, against 0.4-0.6 µs).
-- A small set does without it: a scan of a few members is cheap, and the
-- set goes with its last lease. (A build before it counts the member as a
-- lease, one slot fewer, never more, and drops it with its expired ones.)
local SKIPLIST = '~ keeps this set in the skiplist encoding (not a lease): lease.lua ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'
local LISTPACK_MAX = 32
local now = ARGV[1]
local replies = {}
local a = 1
for s = 1, #KEYS, 2 do
  local set, bucket = KEYS[s], KEYS[s + 1]
  local expiry, max, rate, burst = ARGV[a + 1], number(ARGV[a + 2]), number(ARGV[a + 3]), number(ARGV[a + 4])
  local want, first = number(ARGV[a + 5]), a + 6
  a = a + 5 + want
  -- Expired leases (of a process gone mid-request) matter only when they
  -- would keep a delivery out: while the whole set (ZCARD: expired leases
  -- and the SKIPLIST member counted too) leaves room for every lease
  -- wanted, it is not cleaned first. (Most calls, under a fanned-out
  -- load: a few deliveries per subscription, far below its limit.)
  local held = redis.call('ZCARD', set)
  if held + want > max then
    redis.call('ZREMRANGEBYSCORE', set, '(-inf', now)
    held = redis.call('ZCOUNT', set, '(-inf', '+inf')
  end
  local n = math.max(0, math.min(want, max - held))
  local wait = 0
  if rate > 0 and n > 0 then
    local at = number(now)
    local tokens_ts = redis.call('HMGET', bucket, 'tokens', 'ts')
    local tokens = tonumber(tokens_ts[1]) or burst
    local since = tonumber(tokens_ts[2]) or at
    tokens = math.min(burst, tokens + math.max(0, at - since) * rate / 1000)
    local whole = math.floor(tokens)
    if whole < n then
      n = whole
      wait = math.ceil((1 - (tokens - whole)) * 1000 / rate)
    end
    redis.call('HSET', bucket, 'tokens', tostring(tokens - n), 'ts', now)
    redis.call('PEXPIRE', bucket, math.ceil(burst * 1000 / rate) + 1000)
  end
  if n > 0 then
    if held + n > LISTPACK_MAX and redis.call('ZADD', set, '-inf', SKIPLIST) == 1 then
      -- The member outlives the leases: the set needs an expiry of its own
      -- (`PEXPIREAT … GT` leaves a set of none as it is).
      redis.call('PEXPIREAT', set, expiry, 'NX')
    end
    local members = {}
    for i = 1, n do
      members[2 * i - 1] = expiry
      members[2 * i] = ARGV[first + i - 1]
    end
    redis.call('ZADD', set, unpack(members))
    redis.call('PEXPIREAT', set, expiry, 'GT')
  end
  replies[#replies + 1] = n
  replies[#replies + 1] = wait
end
return replies
