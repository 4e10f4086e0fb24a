-- Records an attempt and decides what follows, atomically with the ack.
-- XACK gates everything: if another consumer already completed this entry
-- (it was claimed while this attempt was slow), nothing is written.
-- Written for the hot path: one HSET per hash, and a delivery that
-- succeeds at its first attempt keeps that attempt in the record's
-- last-attempt fields only (the attempts list starts when a second
-- attempt comes; the first is then logged from those fields).
-- KEYS: 1 deliveries stream, 2 record, 3 attempts list, 4 stats, 5 hour
--       stats, 6 retry zset, 7 subscription index, 8 tenant index,
--       9 dead-letter index, 10 in-flight leases, 11 FIFO head,
--       12 FIFO waiting zset
-- ARGV: 1 group, 2 entry id, 3 delivery id, 4 outcome ('ok'|'retry'|'dead'),
--       5 attempt JSON, 6 attempt number, 7 retry due (ms), 8 now (ms),
--       9 duration (ms), 10 record retention (s), 11 stats retention (s),
--       12 event id, 13 subscription id, 14 tenant, 15 event type,
--       16 traceparent, 17 enqueued at (ms), 18 '1' for a FIFO
--       subscription, 19 key tag, 20.. the record's last-attempt
--       fields and values (`ATTEMPT_FIELDS`: lat, ld, lc, le, lm, lb, lt)
-- Returns the subscription's consecutive failures, or -1 if already done.
redis.call('ZREM', KEYS[10], ARGV[3])
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return -1 end
local now = ARGV[8]
local ok = ARGV[4] == 'ok'
local state, next_at = 'succeeded', ''
if ARGV[4] == 'retry' then
  state, next_at = 'scheduled', ARGV[7]
elseif not ok then
  state = 'dead'
end
local first_success = ok and ARGV[6] == '1'
local last = {}
for i = 20, #ARGV do last[#last + 1] = ARGV[i] end
-- The record's last attempt as the attempts list holds it (JSON; a record
-- of an older build has it in `la`).
local function logged_attempt()
  local f = redis.call('HMGET', KEYS[2], 'la', 'n', 'lat', 'ld', 'lc', 'le', 'lm', 'lb', 'lt')
  if not f[3] then return f[1] end
  local text = function(v) return cjson.encode(v or '') end
  return '{"n":' .. (f[2] or '0') .. ',"at":' .. f[3] .. ',"dur":' .. (f[4] or '0') .. ',"code":' .. (f[5] or '0')
    .. ',"err":' .. text(f[6]) .. ',"msg":' .. text(f[7]) .. ',"body":' .. text(f[8]) .. ',"trig":' .. text(f[9]) .. '}'
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'id', ARGV[3], 'evt', ARGV[12], 'sub', ARGV[13], 't', ARGV[14], 'et', ARGV[15],
    'tp', ARGV[16], 'c', ARGV[17], 'n', ARGV[6], 'u', now, 'st', state, 'na', next_at, unpack(last))
  redis.call('EXPIRE', KEYS[2], ARGV[10])
  redis.call('ZADD', KEYS[7], ARGV[17], ARGV[3])
  redis.call('ZADD', KEYS[8], ARGV[17], ARGV[3])
  if not first_success then
    redis.call('RPUSH', KEYS[3], ARGV[5])
    redis.call('EXPIRE', KEYS[3], ARGV[10])
  end
else
  if redis.call('EXISTS', KEYS[3]) == 0 then
    local earlier = logged_attempt()
    if earlier then redis.call('RPUSH', KEYS[3], earlier) end
  end
  if redis.call('RPUSH', KEYS[3], ARGV[5]) <= 2 then redis.call('EXPIRE', KEYS[3], ARGV[10]) end
  redis.call('HSET', KEYS[2], 'n', ARGV[6], 'u', now, 'st', state, 'na', next_at, unpack(last))
end
-- Counters; attempts = succeeded + failed.
local function count_hour(field)
  if redis.call('HINCRBY', KEYS[5], field, 1) == 1 then redis.call('EXPIRE', KEYS[5], ARGV[11]) end
  redis.call('HINCRBY', KEYS[5], 'dur', ARGV[9])
end
-- FIFO: when this delivery is finished (not retrying), the next one's
-- turn comes, in the same step.
local function next_in_line()
  if ARGV[18] ~= '1' or redis.call('GET', KEYS[11]) ~= ARGV[3] then return end
  redis.call('DEL', KEYS[11])
  local first = redis.call('ZRANGE', KEYS[12], 0, 0)
  if #first == 0 then return end
  local next_id = first[1]
  redis.call('ZREM', KEYS[12], next_id)
  redis.call('SET', KEYS[11], next_id, 'EX', ARGV[10])
  local f = redis.call('HMGET', ARGV[19] .. ':dlv:' .. next_id, 'evt', 'sub', 't', 'et', 'tp', 'n')
  if f[1] then
    redis.call('XADD', KEYS[1], '*', 'v', '1', 'id', next_id, 'evt', f[1], 'sub', f[2], 't', f[3], 'et', f[4],
      'tp', f[5] or '', 'ts', now, 'n', tostring(tonumber(f[6] or '0') + 1))
  end
end
if ok then
  next_in_line()
  redis.call('HINCRBY', KEYS[4], 'succeeded', 1)
  redis.call('HSET', KEYS[4], 'cf', 0, 'la', now, 'ls', now)
  count_hour('succeeded')
  return 0
end
local cf = redis.call('HINCRBY', KEYS[4], 'cf', 1)
redis.call('HINCRBY', KEYS[4], 'failed', 1)
redis.call('HSET', KEYS[4], 'la', now)
count_hour('failed')
if ARGV[4] == 'retry' then
  redis.call('ZADD', KEYS[6], ARGV[7], ARGV[3])
else
  next_in_line()
  redis.call('HINCRBY', KEYS[4], 'dead', 1)
  redis.call('HINCRBY', KEYS[5], 'dead', 1)
  redis.call('ZADD', KEYS[9], now, ARGV[3])
end
return cf
