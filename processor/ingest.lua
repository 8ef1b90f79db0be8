-- Apply a chunk of events atomically, grouped by anchor identifier: de-duplicate each event,
-- fold the new events' contributions into the anchor's hash with one read and one write, add
-- their timeline entries, and link their identifiers into one raw cluster (merging clusters).
-- Every write is idempotent or guarded by the de-duplication set, so a replay changes nothing.
--
-- ARGV: prefix, journey_cap, then one JSON array of groups: [anchor, [event, ...]], each
-- event [message_id, at_ms, order_key, journey_entry, received_ms, payload] (times as strings)
-- payload: ids[], marks[] (names of their erasure markers), tie ("" if none), counts{}, revenue, stages{}, cond{member: at},
--          traits{}, first_touch, surveys{order_key: answer}
-- Returns per event, in argument order, 3 values: is_new (0/1), cluster id,
-- needs_resolution (0/1). An event received before one of its identifiers was erased (a
-- replay) returns 0, '', 0.
--
-- Anchor hash fields: c:<counter> (added), first / ft / s:<stage> (earliest wins),
-- last / t:<trait> / v:<survey> (latest wins), cond (has gated candidates), and
-- l:<tie> (earliest order the tie, or the anchor alone for l:, was linked at: an event no
-- earlier with the same tie has nothing to link).
local p, cap = ARGV[1], tonumber(ARGV[2])
local any_erased = redis.call('EXISTS', p .. ':erasures') == 1
local out = {}

local function emit(is_new, cluster, needs_resolution)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3] = is_new, cluster, needs_resolution
end

-- Set every field of `wanted` whose stored value is absent or greater; true if any.
local function set_min(key, wanted)
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
    if (not old) or values[i] < old then
      table.insert(writes, field)
      table.insert(writes, values[i])
    end
  end
  if #writes == 0 then return false end
  redis.call('HSET', key, unpack(writes))
  return true
end

-- 'skip' when an event must be ignored (received before one of its identifiers was erased),
-- 'seen' when one of them was erased earlier (link markers cannot be trusted), else nil.
local function erasure(ids, received)
  if not any_erased then return nil end
  local found = nil
  for _, id in ipairs(ids) do
    local at = redis.call('GET', p .. ':erased:' .. id)
    if at then
      if received <= tonumber(at) then return 'skip' end
      found = 'seen'
    end
  end
  return found
end

local function merge_into(from_id, survivor)
  local from, to = p .. ':cl:' .. from_id, p .. ':cl:' .. survivor
  local ids = redis.call('HGETALL', from .. ':ids')
  local firsts = {}
  for i = 1, #ids, 2 do
    firsts[ids[i]] = ids[i + 1]
    redis.call('SET', p .. ':id:' .. ids[i], survivor)
  end
  set_min(to .. ':ids', firsts)
  local ties, orders = redis.call('HGETALL', from .. ':ties'), {}
  for i = 1, #ties, 2 do orders[ties[i]] = ties[i + 1] end
  set_min(to .. ':ties', orders)
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
    local best = #clusters > 1 and redis.call('HLEN', p .. ':cl:' .. survivor .. ':ids') or 0
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
  if #clusters == 0 then  -- a new cluster: nothing to compare with
    local firsts = {}
    for _, id in ipairs(ids) do
      firsts[#firsts + 1] = id
      firsts[#firsts + 1] = order
    end
    redis.call('HSET', to .. ':ids', unpack(firsts))
    if tie ~= '' then redis.call('HSET', to .. ':ties', tie, order) end
  else
    local firsts = {}
    for _, id in ipairs(ids) do firsts[id] = order end
    if set_min(to .. ':ids', firsts) then changed = true end
    if tie ~= '' and set_min(to .. ':ties', {[tie] = order}) then changed = true end
  end
  if changed then redis.call('INCR', to .. ':ver') end
  return survivor, changed
end

-- The new events of one group, folded: counters added, earliest and latest fields kept,
-- timeline entries, gated candidates, and per tie the identifiers and earliest order.
local function fold(group, d, at, order, entry)
  local padded = string.format('%015d', tonumber(at))
  for name, n in pairs(d.counts) do
    local field = 'c:' .. name
    group.adds[field] = (group.adds[field] or 0) + n
  end
  local mins, maxs = group.mins, group.maxs
  local function earliest(field, value)
    if not mins[field] or value < mins[field] then mins[field] = value end
  end
  local function latest(field, value)
    if not maxs[field] or value > maxs[field] then maxs[field] = value end
  end
  earliest('first', padded)
  earliest('ft', d.first_touch)
  for stage, candidate in pairs(d.stages) do earliest('s:' .. stage, candidate) end
  latest('last', padded)
  for name, value in pairs(d.traits) do latest('t:' .. name, value) end
  if d.surveys then
    for order_key, answer in pairs(d.surveys) do latest('v:' .. order_key, answer) end
  end
  earliest('l:' .. d.tie, order)
  local tie = group.ties[d.tie]
  if not tie or order < tie.order then group.ties[d.tie] = {ids = d.ids, order = order} end
  if d.counts.orders ~= nil then group.changed = true end
  group.revenue = group.revenue + d.revenue
  for member, when in pairs(d.cond) do
    group.cond[#group.cond + 1] = when
    group.cond[#group.cond + 1] = member
  end
  group.entries[#group.entries + 1] = at
  group.entries[#group.entries + 1] = entry
end

-- Write a group's folded contributions with one read and one write of the anchor hash.
-- Returns whether the profile may have changed and the anchor's fields as they were.
local function store(a, group)
  local data = a .. ':data'
  local fields, n = {}, 0
  for field in pairs(group.adds) do n = n + 1; fields[n] = field end
  for field in pairs(group.mins) do n = n + 1; fields[n] = field end
  for field in pairs(group.maxs) do n = n + 1; fields[n] = field end
  local current = redis.call('HMGET', data, unpack(fields))
  local before, writes, changed, total = {}, {}, group.changed, 0
  for i, field in ipairs(fields) do
    local old = current[i]
    before[field] = old
    local value = group.adds[field]
    if value then
      value = tostring((tonumber(old) or 0) + value)
      if field == 'c:events' then total = tonumber(value) end
    else
      value = group.mins[field] or group.maxs[field]
      local better = (not old) or (group.mins[field] and value < old)
        or (group.maxs[field] and value > old)
      if not better then
        value = nil
      elseif field ~= 'last' and string.sub(field, 1, 2) ~= 'l:' then
        changed = true
      end
    end
    if value then
      writes[#writes + 1] = field
      writes[#writes + 1] = value
    end
  end
  if group.revenue ~= 0 then redis.call('HINCRBYFLOAT', data, 'c:revenue', group.revenue) end
  if #group.cond > 0 then
    redis.call('ZADD', a .. ':cond', unpack(group.cond))
    redis.call('ZREMRANGEBYRANK', a .. ':cond', 2000, -1)
    writes[#writes + 1] = 'cond'
    writes[#writes + 1] = '1'
    changed = true
  end
  redis.call('HSET', data, unpack(writes))
  redis.call('ZADD', a .. ':journey', unpack(group.entries))
  if total > cap then redis.call('ZREMRANGEBYRANK', a .. ':journey', 0, -cap - 1) end
  return changed, before
end

-- Link what the group's events tie together, skipping ties already linked no later.
-- Returns whether the identity cluster changed and the anchor's cluster if known by then.
local function link_group(group, before)
  local relinked, cluster = false, nil
  for tie, wanted in pairs(group.ties) do
    local marker = before['l:' .. tie]
    if not (marker and marker <= wanted.order and not group.erased_before) then
      local survivor, changed = link(wanted.ids, tie, wanted.order)
      relinked, cluster = relinked or changed, survivor
    end
  end
  return relinked, cluster
end

local function apply_group(anchor, events)
  local a = p .. ':a:' .. anchor
  local group = {adds = {}, mins = {}, maxs = {}, ties = {}, cond = {}, entries = {},
                 revenue = 0, changed = false, erased_before = false}
  local status, fresh = {}, 0
  for k, event in ipairs(events) do
    local d = event[6]
    local erased = erasure(d.marks, tonumber(event[5]))
    if erased == 'skip' then
      status[k] = 'skip'
    elseif redis.call('SADD', a .. ':seen', event[1]) == 0 then
      status[k] = 'seen'  -- re-resolved anyway, in case a crash came before resolution
    else
      status[k], fresh = 'new', fresh + 1
      if erased == 'seen' then group.erased_before = true end
      fold(group, d, event[2], event[3], event[4])
    end
  end
  local resolve, cluster = true, nil
  if fresh > 0 then
    local changed, before = store(a, group)
    local relinked
    relinked, cluster = link_group(group, before)
    resolve = relinked or changed
  end
  -- every link includes the anchor, and the last one leaves it in the survivor
  cluster = cluster or redis.call('GET', p .. ':id:' .. anchor) or ''
  for k = 1, #events do
    local state = status[k]
    if state == 'skip' then
      emit(0, '', 0)
    else
      emit(state == 'new' and 1 or 0, cluster, (state == 'seen' or resolve) and 1 or 0)
    end
  end
end

for _, group in ipairs(cjson.decode(ARGV[3])) do
  apply_group(group[1], group[2])
end
return out
