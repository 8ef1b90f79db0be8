-- Erase one customer atomically (right to be forgotten).
-- ARGV: prefix, customer id, now_ms, identifiers...
-- Deletes every key of every identifier (journey, counters, de-duplication set, look-ups),
-- the profile and its index entries, and the identifiers' place in their identity cluster;
-- then records an erasure time per identifier: the processor ignores events *received*
-- before it, so replaying old records from Kafka cannot bring the data back, while events
-- received later start a new customer.
local p, cid, now = ARGV[1], ARGV[2], ARGV[3]
local gone = {}
for i = 4, #ARGV do gone[ARGV[i]] = true end

local profile = redis.call('GET', p .. ':cust:' .. cid)
if profile then
  local decoded = cjson.decode(profile)
  if decoded.stage and decoded.stage ~= cjson.null then
    redis.call('ZREM', p .. ':stage:' .. decoded.stage, cid)
  end
  for stage, _ in pairs(decoded.history) do
    redis.call('ZREM', p .. ':reached:' .. stage, cid)
  end
end
redis.call('DEL', p .. ':cust:' .. cid)
redis.call('HDEL', p .. ':funnel', cid)
redis.call('HDEL', p .. ':announced', cid)

for id, _ in pairs(gone) do
  local cluster = redis.call('GET', p .. ':id:' .. id)
  if cluster then
    local cl = p .. ':cl:' .. cluster
    redis.call('HDEL', cl .. ':ids', id)
    redis.call('HDEL', cl .. ':snap', cid)
    local ties = redis.call('HKEYS', cl .. ':ties')
    for _, tie in ipairs(ties) do
      for member in string.gmatch(tie, '[^\31]+') do
        if gone[member] then
          redis.call('HDEL', cl .. ':ties', tie)
          break
        end
      end
    end
    redis.call('INCR', cl .. ':ver')
  end
  local a = p .. ':a:' .. id
  redis.call('DEL', a .. ':seen', a .. ':journey', a .. ':data', a .. ':cond',
             p .. ':id:' .. id, p .. ':idc:' .. id)
  redis.call('SET', p .. ':erased:' .. id, now)
end
redis.call('SET', p .. ':erasures', 1)
return 1
