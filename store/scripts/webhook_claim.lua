-- Claim due webhook deliveries (infra/webhook_store.py).
-- KEYS: due (sorted set), jobs (hash).
-- Take up to ARGV[2] deliveries due by ARGV[1] (ms) and lease them until ARGV[3] (ms), at most
-- ARGV[4] in flight per subscription: ARGV[7..] are "subscription id, attempts in flight" pairs
-- of the caller. Deliveries of a subscription at its limit stay due (they are claimed when one
-- of its attempts ends); only when a whole window of ARGV[6] due entries could not fill the
-- claim are they put off until ARGV[5] (ms), so that they never hide deliveries behind them.
-- Returns when to look again (ms; -1: nothing scheduled) then id, job, id, job, …
-- (The subscription id is the part of a delivery id after its last dot.)
local busy = {}
for i = 7, #ARGV, 2 do busy[ARGV[i]] = tonumber(ARGV[i + 1]) end
local limit, cap, scan = tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[6])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, scan)
local out, skipped, taken = {0}, {}, 0
for _, id in ipairs(ids) do
  if taken >= limit then break end
  local sub = string.match(id, '([^.]*)$')
  if (busy[sub] or 0) >= cap then
    table.insert(skipped, id)
  else
    local job = redis.call('HGET', KEYS[2], id)
    if job then
      busy[sub] = (busy[sub] or 0) + 1
      taken = taken + 1
      redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
      table.insert(out, id)
      table.insert(out, job)
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
if taken >= limit then
  out[1] = tonumber(ARGV[1])
elseif #ids >= scan then
  for _, id in ipairs(skipped) do redis.call('ZADD', KEYS[1], 'XX', ARGV[5], id) end
  out[1] = tonumber(ARGV[1])
else
  local later = redis.call(
    'ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  out[1] = later[2] and tonumber(later[2]) or -1
end
return out
