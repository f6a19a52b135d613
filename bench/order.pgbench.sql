-- GENERATED from crates/infra-postgres/src/orders/place_postgres.rs (`placement_sql`) by
-- its test `the_pgbench_script_is_the_placement_statement`; do not edit by hand. Rewrite it
-- with: BOTSHOP_BLESS=1 cargo test -p infra-postgres pgbench
--
-- The statement POST /api/v1/orders sends for bench/lua/orders_create.lua's 3-line order
-- (one line with limited stock), as a pgbench script: the database ceiling for placing
-- one order. It is the one statement the server sends once it knows the products (after
-- its first order of them): no BEGIN/COMMIT, since one statement is its own transaction,
-- and no user upsert, since the benchmark's customers are returning ones with an
-- unchanged profile and session, whom the server's known-user cache answers from memory.
--
-- pgbench -n -M prepared -D signed_users=2000 -f bench/order.pgbench.sql ...
-- Customers and products are picked as orders_create.lua picks them; the prices and the
-- names follow bench/seed.sql's formulas (the names as SQL expressions, since pgbench
-- variables are numbers), and every product is at revision 0 (the benchmark never edits
-- one), so every order is placed.
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
WITH line (product_id, product_name, quantity, price_minor, revision, position) AS (
    VALUES (:a::bigint, ((ARRAY['Пицца', 'Ролл', 'Бургер', 'Салат', 'Суп', 'Десерт', 'Напиток', 'Завтрак', 'Паста', 'Пирог', 'Шашлык', 'Лапша', 'Закуска', 'Соус', 'Набор', 'Блюдо', 'Креветки', 'Стейк', 'Кофе', 'Чай'])[(:a - 1) / 50 + 1] || ' «' || (ARRAY['Фирменный', 'Классика', 'Острый', 'Домашний', 'Макси', 'Мини', 'Сезонный', 'Ёлочный', 'Особый', 'Летний'])[((:a - 1) % 50) % 10 + 1] || '» №' || ((:a - 1) % 50 + 1))::text, :q::integer, :pa::bigint, 0::bigint, 0),
           (:b::bigint, ((ARRAY['Пицца', 'Ролл', 'Бургер', 'Салат', 'Суп', 'Десерт', 'Напиток', 'Завтрак', 'Паста', 'Пирог', 'Шашлык', 'Лапша', 'Закуска', 'Соус', 'Набор', 'Блюдо', 'Креветки', 'Стейк', 'Кофе', 'Чай'])[(:b - 1) / 50 + 1] || ' «' || (ARRAY['Фирменный', 'Классика', 'Острый', 'Домашний', 'Макси', 'Мини', 'Сезонный', 'Ёлочный', 'Особый', 'Летний'])[((:b - 1) % 50) % 10 + 1] || '» №' || ((:b - 1) % 50 + 1))::text, :q::integer, :pb::bigint, 0::bigint, 1),
           (:c::bigint, ((ARRAY['Пицца', 'Ролл', 'Бургер', 'Салат', 'Суп', 'Десерт', 'Напиток', 'Завтрак', 'Паста', 'Пирог', 'Шашлык', 'Лапша', 'Закуска', 'Соус', 'Набор', 'Блюдо', 'Креветки', 'Стейк', 'Кофе', 'Чай'])[(:c - 1) / 50 + 1] || ' «' || (ARRAY['Фирменный', 'Классика', 'Острый', 'Домашний', 'Макси', 'Мини', 'Сезонный', 'Ёлочный', 'Особый', 'Летний'])[((:c - 1) % 50) % 10 + 1] || '» №' || ((:c - 1) % 50 + 1))::text, :q::integer, :pc::bigint, 0::bigint, 2)
), locked AS (
    SELECT product."id", product."category_id", product."name", product."price_minor",
           (product."is_active" AND product."category_id" IN (SELECT visible."id" FROM "categories" visible
    LEFT JOIN "categories" visible_parent ON visible_parent."id" = visible."parent_id"
    LEFT JOIN "categories" visible_grandparent
        ON visible_grandparent."id" = visible_parent."parent_id"
    WHERE visible."is_active"
        AND (visible_parent."id" IS NULL OR visible_parent."is_active")
        AND (visible_grandparent."id" IS NULL OR visible_grandparent."is_active"))) AS "is_active", product."sort_order", product."stock", product."revision",
           product."price_stars"
    FROM "products" AS product
    WHERE product."id" IN (:a, :b, :c)
    ORDER BY product."id"
    FOR UPDATE
), verdict AS (
    SELECT count(*) = 3 AS ok
    FROM locked JOIN line ON line.product_id = locked."id"
    WHERE locked."revision" = line.revision AND locked."is_active"
      AND (locked."stock" IS NULL OR locked."stock" >= line.quantity)
), taken AS (
    UPDATE "products" AS product SET "stock" = product."stock" - line.quantity
    FROM locked JOIN line ON line.product_id = locked."id", verdict
    WHERE verdict.ok AND product."id" = locked."id" AND locked."stock" IS NOT NULL
), new_order AS (
    INSERT INTO "orders" ("user_id", "status", "total_amount_minor", "delivery_address", "phone", "comment", "created_at", "updated_at",
                          "payment_status", "payment_currency", "payment_amount", "payment_due_by")
    SELECT :uid, 'PENDING', :total, 'г. Москва, ул. Пушкина, д. 10, кв. 5', '+79001234567', 'Домофон не работает', now(), now(), 'not_required', NULL, NULL::bigint, NULL::timestamptz FROM verdict WHERE verdict.ok
    RETURNING "id"
), new_lines AS (
    INSERT INTO "order_items" ("order_id", "product_id", "product_name", "quantity", "price_minor")
    SELECT new_order."id", line.product_id, line.product_name, line.quantity, line.price_minor
    FROM new_order, line
    ORDER BY line.position
), new_event AS (
    INSERT INTO "outbox_events" ("kind", "order_id", "status", "next_attempt_at", "created_at")
    SELECT 'order_created', new_order."id", 'PENDING', now(), now() FROM new_order
)
SELECT (SELECT "id" FROM new_order) AS "order_id", TRUE AS "key_free", locked.*
FROM locked;
