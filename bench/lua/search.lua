-- GET /api/v1/products?q=<adjective> <noun>&limit=<60..200>: a random two-word search
-- per request, from the words bench/seed-search.sql names its products with (keep them in
-- step), so that each search matches about 55 of the 100 000 products (27 for a few pairs).
--
-- Uncached: the server keeps at most 4 096 catalog answers, and the 3 600 word pairs
-- times the 141 limits make 507 600 different requests (a limit of 60 or more shows every
-- match, so each answer has the same products whatever the limit), so at most 0.8 % of
-- requests can find their answer in the cache.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local adjectives = {
  "острый", "сырный", "грибной", "томатный", "куриный", "рыбный", "овощной", "мясной",
  "сливочный", "домашний", "фирменный", "летний", "зимний", "лёгкий", "пряный",
  "сладкий", "горячий", "холодный", "свежий", "копчёный", "жареный", "печёный",
  "тёплый", "хрустящий", "нежный", "сочный", "пикантный", "ароматный", "медовый",
  "ореховый", "лимонный", "апельсиновый", "ягодный", "вишнёвый", "клубничный",
  "яблочный", "шоколадный", "карамельный", "ванильный", "мятный", "имбирный",
  "чесночный", "луковый", "перечный", "укропный", "базиликовый", "тыквенный",
  "морковный", "свекольный", "капустный", "картофельный", "рисовый", "гречневый",
  "пшеничный", "ржаной", "кокосовый", "банановый", "манговый", "греческий",
  "итальянский",
}
local nouns = {
  "суп", "салат", "ролл", "бургер", "пирог", "стейк", "соус", "чай", "морс",
  "коктейль", "десерт", "торт", "хлеб", "плов", "шашлык", "омлет", "сэндвич", "кекс",
  "сок", "лимонад", "рулет", "борщ", "гуляш", "бифштекс", "кебаб", "шницель", "пудинг",
  "бульон", "завтрак", "обед", "ужин", "набор", "сет", "маффин", "чизкейк", "круассан",
  "багет", "лаваш", "блинчик", "тост", "кофе", "эклер", "пончик", "кисель", "компот",
  "квас", "коржик", "сырник", "драник", "голубец", "гарнир", "паштет", "чебурек",
  "беляш", "расстегай", "курник", "рамен", "тартар", "каравай", "крендель",
}

local function encode(text)
  return (text:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

local threads = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() * 100 + (thread_id or 0))
end

function request()
  local q = adjectives[math.random(#adjectives)] .. " " .. nouns[math.random(#nouns)]
  return wrk.format("GET", "/api/v1/products?q=" .. encode(q) .. "&limit=" .. math.random(60, 200))
end
