-- Puts deliveries back on the stream for their next attempt, from the
-- retry schedule (when due), from a held list (on resume), or on request
-- (retry now, replay). Each id's task is rebuilt from its record
-- (`enqueue_from_record`).
-- In 'due' mode, the deferred set's tasks that are due go back too, as
-- they were packed (park.lua).
-- KEYS: 1 deliveries stream, 2 source (retry zset, held list, FIFO waiting
--       zset, or unused), 3 held or FIFO index, 4 retry zset, 5 FIFO head
--       (fifo mode; else unused), 6 deferred zset
-- ARGV: 1 mode ('due'|'held'|'ids'|'fifo'), 2 now (ms), 3 limit, 4 record
--       key prefix (`PartitionKeys::delivery("")`), 5 trigger ('' |
--       'manual' | 'replay'), 6 subscription id (held, fifo modes),
--       ids mode: 7 required status ('': any but pending), 8.. delivery ids
-- Returns how many were queued (in 'due' mode, from both sets: each
-- gives at most `limit`).
local mode, now, record_prefix, trigger = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local ids
local queued = 0
if mode == 'due' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, ARGV[3])
  local tasks = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, ARGV[3])
  for _, value in ipairs(tasks) do enqueue_task_value(KEYS[1], value) end
  for i = 1, #tasks, 1000 do redis.call('ZREM', KEYS[6], unpack(tasks, i, math.min(i + 999, #tasks))) end
  queued = #tasks
elseif mode == 'held' then
  ids = redis.call('LPOP', KEYS[2], ARGV[3]) or {}
  if redis.call('LLEN', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[6]) end
elseif mode == 'fifo' then
  ids = {}
  local popped = redis.call('ZPOPMIN', KEYS[2], ARGV[3])
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  if redis.call('ZCARD', KEYS[2]) == 0 then
    redis.call('SREM', KEYS[3], ARGV[6])
    redis.call('DEL', KEYS[5])
  end
else
  ids = {}
  for i = 8, #ARGV do ids[#ids + 1] = ARGV[i] end
end
for _, id in ipairs(ids) do
  local record = record_prefix .. id
  local eligible = true
  if mode == 'ids' then
    local status = redis.call('HGET', record, 'st')
    eligible = status and status ~= 'pending' and (ARGV[7] == '' or status == ARGV[7])
  end
  if eligible and enqueue_from_record(KEYS[1], record_prefix, id, now, trigger) then
    redis.call('HSET', record, 'st', 'pending', 'na', '')
    queued = queued + 1
  end
  if mode == 'due' or mode == 'ids' then redis.call('ZREM', KEYS[4], id) end
end
return queued
