-- holds.lua - wrk script: POST /v1/holds with a varied body.
--
--   wrk -t2 -c32 -d10s --latency -s bench/holds.lua http://127.0.0.1:PORT -- SKUS TTL_MS [PREFIX]
--
-- SKUS = 0: every hold is on the one hot sku named "hot".
-- SKUS = N: each hold names a random sku PREFIX0 .. PREFIX(N-1) (PREFIX "s-").
-- Customers cycle over 10,000 names. The requests are built in init(), a
-- table of them per thread, so that wrk spends its time sending, not in Lua.
-- done() prints one machine-readable line, "HF_WRK key=value ...".

local reqs = {}
local n_reqs = 0
local i = 0

function init(args)
   local skus = tonumber(args[1] or "0")
   local ttl = tonumber(args[2] or "5000")
   local prefix = args[3] or "s-"
   -- Each thread gets its own sequence (wrk seeds nothing per thread).
   math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
   n_reqs = skus == 0 and 10000 or math.max(10000, skus)
   local headers = {["Content-Type"] = "application/json"}
   for k = 1, n_reqs do
      local sku = skus == 0 and "hot" or (prefix .. math.random(0, skus - 1))
      local body = string.format(
         '{"customer":"c-%d","lines":[{"sku":"%s","qty":1}],"ttl_ms":%d}',
         math.random(0, 9999), sku, ttl)
      reqs[k] = wrk.format("POST", "/v1/holds", headers, body)
   end
end

function request()
   i = i + 1
   if i > n_reqs then i = 1 end
   return reqs[i]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "HF_WRK requests=%d duration_s=%.3f rps=%.0f p50_us=%d p90_us=%d p99_us=%d p999_us=%d " ..
      "max_us=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
