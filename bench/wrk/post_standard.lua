-- POST a new lead of the standard app (metadata/objects/lead.yaml), with a phone and a
-- mobile number no other request and no generated lead has, so its two `block` duplicate
-- keys are checked on every request and never refuse one. The numbers start from the time
-- the script starts, so the warm-up and the measured run (separate wrk processes) differ.
dofile(os.getenv("KEEL_BENCH_LUA_DIR") .. "/common.lua")

local path = os.getenv("KEEL_BENCH_PATH")
local counter = 0
local base = 0

wrk.headers["Content-Type"] = "application/json"

function init(args)
   base = (os.time() % 100000) * 100000
end

function request()
   counter = counter + 1
   local thread_tag = thread_number or 0
   local number = base + counter
   local body = string.format(
      '{"name":"压测线索 %d-%d","company":"上海压测科技有限公司","phone":"17%d%011d",' ..
      '"mobile":"16%d%011d","email":"bench%d.%d@example.com","source":"web","status":"new",' ..
      '"score":%d}',
      thread_tag, number, thread_tag, number, thread_tag, number, thread_tag, number,
      counter % 101)
   return wrk.format("POST", path, nil, body)
end
