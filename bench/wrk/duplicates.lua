-- GET /records/lead/duplicates?mobile=… for a random generated lead's mobile number
-- (keel-bench-gen --mobile-prefix 139 gives row i the mobile 139 and i as 8 digits; there
-- are KEEL_BENCH_ROWS rows), so every lookup finds exactly one record.
dofile(os.getenv("KEEL_BENCH_LUA_DIR") .. "/common.lua")

local path = os.getenv("KEEL_BENCH_PATH")
local rows = tonumber(os.getenv("KEEL_BENCH_ROWS"))

function init(args)
   math.randomseed((thread_number or 1) * 7919 + os.time())
end

function request()
   return wrk.format("GET", string.format("%s?mobile=139%08d", path, math.random(0, rows - 1)))
end
