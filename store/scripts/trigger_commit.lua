#!lua
-- Store what the firing loop decided for claimed timers, each only if its timer still holds
-- the lease score of the claim (a profile change woke it meanwhile: it is evaluated again
-- from fresh data instead). A firing is published only if its id was not stored yet
-- (HSETNX), a cancellation only if the firing was stored (HDEL): publishing is idempotent,
-- and so is counting each published one in its due day's count hash (P:trg:n:<day>).
--
-- KEYS: due sorted set, trigger outbox, webhook outbox, live stream, webhook subscriptions
-- (the webhook outbox is written only while there are some).
-- ARGV, per timer: member, lease, state key, next score ('' = none), number of decisions,
-- then each decision: kind (fire, cancel, forget), field, value, payload, count key ('' = not
-- counted), count field, count key's expiry (epoch s).
-- Returns the number of messages published.
local due, outbox, webhooks, live = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local subscribed = redis.call('EXISTS', KEYS[5]) == 1
local live_kept, webhook_kept = tonumber(ARGV[1]), tonumber(ARGV[2])
local i, published = 3, 0
while i <= #ARGV do
  local member, lease, state, next_score = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local decisions = tonumber(ARGV[i + 4])
  i = i + 5
  local score = redis.call('ZSCORE', due, member)
  local mine = score and tonumber(score) == tonumber(lease)
  for _ = 1, decisions do
    local kind, field, value, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local count_key, count_field, count_expiry = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
    i = i + 7
    if mine then
      local done = 0
      if kind == 'fire' then
        done = redis.call('HSETNX', state, field, value)
      elseif kind == 'cancel' then
        done = redis.call('HDEL', state, field)
      else
        redis.call('HDEL', state, field)
      end
      if done == 1 then
        redis.call('XADD', outbox, '*', 'change', payload)
        if subscribed then
          redis.call('XADD', webhooks, 'MAXLEN', '~', webhook_kept, '*', 'change', payload)
        end
        redis.call('XADD', live, 'MAXLEN', '~', live_kept, '*', 'change', payload)
        published = published + 1
        if count_key ~= '' then
          redis.call('HINCRBY', count_key, count_field, 1)
          redis.call('EXPIREAT', count_key, count_expiry)
        end
      end
    end
  end
  if mine then
    if next_score == '' then
      redis.call('ZREM', due, member)
    else
      redis.call('ZADD', due, next_score, member)
    end
  end
end
return published
