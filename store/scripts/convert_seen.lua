-- Layout 1 → 2 (processor/store.py migrate_layout): each de-duplication set given in KEYS
-- becomes a sorted set whose members count as received ARGV[1] (ms). Returns #KEYS.
local now = ARGV[1]
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'set' then
    local members = redis.call('SMEMBERS', key)
    redis.call('DEL', key)
    for start = 1, #members, 500 do
      local args = {}
      for i = start, math.min(start + 499, #members) do
        args[#args + 1] = now
        args[#args + 1] = members[i]
      end
      redis.call('ZADD', key, unpack(args))
    end
  end
end
return #KEYS
