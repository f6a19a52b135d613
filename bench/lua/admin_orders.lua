-- GET /api/v1/admin/orders?status=<S>&limit=20 as a program with ADMIN_API_TOKEN: the
-- first page of each status in turn, as the admin panel's board asks for them. Over the
-- generated data DELIVERED holds 89 % of the orders, PENDING 1 %, CONFIRMED and PROCESSING
-- none: the list and its X-Total-Count must be fast for all of them.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local token = "Bearer " .. os.getenv("BENCH_ADMIN_TOKEN")
local statuses = { "PENDING", "CONFIRMED", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED" }

local n = 0
function request()
  n = n + 1
  local status = statuses[(n % #statuses) + 1]
  return wrk.format("GET", wrk.path .. "?status=" .. status .. "&limit=20",
    { ["Authorization"] = token })
end
