-- Split an identifier off its customer (api/splits.py): block it in its cluster.
-- ARGV: prefix, identifier, record JSON → the identifier's cluster, or false.
local p, id, record = ARGV[1], ARGV[2], ARGV[3]
local cluster = redis.call('GET', p .. ':id:' .. id)
if not cluster then return false end
local cl = p .. ':cl:' .. cluster  -- one hash (store/keys.py ClusterFields)
redis.call('HSET', cl, 'b:' .. id, record)
redis.call('HINCRBY', cl, 'v', 1)  -- a resolution in flight re-reads
redis.call('SADD', p .. ':rederive', cluster)
return cluster
