-- One removal of a customer, shared by write_clusters.lua (the resolver: a customer merged
-- away or split off) and erase.lua (an erasure); a function chunk the loader puts in front of
-- those scripts (store/scripts.py).
--
-- Removes the customer's profile (P:cust), its entry in the clusters `clusters` (the field
-- c:<cid> of P:cl:<cluster>), its funnel row and survey answers, its stage entry (the profile's
-- current stage) and reached entries (the stages of its history), its account memberships
-- (P:acct:<groupId>:members), its trigger timers (P:trg:due members <cid><US><trigger>, for
-- each name in `triggers`) and its stored firings (P:trg:s:<cid>): a firing loop that read a
-- timer before the removal then finds it gone and stores nothing (trigger_commit.lua).
-- p: the prefix; cid: the customer id; profile: its last profile, decoded (only `stage`,
-- `history` and `accounts` are read, named so in both forms of store/codecs.py); clusters: a
-- list of cluster ids; triggers: the trigger names whose timers go; stages (optional): more
-- stages whose stage and reached entries go as well (erasure: every stage it knows of).
local function remove_customer(p, cid, profile, clusters, triggers, stages)
  local current, reached = {}, {}
  local stage = profile.stage
  if type(stage) == 'string' and stage ~= '' then current[stage] = true end
  if type(profile.history) == 'table' then
    for stage, _ in pairs(profile.history) do reached[stage] = true end
  end
  for _, stage in ipairs(stages or {}) do
    current[stage] = true
    reached[stage] = true
  end
  for stage, _ in pairs(current) do redis.call('ZREM', p .. ':stage:' .. stage, cid) end
  for stage, _ in pairs(reached) do redis.call('ZREM', p .. ':reached:' .. stage, cid) end
  if type(profile.accounts) == 'table' then
    for group_id, _ in pairs(profile.accounts) do
      redis.call('SREM', p .. ':acct:' .. group_id .. ':members', cid)
    end
  end
  redis.call('DEL', p .. ':cust:' .. cid)
  for _, cluster in ipairs(clusters) do
    redis.call('HDEL', p .. ':cl:' .. cluster, 'c:' .. cid)
  end
  redis.call('HDEL', p .. ':funnel', cid)
  redis.call('HDEL', p .. ':surveys', cid)
  for _, name in ipairs(triggers) do
    redis.call('ZREM', p .. ':trg:due', cid .. '\31' .. name)
  end
  redis.call('DEL', p .. ':trg:s:' .. cid)
end

