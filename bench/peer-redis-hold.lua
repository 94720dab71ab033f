-- bench/peer-redis-hold.lua - a hold as a Redis-backed shop would do it, the
-- Redis+Lua peer of bench/run.sh's `peers` group (docs/BENCHMARKS.md).
-- Run with EVALSHA sha 1 SKU_KEY QTY CUSTOMER TTL_MS. A script runs
-- atomically, so the check and the writes need no lock and no retry.
--
-- The data:
--   SKU_KEY        hash: stock, held, sold (available = stock - held - sold)
--   holds:next     counter: the last hold id given out
--   hold:ID        hash: sku, qty, customer, expires_ms
--   holds:expiry   sorted set: hold id scored by its expiry (ms), for a
--                  sweeper to release what has expired (none runs here)
--
-- Returns the new hold's id, or 0 when there is not enough available.
-- Hold keys are not declared in KEYS: fine on one server, not on a cluster.
local sku = KEYS[1]
local qty = tonumber(ARGV[1])
local customer = ARGV[2]
local ttl_ms = tonumber(ARGV[3])
if not qty or qty < 1 or not ttl_ms or ttl_ms < 1 then
    return redis.error_reply('bad qty or ttl_ms')
end
local v = redis.call('HMGET', sku, 'stock', 'held', 'sold')
if not v[1] then
    return redis.error_reply('no such sku')
end
if tonumber(v[1]) - tonumber(v[2] or 0) - tonumber(v[3] or 0) < qty then
    return 0
end
redis.call('HINCRBY', sku, 'held', qty)
local id = redis.call('INCR', 'holds:next')
-- Redis 7 replicates a script's effects, not the script, so TIME is allowed.
local now = redis.call('TIME')
local expires_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + ttl_ms
redis.call('HSET', 'hold:' .. id, 'sku', sku, 'qty', qty, 'customer', customer,
    'expires_ms', expires_ms)
redis.call('ZADD', 'holds:expiry', expires_ms, id)
return id
