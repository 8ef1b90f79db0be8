-- Apply a chunk of events atomically, each one: de-duplicate, store its contributions under
-- its anchor identifier, and link its identifiers into one raw cluster (merging clusters).
-- Every write is idempotent or guarded by the de-duplication set, so a replay changes nothing.
--
-- ARGV: prefix, journey_cap, then per event 7 values:
--   anchor, message_id, at_ms, order_key, journey_entry, received_ms, payload
-- payload (JSON): ids[], tie ("" if none), counts{}, revenue, stages{}, cond{member: at},
--                 traits{}, first_touch, surveys{order_key: answer}
-- Returns per event 3 values: is_new (0/1), cluster id, needs_resolution (0/1). An event
-- received before one of its identifiers was erased (a replay) returns 0, '', 0.
local p, cap = ARGV[1], tonumber(ARGV[2])
local any_erased = redis.call('EXISTS', p .. ':erasures') == 1
local out = {}

-- Set every field of `wanted` whose stored value is absent or compares `better`; true if any.
local function set_if(key, wanted, better)
  local fields, values = {}, {}
  for field, value in pairs(wanted) do
    table.insert(fields, field)
    table.insert(values, value)
  end
  if #fields == 0 then return false end
  local current = redis.call('HMGET', key, unpack(fields))
  local writes = {}
  for i, field in ipairs(fields) do
    local old = current[i]
    if (not old) or better(values[i], old) then
      table.insert(writes, field)
      table.insert(writes, values[i])
    end
  end
  if #writes == 0 then return false end
  redis.call('HSET', key, unpack(writes))
  return true
end

local function less(a, b) return a < b end
local function more(a, b) return a > b end

local function erased(ids, received)
  if not any_erased then return false end
  for _, id in ipairs(ids) do
    local at = redis.call('GET', p .. ':erased:' .. id)
    if at and received <= tonumber(at) then return true end
  end
  return false
end

local function contribute(a, at, entry, d)
  local data = a .. ':data'
  redis.call('ZADD', a .. ':journey', at, entry)
  local total = redis.call('HINCRBY', data, 'c:events', 1)
  if total > cap then
    redis.call('ZREMRANGEBYRANK', a .. ':journey', 0, -cap - 1)
  end
  for name, n in pairs(d.counts) do
    if name ~= 'events' then redis.call('HINCRBY', data, 'c:' .. name, n) end
  end
  local order = d.counts.orders ~= nil
  if d.revenue ~= 0 then
    redis.call('HINCRBYFLOAT', data, 'c:revenue', d.revenue)
  end
  local padded = string.format('%015d', tonumber(at))
  local earliest = {first = padded, ft = d.first_touch}
  for stage, candidate in pairs(d.stages) do earliest['s:' .. stage] = candidate end
  local latest = {last = padded}
  for name, value in pairs(d.traits) do latest['t:' .. name] = value end
  local surveyed = d.surveys ~= nil and next(d.surveys) ~= nil
  if surveyed then
    for order_key, answer in pairs(d.surveys) do latest['v:' .. order_key] = answer end
  end
  local first_before = redis.call('HGET', data, 'first')
  local changed = set_if(data, earliest, less) or order
  if set_if(data, latest, more) and (next(d.traits) or surveyed) then changed = true end
  local earlier = (not first_before) or padded < first_before
  for member, when in pairs(d.cond) do
    redis.call('ZADD', a .. ':cond', when, member)
    redis.call('HSET', data, 'cond', 1)
    changed = true
  end
  if next(d.cond) then
    redis.call('ZREMRANGEBYRANK', a .. ':cond', 2000, -1)
  end
  return changed, earlier
end

local function merge_into(from_id, survivor)
  local from, to = p .. ':cl:' .. from_id, p .. ':cl:' .. survivor
  local ids = redis.call('HGETALL', from .. ':ids')
  local firsts = {}
  for i = 1, #ids, 2 do
    firsts[ids[i]] = ids[i + 1]
    redis.call('SET', p .. ':id:' .. ids[i], survivor)
  end
  set_if(to .. ':ids', firsts, less)
  local ties, orders = redis.call('HGETALL', from .. ':ties'), {}
  for i = 1, #ties, 2 do orders[ties[i]] = ties[i + 1] end
  set_if(to .. ':ties', orders, less)
  local snap = redis.call('HGETALL', from .. ':snap')
  if #snap > 0 then redis.call('HSET', to .. ':snap', unpack(snap)) end
  redis.call('DEL', from .. ':ids', from .. ':ties', from .. ':snap', from .. ':ver')
end

local function link(ids, tie, order)
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = p .. ':id:' .. id end
  local found = redis.call('MGET', unpack(keys))
  local clusters, seen, known = {}, {}, 0
  for i = 1, #ids do
    local c = found[i]
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
  local changed = known < #ids or #clusters > 1
  for _, c in ipairs(clusters) do
    if c ~= survivor then merge_into(c, survivor) end
  end
  for i, id in ipairs(ids) do
    if found[i] ~= survivor then redis.call('SET', keys[i], survivor) end
  end
  local to = p .. ':cl:' .. survivor
  local firsts = {}
  for _, id in ipairs(ids) do firsts[id] = order end
  if set_if(to .. ':ids', firsts, less) then changed = true end
  if tie ~= '' and set_if(to .. ':ties', {[tie] = order}, less) then changed = true end
  if changed then redis.call('INCR', to .. ':ver') end
  return survivor, changed
end

for base = 3, #ARGV, 7 do
  local anchor, mid, at, order = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local entry, received = ARGV[base + 4], tonumber(ARGV[base + 5])
  local d = cjson.decode(ARGV[base + 6])
  local a = p .. ':a:' .. anchor
  if erased(d.ids, received) then
    table.insert(out, 0); table.insert(out, ''); table.insert(out, 0)
  elseif redis.call('SADD', a .. ':seen', mid) == 0 then
    -- seen before: re-resolve anyway, in case a crash came between apply and resolution
    table.insert(out, 0)
    table.insert(out, redis.call('GET', p .. ':id:' .. anchor) or '')
    table.insert(out, 1)
  else
    local changed, earlier = contribute(a, at, entry, d)
    local survivor, relinked
    if #d.ids == 1 and not earlier then
      -- a lone identifier already linked by an earlier event: nothing to link
      survivor, relinked = redis.call('GET', p .. ':id:' .. anchor), false
    else
      survivor, relinked = link(d.ids, d.tie, order)
    end
    table.insert(out, 1); table.insert(out, survivor)
    table.insert(out, (changed or relinked) and 1 or 0)
  end
end
return out
