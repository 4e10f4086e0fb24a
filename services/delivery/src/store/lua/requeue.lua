-- Puts deliveries back on the stream for their next attempt, from the
-- retry schedule (when due), from a held list (on resume), or on request
-- (retry now, replay). Each id's task is rebuilt from its record.
-- KEYS: 1 deliveries stream, 2 source (retry zset, held list, FIFO waiting
--       zset, or unused), 3 held or FIFO index
-- ARGV: 1 mode ('due'|'held'|'ids'|'fifo'), 2 now (ms), 3 limit, 4 key tag,
--       5 trigger ('' | 'manual' | 'replay'), 6 subscription id (held mode),
--       ids mode: 7 required status ('': any but pending), 8.. delivery ids
-- Returns how many were queued.
local ids
if ARGV[1] == 'due' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
elseif ARGV[1] == 'held' then
  ids = redis.call('LPOP', KEYS[2], ARGV[3]) or {}
  if redis.call('LLEN', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[6]) end
elseif ARGV[1] == 'fifo' then
  ids = {}
  local popped = redis.call('ZPOPMIN', KEYS[2], ARGV[3])
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  if redis.call('ZCARD', KEYS[2]) == 0 then
    redis.call('SREM', KEYS[3], ARGV[6])
    redis.call('DEL', KEYS[2] .. ':head')
  end
else
  ids = {}
  for i = 8, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local queued = 0
for _, id in ipairs(ids) do
  local record = ARGV[4] .. ':dlv:' .. id
  local f = redis.call('HMGET', record, 'evt', 'sub', 't', 'et', 'tp', 'n', 'st')
  local eligible = f[1] and not (ARGV[1] == 'ids' and (f[7] == 'pending' or (ARGV[7] ~= '' and f[7] ~= ARGV[7])))
  if eligible then
    local fields = {'v', '1', 'id', id, 'evt', f[1], 'sub', f[2], 't', f[3], 'et', f[4], 'tp', f[5] or '',
      'ts', ARGV[2], 'n', tostring(tonumber(f[6] or '0') + 1)}
    if ARGV[5] ~= '' then
      fields[#fields + 1] = 'tr'
      fields[#fields + 1] = ARGV[5]
    end
    redis.call('XADD', KEYS[1], '*', unpack(fields))
    redis.call('HSET', record, 'st', 'pending', 'na', '')
    queued = queued + 1
  end
  if ARGV[1] == 'due' or ARGV[1] == 'ids' then redis.call('ZREM', ARGV[4] .. ':retry', id) end
end
return queued
