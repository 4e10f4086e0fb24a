-- Records finished attempts, many in one call (one partition's), each
-- atomically with its ack, and decides what follows each.
-- XACK gates each completion: if another consumer already completed that
-- entry (it was claimed while this attempt was slow), nothing is written
-- for it. XACK replies 0, not an error, on a stream or group that no
-- longer exists too; the reply then says so.
-- Written for the hot path: the counters, retries and dead letters of the
-- whole batch are written once per key at the end (each delivery's log
-- entries are its own). A delivery that succeeds at its first attempt,
-- with no record yet, gets none: it is kept as an entry of its tenant's
-- log (`log_finished`, the entry's value built by the service). The
-- service sends such a completion as `first` when its task came straight
-- from fan-out (attempt 1, with a fence, not FIFO): nothing writes a
-- record before its task's entry is acknowledged (`park.lua`,
-- `fifo_gate.lua` and this script ack first; `restore.lua` writes records
-- of finished deliveries only), so once its XACK succeeds it has none, and
-- it takes six arguments and no key. Otherwise a delivery's first attempt
-- is kept in its record's last-attempt fields only when it succeeded (the
-- attempts list starts when a second attempt comes; the first is then
-- logged from those fields).
-- KEYS: 1 deliveries stream, 2 retry zset, then per group of completions
--       (one subscription, tenant and hour: `Scripts::complete`) 8 keys:
--       stats, hour stats, subscription log, tenant log, dead-letter
--       index, in-flight leases, FIFO head, FIFO waiting zset; then per
--       completion that is not `first`, 2 keys: record, attempts list
-- ARGV: 1 group, 2 record retention (s), 3 stats retention (s), 4 record
--       key prefix (`PartitionKeys::delivery("")`), 5 groups, 6 now (ms),
--       7 m, the number of last-attempt fields, then their m names
--       (`ATTEMPT_FIELDS`: lat, ld, lc, le, lm, lb, lt), then per
--       completion (`Completion::add_args`): its group (1-based), entry
--       id, kind (`first`, or the outcome: `ok`, `retry`, `dead`), delivery
--       id, duration (ms), its `FinishedEntry` value ('' unless it
--       succeeded at attempt 1); a `first` ends there, the others go on:
--       attempt number, retry due (ms), now (ms), event id, subscription
--       id, tenant, event type, traceparent, enqueued at (ms), '1' for a
--       FIFO subscription, then the attempt's m last-attempt values in that
--       order; its attempts-list JSON is built from those here, only when
--       it is logged
-- Returns, per completion, two numbers, flat (a table per completion
-- cost more than some of its writes): the subscription's consecutive
-- failures and when that failing streak began (ms; 0 when it is not
-- failing), or -1, 0 if it was already done, or -2, 0 if the deliveries
-- stream is gone.
local group, record_ttl, stats_ttl, record_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local groups, call_now, m = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local names = { unpack(ARGV, 8, 7 + m) }
local GROUP_KEYS = 8

-- What the batch adds up to, written at the end: zset members by key,
-- in-flight leases to drop by key, counters by key.
local adds, leases, totals, hours = {}, {}, {}, {}
-- Appends `a` (and `b`, unless nil) to the list at `key` of `map`. (No
-- vararg: packing one into a table per delivery cost more than the rest.)
local function push(map, key, a, b)
  local list = map[key]
  if not list then list = {}; map[key] = list end
  list[#list + 1] = a
  if b ~= nil then list[#list + 1] = b end
end
-- A subscription's totals; its failing streak (consecutive failures, and
-- since when: `fs`, 0 when not failing) is read only when a failure comes
-- before any success of the batch (after a success the streak starts again
-- from nothing, whatever it was).
local function total(key)
  local t = totals[key]
  if not t then
    t = { succeeded = 0, failed = 0, dead = 0 }
    totals[key] = t
  end
  return t
end
local function failed_once_more(t, key, now)
  if not t.cf then
    local f = redis.call('HMGET', key, 'cf', 'fs')
    t.cf, t.fs = tonumber(f[1] or '0') or 0, tonumber(f[2] or '0') or 0
  end
  -- A streak of an older build has no start: it counts from now.
  if t.cf == 0 or t.fs == 0 then t.fs = tonumber(now) end
  t.cf = t.cf + 1
end
local function hour(key)
  local h = hours[key]
  if not h then h = { succeeded = 0, failed = 0, dead = 0, dur = 0 }; hours[key] = h end
  return h
end

-- An attempt as the attempts list holds it (JSON, read back as
-- `AttemptRecord`): its number, then its last-attempt fields' values in
-- `ATTEMPT_FIELDS` order (a missing one reads as empty, or 0).
local function attempt_json(n, at, dur, code, err, msg, body, trig)
  local num = function(v) if v == nil or v == '' then return '0' end return v end
  local text = function(v) return cjson.encode(v or '') end
  return '{"n":' .. num(n) .. ',"at":' .. num(at) .. ',"dur":' .. num(dur) .. ',"code":' .. num(code)
    .. ',"err":' .. text(err) .. ',"msg":' .. text(msg) .. ',"body":' .. text(body) .. ',"trig":' .. text(trig) .. '}'
end

-- The attempt of the completion whose last-attempt values start at
-- ARGV[v] (in `ATTEMPT_FIELDS` order).
local function completion_attempt(v, n)
  return attempt_json(n, unpack(ARGV, v, v + m - 1))
end

-- A record's last attempt, for its attempts list (a record of an older
-- build has it as JSON in `la`).
local function logged_attempt(record)
  local f = redis.call('HMGET', record, 'la', 'n', 'lat', 'ld', 'lc', 'le', 'lm', 'lb', 'lt')
  if not f[3] then return f[1] end
  return attempt_json(f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9])
end

-- FIFO: when a delivery is finished (not retrying), the next one's turn
-- comes, in the same step.
local function next_in_line(id, head, waiting, now)
  if redis.call('GET', head) ~= id then return end
  redis.call('DEL', head)
  local first = redis.call('ZRANGE', waiting, 0, 0)
  if #first == 0 then return end
  promote(KEYS[1], record_prefix, head, waiting, first[1], now, record_ttl)
end

-- The delivery logs' trimming point, from the batch's first new record.
local cutoff
local replies = {}
-- Where the next completion's arguments and keys start.
local a, k = 7 + m, 2 + groups * GROUP_KEYS
while a < #ARGV do
  local g = 2 + (number(ARGV[a + 1]) - 1) * GROUP_KEYS
  local stats, hour_stats, sub_log, tenant_log = KEYS[g + 1], KEYS[g + 2], KEYS[g + 3], KEYS[g + 4]
  local dead_index, in_flight, fifo_head, fifo_waiting = KEYS[g + 5], KEYS[g + 6], KEYS[g + 7], KEYS[g + 8]
  local entry, kind, id, dur, finished = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], number(ARGV[a + 5]), ARGV[a + 6]
  local first = kind == 'first'
  -- The rest of a completion that is not `first`: from ARGV[r + 1], and
  -- its record and attempts list.
  local r, record, attempts = a + 6, nil, nil
  if first then
    a = a + 6
  else
    record, attempts = KEYS[k + 1], KEYS[k + 2]
    a, k = a + 16 + m, k + 2
  end
  push(leases, in_flight, id)
  if redis.call('XACK', KEYS[1], group, entry) == 0 then
    -- Done by another consumer, or the stream is gone with its group
    -- (Redis restarted empty): then this outcome cannot be recorded.
    replies[#replies + 1] = redis.call('EXISTS', KEYS[1]) == 1 and -1 or -2
    replies[#replies + 1] = 0
  else
    local ok = first or kind == 'ok'
    local now, fifo = call_now, false
    if first then
      -- Succeeded at its first attempt, never recorded before: all it
      -- keeps is an entry of its tenant's log.
      cutoff = cutoff or log_cutoff(now, record_ttl)
      log_finished(sub_log, tenant_log, cutoff, record_ttl, finished)
    else
      local n, due = ARGV[r + 1], ARGV[r + 2]
      now, fifo = ARGV[r + 3], ARGV[r + 10] == '1'
      local values = r + 11
      local state, next_at = 'succeeded', ''
      if kind == 'retry' then
        state, next_at = 'scheduled', due
      elseif not ok then
        state = 'dead'
      end
      local created = ARGV[r + 9]
      local fresh = redis.call('EXISTS', record) == 0
      if fresh and ok and n == '1' then
        -- The same as `first`, for a task that did not come straight from
        -- fan-out (a FIFO subscription's).
        cutoff = cutoff or log_cutoff(now, record_ttl)
        log_finished(sub_log, tenant_log, cutoff, record_ttl, finished)
      elseif fresh then
        -- The last attempt's fields, those with a value (a missing one
        -- reads as empty), and the next attempt's time when there is one.
        local last = {}
        for j = 1, m do
          local value = ARGV[values + j - 1]
          if value ~= '' then last[#last + 1] = names[j]; last[#last + 1] = value end
        end
        if next_at ~= '' then last[#last + 1] = 'na'; last[#last + 1] = next_at end
        -- No traceparent (~60 bytes: a size class of the record) unless
        -- its next attempt will be rebuilt from it; a finished delivery
        -- retried or replayed by hand continues the event's own trace
        -- context.
        local traceparent = state == 'scheduled' and ARGV[r + 8] or ''
        write_new_record(record, record_ttl, ARGV[r + 4], ARGV[r + 5], ARGV[r + 6], ARGV[r + 7], traceparent,
          created, n, 'u', now, 'st', state, unpack(last))
        cutoff = cutoff or log_cutoff(now, record_ttl)
        log_delivery(sub_log, tenant_log, id, cutoff, record_ttl)
        redis.call('RPUSH', attempts, completion_attempt(values, n))
        redis.call('EXPIRE', attempts, record_ttl)
      else
        if redis.call('EXISTS', attempts) == 0 then
          local earlier = logged_attempt(record)
          if earlier then redis.call('RPUSH', attempts, earlier) end
        end
        if redis.call('RPUSH', attempts, completion_attempt(values, n)) <= 2 then
          redis.call('EXPIRE', attempts, record_ttl)
        end
        local last = {}
        for j = 1, m do last[2 * j - 1] = names[j]; last[2 * j] = ARGV[values + j - 1] end
        redis.call('HSET', record, 'n', n, 'u', now, 'st', state, 'na', next_at, unpack(last))
      end
    end
    -- Counters; attempts = succeeded + failed.
    local t, h = total(stats), hour(hour_stats)
    t.la = now
    h.dur = h.dur + dur
    if ok then
      if fifo then next_in_line(id, fifo_head, fifo_waiting, now) end
      t.succeeded, t.cf, t.fs, t.ls = t.succeeded + 1, 0, 0, now
      h.succeeded = h.succeeded + 1
    else
      t.failed = t.failed + 1
      failed_once_more(t, stats, now)
      h.failed = h.failed + 1
      if kind == 'retry' then
        push(adds, KEYS[2], ARGV[r + 2], id)
      else
        if fifo then next_in_line(id, fifo_head, fifo_waiting, now) end
        t.dead, h.dead = t.dead + 1, h.dead + 1
        push(adds, dead_index, now, id)
      end
    end
    replies[#replies + 1] = t.cf
    replies[#replies + 1] = t.fs
  end
end

trim_logs()
for key, members in pairs(leases) do redis.call('ZREM', key, unpack(members)) end
for key, pairs_ in pairs(adds) do redis.call('ZADD', key, unpack(pairs_)) end
for key, t in pairs(totals) do
  local fields = { 'cf', t.cf, 'fs', t.fs, 'la', t.la }
  if t.ls then fields[#fields + 1] = 'ls'; fields[#fields + 1] = t.ls end
  redis.call('HSET', key, unpack(fields))
  for _, name in ipairs({ 'succeeded', 'failed', 'dead' }) do
    if t[name] > 0 then redis.call('HINCRBY', key, name, t[name]) end
  end
end
for key, h in pairs(hours) do
  -- A count that is all this batch's began with it: the hour's hash may be
  -- new, so it gets its expiry (again, at worst, for each new field).
  local fresh = false
  for _, name in ipairs({ 'succeeded', 'failed', 'dead', 'dur' }) do
    if h[name] > 0 and redis.call('HINCRBY', key, name, h[name]) == h[name] then fresh = true end
  end
  if fresh then redis.call('EXPIRE', key, stats_ttl) end
end
return replies
