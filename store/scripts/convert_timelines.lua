#!lua
-- Layout 4: a timeline (KEYS[1]) gets its entries in the compact form. ARGV holds (old
-- member, new member) pairs computed by the processor (store/codecs.py: decode the JSON
-- object older versions wrote, encode it again); each new member keeps the old one's score
-- (the event time). A pair whose old member is gone (rewritten meanwhile) is skipped.
-- Returns 1 if any entry was replaced, else 0.
local done = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZADD', KEYS[1], score, ARGV[i + 1])
    done = 1
  end
end
return done
