-- Shared by the wrk scripts of bench/run.sh: the bearer token from the environment, and one
-- machine-readable result line (requests/s, p50 and p99 in microseconds, errors) that run.sh
-- parses. wrk gives each thread its own Lua state, so nothing here is shared between threads.

local token = os.getenv("KEEL_BENCH_TOKEN")
if token ~= nil and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end

-- Numbers each thread (1, 2, …) so scripts can give each thread its own ids or names; the
-- value is the global `thread_number` in the thread's own Lua state.
local threads_seen = 0
function setup(thread)
   threads_seen = threads_seen + 1
   thread:set("thread_number", threads_seen)
end

function done(summary, latency, requests)
   local seconds = summary.duration / 1000000
   local errors = summary.errors
   io.write(string.format(
      "KEEL_BENCH_RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
      summary.requests,
      summary.requests / seconds,
      latency:percentile(50),
      latency:percentile(99),
      errors.status,
      errors.connect + errors.read + errors.write + errors.timeout))
end
