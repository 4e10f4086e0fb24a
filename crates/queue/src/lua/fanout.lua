-- Fans a batch of events out: for each, acknowledges its entry and
-- enqueues one delivery task per matching subscription, atomically.
-- Each event's XACK comes first and gates everything for it: only the
-- consumer whose XACK removes the entry from the pending list enqueues, so
-- an entry processed twice (claimed from a slow consumer) still fans out
-- once. (XACK replies 0, not an error, on a stream or group that no longer
-- exists too, so nothing is written then either; the worker's next read
-- meets NOGROUP and recreates them.)
-- KEYS: 1 events stream, 2 deliveries stream, then each event's record
-- ARGV: 1 group, 2 now (ms), then per event (`FanoutItem`): entry id,
--       the record's fan-out header once done (`FanoutState::header`), the
--       number of tasks k, then the k tasks' packed values
--       (`TaskValues::value`: built by the service, appended as they are)
-- Returns, per event, the number of tasks enqueued, or -1 if its entry was
-- already acked.
local group, now = ARGV[1], ARGV[2]
local replies = {}
local a = 2
for e = 3, #KEYS do
  local entry, header, k = ARGV[a + 1], ARGV[a + 2], number(ARGV[a + 3])
  local first = a + 4
  a = a + 3 + k
  if redis.call('XACK', KEYS[1], group, entry) == 0 then
    replies[#replies + 1] = -1
  else
    for i = first, first + k - 1 do
      enqueue_task_value(KEYS[2], ARGV[i])
    end
    -- The header is overwritten in place (its offset passed as text: a
    -- Lua number is formatted with snprintf on every call). A record
    -- written by an older build is a hash (SETRANGE refuses it:
    -- WRONGTYPE); one gone past its retention must stay gone (SETRANGE
    -- made a bare header of it: a real record is longer than its header).
    local written = redis.pcall('SETRANGE', KEYS[e], '0', header)
    if type(written) == 'table' then
      redis.call('HSET', KEYS[e], 'st', 'done', 'm', k, 'fa', now)
    elseif written <= #header then
      redis.call('DEL', KEYS[e])
    end
    replies[#replies + 1] = k
  end
end
return replies
