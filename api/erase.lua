-- Erase one customer atomically (right to be forgotten); see api/erasure.py.
-- ARGV: prefix, the identifier named by the caller (kind:value), now_ms, model stages...
-- Returns false when no customer holds the identifier, else {customer id, identifiers...}.
local p, named, now = ARGV[1], ARGV[2], ARGV[3]

local cid = redis.call('GET', p .. ':idc:' .. named)
if not cid then return false end
local blob = redis.call('GET', p .. ':cust:' .. cid)
if not blob then return false end
local profile = cjson.decode(blob)
local ids, gone = {}, {}
for _, id in ipairs(profile.identities) do
  table.insert(ids, id)
  gone[id] = true
end
if not gone[named] then return false end -- a stale look-up: never erase someone else

-- the profile and its index entries (every model stage, and any stage of its history)
local stages = {}
for i = 4, #ARGV do stages[ARGV[i]] = true end
if type(profile.history) == 'table' then
  for stage, _ in pairs(profile.history) do stages[stage] = true end
end
for stage, _ in pairs(stages) do
  redis.call('ZREM', p .. ':stage:' .. stage, cid)
  redis.call('ZREM', p .. ':reached:' .. stage, cid)
end
redis.call('DEL', p .. ':cust:' .. cid)
redis.call('HDEL', p .. ':funnel', cid)
redis.call('HDEL', p .. ':surveys', cid)
redis.call('HDEL', p .. ':announced', cid)

-- its place in the identity cluster(s): identifiers, ties naming them, its derived profile
local clusters = {}
for _, id in ipairs(ids) do
  local cluster = redis.call('GET', p .. ':id:' .. id)
  if cluster then clusters[cluster] = true end
end
for cluster, _ in pairs(clusters) do
  local cl = p .. ':cl:' .. cluster
  redis.call('HDEL', cl .. ':ids', unpack(ids))
  redis.call('HDEL', cl .. ':snap', cid)
  for _, tie in ipairs(redis.call('HKEYS', cl .. ':ties')) do
    for member in string.gmatch(tie, '[^\31]+') do
      if gone[member] then
        redis.call('HDEL', cl .. ':ties', tie)
        break
      end
    end
  end
  if redis.call('HLEN', cl .. ':ids') == 0 then
    redis.call('DEL', cl .. ':ids', cl .. ':ties', cl .. ':snap', cl .. ':ver')
  else
    redis.call('INCR', cl .. ':ver') -- a resolution in flight sees its version moved and re-reads
  end
end

-- every identifier's own keys, then its erasure time (what makes replays harmless)
for _, id in ipairs(ids) do
  local a = p .. ':a:' .. id
  redis.call('DEL', a .. ':seen', a .. ':journey', a .. ':data', a .. ':cond',
             p .. ':id:' .. id, p .. ':idc:' .. id)
  redis.call('SET', p .. ':erased:' .. id, now)
end
redis.call('SET', p .. ':erasures', 1)
table.insert(ids, 1, cid)
return ids
