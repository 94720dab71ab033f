-- holds.lua - wrk script: POST /v1/holds with a varied body.
--
--   wrk -t2 -c32 -d10s --latency -s bench/holds.lua http://127.0.0.1:PORT -- \
--       SKUS TTL_MS [PREFIX [BUYERS]]
--
-- SKUS = 0: every hold is on the one hot sku named "hot".
-- SKUS = N: each hold names a random sku PREFIX0 .. PREFIX(N-1) (PREFIX "s-").
-- BUYERS absent or 0: customers are drawn from 10,000 names, no ip (the
-- core benchmark, run with the defenses off). BUYERS = N: each thread cycles
-- through N distinct buyers of its own, each with its own customer id and an
-- IPv4 address in its own /24, as a flash sale's crowd would look to the
-- defenses (enough of them that the default policy lets every hold through).
-- The requests are built in init(), a table of them per thread, so that wrk
-- spends its time sending, not in Lua.
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
   local buyers = tonumber(args[4] or "0")
   local me = math.random(0, 99999) -- this thread's buyers' names and addresses
   n_reqs = math.max(10000, skus, buyers)
   local headers = {["Content-Type"] = "application/json"}
   for k = 1, n_reqs do
      local sku = skus == 0 and "hot" or (prefix .. math.random(0, skus - 1))
      local body
      if buyers > 0 then
         local b = (k - 1) % buyers
         body = string.format(
            '{"customer":"b-%d-%d","ip":"%d.%d.%d.7","lines":[{"sku":"%s","qty":1}],"ttl_ms":%d}',
            me, b, 11 + me % 200, math.floor(b / 256) % 256, b % 256, sku, ttl)
      else
         body = string.format(
            '{"customer":"c-%d","lines":[{"sku":"%s","qty":1}],"ttl_ms":%d}',
            math.random(0, 9999), sku, ttl)
      end
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
