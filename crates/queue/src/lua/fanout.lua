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
--       event id, tenant, event type, traceparent, fence (the change-log
--       position the event was matched at), the record's fan-out header
--       once done (`FanoutState::header`), the number of tasks k, then k
--       pairs of (delivery id, subscription id)
-- Returns, per event, the number of tasks enqueued, or -1 if its entry was
-- already acked.
local group, now = ARGV[1], ARGV[2]
local replies = {}
local a = 2
for e = 3, #KEYS do
  local entry, event, tenant, event_type = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local traceparent, fence, header, k = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], tonumber(ARGV[a + 8])
  local first = a + 9
  a = a + 8 + 2 * k
  if redis.call('XACK', KEYS[1], group, entry) == 0 then
    replies[#replies + 1] = -1
  else
    local tail = task_tail(event, tenant, event_type, traceparent, now, '1', '', fence)
    for i = first, first + 2 * k - 1, 2 do
      enqueue_task_with_tail(KEYS[2], ARGV[i], ARGV[i + 1], tail)
    end
    -- The header is overwritten in place. A record written by an older
    -- build is a hash (SETRANGE refuses it: WRONGTYPE); one gone past its
    -- retention must stay gone (SETRANGE made a bare header of it: a real
    -- record is longer than its header).
    local written = redis.pcall('SETRANGE', KEYS[e], 0, header)
    if type(written) == 'table' then
      redis.call('HSET', KEYS[e], 'st', 'done', 'm', k, 'fa', now)
    elseif written <= #header then
      redis.call('DEL', KEYS[e])
    end
    replies[#replies + 1] = k
  end
end
return replies
