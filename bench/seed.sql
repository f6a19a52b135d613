-- BotShop benchmark data, generated reproducibly: the same variables always give the same
-- rows (every value is arithmetic on generate_series, nothing is random).
--
--   psql -v users=10000 -v orders=100000 -f bench/seed.sql   (on a freshly migrated database)
--
-- 20 categories × 50 products (every fifth one with a limited stock of 1 000 000, the rest
-- unlimited), :users customers, :orders orders of 1–5 lines spread over a year and evenly
-- over the customers (:orders / :users each), and one SENT outbox event per order, so the
-- notification relay has nothing to do.
--
-- Formulas other bench files rely on (keep them in step):
--   users.telegram_id     = 100000000 + users.id
--   products.price_minor  = 9900 + (id * 7919) % 190000
--   products.stock        = 1000000 when id % 5 = 0, else NULL (unlimited)

\set ON_ERROR_STOP on
SET client_min_messages = warning;
-- A throwaway database: losing the last transactions in a crash would not matter.
SET synchronous_commit = off;

BEGIN;

INSERT INTO categories (id, name, slug, sort_order)
SELECT c, (ARRAY['Пицца', 'Суши и роллы', 'Бургеры', 'Салаты', 'Супы', 'Десерты', 'Напитки',
                 'Завтраки', 'Паста', 'Выпечка', 'Гриль', 'Вок', 'Закуски', 'Соусы',
                 'Детское меню', 'Постное меню', 'Морепродукты', 'Стейки', 'Кофе', 'Чай'])[c],
       (ARRAY['pizza', 'sushi', 'burgers', 'salads', 'soups', 'desserts', 'drinks',
              'breakfast', 'pasta', 'bakery', 'grill', 'wok', 'snacks', 'sauces', 'kids',
              'lenten', 'seafood', 'steaks', 'coffee', 'tea'])[c],
       c
FROM generate_series(1, 20) AS c;

-- search_text as domain::catalog::product_search_text computes it: lower case (Cyrillic
-- by translate, so that it does not depend on the database's locale), ё folded into е,
-- single spaces. The generated texts have no runs of white space to collapse.
-- Every product at revision 0, which bench/order.pgbench.sql's statement compares with
-- (a new product would otherwise take the next value of products_revision_seq).
INSERT INTO products (id, category_id, name, description, price_minor, images, is_active,
                      sort_order, stock, search_text, created_at, updated_at, revision)
SELECT id, category_id, name, description, price_minor, jsonb_build_array(image_url)::text,
       true, sort_order, stock,
       lower(translate(coalesce(name || ' ' || description, name),
                       'АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯё',
                       'абвгдеежзийклмнопрстуфхцчшщъыьэюяе')),
       created_at, created_at, 0
FROM (
    SELECT (c - 1) * 50 + k AS id,
           c AS category_id,
           (ARRAY['Пицца', 'Ролл', 'Бургер', 'Салат', 'Суп', 'Десерт', 'Напиток', 'Завтрак',
                  'Паста', 'Пирог', 'Шашлык', 'Лапша', 'Закуска', 'Соус', 'Набор', 'Блюдо',
                  'Креветки', 'Стейк', 'Кофе', 'Чай'])[c]
             || ' «' || (ARRAY['Фирменный', 'Классика', 'Острый', 'Домашний', 'Макси',
                              'Мини', 'Сезонный', 'Ёлочный', 'Особый', 'Летний'])[(k - 1) % 10 + 1]
             || '» №' || k AS name,
           CASE WHEN ((c - 1) * 50 + k) % 17 = 0 THEN NULL
                ELSE 'Свежие ингредиенты, порция ' || (200 + k * 10) || ' г. Готовим за '
                     || (10 + k % 20) || ' минут, доставка горячим.'
           END AS description,
           9900 + (((c - 1) * 50 + k) * 7919) % 190000 AS price_minor,
           'https://cdn.example.com/products/' || ((c - 1) * 50 + k) || '.jpg' AS image_url,
           k AS sort_order,
           CASE WHEN ((c - 1) * 50 + k) % 5 = 0 THEN 1000000 END AS stock,
           timestamptz '2025-01-01 00:00:00+00' + make_interval(mins => (c - 1) * 50 + k) AS created_at
    FROM generate_series(1, 20) AS c, generate_series(1, 50) AS k
) AS generated;

INSERT INTO users (id, telegram_id, username, first_name, last_name, created_at, updated_at)
SELECT u, 100000000 + u,
       CASE WHEN u % 11 = 0 THEN NULL ELSE 'buyer' || u END,
       (ARRAY['Иван', 'Мария', 'Алексей', 'Анна', 'Дмитрий', 'Елена', 'Сергей', 'Ольга',
              'Андрей', 'Наталья', 'Михаил', 'Татьяна', 'Николай', 'Ирина', 'Павел',
              'Светлана', 'Артём', 'Юлия', 'Максим', 'Ксения'])[u % 20 + 1],
       CASE WHEN u % 7 = 0 THEN NULL
            ELSE (ARRAY['Иванов', 'Смирнов', 'Кузнецов', 'Попов', 'Васильев', 'Петров',
                        'Соколов', 'Михайлов', 'Новиков', 'Фёдоров'])[u % 10 + 1]
       END,
       timestamptz '2024-06-01 00:00:00+00' + make_interval(mins => u),
       timestamptz '2024-06-01 00:00:00+00' + make_interval(mins => u)
FROM generate_series(1, :users) AS u;

COMMIT;

-- Lines first, in a scratch table: each order's total is the sum of its lines.
-- Order i has 1 + (i * 31) % 5 lines; line j is product ((i * 13 + j * 97) % 1000) + 1
-- (five distinct products at most), quantity 1–3.
CREATE TEMP TABLE generated_lines AS
SELECT o AS order_id, j AS line, ((o * 13 + j * 97) % 1000) + 1 AS product_id,
       1 + (o + j) % 3 AS quantity
FROM generate_series(1, :orders) AS o,
     LATERAL generate_series(0, (o * 31) % 5) AS j;

BEGIN;

-- Customer (i * 7919) % users + 1: 7919 is prime, so every customer gets exactly
-- orders / users orders, spread over the year rather than bunched.
INSERT INTO orders (id, user_id, status, total_amount_minor, delivery_address, phone, comment,
                    created_at, updated_at)
SELECT o, (o::bigint * 7919) % :users + 1,
       CASE WHEN o > :orders - :orders / 100 THEN 'PENDING'
            WHEN o % 20 = 0 THEN 'CANCELLED'
            WHEN o % 20 = 1 THEN 'SHIPPED'
            ELSE 'DELIVERED' END,
       totals.total,
       'г. Москва, ул. ' || (ARRAY['Ленина', 'Пушкина', 'Гагарина', 'Тверская', 'Арбат',
                                   'Садовая', 'Мира', 'Лесная', 'Школьная', 'Советская'])[o % 10 + 1]
         || ', д. ' || (o % 150 + 1) || ', кв. ' || (o % 300 + 1),
       '+7900' || lpad(((o::bigint * 7919) % 10000000)::text, 7, '0'),
       CASE WHEN o % 4 = 0 THEN 'Позвонить за час до доставки' END,
       timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => o * (31536000.0 / :orders)),
       timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => o * (31536000.0 / :orders) + 3600)
FROM generate_series(1, :orders) AS o
JOIN (SELECT g.order_id, sum(g.quantity * p.price_minor) AS total
      FROM generated_lines AS g JOIN products AS p ON p.id = g.product_id
      GROUP BY g.order_id) AS totals ON totals.order_id = o;

INSERT INTO order_items (order_id, product_id, product_name, quantity, price_minor)
SELECT g.order_id, g.product_id, p.name, g.quantity, p.price_minor
FROM generated_lines AS g JOIN products AS p ON p.id = g.product_id
ORDER BY g.order_id, g.line;

-- Delivered long ago: the relay finds nothing to do.
INSERT INTO outbox_events (kind, order_id, status, attempts, next_attempt_at, telegram_message_id,
                           created_at, sent_at)
SELECT 'order_created', id, 'SENT', 0, created_at, id, created_at, created_at + interval '2 seconds'
FROM orders ORDER BY id;

COMMIT;

DROP TABLE generated_lines;

-- Explicit ids were inserted: move every identity past them, so the application's inserts
-- do not collide.
SELECT setval(pg_get_serial_sequence('categories', 'id'), (SELECT max(id) FROM categories));
SELECT setval(pg_get_serial_sequence('products', 'id'), (SELECT max(id) FROM products));
SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));
SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders));

VACUUM (ANALYZE) categories, products, users, orders, order_items, outbox_events;
