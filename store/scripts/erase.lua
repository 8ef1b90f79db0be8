-- Erase one customer atomically (right to be forgotten); see api/erasure.py. The loader puts
-- remove_customer (store/scripts/remove_customer.lua) in front of this script.
-- ARGV: prefix, the identifier named by the caller (kind:value), now_ms, then a JSON plan read
-- beforehand: {cid, ids[] (the profile's identities, in its order), marks[] (their erasure
-- marker names), cids[] (every customer id they can have had), stages[], triggers[] (the
-- rules' trigger names: the customer's timers of each go with it),
-- forms {text[], digits[], exact[]} (see touchpath/erasure.py)}.
-- Returns false when no customer holds the identifier, 'retry' when the customer is no longer
-- the one planned for (the caller plans again), else a JSON array of the clusters touched.
local p, named, now = ARGV[1], ARGV[2], ARGV[3]
local plan = cjson.decode(ARGV[4])

local cid = redis.call('GET', p .. ':idc:' .. named)
if not cid then return false end
local blob = redis.call('GET', p .. ':cust:' .. cid)
if not blob then return false end
local profile = cjson.decode(blob) -- either form (store/codecs.py) names identities, stage,
-- history and accounts alike (accounts absent: none)
local ids, gone = profile.identities, {}
for _, id in ipairs(ids) do gone[id] = true end
if not gone[named] then return false end -- a stale look-up: never erase someone else
if cid ~= plan.cid or table.concat(ids, '\31') ~= table.concat(plan.ids, '\31') then
  return 'retry'
end

-- Whether a text holds one of the erased identifiers' forms (same rule as Forms.mentioned_in).
local forms = plan.forms
local function mentions(text)
  local lower = string.lower(text)
  for _, form in ipairs(forms.text) do
    if string.find(lower, form, 1, true) then return true end
  end
  for _, form in ipairs(forms.exact) do
    if string.find(text, form, 1, true) then return true end
  end
  if #forms.digits == 0 then return false end
  local runs = {}
  for s in string.gmatch(text, '"([^"]*)"') do runs[#runs + 1] = string.gsub(s, '%D', '') end
  for s in string.gmatch(text, '%d+') do runs[#runs + 1] = s end
  for _, form in ipairs(forms.digits) do
    for _, run in ipairs(runs) do
      if string.find(run, form, 1, true) then return true end
    end
  end
  return false
end

local function names_gone(tie)
  for member in string.gmatch(tie, '[^\31]+') do
    if gone[member] then return true end
  end
  return false
end

-- the identity cluster(s) of its identifiers
local clusters, cluster_ids = {}, {}
for _, id in ipairs(ids) do
  local cluster = redis.call('GET', p .. ':id:' .. id)
  if cluster and not clusters[cluster] then
    clusters[cluster] = true
    cluster_ids[#cluster_ids + 1] = cluster
  end
end

-- the profile, its snapshots and its index entries (every model stage, and any stage of its
-- history), as the resolver removes a customer (remove_customer.lua)
local stages, seen = {}, {}
for _, stage in ipairs(plan.stages) do
  if not seen[stage] then seen[stage] = true; stages[#stages + 1] = stage end
end
if type(profile.history) == 'table' then
  for stage, _ in pairs(profile.history) do
    if not seen[stage] then seen[stage] = true; stages[#stages + 1] = stage end
  end
end
remove_customer(p, cid, profile, cluster_ids, plan.triggers, stages)
redis.call('HDEL', p .. ':announced', unpack(plan.cids))
for _, former in ipairs(plan.cids) do
  redis.call('DEL', p .. ':former:' .. former)
  redis.call('DEL', p .. ':trg:s:' .. former) -- stored firings of ids it had before (#21)
end

-- What the erased identifiers left in the data of identifiers that stay (a refused tie's
-- link marker, a trait such as the email, a timeline entry naming them).
local function scrub_anchor(id)
  local a = p .. ':a:' .. id
  local data = redis.call('HGETALL', a .. ':data')
  for i = 1, #data, 2 do
    local field, value = data[i], data[i + 1]
    local kind = string.sub(field, 1, 2)
    if (kind == 'l:' and names_gone(string.sub(field, 3)))
        or (kind == 't:' and mentions(value)) then
      redis.call('HDEL', a .. ':data', field)
    end
  end
  for _, entry in ipairs(redis.call('ZRANGE', a .. ':journey', 0, -1)) do
    if mentions(entry) then redis.call('ZREM', a .. ':journey', entry) end
  end
end

-- its place in the identity cluster(s): identifiers and ties naming them (its derived
-- profile left the snapshots above); the cluster's other customers are derived again by the
-- caller (P:rederive)
local touched = {}
for _, cluster in ipairs(cluster_ids) do
  local cl = p .. ':cl:' .. cluster  -- one hash (store/keys.py ClusterFields)
  local flat, drop, rest = redis.call('HGETALL', cl), {}, {}
  local counts = {ni = 0, nt = 0, no = 0}
  local counted = {['i:'] = 'ni', ['t:'] = 'nt', ['o:'] = 'no'}
  for i = 1, #flat, 2 do
    local field = flat[i]
    local kind = string.sub(field, 1, 2)
    -- its identifiers, and ties naming them (refused or split off too)
    if (kind == 'i:' or kind == 't:' or kind == 'o:' or kind == 'b:')
        and names_gone(string.sub(field, 3)) then
      drop[#drop + 1] = field
    elseif counted[kind] then
      counts[counted[kind]] = counts[counted[kind]] + 1
      if kind == 'i:' then rest[#rest + 1] = string.sub(field, 3) end
    end
  end
  if #rest == 0 then
    redis.call('DEL', cl)
  else
    local writes = {}
    for count, n in pairs(counts) do
      if n > 0 then writes[#writes + 1] = count; writes[#writes + 1] = n
      else drop[#drop + 1] = count end
    end
    for start = 1, #drop, 1000 do
      redis.call('HDEL', cl, unpack(drop, start, math.min(start + 999, #drop)))
    end
    redis.call('HSET', cl, unpack(writes))
    for _, id in ipairs(rest) do scrub_anchor(id) end
    redis.call('HINCRBY', cl, 'v', 1) -- a resolution in flight sees its version moved, re-reads
    redis.call('SADD', p .. ':rederive', cluster)
    touched[#touched + 1] = cluster
  end
end

-- every identifier's own keys, then its erasure time under its marker (what makes replays
-- harmless; the marker's name is a keyed hash, not the identifier)
for i, id in ipairs(ids) do
  local a = p .. ':a:' .. id
  redis.call('DEL', a .. ':seen', a .. ':journey', a .. ':data', a .. ':cond',
             a .. ':days', a .. ':buys', p .. ':id:' .. id, p .. ':idc:' .. id)
  redis.call('SET', p .. ':erased:' .. plan.marks[i], now)
end
redis.call('SET', p .. ':erasures', 1)
return cjson.encode(touched)
