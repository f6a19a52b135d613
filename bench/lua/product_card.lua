-- GET /api/v1/products/{id}, walking over every product id.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local first = tonumber(os.getenv("BENCH_PRODUCT_MIN") or "1")
local count = tonumber(os.getenv("BENCH_PRODUCT_MAX") or "1000") - first + 1
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

local n = 0
function request()
  -- Threads start at different places and stride over the ids (7 is coprime with 1000).
  n = n + 1
  local id = first + ((n * 7 + (thread_id or 0) * 500) % count)
  return wrk.format("GET", "/api/v1/products/" .. id)
end
