#!lua
-- Write the derived state of several clusters, each only if its version is unchanged.
--
-- ARGV, per cluster: its hash (P:cl:<cluster>, whose field 'v' is its version), the version
-- read, number of commands, then each command as its argument count followed by the command
-- and its arguments; a command written
-- IFEXISTS <key> <command> <arguments> runs only if <key> exists (the webhook outbox is written
-- only while there are subscriptions: a change nobody subscribed to is delivered to no one);
-- each such <key> is looked up once a call (no command of the resolver writes it).
-- The command 'remove-customer' (arguments: prefix, cluster, customer id, the profile's fields
-- as JSON, the trigger names as JSON) is not Redis's: it runs remove_customer (remove_customer.lua, put in front of this
-- script by the loader).
-- A cluster whose version moved (another processor changed it, or merged it away) gets none
-- of its commands run; the positions (from 1) of those clusters are returned, to derive again.
-- A cluster whose commands run gets its version bumped (compare-and-swap): another resolution
-- that read the same version derives again from what this one wrote, instead of writing (and
-- announcing) the same changes a second time.
local stale, exists = {}, {}
local i, position = 1, 0
while i <= #ARGV do
  local cluster_key, read, commands = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local current = (redis.call('HGET', cluster_key, 'v') or '0') == read
  i, position = i + 3, position + 1
  for _ = 1, commands do
    local n = tonumber(ARGV[i])
    if not current then
      -- none of the cluster's commands run
    elseif ARGV[i + 1] == 'remove-customer' then
      local triggers = cjson.decode(ARGV[i + 6])  -- a list; [] comes back as {}
      remove_customer(ARGV[i + 2], ARGV[i + 4], cjson.decode(ARGV[i + 5]), {ARGV[i + 3]}, triggers)
    elseif ARGV[i + 1] ~= 'IFEXISTS' then
      redis.call(unpack(ARGV, i + 1, i + n))
    else
      local key = ARGV[i + 2]
      if exists[key] == nil then exists[key] = redis.call('EXISTS', key) == 1 end
      if exists[key] then redis.call(unpack(ARGV, i + 3, i + n)) end
    end
    i = i + n + 1
  end
  if not current then
    stale[#stale + 1] = position
  elseif commands > 0 then
    redis.call('HINCRBY', cluster_key, 'v', 1)
  end
end
return stale
