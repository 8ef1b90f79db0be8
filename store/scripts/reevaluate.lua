#!lua
-- Rewrite anchors' stage candidates under new rules (processor/reevaluation.py computes the
-- rewrite from what it read), each only if no event was applied to the anchor since it was
-- read: its 'c:events' count is unchanged (every applied event adds one). Sets 'rv', the
-- rules version the candidates now follow.
--
-- ARGV: prefix, rules version, max_purchases, then per anchor: identifier, the 'c:events'
-- read, and a JSON rewrite {delete = [field…], set = {field = value}, cond_remove = [member…],
-- cond_add = [score, member, …], buys_remove = [messageId…], buys_add = [ms, messageId, …]}
-- (purchases kept to the same bound as ingest.lua keeps them; the active days are d:<day>
-- hash fields, in delete and set, already bounded).
-- Returns the identifiers that changed since they were read (to read and rewrite again).
local p, version = ARGV[1], ARGV[2]
local max_buys = tonumber(ARGV[3])
local SLICE = 1000
local stale = {}

local function sliced(command, key, args)
  for start = 1, #args, SLICE do
    redis.call(command, key, unpack(args, start, math.min(start + SLICE - 1, #args)))
  end
end

-- Keep the latest `bound` members of a sorted set.
local function bounded(key, bound)
  local n = redis.call('ZCARD', key)
  if n > bound then redis.call('ZREMRANGEBYRANK', key, 0, n - bound - 1) end
end

for i = 4, #ARGV, 3 do
  local a = p .. ':a:' .. ARGV[i]
  local data = a .. ':data'
  local events = redis.call('HGET', data, 'c:events')
  if events and events ~= ARGV[i + 1] then
    stale[#stale + 1] = ARGV[i]
  elseif events then  -- (an anchor erased meanwhile has nothing left to rewrite)
    local w = cjson.decode(ARGV[i + 2])
    if #w.delete > 0 then sliced('HDEL', data, w.delete) end
    local sets = {'rv', version}
    for field, value in pairs(w.set) do
      sets[#sets + 1] = field
      sets[#sets + 1] = value
    end
    sliced('HSET', data, sets)
    if #w.cond_remove > 0 then sliced('ZREM', a .. ':cond', w.cond_remove) end
    if #w.cond_add > 0 then
      sliced('ZADD', a .. ':cond', w.cond_add)
      redis.call('ZREMRANGEBYRANK', a .. ':cond', 2000, -1)
      redis.call('HSET', data, 'cond', '1')
    end
    if #w.buys_remove > 0 then sliced('ZREM', a .. ':buys', w.buys_remove) end
    if #w.buys_add > 0 then
      sliced('ZADD', a .. ':buys', w.buys_add)
      bounded(a .. ':buys', max_buys)
    end
  end
end
return stale
