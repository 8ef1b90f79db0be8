#!lua
-- Apply a chunk of events atomically, grouped by anchor identifier: de-duplicate each event,
-- fold the new events' contributions into the anchor's hash with one read and one write, add
-- their timeline entries, and link their identifiers into one raw cluster (merging clusters).
-- Every write is idempotent or guarded by the de-duplication set, so a replay changes nothing.
--
-- No write can fail on data: every variable-length argument list is passed in slices (Lua's
-- unpack has a limit), every structure is bounded, and the shebang makes Redis refuse the
-- whole script up front when it is out of memory. So an event is marked seen exactly when its
-- effects are stored: in the same atomic step.
--
-- ARGV: prefix, journey_cap, max_traits (distinct traits per anchor), max_ids (identifiers
-- per raw cluster), max_ties (ties per raw cluster), window_ms (de-duplication window),
-- rules_version (stored as 'rv' on an anchor's first event: its candidates are the current
-- rules'), max_days (active days per anchor), max_purchases (purchase times per anchor), then
-- per group of events with the same anchor: the anchor, a head, and either (head empty) a
-- JSON document of its events, or an empty document and the same events folded in advance
-- (the fast path, taken when they are all new: see apply_at; when they are not, the group's
-- codes are '?' and nothing of it is stored: the processor sends it again with its
-- document). In the document, each event is
-- [message_id, at_ms, order_key, journey_entry, received_ms, payload, seen] (times as
-- strings; journey_entry: the timeline member, store/codecs.py encode_journey_entry; seen:
-- the event's de-duplication member in hex, store/codecs.py seen_member);
-- payload: ids[], marks[] (names of their erasure markers), tie ("" if none),
--          counts{}, revenue, stages{}, cond{member: at},
--          traits{}, first_touch, surveys{order_key: answer}, act (1: activity for the
--          lifecycle, absent for an event the rules ignore)
-- Returns per group, in argument order, 2 values: its cluster id ('' unless needed) and one
-- status code per event (see the main loop), then one last value: a JSON object counting what
-- the bounds kept out (traits, ties, window, ...). An event received before one of its
-- identifiers was erased (a replay), or older than the de-duplication window, is ignored.
--
-- De-duplication: P:a:<anchor>:seen is a sorted set of the events' digests (12 bytes of their
-- messageIds, computed by the processor: store/codecs.py seen_member) scored by receipt time,
-- kept for window_ms behind the newest receipt (the window is at least the topic's retention,
-- so an event that can still be replayed is still remembered). The anchor hash keeps the
-- newest receipt ('nr') and when the set next holds a digest older than the window ('tr':
-- its oldest receipt plus window_ms), so the set is read and trimmed only once that is due.
--
-- Anchor hash fields: c:<counter> (added), first / ft / s:<stage> (earliest wins), rv (the
-- rules version its candidates follow: processor/reevaluation.py),
-- last / t:<trait> / v:<survey> (latest wins), cond (has gated candidates), and
-- l:<tie> (earliest order the tie, or the anchor alone for l:, was linked at: an event no
-- earlier with the same tie has nothing to link).
--
-- Lifecycle (touchpath/cycles.py): the anchor hash's d:<day> fields, its active UTC days (the
-- day number → the day's first event ms, earliest wins), the latest max_days kept ('nd'
-- counts them); and P:a:<anchor>:buys, purchase events (member messageId, score event ms), the latest
-- max_purchases kept. A new day or an earlier first event of a day needs resolution; a later
-- event of a known day does not (activity is known to the day).
local p, cap = ARGV[1], tonumber(ARGV[2])
local max_traits, max_ids = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_ties, window = tonumber(ARGV[5]), tonumber(ARGV[6])
local rules_version = ARGV[7]
local max_days, max_buys = tonumber(ARGV[8]), tonumber(ARGV[9])
local DAY_MS = 86400000
local SLICE = 1000  -- arguments per command: well below unpack's limit
local any_erased = redis.call('EXISTS', p .. ':erasures') == 1
local out = {}
local over = {traits = 0, ids = 0, ties = 0, window = 0, days = 0, purchases = 0}

-- Run `command key args...` over a long argument list in slices of `SLICE` (even, so
-- field/value pairs never split); returns the replies of every slice, concatenated.
local function sliced(command, key, args)
  if #args <= SLICE then  -- one slice: its reply as it is
    local reply = redis.call(command, key, unpack(args))
    return type(reply) == 'table' and reply or {}
  end
  local replies = {}
  for start = 1, #args, SLICE do
    local reply = redis.call(command, key, unpack(args, start, math.min(start + SLICE - 1, #args)))
    if type(reply) == 'table' then
      for _, value in ipairs(reply) do replies[#replies + 1] = value end
    end
  end
  return replies
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

-- A raw cluster is one hash P:cl:<cluster> (store/keys.py ClusterFields): i:<identifier> →
-- the order first seen at, t:<tie> → its earliest order, v → version (bumped on every change),
-- c:<customer id> → '' (customers last derived), o:<tie> → order of a tie refused because the
-- cluster was full, b:<identifier> → record of an identifier split off; ni / nt / no count the
-- i: / t: / o: fields (absent: 0), so a bound is one field read.
local COUNTS = {['i:'] = 'ni', ['t:'] = 'nt', ['o:'] = 'no'}

-- Append a field and its value to a flat list of writes.
local function put(writes, field, value)
  writes[#writes + 1] = field
  writes[#writes + 1] = value
end

-- A count as Redis is given it: an integer's digits (a Lua number would be printed as a
-- float by the call, several times the cost); each formatted once a call.
local digits = {}
local function int(n)
  local text = digits[n]
  if text == nil then
    text = string.format('%d', n)
    digits[n] = text
  end
  return text
end

-- Merge cluster `from_id` into `survivor` and delete it: identifiers and ties keep their
-- earliest order, customers, refused ties and blocked identifiers are copied; counts follow.
local function merge_into(from_id, survivor)
  local from, to = p .. ':cl:' .. from_id, p .. ':cl:' .. survivor
  local flat = redis.call('HGETALL', from)
  local fields, values, n = {'ni', 'nt', 'no'}, {}, 3
  local writes = {}
  for i = 1, #flat, 2 do
    local field, kind = flat[i], string.sub(flat[i], 1, 2)
    if kind == 'i:' then redis.call('SET', p .. ':id:' .. string.sub(field, 3), survivor) end
    if COUNTS[kind] then
      n = n + 1
      fields[n], values[n] = field, flat[i + 1]
    elseif kind == 'c:' or kind == 'b:' then
      put(writes, field, flat[i + 1])
    end
  end
  local current = sliced('HMGET', to, fields)
  local counts = {ni = tonumber(current[1]) or 0, nt = tonumber(current[2]) or 0,
                  no = tonumber(current[3]) or 0}
  for j = 4, n do
    local field, old, value = fields[j], current[j], values[j]
    local kind = string.sub(field, 1, 2)
    if not old then
      local count = COUNTS[kind]
      counts[count] = counts[count] + 1
    end
    if (not old) or kind == 'o:' or value < old then  -- earliest wins, but for refused ties
      put(writes, field, value)
    end
  end
  for j, count in ipairs({'ni', 'nt', 'no'}) do
    if counts[count] ~= (tonumber(current[j]) or 0) then
      put(writes, count, int(counts[count]))
    end
  end
  if #writes > 0 then sliced('HSET', to, writes) end
  redis.call('DEL', from)
end

-- The raw clusters holding some of `ids`, distinct, and how many of `ids` no cluster holds.
local function clusters_of(ids, keys)
  local found = redis.call('MGET', unpack(keys))
  local clusters, seen, unknown = {}, {}, 0
  for i = 1, #ids do
    local c = found[i]
    if c then
      if not seen[c] then
        seen[c] = true
        table.insert(clusters, c)
      end
    else
      unknown = unknown + 1
    end
  end
  return found, clusters, unknown
end

-- The survivor of a merge: the cluster with the most identifiers (then the smallest id),
-- and the size of the merged cluster (0 when it cannot grow: one cluster, no new identifier).
local function survivor_of(clusters, unknown)
  if #clusters == 0 then return nil, unknown end
  if #clusters == 1 and unknown == 0 then return clusters[1], 0 end  -- nothing grows
  local survivor, best, total = clusters[1], -1, unknown
  for _, c in ipairs(clusters) do
    local n = tonumber(redis.call('HGET', p .. ':cl:' .. c, 'ni')) or 0
    total = total + n
    if n > best or (n == best and c < survivor) then survivor, best = c, n end
  end
  return survivor, total
end

-- The de-duplication window's fields after a group's new events (receipts least..greatest)
-- are added to `seen`, given the anchor's 'nr' and 'tr' (nil when unknown): the set is trimmed
-- to the window first when its oldest member has left it. Returns 'nr', 'tr' as strings:
-- `texts` (optional) holds the digits of the stored 'nr' and 'tr' and of `greatest` as given,
-- reused for a value that is one of them (formatting a number costs more than the rest).
local function window_fields(seen, nr, tr, least, greatest, texts)
  local new_nr = math.max(nr or greatest, greatest)
  local new_tr = math.min(tr or (least + window), least + window)
  if new_nr > new_tr then
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. string.format('%.0f', new_nr - window))
    local oldest = tonumber(redis.call('ZRANGE', seen, 0, 0, 'WITHSCORES')[2]) or least
    new_tr = math.min(oldest, least) + window
  end
  texts = texts or {}
  local nr_text = (new_nr == greatest and texts[3]) or (new_nr == nr and texts[1])
  local tr_text = new_tr == tr and texts[2]
  return nr_text or string.format('%.0f', new_nr), tr_text or string.format('%.0f', new_tr)
end

-- Record once (per raw cluster, at most 20 of them) a tie the bounds kept out.
local function refuse(cluster, tie, order, what)
  over[what] = over[what] + 1
  if tie == '' then return end
  local key = p .. ':cl:' .. cluster
  local found = redis.call('HMGET', key, 'no', 'o:' .. tie)
  local n = tonumber(found[1]) or 0
  if n < 20 and not found[2] then
    redis.call('HSET', key, 'o:' .. tie, order, 'no', int(n + 1))
  end
end

local function link(ids, tie, order)
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = p .. ':id:' .. id end
  local found, clusters, unknown = clusters_of(ids, keys)
  local survivor, total = survivor_of(clusters, unknown)
  local grows = unknown > 0 or #clusters > 1
  if survivor and grows and total > max_ids then
    -- the raw cluster is full: the anchor stays where it is (or alone), the tie is refused
    local anchor_cluster, created = found[1], false
    if not anchor_cluster then anchor_cluster, created = link({ids[1]}, '', order) end
    refuse(anchor_cluster, tie, order, 'ids')
    return anchor_cluster, created
  end
  if survivor == nil then survivor = 'c' .. redis.call('INCR', p .. ':seq') end
  local changed = grows
  for _, c in ipairs(clusters) do
    if c ~= survivor then merge_into(c, survivor) end
  end
  for i, id in ipairs(ids) do
    if found[i] ~= survivor then redis.call('SET', keys[i], survivor) end
  end
  local to = p .. ':cl:' .. survivor
  local fields, unique = {'v', 'ni', 'nt'}, {}
  for _, id in ipairs(ids) do
    if not unique[id] then
      unique[id] = true
      fields[#fields + 1] = 'i:' .. id
    end
  end
  local n = #fields
  if #clusters == 0 then  -- a new cluster: nothing to compare with
    local writes = {'v', '1', 'ni', int(n - 3)}
    for j = 4, n do put(writes, fields[j], order) end
    if tie ~= '' then
      put(writes, 't:' .. tie, order)
      put(writes, 'nt', '1')
    end
    sliced('HSET', to, writes)
    return survivor, true
  end
  if tie ~= '' then fields[n + 1] = 't:' .. tie end
  local current = sliced('HMGET', to, fields)
  local writes, added = {}, 0
  for j = 4, n do  -- earliest wins
    local old = current[j]
    if (not old) or order < old then
      put(writes, fields[j], order)
      changed = true
      if not old then added = added + 1 end
    end
  end
  if added > 0 then
    put(writes, 'ni', int((tonumber(current[2]) or 0) + added))
  end
  if tie ~= '' then
    local known, ties = current[n + 1], tonumber(current[3]) or 0
    if known == false and ties >= max_ties then
      refuse(survivor, tie, order, 'ties')
    elseif not known or order < known then  -- earliest wins
      put(writes, fields[n + 1], order)
      if not known then put(writes, 'nt', int(ties + 1)) end
      changed = true
    end
  end
  if changed then
    put(writes, 'v', int((tonumber(current[1]) or 0) + 1))
  end
  if #writes > 0 then sliced('HSET', to, writes) end
  return survivor, changed
end

-- A trait new to an anchor holding `traits` distinct ones: kept only below max_traits
-- (else counted as kept out). Returns whether it is kept and the new count.
local function admit_trait(traits)
  if traits >= max_traits then
    over.traits = over.traits + 1
    return false, traits
  end
  return true, traits + 1
end

-- Add `new` active days to the anchor's count `nd` (its 'nd' field as read); returns the
-- count to store and how many of the earliest days to drop (trim_days, after the write).
local function count_days(nd, new)
  local n = (tonumber(nd) or 0) + new
  if n > max_days then return max_days, n - max_days end
  return n, 0
end

-- Delete the `n` earliest d:<day> fields of the anchor hash `data` (rare: past max_days).
local function trim_days(data, n)
  if n == 0 then return end
  local days = {}
  for _, field in ipairs(redis.call('HKEYS', data)) do
    if string.sub(field, 1, 2) == 'd:' then days[#days + 1] = tonumber(string.sub(field, 3)) end
  end
  table.sort(days)
  local drop = {}
  for j = 1, n do drop[j] = 'd:' .. string.format('%d', days[j]) end
  redis.call('HDEL', data, unpack(drop))
  over.days = over.days + n
end

-- The new events of one group, folded: counters added, earliest and latest fields kept,
-- timeline entries, gated candidates, active days, purchase times, and per tie the
-- identifiers and earliest order.
local function fold(group, d, at, order, entry, message_id)
  local ms = tonumber(at)
  local padded = string.format('%015d', ms)
  if d.counts.orders ~= nil then
    group.buys[#group.buys + 1] = at
    group.buys[#group.buys + 1] = message_id
  end
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
  if d.act then earliest('d:' .. string.format('%d', math.floor(ms / DAY_MS)), padded) end
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

-- Add a group's purchase times, kept to their bound (the latest).
local function store_purchases(a, group)
  if #group.buys > 0 then
    sliced('ZADD', a .. ':buys', group.buys)
    local n = redis.call('ZCARD', a .. ':buys')
    if n > max_buys then
      over.purchases = over.purchases
        + redis.call('ZREMRANGEBYRANK', a .. ':buys', 0, n - max_buys - 1)
    end
  end
end

-- Write a group's folded contributions with one read and one write of the anchor hash; a
-- trait new to the anchor is kept only while it holds fewer than max_traits ('nt' counts them).
-- Returns whether the profile may have changed and the anchor's fields as they were.
local function store(a, group)
  local data = a .. ':data'
  local fields, n = {'nt', 'nd'}, 2
  for field in pairs(group.adds) do n = n + 1; fields[n] = field end
  for field in pairs(group.mins) do n = n + 1; fields[n] = field end
  for field in pairs(group.maxs) do n = n + 1; fields[n] = field end
  local current = sliced('HMGET', data, fields)
  local traits = tonumber(current[1]) or 0
  local before, writes, changed, total = {}, {}, group.changed, 0
  local counted, new_days = traits, 0
  for i = 3, n do
    local field, old = fields[i], current[i]
    before[field] = old
    local value = group.adds[field]
    if value then
      value = tostring((tonumber(old) or 0) + value)
      if field == 'c:events' then total = tonumber(value) end
    else
      value = group.mins[field] or group.maxs[field]
      local better = (not old) or (group.mins[field] and value < old)
        or (group.maxs[field] and value > old)
      if better and not old and string.sub(field, 1, 2) == 't:' then
        better, traits = admit_trait(traits)
      end
      if not better then
        value = nil
      elseif field ~= 'last' and string.sub(field, 1, 2) ~= 'l:' then
        changed = true
        if not old and string.sub(field, 1, 2) == 'd:' then new_days = new_days + 1 end
      end
    end
    if value then
      writes[#writes + 1] = field
      writes[#writes + 1] = value
    end
  end
  if traits ~= counted then
    writes[#writes + 1] = 'nt'
    writes[#writes + 1] = int(traits)
  end
  local nd, drop = count_days(current[2], new_days)
  if new_days > 0 then
    writes[#writes + 1] = 'nd'
    writes[#writes + 1] = int(nd)
  end
  if not before['first'] and rules_version ~= '' then  -- a new anchor
    writes[#writes + 1] = 'rv'
    writes[#writes + 1] = rules_version
  end
  if group.revenue ~= 0 then redis.call('HINCRBYFLOAT', data, 'c:revenue', group.revenue) end
  if #group.cond > 0 then
    sliced('ZADD', a .. ':cond', group.cond)
    redis.call('ZREMRANGEBYRANK', a .. ':cond', 2000, -1)
    writes[#writes + 1] = 'cond'
    writes[#writes + 1] = '1'
    changed = true
  end
  sliced('HSET', data, writes)
  trim_days(data, drop)
  store_purchases(a, group)
  sliced('ZADD', a .. ':journey', group.entries)
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

-- The bytes of a hexadecimal string (an event's seen member as its document gives it).
local function unhex(hex)
  return (string.gsub(hex, '..', function(pair) return string.char(tonumber(pair, 16)) end))
end

-- Each event's de-duplication status: 'skip' (erased since), 'seen', 'expired' (received
-- before the window of the anchor's newest receipt) or 'new'; and the new ones' seen entries.
local function deduplicate(seen, events)
  local newest = tonumber(redis.call('ZRANGE', seen, -1, -1, 'WITHSCORES')[2])
  local status, marks, fresh, latest = {}, {}, {}, newest or 0
  for k, event in ipairs(events) do
    local id, received = unhex(event[7]), tonumber(event[5])
    local erased = erasure(event[6].marks, received)
    if erased == 'skip' then
      status[k] = 'skip'
    elseif fresh[id] or redis.call('ZSCORE', seen, id) then
      status[k] = 'seen'  -- re-resolved anyway, in case a crash came before resolution
    elseif newest and received < newest - window then
      status[k] = 'expired'
      over.window = over.window + 1
    else
      status[k], fresh[id] = erased == 'seen' and 'new-after-erasure' or 'new', true
      marks[#marks + 1] = received
      marks[#marks + 1] = id
      if received > latest then latest = received end
    end
  end
  return status, marks, latest
end

-- A group's events the general way: decoded from its JSON document, each de-duplicated
-- and checked against erasures, the new ones folded here. Returns its status codes.
local function apply_group(anchor, events)
  local a = p .. ':a:' .. anchor
  local seen = a .. ':seen'
  local group = {adds = {}, mins = {}, maxs = {}, ties = {}, cond = {}, entries = {},
                 buys = {}, revenue = 0, changed = false, erased_before = false}
  local status, marks, latest = deduplicate(seen, events)
  for k, event in ipairs(events) do
    local state = status[k]
    if state == 'new' or state == 'new-after-erasure' then
      if state == 'new-after-erasure' then group.erased_before = true end
      fold(group, event[6], event[2], event[3], event[4], event[1])
    end
  end
  local resolve, cluster = true, nil
  if #marks > 0 then
    local changed, before = store(a, group)
    local relinked
    relinked, cluster = link_group(group, before)
    resolve = relinked or changed
    sliced('ZADD', seen, marks)
    local nr, tr = window_fields(seen, latest, 0, latest, latest)  -- always trims
    redis.call('HSET', a .. ':data', 'nr', nr, 'tr', tr)
  end
  local codes, needed = {}, false
  for k = 1, #events do
    local state = status[k]
    if state == 'skip' or state == 'expired' then
      codes[k] = 'x'
    elseif state == 'seen' then
      codes[k], needed = 's', true
    else
      codes[k], needed = resolve and 'r' or 'n', needed or resolve
    end
  end
  return cluster, table.concat(codes), needed
end

-- Fast path (processor/store.py folds a group's events in advance, assuming all are new):
-- the group's part of ARGV, from its first argument i:
--   anchor, head, document (the events for apply_group), erasure marks (space-separated),
--   least and greatest receipt time, revenue ('' if none), then k (receipt, seen member)
--   pairs (the members as the document's, in bytes), the anchor hash's fields ('nt', counters (c:events first), earliest-wins fields
--   (first, ft, s:*, then the active days d:*), link markers (l:*, one per tie), 'last',
--   survey answers (v:*), traits (t:*)), their values (all but 'nt'), gated candidate
--   (at, member) pairs, timeline (at, entry) pairs, purchase (at, messageId) pairs and per
--   tie: tie, order, identifiers.
-- head holds one byte per count: events k, counters, earliest-wins fields (active days
-- included), ties, answers, traits, gated candidates, active days (the last earliest-wins
-- fields), purchases, has orders (0/1), then the number of identifiers of each tie. An empty head: the group takes apply_group's way only.
local H_COUNTS = 10

-- Write a pre-folded group's contributions (store's rules, with the anchor hash's fields as
-- read in `current` and its 'nd' count, and one write), 'nr' and 'tr' among them. Returns
-- whether the profile may have changed and where the link markers start in `current`.
local function store_fast(a, head, f, revenue_at, current, nd, window_writes)
  local k, na, nm, nl, nv, nt, ncond, ndays, nbuys, orders = string.byte(head, 1, H_COUNTS)
  local nf = 2 + na + nm + nl + nv + nt
  local data = a .. ':data'
  local traits = tonumber(current[1]) or 0
  local counted = traits
  local writes, w, changed, total = {}, 0, orders == 1, 0
  local c, x = 2, f + nf  -- position in current (its field is ARGV[f + c - 1]), its value
  for _ = 1, na do  -- counters, added
    local sum = (tonumber(current[c]) or 0) + tonumber(ARGV[x])
    if c == 2 then total = sum end
    writes[w + 1], writes[w + 2], w = ARGV[f + c - 1], int(sum), w + 2
    c, x = c + 1, x + 1
  end
  local first, new_days = current[c], 0
  for j = 1, nm do  -- earliest wins (the last ndays: active days)
    local old, value = current[c], ARGV[x]
    if not old or value < old then
      writes[w + 1], writes[w + 2], w, changed = ARGV[f + c - 1], value, w + 2, true
      if not old and j > nm - ndays then new_days = new_days + 1 end
    end
    c, x = c + 1, x + 1
  end
  local markers = c
  for _ = 1, nl + 1 do  -- link markers (earliest wins) and 'last' (latest wins): no change
    local old, value = current[c], ARGV[x]
    if not old or (c < markers + nl and value < old) or (c == markers + nl and value > old) then
      writes[w + 1], writes[w + 2], w = ARGV[f + c - 1], value, w + 2
    end
    c, x = c + 1, x + 1
  end
  for _ = 1, nv do  -- latest wins
    local old, value = current[c], ARGV[x]
    if not old or value > old then
      writes[w + 1], writes[w + 2], w, changed = ARGV[f + c - 1], value, w + 2, true
    end
    c, x = c + 1, x + 1
  end
  for _ = 1, nt do  -- latest wins; a trait new to the anchor only below max_traits
    local old, value = current[c], ARGV[x]
    local better = (not old) or value > old
    if better and not old then better, traits = admit_trait(traits) end
    if better then writes[w + 1], writes[w + 2], w, changed = ARGV[f + c - 1], value, w + 2, true end
    c, x = c + 1, x + 1
  end
  if traits ~= counted then writes[w + 1], writes[w + 2], w = 'nt', int(traits), w + 2 end
  local drop
  nd, drop = count_days(nd, new_days)
  if new_days > 0 then writes[w + 1], writes[w + 2], w = 'nd', int(nd), w + 2 end
  writes[w + 1], writes[w + 2], writes[w + 3], writes[w + 4], w =
    'nr', window_writes[1], 'tr', window_writes[2], w + 4
  if not first and rules_version ~= '' then  -- a new anchor
    writes[w + 1], writes[w + 2], w = 'rv', rules_version, w + 2
  end
  local revenue = ARGV[revenue_at]
  local cond_at = f + 2 * nf - 1
  local entries_at = cond_at + 2 * ncond
  local buys_at = entries_at + 2 * k
  if revenue ~= '' then redis.call('HINCRBYFLOAT', data, 'c:revenue', tonumber(revenue)) end
  if ncond > 0 then
    redis.call('ZADD', a .. ':cond', unpack(ARGV, cond_at, cond_at + 2 * ncond - 1))
    redis.call('ZREMRANGEBYRANK', a .. ':cond', 2000, -1)
    writes[w + 1], writes[w + 2], w, changed = 'cond', '1', w + 2, true
  end
  redis.call('HSET', data, unpack(writes))
  trim_days(data, drop)
  if nbuys > 0 then
    local buys = a .. ':buys'
    redis.call('ZADD', buys, unpack(ARGV, buys_at, buys_at + 2 * nbuys - 1))
    local n = redis.call('ZCARD', buys)
    if n > max_buys then
      over.purchases = over.purchases + redis.call('ZREMRANGEBYRANK', buys, 0, n - max_buys - 1)
    end
  end
  redis.call('ZADD', a .. ':journey', unpack(ARGV, entries_at, entries_at + 2 * k - 1))
  if total > cap then redis.call('ZREMRANGEBYRANK', a .. ':journey', 0, -cap - 1) end
  return changed, markers
end

-- Link a pre-folded group's ties not linked at their order yet (in the order apply_group's
-- table would give them). Returns whether the cluster changed and the anchor's cluster.
local function link_fast(head, current, markers, at)
  local nl = string.byte(head, 4)
  local ties, starts, i = {}, {}, at
  for t = 1, nl do
    ties[ARGV[i]], starts[t] = t, i
    i = i + 2 + string.byte(head, H_COUNTS + t)
  end
  local relinked, cluster = false, nil
  for tie, t in pairs(ties) do
    local marker, order = current[markers + t - 1], ARGV[starts[t] + 1]
    if not (marker and marker <= order) then
      local ids = {unpack(ARGV, starts[t] + 2, starts[t] + 1 + string.byte(head, H_COUNTS + t))}
      local survivor, changed = link(ids, tie, order)
      relinked, cluster = relinked or changed, survivor
    end
  end
  return relinked, cluster
end

-- A group that takes apply_group's way after all (nothing of it was stored yet); without
-- its document (sent only when asked for), its k codes '?' ask for it.
local function apply_slow(i, next_at, k)
  if ARGV[i + 2] == '' then return nil, string.rep('?', k), false, next_at end
  local cluster, codes, needed = apply_group(ARGV[i], cjson.decode(ARGV[i + 2]))
  return cluster, codes, needed, next_at
end

-- The group whose arguments start at ARGV[i]: its cluster (nil if not looked up), status
-- codes, whether the cluster is needed, and where the next group starts.
local function apply_at(i)
  local anchor, head = ARGV[i], ARGV[i + 1]
  if head == '' then return apply_slow(i, i + 3, 0) end
  local k, na, nm, nl, nv, nt, ncond, _, nbuys = string.byte(head, 1, 9)
  local marks_at = i + 7
  local fields_at = marks_at + 2 * k
  local ties_at = fields_at + 2 * (2 + na + nm + nl + nv + nt) - 1 + 2 * (ncond + k + nbuys)
  local next_at = ties_at
  for t = 1, nl do next_at = next_at + 2 + string.byte(head, H_COUNTS + t) end
  if any_erased then
    local keys = {}
    for mark in string.gmatch(ARGV[i + 3], '%S+') do keys[#keys + 1] = p .. ':erased:' .. mark end
    for _, erased in ipairs(redis.call('MGET', unpack(keys))) do
      if erased then return apply_slow(i, next_at, k) end
    end
  end
  local a = p .. ':a:' .. anchor
  local seen = a .. ':seen'
  local nf = 2 + na + nm + nl + nv + nt
  local current = redis.call('HMGET', a .. ':data', 'nr', 'tr', 'nd',
                             unpack(ARGV, fields_at, fields_at + nf - 1))
  local texts = {table.remove(current, 1), table.remove(current, 1), ARGV[i + 5]}
  local nr, tr = tonumber(texts[1]), tonumber(texts[2])
  local nd = table.remove(current, 1)
  if not nr and current[2 + na] then  -- 'first' without 'nr': stored by an older version
    nr, tr = tonumber(redis.call('ZRANGE', seen, -1, -1, 'WITHSCORES')[2]), 0
  end
  local least, greatest = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  if nr and least < nr - window then return apply_slow(i, next_at, k) end  -- expired
  if k == 1 then
    if redis.call('ZADD', seen, 'NX', ARGV[marks_at], ARGV[marks_at + 1]) == 0 then
      return nil, 's', true, next_at  -- seen: nothing stored
    end
  else
    local ids = {}
    for e = 1, k do ids[e] = ARGV[marks_at + 2 * e - 1] end
    for _, score in ipairs(redis.call('ZMSCORE', seen, unpack(ids))) do
      if score then return apply_slow(i, next_at, k) end
    end
  end
  local window_writes = {window_fields(seen, nr, tr, least, greatest, texts)}
  local changed, markers = store_fast(a, head, fields_at, i + 6, current, nd, window_writes)
  local relinked, cluster = link_fast(head, current, markers, ties_at)
  if k > 1 then redis.call('ZADD', seen, unpack(ARGV, marks_at, marks_at + 2 * k - 1)) end
  local resolve = relinked or changed
  return cluster, string.rep(resolve and 'r' or 'n', k), resolve, next_at
end

-- Returns per group its cluster ('' unless some event needs resolution) and one status code
-- per event: 'r' new, needs resolution; 'n' new, does not; 's' seen already (re-resolved
-- anyway, in case a crash came before resolution); 'x' ignored (received before one of its
-- identifiers was erased, or older than the de-duplication window); '?' not applied: send
-- the group again with its document.
local i = 10
while i <= #ARGV do
  local cluster, codes, needed, next_at = apply_at(i)
  if needed then
    -- every link includes the anchor, and the last one leaves it in the survivor
    cluster = cluster or redis.call('GET', p .. ':id:' .. ARGV[i]) or ''
  end
  out[#out + 1], out[#out + 2] = needed and cluster or '', codes
  i = next_at
end
out[#out + 1] = cjson.encode(over)
return out
