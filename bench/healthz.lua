-- healthz.lua - wrk script: GET /healthz, the fixed-reply baseline. The
-- handler touches neither the engine nor the journal, so this measures the
-- HTTP library and the loopback, the ceiling for any route.
--
--   wrk -t2 -c32 -d10s --latency -s bench/healthz.lua http://127.0.0.1:PORT

wrk.method = "GET"
wrk.path = "/healthz"

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "HF_WRK requests=%d duration_s=%.3f rps=%.0f p50_us=%d p90_us=%d p99_us=%d p999_us=%d " ..
      "max_us=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
