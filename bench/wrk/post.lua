-- POST a new lead with a different name (and score) on every request, to KEEL_BENCH_PATH
-- (/api/v1/records/lead for Keel, /lead for the baseline). Status is `new`, so the created
-- leads do not change the `status=eq.qualified` page.
dofile(os.getenv("KEEL_BENCH_LUA_DIR") .. "/common.lua")

local path = os.getenv("KEEL_BENCH_PATH")
local counter = 0

wrk.headers["Content-Type"] = "application/json"

function request()
   counter = counter + 1
   local thread_tag = thread_number or 0
   local body = string.format(
      '{"name":"压测线索 %d-%d","company":"上海压测科技有限公司","phone":"138%08d",' ..
      '"email":"bench%d.%d@example.com","source":"web","status":"new","score":%d}',
      thread_tag, counter, counter % 100000000, thread_tag, counter, counter % 101)
   return wrk.format("POST", path, nil, body)
end
