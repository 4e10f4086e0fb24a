-- Delivery tasks and records, for every script that writes them (this is
-- prefixed to each: `hookline_queue::with_task_functions`). The one Lua
-- definition of a `DeliveryTask`'s stream fields (read by
-- `DeliveryTask::parse`; `lua_tasks_are_what_delivery_task_reads` pins
-- the two together) and of a delivery record's identity fields.

-- A delivery task's fields, for XADD. `trigger` and `fence` may be '' or
-- nil: then they are not written.
local function task_fields(id, event, sub, tenant, event_type, traceparent, now, attempt, trigger, fence)
  local f = { 'v', '1', 'id', id, 'evt', event, 'sub', sub, 't', tenant, 'et', event_type, 'tp', traceparent or '',
    'ts', now, 'n', attempt }
  if trigger and trigger ~= '' then f[#f + 1] = 'tr'; f[#f + 1] = trigger end
  if fence and fence ~= '' then f[#f + 1] = 'f'; f[#f + 1] = fence end
  return f
end

-- Puts a delivery's next attempt on `stream`, rebuilt from its record
-- (`record_prefix .. id`); false when the record is gone.
local function enqueue_from_record(stream, record_prefix, id, now, trigger)
  local f = redis.call('HMGET', record_prefix .. id, 'evt', 'sub', 't', 'et', 'tp', 'n')
  if not f[1] then return false end
  local attempt = tostring(tonumber(f[6] or '0') + 1)
  redis.call('XADD', stream, '*', unpack(task_fields(id, f[1], f[2], f[3], f[4], f[5], now, attempt, trigger)))
  return true
end

-- Creates a delivery's record unless it has one: its identity (the id is
-- the key's), when it was created, the attempts made, then `more` (field,
-- value, ...; empty values are left out: a missing field reads as empty),
-- with the record's retention. True if it created it (the caller then
-- indexes it).
local function create_record(record, ttl, event, sub, tenant, event_type, traceparent, created, attempts, more)
  if redis.call('EXISTS', record) == 1 then return false end
  local fields = { 'evt', event, 'sub', sub, 't', tenant, 'et', event_type, 'c', created, 'n', attempts }
  if traceparent ~= '' then fields[#fields + 1] = 'tp'; fields[#fields + 1] = traceparent end
  for i = 1, #(more or {}), 2 do
    if more[i + 1] ~= '' then fields[#fields + 1] = more[i]; fields[#fields + 1] = more[i + 1] end
  end
  redis.call('HSET', record, unpack(fields))
  redis.call('EXPIRE', record, ttl)
  return true
end

