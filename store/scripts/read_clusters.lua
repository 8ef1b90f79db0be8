#!lua flags=no-writes
-- Read everything resolution needs about some raw clusters in one call (read-only).
--
-- ARGV: prefix, then cluster ids.
-- Returns a JSON array (cheaper to decode than nested replies; an empty list may appear as
-- {}) holding, per cluster that still has identifiers:
--   {cluster, version, ids (flat id/first-seen), ties (flat), profiles (flat cid/profile JSON:
--    each customer the cluster's snapshot lists, read from P:cust:<cid>),
--    anchors, over (flat tie/order: ties refused because the cluster was full),
--    blocked (flat identifier/record: identifiers an admin split off)}  where anchors is a
-- flat list of {identifier, data (flat: its active days are its d:<day> fields), cond (flat),
-- buys (flat)} for each identifier that anchored events; cond holds member/score pairs, empty
-- unless the anchor has gated stage candidates; buys the messageId/time pairs of its purchase
-- events, empty unless it counted orders.
local p = ARGV[1]
local out = {}

-- The snapshot lists the cluster's customers (values of older versions hold a copy of the
-- profile, ignored); each profile is read from its own key, the one copy stored.
local function profiles(snap)
  local flat = {}
  for k = 1, #snap, 2 do
    local blob = redis.call('GET', p .. ':cust:' .. snap[k])
    if blob then
      flat[#flat + 1] = snap[k]
      flat[#flat + 1] = blob
    end
  end
  return flat
end
for i = 2, #ARGV do
  local cluster = p .. ':cl:' .. ARGV[i]
  local ids = redis.call('HGETALL', cluster .. ':ids')
  if #ids > 0 then
    local anchors = {}
    for j = 1, #ids, 2 do
      local anchor = p .. ':a:' .. ids[j]
      local data = redis.call('HGETALL', anchor .. ':data')
      if #data > 0 then
        local cond, buys = {}, {}
        for k = 1, #data, 2 do
          if data[k] == 'cond' then
            cond = redis.call('ZRANGE', anchor .. ':cond', 0, -1, 'WITHSCORES')
          elseif data[k] == 'c:orders' then
            buys = redis.call('ZRANGE', anchor .. ':buys', 0, -1, 'WITHSCORES')
          end
        end
        anchors[#anchors + 1] = {ids[j], data, cond, buys}
      end
    end
    out[#out + 1] = {
      ARGV[i],
      redis.call('GET', cluster .. ':ver') or '0',
      ids,
      redis.call('HGETALL', cluster .. ':ties'),
      profiles(redis.call('HGETALL', cluster .. ':snap')),
      anchors,
      redis.call('HGETALL', cluster .. ':over'),
      redis.call('HGETALL', cluster .. ':blocked'),
    }
  end
end
return cjson.encode(out)
