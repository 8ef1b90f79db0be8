#!lua flags=no-writes
-- Identifier → profile look-ups, many per call (api/lookups.py).
-- ARGV: prefix, identifiers… → for each identifier its profile JSON, or false. A
-- ``customer_id:<id>`` names a customer by id; a former id follows ``P:former`` (merges).
local p, out = ARGV[1], {}
for i = 2, #ARGV do
  local cid
  if string.sub(ARGV[i], 1, 12) == 'customer_id:' then
    cid = string.sub(ARGV[i], 13)
    for _ = 1, 8 do
      if redis.call('EXISTS', p .. ':cust:' .. cid) == 1 then break end
      local successor = redis.call('GET', p .. ':former:' .. cid)
      if not successor then break end
      cid = successor
    end
  else
    cid = redis.call('GET', p .. ':idc:' .. ARGV[i])
  end
  out[i - 1] = cid and redis.call('GET', p .. ':cust:' .. cid) or false
end
return out
