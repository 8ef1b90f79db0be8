-- Layout 3 (processor/store.py migrate_layout): empty the profile copies a cluster snapshot
-- of an older layout holds (each profile is P:cust alone; the snapshot lists customer ids).
-- KEYS: snapshot hashes. Returns how many held a copy.
local emptied = 0
for _, key in ipairs(KEYS) do
  local flat, args = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do
    if flat[i + 1] ~= '' then
      args[#args + 1] = flat[i]
      args[#args + 1] = ''
    end
  end
  for start = 1, #args, 500 do
    redis.call('HSET', key, unpack(args, start, math.min(start + 499, #args)))
  end
  if #args > 0 then emptied = emptied + 1 end
end
return emptied
