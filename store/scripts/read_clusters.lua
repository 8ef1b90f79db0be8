#!lua flags=no-writes
-- Read everything resolution needs about some raw clusters in one call (read-only).
--
-- ARGV: prefix, then cluster ids.
-- Returns a JSON array (cheaper to decode than nested replies; an empty list may appear as
-- {}) holding, per cluster that still has identifiers:
--   {cluster, fields (flat: the cluster's hash P:cl:<cluster>, store/keys.py ClusterFields;
--    the caller splits it by field prefix), profiles (flat cid/profile JSON: each customer
--    the hash lists as c:<cid>, read from P:cust:<cid>), anchors}  where anchors is a
-- flat list of {identifier, data (flat: its active days are its d:<day> fields), cond (flat),
-- buys (flat)} for each identifier (i:<identifier>) that anchored events; cond holds
-- member/score pairs, empty unless the anchor has gated stage candidates; buys the
-- messageId/time pairs of its purchase events, empty unless it counted orders.
local p = ARGV[1]
local out = {}

-- The anchors' contributions of the identifier `id`, or nil when it anchored no event.
local function anchor_of(id)
  local anchor = p .. ':a:' .. id
  local data = redis.call('HGETALL', anchor .. ':data')
  if #data == 0 then return nil end
  local cond, buys = {}, {}
  for k = 1, #data, 2 do
    if data[k] == 'cond' then
      cond = redis.call('ZRANGE', anchor .. ':cond', 0, -1, 'WITHSCORES')
    elseif data[k] == 'c:orders' then
      buys = redis.call('ZRANGE', anchor .. ':buys', 0, -1, 'WITHSCORES')
    end
  end
  return {id, data, cond, buys}
end

for i = 2, #ARGV do
  local fields = redis.call('HGETALL', p .. ':cl:' .. ARGV[i])
  local anchors, profiles, known = {}, {}, false
  for j = 1, #fields, 2 do
    local kind = string.sub(fields[j], 1, 2)
    if kind == 'i:' then
      known = true
      anchors[#anchors + 1] = anchor_of(string.sub(fields[j], 3))
    elseif kind == 'c:' then  -- the customers listed; each profile is P:cust, the one copy
      local cid = string.sub(fields[j], 3)
      local blob = redis.call('GET', p .. ':cust:' .. cid)
      if blob then
        profiles[#profiles + 1] = cid
        profiles[#profiles + 1] = blob
      end
    end
  end
  if known then
    out[#out + 1] = {ARGV[i], fields, profiles, anchors}
  end
end
return cjson.encode(out)
