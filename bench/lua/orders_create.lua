-- POST /api/v1/orders: a 3-line order, each from one customer's own signed header.
-- Products a, a-1, a-2 with a a multiple of 5 (limited stock, so every order takes stock)
-- in 200 groups, as bench/order.pgbench.sql picks them.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
dofile(os.getenv("BENCH_LUA_DIR") .. "/auth.lua")

local body = '{"items":[{"product_id":%d,"quantity":1},{"product_id":%d,"quantity":1},'
  .. '{"product_id":%d,"quantity":1}],"delivery_address":"г. Москва, ул. Пушкина, д. 10, кв. 5",'
  .. '"phone":"+79001234567","comment":"Домофон не работает"}'

local sent = 0
function request()
  local header, index = next_customer()
  sent = sent + 1
  local a = 5 * ((index * 37 + sent) % 200) + 5
  return wrk.format("POST", "/api/v1/orders", {
    ["Authorization"] = header,
    ["Content-Type"] = "application/json",
  }, string.format(body, a, a - 1, a - 2))
end
