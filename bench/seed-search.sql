-- The benchmark's search catalog (bash bench/run.sh --search): products up to 100 000 in
-- all, in 20 more categories than bench/seed.sql's (so that its category pages stay as
-- they are), generated reproducibly (arithmetic on generate_series, nothing random).
--
--   psql -f bench/seed.sql ... && psql -f bench/seed-search.sql   (after seed.sql)
--
-- Each generated product is named "<adjective> <noun> №<id>" and described as "Порция
-- <g> г, к нему <adjective> <noun>." with words from the two lists below (60 × 60 = 3 600
-- pairs). The adjective-noun pair of the name goes through the 3 600 pairs in turn and
-- the description's is spread by multiplication, so a search for one pair ("острый суп")
-- matches about 27 names and 27 descriptions: about 55 of the 100 000 products, a page.
-- bench/lua/search.lua draws its queries from the same lists (keep them in step).

\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET synchronous_commit = off;

BEGIN;

CREATE TEMPORARY TABLE search_words (adjectives text[], nouns text[]) ON COMMIT DROP;
INSERT INTO search_words VALUES (
  ARRAY['Острый', 'Сырный', 'Грибной', 'Томатный', 'Куриный', 'Рыбный', 'Овощной', 'Мясной',
        'Сливочный', 'Домашний', 'Фирменный', 'Летний', 'Зимний', 'Лёгкий', 'Пряный',
        'Сладкий', 'Горячий', 'Холодный', 'Свежий', 'Копчёный', 'Жареный', 'Печёный',
        'Тёплый', 'Хрустящий', 'Нежный', 'Сочный', 'Пикантный', 'Ароматный', 'Медовый',
        'Ореховый', 'Лимонный', 'Апельсиновый', 'Ягодный', 'Вишнёвый', 'Клубничный',
        'Яблочный', 'Шоколадный', 'Карамельный', 'Ванильный', 'Мятный', 'Имбирный',
        'Чесночный', 'Луковый', 'Перечный', 'Укропный', 'Базиликовый', 'Тыквенный',
        'Морковный', 'Свекольный', 'Капустный', 'Картофельный', 'Рисовый', 'Гречневый',
        'Пшеничный', 'Ржаной', 'Кокосовый', 'Банановый', 'Манговый', 'Греческий',
        'Итальянский'],
  ARRAY['суп', 'салат', 'ролл', 'бургер', 'пирог', 'стейк', 'соус', 'чай', 'морс',
        'коктейль', 'десерт', 'торт', 'хлеб', 'плов', 'шашлык', 'омлет', 'сэндвич', 'кекс',
        'сок', 'лимонад', 'рулет', 'борщ', 'гуляш', 'бифштекс', 'кебаб', 'шницель', 'пудинг',
        'бульон', 'завтрак', 'обед', 'ужин', 'набор', 'сет', 'маффин', 'чизкейк', 'круассан',
        'багет', 'лаваш', 'блинчик', 'тост', 'кофе', 'эклер', 'пончик', 'кисель', 'компот',
        'квас', 'коржик', 'сырник', 'драник', 'голубец', 'гарнир', 'паштет', 'чебурек',
        'беляш', 'расстегай', 'курник', 'рамен', 'тартар', 'каравай', 'крендель']);

INSERT INTO categories (id, name, slug, sort_order)
SELECT 20 + c, 'Каталог ' || c, 'catalog-' || c, 20 + c FROM generate_series(1, 20) AS c;
SELECT setval(pg_get_serial_sequence('categories', 'id'), (SELECT max(id) FROM categories));

-- search_text as seed.sql computes it (lower case by translate, ё folded into е).
INSERT INTO products (id, category_id, name, description, price_minor, images, is_active,
                      sort_order, stock, search_text, created_at, updated_at, revision)
SELECT id, 21 + id % 20, name, description, 9900 + (id * 7919) % 190000,
       jsonb_build_array('https://cdn.example.com/products/' || id || '.jpg')::text,
       true, id, CASE WHEN id % 5 = 0 THEN 1000000 END,
       lower(translate(name || ' ' || description,
                       'АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯё',
                       'абвгдеежзийклмнопрстуфхцчшщъыьэюяе')),
       timestamptz '2025-01-01 00:00:00+00' + make_interval(mins => id),
       timestamptz '2025-01-01 00:00:00+00' + make_interval(mins => id), 0
FROM (
    SELECT id,
           adjectives[id % 60 + 1] || ' ' || nouns[id / 60 % 60 + 1] || ' №' || id AS name,
           'Порция ' || (150 + id % 30 * 10) || ' г, к нему '
             || lower(translate(adjectives[id * 7 % 60 + 1], 'АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ',
                                'абвгдеёжзийклмнопрстуфхцчшщъыьэюя'))
             || ' ' || nouns[id * 13 / 60 % 60 + 1] || '.' AS description
    FROM search_words, generate_series((SELECT max(id)::int + 1 FROM products), 100000) AS id
) AS generated;

SELECT setval(pg_get_serial_sequence('products', 'id'), (SELECT max(id) FROM products));

COMMIT;

-- As autovacuum would soon: the trigram index's pending entries merged into the index
-- proper (a search reads the pending list whole), and fresh statistics.
VACUUM ANALYZE products;
