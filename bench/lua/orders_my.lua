-- GET /api/v1/orders/my (the first page, newest first) as one customer after another.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
dofile(os.getenv("BENCH_LUA_DIR") .. "/auth.lua")

function request()
  local header = next_customer()
  return wrk.format("GET", "/api/v1/orders/my", { ["Authorization"] = header })
end
