-- Per-customer Authorization headers: bench/run.sh signs one `tma <initData>` per customer
-- into BENCH_AUTH_FILE (a line each); every request carries one customer's own header.
local auth = {}
for line in io.lines(os.getenv("BENCH_AUTH_FILE")) do
  if line ~= "" then auth[#auth + 1] = line end
end
assert(#auth > 0, "no signed headers in " .. os.getenv("BENCH_AUTH_FILE"))

local threads = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

local n = 0
-- The next customer's header: threads take turns, so two threads never share a customer.
function next_customer()
  n = n + 1
  local index = ((n * 2 + (thread_id or 0)) % #auth) + 1
  return auth[index], index
end
