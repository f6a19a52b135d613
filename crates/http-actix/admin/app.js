// BotShop's admin panel: a Telegram Mini App over the admin API (/api/v1/admin).
// Plain DOM, no framework, no build step. Every text from the server is set as text,
// never as HTML.

const tg = window.Telegram && window.Telegram.WebApp;
const API = "/api/v1/admin";
const OPEN = ["PENDING", "CONFIRMED", "PROCESSING", "SHIPPED"];
const ALL = [...OPEN, "DELIVERED", "CANCELLED"];
const BOARD_REFRESH_MS = 5000;

// --- Texts ---------------------------------------------------------------------------

const TEXTS = {
  ru: {
    orders: "Заказы", catalog: "Каталог", io: "Импорт", reports: "Отчёты", audit: "Журнал",
    board: "Открытые заказы", all_statuses: "Все статусы", status: "Статус", from: "С", to: "По",
    apply: "Показать", reset: "Сбросить", none: "Пусто", total: "Итого", refreshed: "обновлено",
    order: "Заказ", customer: "Покупатель", phone: "Телефон", address: "Адрес", comment: "Комментарий",
    history: "История", note: "Комментарий к смене статуса (необязательно)", move_to: "Перевести в",
    cancel_order: "Отменить заказ", cancel_note: "Причина отмены", changed: "Статус изменён",
    already: "Статус уже изменили: сейчас", back: "Назад", lines: "Позиции", qty: "Кол-во",
    price: "Цена", sum: "Сумма", categories: "Категории", products: "Товары",
    new_category: "Новая категория", new_product: "Новый товар", name: "Название", slug: "Slug (латиница)",
    parent: "Родитель", root: "— верхний уровень —", sort_order: "Порядок", active: "Активна",
    active_product: "В продаже", save: "Сохранить", create: "Создать", delete: "Удалить",
    edit: "Изменить", saved: "Сохранено", deleted: "Удалено", search: "Поиск товаров",
    description: "Описание", category: "Категория", sku: "Артикул (SKU)", images: "Фото",
    price_stars: "Цена в звёздах (пусто — нет)", payment: "Оплата",
    pay_not_required: "при получении", pay_unpaid: "не оплачен", pay_paid: "оплачен",
    pay_refunded: "возвращена", pay_until: "оплатить до",
    add_image: "Добавить фото", uploading: "Загрузка…", stock: "Остаток", unlimited: "без ограничений",
    set_stock: "Установить остаток", adjust: "Изменить на", reason: "Причина", apply_adjust: "Применить",
    empty_unlimited: "пусто — без ограничений", export: "Выгрузка", import: "Загрузка каталога",
    download_csv: "Скачать CSV", download_json: "Скачать JSON", choose_file: "Файл CSV или JSON",
    dry_run: "Проверить", confirm_import: "Загрузить в каталог", would: "Будет", done: "Готово",
    created: "создано", updated: "изменено", unchanged: "без изменений", problems: "Ошибки в файле",
    line: "строка", period: "Период", revenue: "Выручка", orders_count: "Заказов",
    by_status: "По статусам", top: "Лучшие товары", quantity: "Продано", who: "Кто", what: "Что",
    when: "Когда", entity: "Объект", before: "Было", after: "Стало", more: "Ещё",
    not_admin: "Этот аккаунт Telegram не администратор магазина.",
    auth_failed: "Telegram не подтвердил вход. Откройте панель из бота заново.",
    open_from_bot: "Откройте панель из Telegram: отправьте боту магазина команду /admin.",
    dev_sign_in: "Вход для разработки (демо-токен, только локально)", telegram_id: "Telegram id администратора",
    sign_in: "Войти", failed: "Не получилось", network: "Нет связи с сервером",
    confirm_delete: "Удалить?", up: "Выше", down: "Ниже", remove: "Убрать",
  },
  en: {
    orders: "Orders", catalog: "Catalog", io: "Import", reports: "Reports", audit: "Audit",
    board: "Open orders", all_statuses: "All statuses", status: "Status", from: "From", to: "To",
    apply: "Show", reset: "Reset", none: "Nothing here", total: "Total", refreshed: "refreshed",
    order: "Order", customer: "Customer", phone: "Phone", address: "Address", comment: "Comment",
    history: "History", note: "Note for the change (optional)", move_to: "Move to",
    cancel_order: "Cancel the order", cancel_note: "Why it is cancelled", changed: "Status changed",
    already: "Someone changed it already: now", back: "Back", lines: "Lines", qty: "Qty",
    price: "Price", sum: "Sum", categories: "Categories", products: "Products",
    new_category: "New category", new_product: "New product", name: "Name", slug: "Slug (latin)",
    parent: "Parent", root: "— top level —", sort_order: "Sort order", active: "Active",
    active_product: "On sale", save: "Save", create: "Create", delete: "Delete",
    edit: "Edit", saved: "Saved", deleted: "Deleted", search: "Search products",
    description: "Description", category: "Category", sku: "SKU", images: "Pictures",
    price_stars: "Price in Stars (empty: none)", payment: "Payment",
    pay_not_required: "on delivery", pay_unpaid: "unpaid", pay_paid: "paid",
    pay_refunded: "refunded", pay_until: "pay by",
    add_image: "Add a picture", uploading: "Uploading…", stock: "Stock", unlimited: "unlimited",
    set_stock: "Set stock", adjust: "Change by", reason: "Reason", apply_adjust: "Apply",
    empty_unlimited: "empty: unlimited", export: "Export", import: "Import a catalog",
    download_csv: "Download CSV", download_json: "Download JSON", choose_file: "A CSV or JSON file",
    dry_run: "Check", confirm_import: "Import into the catalog", would: "Would be", done: "Done",
    created: "created", updated: "updated", unchanged: "unchanged", problems: "Problems in the file",
    line: "line", period: "Period", revenue: "Revenue", orders_count: "Orders",
    by_status: "By status", top: "Top products", quantity: "Sold", who: "Who", what: "What",
    when: "When", entity: "Entity", before: "Before", after: "After", more: "More",
    not_admin: "This Telegram account is not an admin of the shop.",
    auth_failed: "Telegram did not confirm the sign-in. Open the panel from the bot again.",
    open_from_bot: "Open the panel from Telegram: send /admin to the shop's bot.",
    dev_sign_in: "Development sign-in (demo token, local only)", telegram_id: "An admin's Telegram id",
    sign_in: "Sign in", failed: "That did not work", network: "The server cannot be reached",
    confirm_delete: "Delete?", up: "Up", down: "Down", remove: "Remove",
  },
};

const STATUS_NAMES = {
  ru: { PENDING: "Новый", CONFIRMED: "Подтверждён", PROCESSING: "Собирается", SHIPPED: "Отправлен",
        DELIVERED: "Доставлен", CANCELLED: "Отменён" },
  en: { PENDING: "New", CONFIRMED: "Confirmed", PROCESSING: "Processing", SHIPPED: "Shipped",
        DELIVERED: "Delivered", CANCELLED: "Cancelled" },
};

const BY = {
  ru: { customer: "покупатель", manager: "менеджер", system: "система" },
  en: { customer: "customer", manager: "manager", system: "system" },
};

function language() {
  const code = (tg && tg.initDataUnsafe && tg.initDataUnsafe.user && tg.initDataUnsafe.user.language_code)
    || navigator.language || "ru";
  return code.toLowerCase().startsWith("ru") ? "ru" : "en";
}
const LANG = language();
const T = TEXTS[LANG];
const statusName = (status) => STATUS_NAMES[LANG][status] || status;

// --- DOM -----------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const view = () => document.getElementById("view");
function show(...nodes) {
  view().replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
  window.scrollTo(0, 0);
}
let toastTimer;
function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 2500);
}
const money = (amount) => `${amount} ₽`;
// A line's sum from its unit price ("590.00") and quantity, in kopecks: never a float.
function lineSum(price, quantity) {
  const [rubles, kopecks = "0"] = String(price).split(".");
  const total = (BigInt(rubles) * 100n + BigInt(kopecks.padEnd(2, "0").slice(0, 2))) * BigInt(quantity);
  return `${total / 100n}.${String(total % 100n).padStart(2, "0")}`;
}

// Runs `action` once at a time: a second tap while it runs does nothing (two products
// from one double tap otherwise), and the form's buttons are disabled meanwhile.
function once(form, action) {
  let running = false;
  return async () => {
    if (running) return;
    running = true;
    const buttons = form ? [...form.querySelectorAll("button")] : [];
    buttons.forEach((b) => { b.disabled = true; });
    try { await action(); } finally {
      running = false;
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
}
const when = (iso) => new Date(iso).toLocaleString(LANG === "ru" ? "ru-RU" : "en-GB",
  { dateStyle: "short", timeStyle: "short" });
const day = (date) => date.toISOString().slice(0, 10);

// --- The API -------------------------------------------------------------------------

let initData = "";

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function api(method, path, { json, body, headers } = {}) {
  const sent = { Authorization: `tma ${initData}`, ...(headers || {}) };
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(API + path, { method, headers: sent, body });
  } catch (error) {
    throw new ApiError(0, { detail: T.network });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (error) { data = { detail: text.slice(0, 200) }; }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, total: Number(response.headers.get("X-Total-Count") || 0), response };
}

// 401 and 403 end the session's view: a refusal and no data.
function refuse(error) {
  stopBoard();
  document.getElementById("tabs").hidden = true;
  show(h("div", { class: "card error", id: "refusal" },
    error.status === 403 ? T.not_admin : T.auth_failed));
}

function failure(error, form) {
  if (error.status === 401 || error.status === 403) return refuse(error);
  if (form) markErrors(form, error);
  toast(error.message || T.failed);
}

// A 422's field errors next to their inputs (`images[2]` belongs to `images`).
function markErrors(form, error) {
  form.querySelectorAll(".field-error").forEach((el) => el.remove());
  form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  for (const item of (error.problem && error.problem.errors) || []) {
    const field = String(item.field || "").replace(/\[\d+\]$/, "");
    const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
    const note = h("div", { class: "field-error", "data-field": field }, item.message);
    if (input) {
      input.classList.add("invalid");
      input.after(note);
    } else {
      form.prepend(note);
    }
  }
}

// --- Navigation, BackButton and MainButton ------------------------------------------

const stack = [];
let mainAction = null;

function setMainButton(text, action) {
  mainAction = action;
  if (!tg || !tg.initData) return;
  if (action) tg.MainButton.setText(text).show();
  else tg.MainButton.hide();
}

function go(render, { push = true } = {}) {
  stopBoard();
  setMainButton(null, null);
  if (push) stack.push(render);
  if (tg && tg.initData) {
    if (stack.length > 1) tg.BackButton.show(); else tg.BackButton.hide();
  }
  render();
}

function back() {
  if (stack.length > 1) stack.pop();
  go(stack[stack.length - 1], { push: false });
}

function tab(name) {
  document.querySelectorAll("#tabs button").forEach((b) =>
    b.classList.toggle("active", b.dataset.tab === name));
  stack.length = 0;
  go({ orders: ordersBoard, catalog: catalogView, io: ioView, reports: reportsView, audit: auditView }[name]);
}

const backLink = () => h("button", { type: "button", class: "secondary", id: "back", onclick: back }, `← ${T.back}`);

// --- Orders --------------------------------------------------------------------------

let boardTimer = null;
function stopBoard() {
  if (boardTimer) clearInterval(boardTimer);
  boardTimer = null;
}

function orderCard(order) {
  return h("div", { class: "card link", "data-order": order.id, onclick: () => go(() => orderView(order.id)) },
    h("div", { class: "spread" },
      h("strong", {}, `№${order.id}`),
      h("span", { class: `badge ${order.status}` }, statusName(order.status))),
    h("div", { class: "spread muted" },
      h("span", {}, when(order.created_at)),
      h("span", {}, money(order.total_amount))),
    h("div", { class: "muted" }, order.items.map((line) => `${line.product_name} × ${line.quantity}`).join(", ")));
}

function ordersFilter(current) {
  const form = h("form", { class: "row", id: "order-filter", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go(() => ordersList({ status: data.get("status"), from: data.get("from"), to: data.get("to") }));
  } },
  h("select", { name: "status", class: "grow", "aria-label": T.status },
    h("option", { value: "" }, T.all_statuses),
    ALL.map((s) => h("option", { value: s, selected: current.status === s }, statusName(s)))),
  h("input", { type: "date", name: "from", value: current.from || "", "aria-label": T.from }),
  h("input", { type: "date", name: "to", value: current.to || "", "aria-label": T.to }),
  h("button", { type: "submit" }, T.apply));
  return form;
}

async function ordersBoard() {
  const sections = h("div", { class: "columns", id: "board" });
  const stamp = h("p", { class: "muted", id: "board-stamp" });
  show(h("h2", {}, T.board), ordersFilter({}), stamp, sections);
  const load = async () => {
    try {
      const lists = await Promise.all(OPEN.map((status) =>
        api("GET", `/orders?status=${status}&limit=50`)));
      sections.replaceChildren(...OPEN.map((status, i) => h("section", { "data-status": status },
        h("h3", {}, `${statusName(status)} · ${lists[i].total}`),
        lists[i].data.length ? lists[i].data.map(orderCard) : h("p", { class: "muted" }, T.none))));
      stamp.textContent = `${T.refreshed} ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      failure(error);
    }
  };
  await load();
  if (document.body.contains(sections)) boardTimer = setInterval(load, BOARD_REFRESH_MS);
}

async function ordersList(filter) {
  const params = new URLSearchParams({ limit: "100" });
  if (filter.status) params.set("status", filter.status);
  if (filter.from) params.set("created_from", `${filter.from}T00:00:00Z`);
  if (filter.to) {
    const end = new Date(`${filter.to}T00:00:00Z`);
    end.setUTCDate(end.getUTCDate() + 1);
    params.set("created_to", end.toISOString());
  }
  try {
    const { data, total } = await api("GET", `/orders?${params}`);
    show(backLink(), ordersFilter(filter), h("p", { class: "muted" }, `${T.total}: ${total}`),
      data.length ? data.map(orderCard) : h("p", { class: "muted" }, T.none));
  } catch (error) {
    failure(error);
  }
}

/** "paid (240 ⭐)", "unpaid (749.70 RUB), pay by …", "on delivery". */
function paymentText(order) {
  const state = T[`pay_${order.payment_status}`] || order.payment_status;
  if (!order.payment_currency) return state;
  const amount = order.payment_currency === "XTR" ? `${order.payment_amount} ⭐`
    : `${order.total_amount} ${order.payment_currency}`;
  const until = order.payment_status === "unpaid" && order.payment_due_by
    ? `, ${T.pay_until} ${new Date(order.payment_due_by).toLocaleString()}` : "";
  return `${state} (${amount})${until}`;
}

async function orderView(id) {
  let order;
  try {
    order = (await api("GET", `/orders/${id}`)).data;
  } catch (error) {
    return failure(error);
  }
  const c = order.customer || {};
  const note = h("textarea", { name: "note", rows: 2, maxlength: 500, id: "status-note" });
  let moving = false;
  const move = async (status) => {
    if (moving) return;
    moving = true;
    document.querySelectorAll("[data-move]").forEach((b) => { b.disabled = true; });
    try {
      const body = { status };
      if (note.value.trim()) body.note = note.value.trim();
      await api("POST", `/orders/${id}/status`, { json: body });
      toast(T.changed);
      go(() => orderView(id), { push: false });
    } catch (error) {
      if (error.status === 409 && error.problem.current_status) {
        toast(`${T.already} ${statusName(error.problem.current_status)}`);
        go(() => orderView(id), { push: false });
      } else failure(error);
    } finally {
      moving = false;
      document.querySelectorAll("[data-move]").forEach((b) => { b.disabled = false; });
    }
  };
  const next = order.next_statuses || [];
  show(
    backLink(),
    h("div", { class: "spread" }, h("h2", {}, `${T.order} №${order.id}`),
      h("span", { class: `badge ${order.status}`, id: "order-status" }, statusName(order.status))),
    h("div", { class: "card" },
      h("table", { class: "lines" },
        h("tr", {}, h("th", {}, T.lines), h("th", { class: "num" }, T.qty), h("th", { class: "num" }, T.sum)),
        order.items.map((line) => h("tr", {}, h("td", {}, line.product_name),
          h("td", { class: "num" }, line.quantity),
          h("td", { class: "num" }, money(lineSum(line.price, line.quantity))))),
        h("tr", {}, h("th", {}, T.total), h("td", {}), h("th", { class: "num" }, money(order.total_amount)))),
      h("p", { id: "order-payment" }, h("span", { class: "muted" }, `${T.payment}: `), paymentText(order))),
    h("div", { class: "card" },
      h("div", {}, h("span", { class: "muted" }, `${T.customer}: `),
        [c.first_name, c.last_name].filter(Boolean).join(" "),
        c.username ? ` @${c.username}` : "", ` (id ${c.telegram_id})`),
      h("div", {}, h("span", { class: "muted" }, `${T.phone}: `), order.phone),
      h("div", {}, h("span", { class: "muted" }, `${T.address}: `), order.delivery_address),
      order.comment ? h("div", {}, h("span", { class: "muted" }, `${T.comment}: `), order.comment) : null),
    next.length ? h("div", { class: "card", id: "order-actions" },
      h("label", { for: "status-note" }, T.note), note,
      h("div", { class: "row", style: "margin-top:8px" },
        next.filter((s) => s !== "CANCELLED").map((s) =>
          h("button", { type: "button", "data-move": s, onclick: () => move(s) }, `${T.move_to}: ${statusName(s)}`)),
        next.includes("CANCELLED") ? h("button", { type: "button", class: "danger", "data-move": "CANCELLED",
          onclick: () => move("CANCELLED") }, T.cancel_order) : null)) : null,
    h("h3", {}, T.history),
    (order.status_history || []).map((step) => h("div", { class: "card" },
      h("div", { class: "spread" }, h("span", {}, statusName(step.status)), h("span", { class: "muted" }, when(step.at))),
      h("div", { class: "muted" }, (BY[LANG][step.by] || step.by)
        + (step.manager_telegram_id ? ` ${step.manager_telegram_id}` : "")),
      step.note ? h("div", {}, step.note) : null)));
}

// --- Catalog -------------------------------------------------------------------------

async function catalogView() {
  let categories, products;
  const search = h("input", { type: "search", name: "q", placeholder: T.search, id: "product-search", class: "grow" });
  const list = h("div", { id: "products" });
  try {
    categories = (await api("GET", "/categories")).data;
  } catch (error) {
    return failure(error);
  }
  const loadProducts = async () => {
    const params = new URLSearchParams({ limit: "100" });
    if (search.value.trim()) params.set("q", search.value.trim());
    try {
      ({ data: products } = await api("GET", `/products?${params}`));
    } catch (error) {
      return failure(error);
    }
    list.replaceChildren(...(products.length ? products.map((p) =>
      h("div", { class: `card link${p.is_active ? "" : " inactive"}`, "data-product": p.id,
        onclick: () => go(() => productView(p.id, categories)) },
        h("div", { class: "spread" }, h("strong", {}, p.name), h("span", {}, money(p.price))),
        h("div", { class: "muted" }, [p.sku, p.stock === null ? T.unlimited : `${T.stock}: ${p.stock}`]
          .filter(Boolean).join(" · ")))) : [h("p", { class: "muted" }, T.none)]));
  };
  let searchTimer;
  search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadProducts, 300); });
  show(
    h("h2", {}, T.categories),
    categoryTree(categories),
    h("button", { type: "button", class: "secondary", id: "new-category",
      onclick: () => go(() => categoryForm(null, categories)) }, `+ ${T.new_category}`),
    h("h2", {}, T.products),
    h("div", { class: "row" }, search,
      h("button", { type: "button", id: "new-product", onclick: () => go(() => productView(null, categories)) },
        `+ ${T.new_product}`)),
    list);
  await loadProducts();
}

function categoryTree(categories) {
  const children = (parent) => categories.filter((c) => (c.parent_id || null) === parent)
    .sort((a, b) => a.sort_order - b.sort_order || a.id - b.id);
  const branch = (parent) => {
    const items = children(parent);
    if (!items.length) return null;
    return h("ul", { class: "tree" }, items.map((c) => h("li", {},
      h("div", { class: `card link${c.is_active ? "" : " inactive"}`, "data-category": c.id,
        onclick: () => go(() => categoryForm(c, categories)) },
        h("span", {}, c.name), h("span", { class: "muted" }, c.slug)),
      branch(c.id))));
  };
  return branch(null) || h("p", { class: "muted" }, T.none);
}

function categoryForm(category, categories) {
  const c = category || { name: "", slug: "", sort_order: 0, parent_id: null, is_active: true };
  const form = h("form", { id: "category-form" },
    h("label", { for: "c-name" }, T.name), h("input", { id: "c-name", name: "name", value: c.name, required: true }),
    h("label", { for: "c-slug" }, T.slug), h("input", { id: "c-slug", name: "slug", value: c.slug, required: true }),
    h("label", { for: "c-parent" }, T.parent),
    h("select", { id: "c-parent", name: "parent_id" }, h("option", { value: "" }, T.root),
      categories.filter((o) => !category || o.id !== category.id).map((o) =>
        h("option", { value: o.id, selected: o.id === c.parent_id }, o.name))),
    h("label", { for: "c-sort" }, T.sort_order),
    h("input", { id: "c-sort", name: "sort_order", type: "number", value: c.sort_order }),
    h("label", {}, h("input", { type: "checkbox", name: "is_active", checked: c.is_active }), ` ${T.active}`),
    h("div", { class: "row", style: "margin-top:12px" },
      h("button", { type: "submit", id: "save-category" }, category ? T.save : T.create),
      category ? h("button", { type: "button", class: "danger", id: "delete-category", onclick: async () => {
        if (!window.confirm(T.confirm_delete)) return;
        try {
          await api("DELETE", `/categories/${category.id}`);
          toast(T.deleted);
          back();
        } catch (error) { failure(error, form); }
      } }, T.delete) : null));
  const save = once(form, async () => {
    const data = new FormData(form);
    const body = {
      name: data.get("name"), slug: data.get("slug"),
      parent_id: data.get("parent_id") ? Number(data.get("parent_id")) : null,
      sort_order: Number(data.get("sort_order") || 0), is_active: data.get("is_active") !== null,
    };
    try {
      if (category) await api("PATCH", `/categories/${category.id}`, { json: body });
      else await api("POST", "/categories", { json: body });
      toast(T.saved);
      back();
    } catch (error) { failure(error, form); }
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
  show(backLink(), h("h2", {}, category ? category.name : T.new_category), form);
  setMainButton(category ? T.save : T.create, save);
}

async function productView(id, categories) {
  let p = { name: "", description: "", price: "", category_id: categories[0] && categories[0].id,
    sku: "", sort_order: 0, is_active: true, images: [], stock: null, price_stars: null };
  if (id) {
    try { p = (await api("GET", `/products/${id}`)).data; } catch (error) { return failure(error); }
  }
  let images = [...(p.images || [])];
  const gallery = h("div", { class: "images", id: "images" });
  const drawImages = () => gallery.replaceChildren(...images.map((url, i) => h("figure", {},
    h("img", { src: url, alt: "" }),
    h("figcaption", {},
      h("button", { type: "button", title: T.up, disabled: i === 0,
        onclick: () => { [images[i - 1], images[i]] = [images[i], images[i - 1]]; drawImages(); } }, "↑"),
      h("button", { type: "button", title: T.down, disabled: i === images.length - 1,
        onclick: () => { [images[i + 1], images[i]] = [images[i], images[i + 1]]; drawImages(); } }, "↓"),
      h("button", { type: "button", title: T.remove, "data-remove": i,
        onclick: () => { images.splice(i, 1); drawImages(); } }, "✕")))));
  drawImages();
  const upload = h("input", { type: "file", accept: "image/jpeg,image/png,image/webp", id: "image-file", name: "images" });
  const form = h("form", { id: "product-form" },
    h("label", { for: "p-name" }, T.name), h("input", { id: "p-name", name: "name", value: p.name, required: true }),
    h("label", { for: "p-description" }, T.description),
    h("textarea", { id: "p-description", name: "description", rows: 3 }, p.description || ""),
    h("label", { for: "p-price" }, T.price),
    h("input", { id: "p-price", name: "price", value: p.price, inputmode: "decimal", required: true }),
    h("label", { for: "p-category" }, T.category),
    h("select", { id: "p-category", name: "category_id" }, categories.map((c) =>
      h("option", { value: c.id, selected: c.id === p.category_id }, c.name))),
    h("label", { for: "p-stars" }, T.price_stars),
    h("input", { id: "p-stars", name: "price_stars", type: "number", min: 1, max: 1000000,
      value: p.price_stars === null || p.price_stars === undefined ? "" : p.price_stars }),
    h("label", { for: "p-sku" }, T.sku), h("input", { id: "p-sku", name: "sku", value: p.sku || "" }),
    h("label", { for: "p-sort" }, T.sort_order),
    h("input", { id: "p-sort", name: "sort_order", type: "number", value: p.sort_order }),
    h("label", {}, h("input", { type: "checkbox", name: "is_active", checked: p.is_active }), ` ${T.active_product}`),
    h("label", { for: "image-file" }, T.images), gallery, upload,
    id ? null : h("div", {}, h("label", { for: "p-stock" }, `${T.stock} (${T.empty_unlimited})`),
      h("input", { id: "p-stock", name: "stock", type: "number", min: 0 })),
    h("div", { class: "row", style: "margin-top:12px" },
      h("button", { type: "submit", id: "save-product" }, id ? T.save : T.create),
      id ? h("button", { type: "button", class: "danger", id: "delete-product", onclick: async () => {
        if (!window.confirm(T.confirm_delete)) return;
        try { await api("DELETE", `/products/${id}`); toast(T.deleted); back(); } catch (error) { failure(error, form); }
      } }, T.delete) : null));
  upload.addEventListener("change", async () => {
    const file = upload.files && upload.files[0];
    if (!file) return;
    const body = new FormData();
    body.append("file", file);
    toast(T.uploading);
    try {
      const { data } = await api("POST", "/images", { body });
      images.push(data.url);
      drawImages();
      upload.value = "";
    } catch (error) {
      failure(error, form);
    }
  });
  const save = once(form, async () => {
    const data = new FormData(form);
    const body = {
      name: data.get("name"), description: data.get("description") || null, price: data.get("price"),
      category_id: Number(data.get("category_id")), sku: data.get("sku") || null,
      sort_order: Number(data.get("sort_order") || 0), is_active: data.get("is_active") !== null, images,
      price_stars: data.get("price_stars") ? Number(data.get("price_stars")) : null,
    };
    if (!id && data.get("stock") !== "" && data.get("stock") !== null) body.stock = Number(data.get("stock"));
    try {
      if (id) await api("PATCH", `/products/${id}`, { json: body });
      else await api("POST", "/products", { json: body });
      toast(T.saved);
      back();
    } catch (error) { failure(error, form); }
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
  show(backLink(), h("h2", {}, id ? p.name : T.new_product), form, id ? stockForms(id, p.stock) : null);
  setMainButton(id ? T.save : T.create, save);
}

function stockForms(id, stock) {
  const current = h("p", { id: "stock-now" }, `${T.stock}: ${stock === null ? T.unlimited : stock}`);
  const setForm = h("form", { class: "row", id: "stock-set" },
    h("input", { name: "stock", type: "number", min: 0, class: "grow", placeholder: T.empty_unlimited }),
    h("button", { type: "submit" }, T.set_stock));
  const adjustForm = h("form", { id: "stock-adjust" },
    h("div", { class: "row" },
      h("input", { name: "delta", type: "number", class: "grow", placeholder: "+5 / -2", required: true }),
      h("input", { name: "reason", class: "grow", placeholder: T.reason, required: true }),
      h("button", { type: "submit" }, T.apply_adjust)));
  const done = (data) => { current.textContent = `${T.stock}: ${data.stock === null ? T.unlimited : data.stock}`; toast(T.saved); };
  setForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = new FormData(setForm).get("stock");
    try {
      done((await api("PUT", `/products/${id}/stock`, { json: { stock: value === "" ? null : Number(value) } })).data);
    } catch (error) { failure(error, setForm); }
  });
  adjustForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(adjustForm);
    try {
      done((await api("POST", `/products/${id}/stock/adjustments`,
        { json: { delta: Number(data.get("delta")), reason: data.get("reason") } })).data);
    } catch (error) { failure(error, adjustForm); }
  });
  return h("div", { class: "card" }, h("h3", {}, T.stock), current, setForm,
    h("label", {}, T.adjust), adjustForm);
}

// --- Import and export ---------------------------------------------------------------

function ioView() {
  const download = async (format) => {
    try {
      const { response } = await rawGet(`/catalog/export?format=${format}`);
      const blob = await response.blob();
      const link = h("a", { href: URL.createObjectURL(blob), download: `catalog.${format}` });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) { failure(error); }
  };
  const file = h("input", { type: "file", accept: ".csv,.json,text/csv,application/json", id: "import-file" });
  const result = h("div", { id: "import-result" });
  let text = null, type = null;
  const send = async (dryRun) => {
    try {
      const { data } = await api("POST", `/catalog/import?dry_run=${dryRun}`,
        { body: text, headers: { "Content-Type": type } });
      const counts = (name, c) => h("tr", {}, h("td", {}, name), h("td", { class: "num" }, c.created),
        h("td", { class: "num" }, c.updated), h("td", { class: "num" }, c.unchanged));
      result.replaceChildren(h("div", { class: "card", id: dryRun ? "import-preview" : "import-done" },
        h("h3", {}, dryRun ? T.would : T.done),
        h("table", {}, h("tr", {}, h("th", {}), h("th", { class: "num" }, T.created),
          h("th", { class: "num" }, T.updated), h("th", { class: "num" }, T.unchanged)),
        counts(T.categories, data.categories), counts(T.products, data.products)),
        dryRun ? h("button", { type: "button", id: "confirm-import", style: "margin-top:8px",
          onclick: () => send(false) }, T.confirm_import) : null));
    } catch (error) {
      if (error.status === 422 && error.problem.problems) {
        result.replaceChildren(h("div", { class: "card error", id: "import-problems" }, h("h3", {}, T.problems),
          error.problem.problems.map((p) => h("div", {}, `${T.line} ${p.line}, ${p.field}: ${p.message}`))));
      } else failure(error);
    }
  };
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    text = await chosen.text();
    type = chosen.name.toLowerCase().endsWith(".json") ? "application/json" : "text/csv";
    await send(true);
  });
  show(
    h("h2", {}, T.export),
    h("div", { class: "row" },
      h("button", { type: "button", id: "export-csv", onclick: () => download("csv") }, T.download_csv),
      h("button", { type: "button", class: "secondary", id: "export-json", onclick: () => download("json") }, T.download_json)),
    h("h2", {}, T.import), h("label", { for: "import-file" }, T.choose_file), file, result);
}

async function rawGet(path) {
  const response = await fetch(API + path, { headers: { Authorization: `tma ${initData}` } });
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch (error) { problem = null; }
    throw new ApiError(response.status, problem);
  }
  return { response };
}

// --- Reports -------------------------------------------------------------------------

function reportsView() {
  const today = new Date();
  const start = new Date(today.getTime() - 29 * 86400000);
  const form = h("form", { class: "row", id: "report-period" },
    h("input", { type: "date", name: "from", value: day(start), "aria-label": T.from }),
    h("input", { type: "date", name: "to", value: day(today), "aria-label": T.to }),
    h("button", { type: "submit" }, T.apply));
  const out = h("div", { id: "report" });
  const load = async () => {
    const data = new FormData(form);
    try {
      const { data: report } = await api("GET", `/stats?from=${data.get("from")}&to=${data.get("to")}`);
      out.replaceChildren(
        h("p", {}, `${T.orders_count}: ${report.total_orders} · ${T.revenue}: ${money(report.total_revenue)}`),
        chart(report.days),
        h("div", { class: "columns" },
          h("div", {}, h("h3", {}, T.by_status), h("table", {}, report.by_status.map((row) =>
            h("tr", {}, h("td", {}, statusName(row.status)), h("td", { class: "num" }, row.orders))))),
          h("div", {}, h("h3", {}, T.top), h("table", {},
            h("tr", {}, h("th", {}, T.name), h("th", { class: "num" }, T.quantity), h("th", { class: "num" }, T.revenue)),
            report.top_products.map((p) => h("tr", {}, h("td", {}, p.name),
              h("td", { class: "num" }, p.quantity), h("td", { class: "num" }, money(p.revenue))))))));
    } catch (error) { failure(error, form); }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  show(h("h2", {}, T.reports), form, out);
  load();
}

// Revenue per day as bars; each bar's title gives the day, orders and revenue.
function chart(days) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 600, height = 160, pad = 18;
  const max = Math.max(1, ...days.map((d) => Number(d.revenue)));
  const step = (width - pad) / Math.max(1, days.length);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", T.revenue);
  days.forEach((d, i) => {
    const barHeight = (Number(d.revenue) / max) * (height - pad * 2);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("class", "bar-rect");
    rect.setAttribute("x", String(pad + i * step + 1));
    rect.setAttribute("y", String(height - pad - barHeight));
    rect.setAttribute("width", String(Math.max(1, step - 2)));
    rect.setAttribute("height", String(barHeight));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${d.day}: ${d.orders} · ${money(d.revenue)}`;
    rect.append(title);
    svg.append(rect);
  });
  const label = (x, text, anchor) => {
    const el = document.createElementNS(ns, "text");
    el.setAttribute("x", String(x));
    el.setAttribute("y", String(height - 4));
    el.setAttribute("text-anchor", anchor);
    el.textContent = text;
    svg.append(el);
  };
  if (days.length) {
    label(pad, days[0].day, "start");
    label(width, days[days.length - 1].day, "end");
  }
  const top = document.createElementNS(ns, "text");
  top.setAttribute("x", "0");
  top.setAttribute("y", "10");
  top.textContent = money(max.toFixed(2));
  svg.append(top);
  return svg;
}

// --- Audit ---------------------------------------------------------------------------

async function auditView(offset = 0) {
  try {
    const { data, total } = await api("GET", `/audit?limit=50&offset=${offset}`);
    show(h("h2", {}, T.audit), data.length ? data.map((entry) => h("div", { class: "card", "data-audit": entry.id },
      h("div", { class: "spread" }, h("strong", {}, entry.action), h("span", { class: "muted" }, when(entry.at))),
      h("div", { class: "muted" }, `${T.who}: ${entry.actor} · ${T.entity}: ${entry.entity} ${entry.entity_id}`),
      h("pre", {}, `${T.before}: ${JSON.stringify(entry.before)}\n${T.after}: ${JSON.stringify(entry.after)}`)))
      : h("p", { class: "muted" }, T.none),
    offset + 50 < total ? h("button", { type: "button", class: "secondary",
      onclick: () => go(() => auditView(offset + 50)) }, T.more) : null);
  } catch (error) { failure(error); }
}

// --- Start ---------------------------------------------------------------------------

function devSignIn() {
  const form = h("form", { id: "dev-sign-in" },
    h("p", {}, T.dev_sign_in),
    h("label", { for: "dev-id" }, T.telegram_id),
    h("input", { id: "dev-id", name: "user_id", inputmode: "numeric", required: true }),
    h("button", { type: "submit", style: "margin-top:8px" }, T.sign_in));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = new FormData(form).get("user_id");
    const response = await fetch(`/admin/dev-sign-in?user_id=${encodeURIComponent(id)}`);
    if (!response.ok) return toast(T.failed);
    initData = (await response.json()).init_data;
    sessionStorage.setItem("botshop-admin-init-data", initData);
    start();
  });
  show(h("p", { class: "muted" }, T.open_from_bot), form);
}

function start() {
  for (const name of ["orders", "catalog", "io", "reports", "audit"]) {
    const button = document.getElementById(`tab-${name}`);
    button.textContent = T[name];
    button.onclick = () => tab(name);
  }
  document.getElementById("tabs").hidden = false;
  tab("orders");
}

function boot() {
  document.documentElement.lang = LANG;
  if (tg) {
    tg.ready();
    tg.expand();
    tg.BackButton.onClick(back);
    tg.MainButton.onClick(() => { if (mainAction) mainAction(); });
  }
  initData = (tg && tg.initData) || sessionStorage.getItem("botshop-admin-init-data") || "";
  if (tg && tg.initData) document.documentElement.classList.add("in-telegram");
  if (initData) return start();
  const dev = document.querySelector('meta[name="botshop-dev-sign-in"]');
  if (dev && dev.content === "on") return devSignIn();
  show(h("div", { class: "card", id: "open-from-bot" }, T.open_from_bot));
}

boot();
