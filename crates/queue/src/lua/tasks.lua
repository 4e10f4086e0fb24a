-- Delivery tasks and records, for every script that writes them (this is
-- prefixed to each: `hookline_queue::with_task_functions`). The one Lua
-- definition of a `DeliveryTask`'s stream fields (read by
-- `DeliveryTask::parse`; `lua_tasks_are_what_delivery_task_reads` pins
-- the two together), of a delivery record's identity fields and of a FIFO
-- subscription's promotion of its next delivery. Written for the hot
-- path: no table is built per task or per record.

-- The number an argument's text reads as, remembered for the call:
-- `tonumber` costs about a thousand instructions (strtod), and a batch
-- repeats the same few texts (task counts, group numbers, durations).
local numbers = {}
local function number(text)
  local n = numbers[text]
  if n == nil then
    n = tonumber(text)
    numbers[text] = n
  end
  return n
end

-- Puts a delivery task, its packed value (`d`) built, on `stream`.
local function enqueue_task_value(stream, value)
  return redis.call('XADD', stream, '*', 'v', '2', 'd', value)
end

-- Puts a delivery task on `stream`: the same packed value as Rust's
-- `TaskValues::value` builds (format 2, `d`). `trigger` and `fence` may be
-- ''.
local function enqueue_task(stream, id, event, sub, tenant, event_type, traceparent, now, attempt, trigger, fence)
  return enqueue_task_value(stream, id .. ' ' .. sub .. ' ' .. event .. ' ' .. tenant .. ' ' .. event_type .. ' ' ..
    (traceparent or '') .. ' ' .. now .. ' ' .. attempt .. ' ' .. trigger .. ' ' .. fence)
end

-- Puts a delivery's next attempt on `stream`, rebuilt from its record
-- (`record_prefix .. id`); false when the record is gone.
local function enqueue_from_record(stream, record_prefix, id, now, trigger)
  local f = redis.call('HMGET', record_prefix .. id, 'evt', 'sub', 't', 'et', 'tp', 'n')
  if not f[1] then return false end
  enqueue_task(stream, id, f[1], f[2], f[3], f[4], f[5], now, tostring(tonumber(f[6] or '0') + 1), trigger, '')
  return true
end

-- Writes a new delivery record (the caller checked it has none, and
-- indexes it): its identity (the id is the key's), when it was created,
-- the attempts made, then any more (field, value) pairs, with the record's
-- retention. A field left out reads as empty. `traceparent` may be '':
-- then the record has none (a finished delivery: see complete.lua), and an
-- attempt rebuilt from it continues the event's own trace context.
local function write_new_record(record, ttl, event, sub, tenant, event_type, traceparent, created, attempts, ...)
  if traceparent == '' then
    redis.call('HSET', record, 'evt', event, 'sub', sub, 't', tenant, 'et', event_type, 'c', created, 'n', attempts, ...)
  else
    redis.call('HSET', record, 'evt', event, 'sub', sub, 't', tenant, 'et', event_type, 'tp', traceparent,
      'c', created, 'n', attempts, ...)
  end
  redis.call('EXPIRE', record, ttl)
end

-- The oldest delivery-log time (ms, as text) to keep at `now` (ms) with
-- the record retention `ttl` (s): `log_delivery`'s `cutoff`. (Formatting
-- a number costs: a script logging many deliveries computes it once.)
local function log_cutoff(now, ttl)
  return string.format('%.0f', math.max(0, tonumber(now) - tonumber(ttl) * 1000))
end

-- The delivery logs appended to since the last `trim_logs`, with their
-- cutoffs.
local untrimmed = {}

-- Appends an entry (field-value pairs `...`) to delivery log `log`;
-- returns its id. The log's entries older than `cutoff` (`log_cutoff`) go
-- at the script's `trim_logs`. A log it creates lives `ttl` (the record
-- retention, s) plus LOG_TTL_MARGIN (`log_ttl_secs`: the retention worker
-- renews it while its subscription lives), so a log no longer written
-- goes by itself. (NOMKSTREAM: an existing log costs one call.)
local function log_append(log, cutoff, ttl, ...)
  untrimmed[log] = cutoff
  local place = redis.call('XADD', log, 'NOMKSTREAM', '*', ...)
  if place then return place end
  place = redis.call('XADD', log, '*', ...)
  redis.call('EXPIRE', log, tonumber(ttl) + LOG_TTL_MARGIN)
  return place
end

-- Trims each log appended to (`log_append`) once, of its entries older
-- than its cutoff (`MINID ~`: whole stream nodes). Every script that
-- appends calls it before it returns: trimming in each XADD instead cost
-- ~40% of the XADD (Redis rewrites the trim argument every time), and a
-- completion batch appends to one log many times.
local function trim_logs()
  for log, cutoff in pairs(untrimmed) do
    redis.call('XTRIM', log, 'MINID', '~', cutoff)
  end
  untrimmed = {}
end

-- Lists delivery `id` in its subscription's and its tenant's delivery
-- logs (`DeliveryLog`: one entry per delivery, field `d`). Called once per
-- delivery, when its record is made.
local function log_delivery(sub_log, tenant_log, id, cutoff, ttl)
  log_append(sub_log, cutoff, ttl, 'd', id)
  log_append(tenant_log, cutoff, ttl, 'd', id)
end

-- A delivery that succeeded at its first attempt has no record: it is
-- kept as an entry of its tenant's delivery log, one field `f` holding
-- `value` as the service packed it (`FinishedParts::packed`), and its
-- subscription's log points at that entry (`d` = '@' .. its id). Its
-- public id is the entry's place (`DeliveryId::of_log_entry`).
local function log_finished(sub_log, tenant_log, cutoff, ttl, value)
  local place = log_append(tenant_log, cutoff, ttl, 'f', value)
  log_append(sub_log, cutoff, ttl, 'd', '@' .. place)
end

-- Creates delivery `id`'s record if it has none (from its task's fields)
-- and logs it (`log_delivery`, trimmed at once: park.lua and fifo_gate.lua
-- make one per call); true when it did. (complete.lua writes a new record
-- with its outcome in one go, so it calls `write_new_record` and
-- `log_delivery` itself.)
local function ensure_record(record, sub_log, tenant_log, ttl, id, event, sub, tenant, event_type, traceparent,
                             created, attempts, now)
  if redis.call('EXISTS', record) == 1 then return false end
  write_new_record(record, ttl, event, sub, tenant, event_type, traceparent, created, attempts)
  log_delivery(sub_log, tenant_log, id, log_cutoff(now, ttl), ttl)
  trim_logs()
  return true
end

-- FIFO: makes delivery `id`, waiting in `waiting`, its subscription's head
-- (`head`, with the record retention `ttl`) and puts its next attempt on
-- `stream`, rebuilt from its record.
local function promote(stream, record_prefix, head, waiting, id, now, ttl)
  redis.call('ZREM', waiting, id)
  redis.call('SET', head, id, 'EX', ttl)
  enqueue_from_record(stream, record_prefix, id, now, '')
end
