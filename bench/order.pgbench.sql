-- The statements POST /api/v1/orders runs for bench/lua/orders_create.lua's 3-line order
-- (one line with limited stock), in the same round trips, as a pgbench script: the
-- database ceiling for placing one order.
--
-- Mirrors: crates/infra-postgres/src/orders.rs at ee07dae (bench/run.sh warns when that
-- file has changed since; update the statements below and this line together).
--
-- In one transaction: the products, locked FOR UPDATE in id order (products_for); the
-- stock of the one limited line (take_stock's single-line UPDATE; several limited lines
-- share one UPDATE ... FROM VALUES); the order, its lines and its outbox event in one CTE
-- (insert_order_in_one_statement). No user upsert: the benchmark's customers are
-- returning ones with an unchanged profile and session, whom the server's known-user
-- cache answers from memory after their first request.
--
-- pgbench -n -M prepared -D signed_users=2000 -f bench/order.pgbench.sql ...
-- Customers and products are picked as orders_create.lua picks them, and the prices follow
-- bench/seed.sql's formula, so the lines carry the real prices.
\set uid random(1, :signed_users)
\set k random(0, 199)
\set a 5 * :k + 5
\set b :a - 1
\set c :a - 2
\set pa 9900 + (:a * 7919) % 190000
\set pb 9900 + (:b * 7919) % 190000
\set pc 9900 + (:c * 7919) % 190000
\set total :pa + :pb + :pc
\set q 1
BEGIN;
SELECT "products"."id", "products"."category_id", "products"."name", "products"."description",
       "products"."price_minor", "products"."image_url", "products"."is_active",
       "products"."sort_order", "products"."stock", "products"."search_text",
       "products"."created_at", "products"."updated_at"
FROM "products" WHERE "products"."id" IN (:c, :b, :a) ORDER BY "products"."id" ASC FOR UPDATE;
UPDATE "products" SET "stock" = "stock" - :q WHERE "products"."id" = :a AND "products"."stock" >= :q;
WITH new_order AS (
    INSERT INTO "orders" ("user_id", "status", "total_amount_minor", "delivery_address", "phone", "comment", "created_at", "updated_at")
    VALUES (:uid, 'PENDING', :total, 'г. Москва, ул. Пушкина, д. 10, кв. 5', '+79001234567',
            'Домофон не работает', now(), now())
    RETURNING "id"
), new_lines AS (
    INSERT INTO "order_items" ("order_id", "product_id", "product_name", "quantity", "price_minor")
    SELECT new_order."id", line.product_id, line.product_name, line.quantity, line.price_minor
    FROM new_order, (VALUES (:a::bigint, 'Пицца «Макси» №5'::text, 1::integer, :pa::bigint, 0),
                            (:b::bigint, 'Пицца «Домашний» №4'::text, 1::integer, :pb::bigint, 1),
                            (:c::bigint, 'Пицца «Острый» №3'::text, 1::integer, :pc::bigint, 2))
         AS line (product_id, product_name, quantity, price_minor, position)
    ORDER BY line.position
), new_event AS (
    INSERT INTO "outbox_events" ("kind", "order_id", "status", "next_attempt_at", "created_at")
    SELECT 'order_created', new_order."id", 'PENDING', now(), now() FROM new_order
)
SELECT "id" FROM new_order;
COMMIT;
