#!lua
-- Layout 4: an anchor's active days move from P:a:<identifier>:days (a sorted set: day → the
-- day's first event ms) into its hash as d:<day> fields (the ms padded to 15 digits, as
-- ingest.lua writes them), with 'nd' counting them. KEYS: days sets (each ends in ':days').
-- Returns how many sets were converted.
for _, key in ipairs(KEYS) do
  local days = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  if #days > 0 then
    local data = string.sub(key, 1, -6) .. ':data'
    local writes = {'nd', #days / 2}
    for j = 1, #days, 2 do
      writes[#writes + 1] = 'd:' .. days[j]
      writes[#writes + 1] = string.format('%015d', tonumber(days[j + 1]))
    end
    for start = 1, #writes, 1000 do
      redis.call('HSET', data, unpack(writes, start, math.min(start + 999, #writes)))
    end
  end
  redis.call('DEL', key)
end
return #KEYS
