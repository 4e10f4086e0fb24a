-- Keeps a service's live replicas, and shares its partitions among them
-- (exclusive mode), atomically. Each replica calls it every quarter of the
-- lease: the call renews its liveness (how the others know it is alive: a
-- dead replica's pending entries are taken over once it has expired) and,
-- in exclusive mode, its membership and leases: it gives back leases above
-- its fair share and takes free or expired ones up to it.
-- KEYS: 1 members (zset: consumer -> expiry ms; replicas taking a share),
--       2 leases (hash: partition -> "<consumer> <expiry ms>"),
--       3 alive (zset: consumer -> expiry ms; every running replica)
-- ARGV: 1 consumer, 2 lease (ms), 3 partition count,
--       4 'share' (exclusive), 'alive' (liveness only) or 'release' (a
--       replica shutting down: leaves the members and gives its leases
--       back at once, and stays alive while it finishes the work in hand)
-- Returns {partitions the consumer owns after the call, live replicas}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, lease, count, mode = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], now + lease, me)
local alive = redis.call('ZRANGE', KEYS[3], 0, -1)
if mode == 'alive' then return { {}, alive } end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if mode == 'release' then
  redis.call('ZREM', KEYS[1], me)
else
  redis.call('ZADD', KEYS[1], now + lease, me)
end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
-- The fair share: members in name order, the first (count % n) of them
-- one partition more, so every replica computes the same split (0 for one
-- releasing: it is no member now).
table.sort(members)
local share = 0
for i, member in ipairs(members) do
  if member == me then
    share = math.floor(count / #members)
    if i - 1 < count % #members then share = share + 1 end
  end
end
local mine, free = {}, {}
for p = 0, count - 1 do
  local held = redis.call('HGET', KEYS[2], p)
  if held then
    local sep = string.find(held, ' ', 1, true)
    local owner, expiry = string.sub(held, 1, sep - 1), tonumber(string.sub(held, sep + 1))
    if owner == me then
      mine[#mine + 1] = p
    elseif expiry <= now then
      free[#free + 1] = p
    end
  else
    free[#free + 1] = p
  end
end
while #mine > share do
  redis.call('HDEL', KEYS[2], table.remove(mine))
end
for _, p in ipairs(free) do
  if #mine >= share then break end
  mine[#mine + 1] = p
end
for _, p in ipairs(mine) do
  redis.call('HSET', KEYS[2], p, me .. ' ' .. (now + lease))
end
return { mine, alive }
