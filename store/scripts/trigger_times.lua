#!lua
-- The customer's events at or after ARGV[1] (event time), from the timelines KEYS (one per
-- identifier): a flat list of time, stored entry (at most ARGV[2] per timeline; the caller
-- reads each entry's messageId with store/codecs.py).
local found = {}
for _, key in ipairs(KEYS) do
  local entries = redis.call('ZRANGEBYSCORE', key, ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0,
    tonumber(ARGV[2]))
  for j = 1, #entries, 2 do
    found[#found + 1] = entries[j + 1]
    found[#found + 1] = entries[j]
  end
end
return found
