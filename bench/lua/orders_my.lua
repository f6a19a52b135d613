-- GET /api/v1/orders/my (the first page, newest first) as one customer after another, at
-- the path run.sh gives (its query string sets the page size).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
dofile(os.getenv("BENCH_LUA_DIR") .. "/auth.lua")

function request()
  local header = next_customer()
  return wrk.format("GET", wrk.path, { ["Authorization"] = header })
end
