-- After a failed webhook attempt (infra/webhook_store.py).
-- KEYS: jobs (hash), due (sorted set), dead (hash).
-- 'retry' stores the job again due at ARGV[4], 'dead' moves it to the dead letters; nothing
-- when the job is gone (an erasure removed it during the attempt).
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return 0 end
if ARGV[1] == 'retry' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
else
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 1
