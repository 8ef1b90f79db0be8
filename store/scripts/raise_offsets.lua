-- Record a round's offsets (processor/offsets.py).
-- KEYS: offsets hash, incarnation counter; ARGV: the counter's least expected value, then
-- partition, offset, … → 0 if the counter is lower (Redis lost writes), else raise each
-- stored offset (never lower it) and 1.
if tonumber(redis.call('GET', KEYS[2]) or '-1') < tonumber(ARGV[1]) then return 0 end
for i = 2, #ARGV, 2 do
  local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > stored then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
