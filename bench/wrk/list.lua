-- GET one filtered, ordered page: the URL given to wrk already holds the query string.
dofile(os.getenv("KEEL_BENCH_LUA_DIR") .. "/common.lua")
