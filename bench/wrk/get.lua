-- GET one record by id, cycling through the ids keel-bench-gen sampled (KEEL_BENCH_IDS, one
-- per line), each thread from its own starting point. KEEL_BENCH_PATH is the path
-- prefix: /api/v1/records/lead/ for Keel, /lead/ for the baseline. KEEL_BENCH_SUFFIX, when
-- set, follows the id (bench/pages.sh asks for /app/lead/<id>/edit).
dofile(os.getenv("KEEL_BENCH_LUA_DIR") .. "/common.lua")

local prefix = os.getenv("KEEL_BENCH_PATH")
local suffix = os.getenv("KEEL_BENCH_SUFFIX") or ""
local ids = {}
local next_index = 1

function init(args)
   for line in io.lines(os.getenv("KEEL_BENCH_IDS")) do
      ids[#ids + 1] = line
   end
   if #ids == 0 then
      error("no ids in " .. os.getenv("KEEL_BENCH_IDS"))
   end
   next_index = ((thread_number or 1) * 7919) % #ids + 1
end

function request()
   local id = ids[next_index]
   next_index = next_index % #ids + 1
   return wrk.format("GET", prefix .. id .. suffix)
end
