-- Record the rules version a processor runs (processor/reevaluation.py).
-- KEYS: the rules hash; ARGV: version, now ms, total (clusters, about) → 'new' (first
-- versioned start), 'same' or 'changed' (a re-evaluation is now due).
local key, version, now, total = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local current = redis.call('HGET', key, 'version')
if not current then
  redis.call('HSET', key, 'version', version, 'unversioned', version, 'state', 'current')
  return 'new'
end
if current == version then return 'same' end
redis.call('HSET', key, 'previous', current, 'version', version, 'state', 'reevaluating',
  'cursor', '0', 'done', '0', 'total', total, 'started_ms', now, 'finished_ms', '')
return 'changed'
