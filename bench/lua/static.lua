-- One fixed request (wrk builds it once): /health, /categories, a product page.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
