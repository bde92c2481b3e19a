-- Claims pool records as many users at once (bench/pools.sh). Thread n signs in as the n-th
-- token of KEEL_BENCH_TOKENS (one per line) and claims, in order, every record of
-- KEEL_BENCH_IDS whose line number is n modulo KEEL_BENCH_LISTS: with twice as many threads
-- as lists, two users race for every record, so a claim can be lost (409) as well as won.
-- A thread stops when its list is done. KEEL_BENCH_POOL names the pool; KEEL_BENCH_PREFIX
-- goes before `/pools/…` (default `/api/v1`; empty for the baseline server).
dofile(os.getenv("KEEL_BENCH_LUA_DIR") .. "/common.lua")

local pool = os.getenv("KEEL_BENCH_POOL")
local lists = tonumber(os.getenv("KEEL_BENCH_LISTS"))
local prefix = os.getenv("KEEL_BENCH_PREFIX") or "/api/v1"
local mine = {}
local next_index = 1

function init(args)
   local tokens = {}
   for line in io.lines(os.getenv("KEEL_BENCH_TOKENS")) do
      tokens[#tokens + 1] = line
   end
   local n = thread_number or 1
   wrk.headers["Authorization"] = "Bearer " .. tokens[(n - 1) % #tokens + 1]
   local line_number = 0
   for line in io.lines(os.getenv("KEEL_BENCH_IDS")) do
      if line_number % lists == (n - 1) % lists then
         mine[#mine + 1] = line
      end
      line_number = line_number + 1
   end
end

function request()
   local id = mine[next_index]
   next_index = next_index + 1
   if id == nil then
      -- Asked once more after the last claim, before the stop takes effect.
      return wrk.format("GET", "/api/v1/healthz")
   end
   return wrk.format("POST", prefix .. "/pools/" .. pool .. "/records/" .. id .. "/claim")
end

function response(status, headers, body)
   if next_index > #mine then
      wrk.thread:stop()
   end
end
