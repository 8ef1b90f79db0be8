#!lua
-- Claim trigger timers that are due: members of KEYS[1] scored at or before ARGV[1] (the
-- cutoff: now - allowed lateness, in event time), at most ARGV[3] of them. Each claimed
-- member is scored cutoff + ARGV[2] (the lease): another loop claims it again only after
-- the lease ran out, unless a profile change woke it meanwhile (a lower score).
-- Returns the lease score and the members.
local cutoff, lease = tonumber(ARGV[1]), tonumber(ARGV[1]) + tonumber(ARGV[2])
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(found) do redis.call('ZADD', KEYS[1], lease, member) end
return {tostring(lease), found}
