-- Apply one event atomically: de-duplicate, store its contributions under its anchor
-- identifier, and link its identifiers into one raw cluster (merging clusters if needed).
-- Every write is idempotent or guarded by the de-duplication set, so a replay changes nothing.
--
-- ARGV: prefix, anchor, message_id, at_ms, order_key, journey_entry, journey_cap, payload,
--       received_ms
-- payload (JSON): ids[], tie ("" if none), counts{}, revenue, stages{}, cond{member: at},
--                 traits{}, first_touch
-- Returns {is_new (0/1), cluster id, needs_resolution (0/1)}; an event received before one of
-- its identifiers was erased (a replay) returns {0, '', 0} and changes nothing.
local p, anchor, mid, at, order = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local entry, cap = ARGV[6], tonumber(ARGV[7])
local d = cjson.decode(ARGV[8])
local a = p .. ':a:' .. anchor
local data = a .. ':data'

local function hmin(key, field, value)
  local current = redis.call('HGET', key, field)
  if (not current) or value < current then
    redis.call('HSET', key, field, value)
    return true
  end
  return false
end

local function hmax(key, field, value)
  local current = redis.call('HGET', key, field)
  if (not current) or value > current then
    redis.call('HSET', key, field, value)
    return true
  end
  return false
end

local received = tonumber(ARGV[9])
for _, id in ipairs(d.ids) do
  local erased = redis.call('GET', p .. ':erased:' .. id)
  if erased and received <= tonumber(erased) then
    return {0, '', 0}
  end
end

if redis.call('SADD', a .. ':seen', mid) == 0 then
  return {0, redis.call('GET', p .. ':id:' .. anchor) or '', 1}
end

-- journey: newest `cap` entries by event time; counts stay exact
redis.call('ZADD', a .. ':journey', at, entry)
local size = redis.call('ZCARD', a .. ':journey')
if size > cap then
  redis.call('ZREMRANGEBYRANK', a .. ':journey', 0, size - cap - 1)
end
for name, n in pairs(d.counts) do
  redis.call('HINCRBY', data, 'c:' .. name, n)
end
if d.revenue ~= 0 then
  redis.call('HINCRBYFLOAT', data, 'c:revenue', d.revenue)
end
local padded = string.format('%015d', tonumber(at))
hmin(data, 'first', padded)
hmax(data, 'last', padded)
local changed = hmin(data, 'ft', d.first_touch)
for name, value in pairs(d.traits) do
  if hmax(data, 't:' .. name, value) then changed = true end
end

for stage, candidate in pairs(d.stages) do
  if hmin(data, 's:' .. stage, candidate) then changed = true end
end
for member, when in pairs(d.cond) do
  redis.call('ZADD', a .. ':cond', when, member)
  redis.call('HSET', data, 'cond', 1)
  changed = true
end
if changed then
  redis.call('ZREMRANGEBYRANK', a .. ':cond', 2000, -1)
end

-- identity: find the clusters of the event's identifiers, merge them into the largest
local clusters, seen = {}, {}
local known = 0
for _, id in ipairs(d.ids) do
  local c = redis.call('GET', p .. ':id:' .. id)
  if c then
    known = known + 1
    if not seen[c] then
      seen[c] = true
      table.insert(clusters, c)
    end
  end
end

local survivor
if #clusters == 0 then
  survivor = 'c' .. redis.call('INCR', p .. ':seq')
else
  survivor = clusters[1]
  local best = redis.call('HLEN', p .. ':cl:' .. survivor .. ':ids')
  for i = 2, #clusters do
    local n = redis.call('HLEN', p .. ':cl:' .. clusters[i] .. ':ids')
    if n > best or (n == best and clusters[i] < survivor) then
      survivor, best = clusters[i], n
    end
  end
end
local to = p .. ':cl:' .. survivor

for _, c in ipairs(clusters) do
  if c ~= survivor then
    local from = p .. ':cl:' .. c
    local ids = redis.call('HGETALL', from .. ':ids')
    for i = 1, #ids, 2 do
      hmin(to .. ':ids', ids[i], ids[i + 1])
      redis.call('SET', p .. ':id:' .. ids[i], survivor)
    end
    local ties = redis.call('HGETALL', from .. ':ties')
    for i = 1, #ties, 2 do
      hmin(to .. ':ties', ties[i], ties[i + 1])
    end
    local snap = redis.call('HGETALL', from .. ':snap')
    for i = 1, #snap, 2 do
      redis.call('HSET', to .. ':snap', snap[i], snap[i + 1])
    end
    redis.call('DEL', from .. ':ids', from .. ':ties', from .. ':snap', from .. ':ver')
    changed = true
  end
end

for _, id in ipairs(d.ids) do
  if hmin(to .. ':ids', id, order) then changed = true end
  redis.call('SET', p .. ':id:' .. id, survivor)
end
if d.tie ~= '' and hmin(to .. ':ties', d.tie, order) then
  changed = true
end
if known < #d.ids then
  changed = true
end
if changed then
  redis.call('INCR', to .. ':ver')
end
return {1, survivor, changed and 1 or 0}
