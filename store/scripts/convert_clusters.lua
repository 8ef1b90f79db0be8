#!lua
-- Layout 4 (processor/store.py migrate_layout): each raw cluster's six keys
-- P:cl:<cluster>:{ids,ties,ver,snap,over,blocked} become the one hash P:cl:<cluster>
-- (store/keys.py ClusterFields: i:, t:, v, c:, o:, b: fields, ni / nt / no counting i:, t:,
-- o:). KEYS: the clusters' ids hashes (each ends in ':ids'); one already converted (gone) is
-- skipped, so concurrent runs convert each once. Returns how many were converted.
local PARTS = {{'ids', 'i:', 'ni'}, {'ties', 't:', 'nt'}, {'snap', 'c:'}, {'over', 'o:', 'no'},
               {'blocked', 'b:'}}
local converted = 0
for _, key in ipairs(KEYS) do
  local base = string.sub(key, 1, -5)
  if redis.call('EXISTS', key) == 1 then
    for _, part in ipairs(PARTS) do
      local flat, writes = redis.call('HGETALL', base .. ':' .. part[1]), {}
      for j = 1, #flat, 2 do
        writes[j] = part[2] .. flat[j]
        writes[j + 1] = part[1] == 'snap' and '' or flat[j + 1]  -- snapshot: customer ids
      end
      local added = 0
      for start = 1, #writes, 1000 do
        added = added + redis.call('HSET', base, unpack(writes, start,
                                                       math.min(start + 999, #writes)))
      end
      if part[3] and added > 0 then redis.call('HINCRBY', base, part[3], added) end
    end
    local version = redis.call('GET', base .. ':ver')
    if version then redis.call('HINCRBY', base, 'v', version) end
    redis.call('DEL', key, base .. ':ties', base .. ':ver', base .. ':snap', base .. ':over',
               base .. ':blocked')
    converted = converted + 1
  end
end
return converted
