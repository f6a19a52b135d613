//! Placing an order on PostgreSQL, optimistically, in one statement.
//!
//! 1. The domain prices the draft from what this process last saw of the products (the
//!    [`PriceHints`] of earlier placements) or, for products it has not seen, from a plain
//!    read of them.
//! 2. ONE statement (one round trip, no `BEGIN`/`COMMIT`) locks the products in id order
//!    and writes the order only if every locked product still has the revision that was
//!    priced, still holds the units the order takes, and the idempotency key is still
//!    free: then it takes the stock and inserts the order, its lines, its outbox event
//!    and the key's order, atomically, as any one statement is. Either way it answers
//!    with the locked rows.
//! 3. If it wrote nothing, the domain prices the draft again from those locked rows. An
//!    `Err` from pricing is the answer (unavailable, out of stock, …); otherwise the
//!    statement goes again with the new revisions, a bounded number of times.
//!
//! So the shop's rules are the domain's alone: SQL compares numbers the domain priced
//! from and never decides whether an order may be placed. A product's `revision` is bumped
//! by a trigger on every change of a field pricing reads except the stock (migration 8);
//! the stock, which changes with every order, is compared as "at least the units this
//! order takes", so that concurrent orders of the same product do not refuse each other.

use std::collections::HashMap;
use std::fmt::Write as _;

use domain::order::{NewOrder, PlaceOrderError, PricedOrder, price_order};
use domain::outbox::ORDER_CREATED;
use domain::{CategoryId, Order, OrderStatus, Product, ProductId, RepositoryError};
use sea_orm::{DatabaseBackend, QueryResult, Value};

use super::pending_order;
use crate::catalog::visible_category_ids;
use crate::error::{corrupt_row, is_transaction_conflict, repository_error};
use crate::outbox::PENDING;
use crate::pg;
use crate::price_hints::Seen;
use crate::store::{SqlStore, money, stored_instant, stored_stars, stored_stock, timestamp_value};
use domain::payments::OrderPayment;

/// How many times the statement is sent for one order. It refuses only when a product
/// changed (a new price, a deactivation) between pricing and locking, or when PostgreSQL
/// aborted it for a concurrent transaction (a deadlock with an operator's script that
/// locks the same rows in another order); each time the next attempt is priced from the
/// rows it locked, so a second attempt normally succeeds or is refused by the domain.
pub(super) const PLACE_ATTEMPTS: u32 = 4;

/// Parameters `$1`..`$13`: the order's columns, its event's, then its payment's.
const ORDER_PARAMS: usize = 13;
/// Parameters per line, after the order's: product id, name, quantity, price, revision.
const LINE_PARAMS: usize = 5;

/// The columns of a product the statement and the plain read return: what pricing reads,
/// and the revision. `is_active` is whether the product can be sold: active itself and in
/// a visible category. The revision covers the product's own columns only, so the
/// statement checks this too; the category subquery reads the statement's snapshot (the
/// categories are not locked), so a placement already waiting on a product's lock when a
/// category is hidden may still sell it — the same moment as if it had been a little
/// earlier.
const PRODUCT_COLUMNS: &str = concat!(
    r#"product."id", product."category_id", product."name", product."price_minor",
           (product."is_active" AND product."category_id" IN ("#,
    visible_category_ids!(),
    r#")) AS "is_active", product."sort_order", product."stock", product."revision",
           product."price_stars""#
);

/// Places the order (see the module's documentation).
pub(super) async fn place(store: &SqlStore, order: &NewOrder) -> Result<Order, PlaceOrderError> {
    let draft = &order.draft;
    let ids = draft.product_ids();
    let placements = &store.placements;
    // `fresh`: read from the database (plainly, or locked by a refused statement) rather
    // than remembered, so that a pricing error is the answer.
    let (mut seen, mut fresh) = match placements.hints.get(&ids) {
        Some(hinted) => (hinted, false),
        None => (read_products(store, &ids).await?, true),
    };
    let mut attempt = 0;
    // Why the last statement wrote nothing, for the error when the attempts run out.
    let mut last_refusal: Option<anyhow::Error> = None;
    loop {
        // Priced before the attempts are counted: whatever the last refused statement
        // locked, a pricing error from it is the answer.
        let priced = match price_order(draft, &seen.products, &order.payment_terms) {
            Ok(priced) => priced,
            Err(err) if fresh => return Err(err),
            // What the hints say is wrong (inactive, out of stock) may no longer be: only
            // what the database holds may refuse an order.
            Err(_) => {
                seen = read_products(store, &ids).await?;
                fresh = true;
                continue;
            }
        };
        if attempt >= PLACE_ATTEMPTS {
            let cause = last_refusal.unwrap_or_else(|| anyhow::anyhow!("refused"));
            return Err(RepositoryError::Unavailable(cause.context(format!(
                "the ordered products kept changing while the order was placed \
                 ({PLACE_ATTEMPTS} statements)"
            )))
            .into());
        }
        attempt += 1;
        match send(store, order, &priced, &seen).await {
            Ok(Sent::Placed { order_id, locked }) => {
                placements.count_statement(true);
                remember_after_taking(store, order, locked);
                return Ok(pending_order(
                    order_id,
                    order.user_id,
                    draft,
                    stored_instant(order.placed_at),
                    priced,
                    &order.payment_terms,
                ));
            }
            Ok(Sent::Refused { locked, key_free }) => {
                placements.count_statement(false);
                placements.hints.remember(&ids, locked.clone());
                seen = locked;
                fresh = true;
                if !key_free {
                    // Another request placed the key's order (or the key is gone). A
                    // pricing error still comes first, as it did before the key mattered.
                    price_order(draft, &seen.products, &order.payment_terms)?;
                    return Err(PlaceOrderError::IdempotencyKeyInUse);
                }
                last_refusal = Some(anyhow::anyhow!(
                    "a product changed between pricing and locking"
                ));
            }
            // Aborted by a concurrent transaction, so nothing was written: go again.
            Err(err) if is_transaction_conflict(&err) => {
                placements.count_statement(false);
                tracing::warn!(
                    attempt,
                    error = format!("{err:#}"),
                    "an order statement conflicted with another transaction; retrying"
                );
                last_refusal = Some(anyhow::Error::new(err));
            }
            Err(err) => {
                placements.count_statement(false);
                return Err(err.into());
            }
        }
    }
}

/// What the statement did.
enum Sent {
    /// Placed: the new order's id, and the rows as locked (before the stock was taken).
    Placed { order_id: i64, locked: Seen },
    /// Wrote nothing. `key_free`: whether the idempotency key (if any) could still take
    /// the order.
    Refused { locked: Seen, key_free: bool },
}

/// Sends the statement for `priced`, which was priced from `seen`.
async fn send(
    store: &SqlStore,
    order: &NewOrder,
    priced: &PricedOrder,
    seen: &Seen,
) -> Result<Sent, RepositoryError> {
    let revisions: HashMap<ProductId, i64> = seen
        .products
        .iter()
        .zip(&seen.revisions)
        .map(|(product, revision)| (product.id, *revision))
        .collect();
    let mut values = order_values(order, priced)?;
    for item in &priced.items {
        let quantity = i32::try_from(item.quantity)
            .map_err(|err| corrupt_row(format!("quantity out of range: {err}")))?;
        let revision = revisions.get(&item.product_id).copied().ok_or_else(|| {
            corrupt_row(format!(
                "product {} was priced without a revision",
                item.product_id.0
            ))
        })?;
        values.extend([
            Value::from(item.product_id.0),
            Value::from(item.product_name.as_str()),
            Value::from(quantity),
            Value::from(item.price.minor_units()),
            Value::from(revision),
        ]);
    }
    let keyed = match &order.idempotency_key {
        Some(key) => {
            values.push(key.as_str().into());
            true
        }
        None => false,
    };
    let sql = placement_sql(priced.items.len(), keyed);
    let rows = pg::fetch_all(&store.db, &sql, values)
        .await
        .map_err(|err| {
            repository_error(
                err,
                "the placement statement (stock, order, lines, outbox event) failed",
            )
        })?;

    let read = |err| repository_error(err, "failed to read the placement's answer");
    let order_id = match rows.first() {
        Some(row) => row.try_get::<Option<i64>>("", "order_id").map_err(read)?,
        None => None,
    };
    // Read only when nothing was written: once the order is committed, nothing below may
    // fail the placement, or a retry would place it twice.
    let key_free = match (order_id, rows.first()) {
        (None, Some(row)) => row.try_get::<bool>("", "key_free").map_err(read)?,
        // Placed; or none of the products exists, which pricing says before the key
        // matters.
        _ => true,
    };
    // The order (if any) is committed: an unreadable row must not fail the placement, or
    // a retry would place it twice; it only costs the hints.
    let locked = match rows.iter().map(product_row).collect::<Result<Vec<_>, _>>() {
        Ok(products) => Seen::from_rows(products),
        Err(error) if order_id.is_some() => {
            tracing::warn!(%error, "could not read a locked product back; dropping its hints");
            Seen::default()
        }
        Err(error) => return Err(error),
    };
    Ok(match order_id {
        Some(order_id) => Sent::Placed { order_id, locked },
        None => Sent::Refused { locked, key_free },
    })
}

/// Remembers the rows a placement locked, less the stock it took.
fn remember_after_taking(store: &SqlStore, order: &NewOrder, mut locked: Seen) {
    for product in &mut locked.products {
        let taken = order
            .draft
            .lines()
            .iter()
            .find(|line| line.product_id == product.id)
            .map_or(0, |line| line.quantity.get());
        product.stock = product.stock.map(|stock| stock.saturating_sub(taken));
    }
    store
        .placements
        .hints
        .remember(&order.draft.product_ids(), locked);
}

/// The products as they are now, without locking them (the statement locks them).
async fn read_products(store: &SqlStore, ids: &[ProductId]) -> Result<Seen, RepositoryError> {
    store.placements.count_read();
    let params: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        r#"SELECT {PRODUCT_COLUMNS}
FROM "products" AS product
WHERE product."id" IN ({})"#,
        params.join(", ")
    );
    let values = ids.iter().map(|id| Value::from(id.0)).collect();
    let rows = pg::fetch_all(&store.db, &sql, values)
        .await
        .map_err(|err| repository_error(err, "failed to read the ordered products"))?;
    let seen = Seen::from_rows(rows.iter().map(product_row).collect::<Result<_, _>>()?);
    store.placements.hints.remember(ids, seen.clone());
    Ok(seen)
}

/// A product row of the statement or the plain read: what pricing reads, and the revision.
fn product_row(row: &QueryResult) -> Result<(Product, i64), RepositoryError> {
    let read = |err| repository_error(err, "failed to read a product");
    let id: i64 = row.try_get("", "id").map_err(read)?;
    let stock: Option<i32> = row.try_get("", "stock").map_err(read)?;
    let product = Product {
        id: ProductId(id),
        category_id: CategoryId(row.try_get("", "category_id").map_err(read)?),
        name: row.try_get("", "name").map_err(read)?,
        description: None,
        price: money(row.try_get("", "price_minor").map_err(read)?, || {
            format!("the price of product {id}")
        })?,
        images: Vec::new(),
        is_active: row.try_get("", "is_active").map_err(read)?,
        sort_order: row.try_get("", "sort_order").map_err(read)?,
        stock: stored_stock(id, stock)?,
        price_stars: stored_stars(id, row.try_get("", "price_stars").map_err(read)?)?,
    };
    Ok((product, row.try_get("", "revision").map_err(read)?))
}

/// The order's parameters, `$1`..`$13`: user, status, total, address, phone, comment, time,
/// event kind, event status, payment status, currency, amount, deadline.
fn order_values(order: &NewOrder, priced: &PricedOrder) -> Result<Vec<Value>, RepositoryError> {
    let draft = &order.draft;
    let mut values: Vec<Value> =
        Vec::with_capacity(ORDER_PARAMS + LINE_PARAMS * priced.items.len() + 1);
    values.extend([
        order.user_id.0.into(),
        OrderStatus::Pending.as_str().into(),
        priced.total_amount.minor_units().into(),
        draft.delivery_address().as_str().into(),
        draft.phone().as_str().into(),
        draft
            .comment()
            .map(|comment| comment.as_str().to_owned())
            .into(),
        timestamp_value(DatabaseBackend::Postgres, order.placed_at),
        ORDER_CREATED.into(),
        PENDING.into(),
    ]);
    let payment = OrderPayment::at_placement(priced.payment, order.placed_at, &order.payment_terms);
    values.extend([
        payment.status.as_str().into(),
        payment.due.map(|due| due.currency.code().to_owned()).into(),
        payment.due.map(|due| due.amount).into(),
        payment
            .due_by
            .map(|due_by| timestamp_value(DatabaseBackend::Postgres, due_by))
            .unwrap_or(Value::TimeDateTimeWithTimeZone(None)),
    ]);
    Ok(values)
}

/// The placement statement for an order of `lines` lines (one per product), with an
/// idempotency key when `keyed`. Parameters: `$1`..`$13` the order's (see
/// [`order_values`]), then five per line in cart order (product id, name, quantity, price,
/// revision), then the key.
///
/// `locked` takes the row locks in id order, so two carts never lock the same products in
/// opposite orders, and returns each row's newest version (PostgreSQL re-reads a row it
/// had to wait for), so `verdict` judges the rows as they are at commit. Every write is
/// conditional on `verdict`.
///
/// The writes filter on what `locked` and `claimed_key` returned, never on a column of the
/// row they update: their scans read the statement's snapshot, which may be older than
/// the locked row. (A product made limited after the snapshot would otherwise look
/// unlimited to the stock update, and keep its stock.) Each write finds its row already
/// locked by this statement and updates the newest version, computing the stock from it;
/// the `CHECK (stock >= 0)` constraint stands behind `verdict`. The answer is the locked
/// rows, each with the new order's id (NULL when nothing was written) and whether the key
/// was free.
///
/// The outbox event is due at the database's `now()`, not at the placing instance's `$7`:
/// the relay's claim judges it by the database's clock, and an instance whose clock ran
/// ahead would otherwise hold its notifications back by as much.
pub(crate) fn placement_sql(lines: usize, keyed: bool) -> String {
    debug_assert!(lines > 0, "a draft has at least one line");
    let mut values = String::new();
    let mut product_params = String::new();
    for position in 0..lines {
        let first = ORDER_PARAMS + 1 + position * LINE_PARAMS;
        if position > 0 {
            values.push_str(",\n           ");
            product_params.push_str(", ");
        }
        let _ = write!(
            values,
            "(${first}::bigint, ${}::text, ${}::integer, ${}::bigint, ${}::bigint, {position})",
            first + 1,
            first + 2,
            first + 3,
            first + 4,
        );
        let _ = write!(product_params, "${first}");
    }
    let key = ORDER_PARAMS + lines * LINE_PARAMS + 1;
    let (claim_key, key_is_free, attach_key, key_free) = if keyed {
        (
            format!(
                r#"claimed_key AS (
    SELECT 1 FROM "idempotency_keys"
    WHERE "user_id" = $1 AND "key" = ${key} AND "order_id" IS NULL
    FOR UPDATE
), "#
            ),
            " AND EXISTS (SELECT 1 FROM claimed_key)",
            format!(
                r#", attached AS (
    UPDATE "idempotency_keys" SET "order_id" = new_order."id" FROM new_order
    WHERE "idempotency_keys"."user_id" = $1 AND "idempotency_keys"."key" = ${key}
)"#
            ),
            "EXISTS (SELECT 1 FROM claimed_key)",
        )
    } else {
        (String::new(), "", String::new(), "TRUE")
    };
    format!(
        r#"WITH line (product_id, product_name, quantity, price_minor, revision, position) AS (
    VALUES {values}
), locked AS (
    SELECT {PRODUCT_COLUMNS}
    FROM "products" AS product
    WHERE product."id" IN ({product_params})
    ORDER BY product."id"
    FOR UPDATE
), {claim_key}verdict AS (
    SELECT count(*) = {lines}{key_is_free} AS ok
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
    SELECT $1, $2, $3, $4, $5, $6, $7, $7, $10, $11, $12::bigint, $13::timestamptz FROM verdict WHERE verdict.ok
    RETURNING "id"
), new_lines AS (
    INSERT INTO "order_items" ("order_id", "product_id", "product_name", "quantity", "price_minor")
    SELECT new_order."id", line.product_id, line.product_name, line.quantity, line.price_minor
    FROM new_order, line
    ORDER BY line.position
), new_event AS (
    INSERT INTO "outbox_events" ("kind", "order_id", "status", "next_attempt_at", "created_at")
    SELECT $8, new_order."id", $9, now(), $7 FROM new_order
){attach_key}
SELECT (SELECT "id" FROM new_order) AS "order_id", {key_free} AS "key_free", locked.*
FROM locked"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bench/order.pgbench.sql` is this statement, rendered for pgbench: the database
    /// ceiling the benchmark compares `POST /orders` with. It is generated here, so it
    /// cannot drift from what the code sends; `BOTSHOP_BLESS=1 cargo test -p
    /// infra-postgres pgbench` rewrites it after a change.
    #[test]
    fn the_pgbench_script_is_the_placement_statement() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/order.pgbench.sql");
        let script = pgbench_script();
        if std::env::var_os("BOTSHOP_BLESS").is_some() {
            std::fs::write(path, &script).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap();
        assert!(
            on_disk == script,
            "bench/order.pgbench.sql differs from the statement the code sends; \
             run `BOTSHOP_BLESS=1 cargo test -p infra-postgres pgbench` and commit it"
        );
    }

    /// The `$n` placeholders of `sql`, ascending, each once.
    fn placeholders(sql: &str) -> Vec<usize> {
        let mut found = Vec::new();
        substitute_with(sql, |n| {
            found.push(n);
            String::new()
        });
        found.sort_unstable();
        found.dedup();
        found
    }

    #[test]
    fn parameters_are_numbered_as_they_are_bound() {
        for (lines, keyed) in [(1, false), (1, true), (3, false), (50, true)] {
            let expected = ORDER_PARAMS + lines * LINE_PARAMS + usize::from(keyed);
            assert_eq!(
                placeholders(&placement_sql(lines, keyed)),
                (1..=expected).collect::<Vec<_>>(),
                "{lines} lines, keyed: {keyed}"
            );
        }
        assert!(!placement_sql(1, false).contains("idempotency_keys"));
        // The key is the last parameter, and the statement compares it.
        assert!(placement_sql(2, true).contains(&format!(
            "\"key\" = ${}",
            ORDER_PARAMS + 2 * LINE_PARAMS + 1
        )));
    }

    /// The header of the pgbench script: how to run it, and the variables it draws.
    const PGBENCH_HEADER: &str = r#"-- GENERATED from crates/infra-postgres/src/orders/place_postgres.rs (`placement_sql`) by
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
"#;

    /// bench/seed.sql's product name, as an SQL expression of the pgbench variable `var`.
    fn seeded_name(var: &str) -> String {
        format!(
            "((ARRAY['Пицца', 'Ролл', 'Бургер', 'Салат', 'Суп', 'Десерт', 'Напиток', 'Завтрак', \
             'Паста', 'Пирог', 'Шашлык', 'Лапша', 'Закуска', 'Соус', 'Набор', 'Блюдо', 'Креветки', \
             'Стейк', 'Кофе', 'Чай'])[(:{var} - 1) / 50 + 1] || ' «' || (ARRAY['Фирменный', \
             'Классика', 'Острый', 'Домашний', 'Макси', 'Мини', 'Сезонный', 'Ёлочный', 'Особый', \
             'Летний'])[((:{var} - 1) % 50) % 10 + 1] || '» №' || ((:{var} - 1) % 50 + 1))"
        )
    }

    fn pgbench_script() -> String {
        let order = [
            ":uid".to_owned(),
            "'PENDING'".to_owned(),
            ":total".to_owned(),
            "'г. Москва, ул. Пушкина, д. 10, кв. 5'".to_owned(),
            "'+79001234567'".to_owned(),
            "'Домофон не работает'".to_owned(),
            "now()".to_owned(),
            format!("'{ORDER_CREATED}'"),
            format!("'{PENDING}'"),
            "'not_required'".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
        ];
        let mut params: Vec<String> = order.to_vec();
        for (var, price) in [("a", ":pa"), ("b", ":pb"), ("c", ":pc")] {
            params.extend([
                format!(":{var}"),
                seeded_name(var),
                ":q".to_owned(),
                price.to_owned(),
                "0".to_owned(),
            ]);
        }
        let sql = substitute(&placement_sql(3, false), &params);
        format!("{PGBENCH_HEADER}{sql};\n")
    }

    /// `sql` with each `$n` replaced by `params[n - 1]`.
    fn substitute(sql: &str, params: &[String]) -> String {
        substitute_with(sql, |n| params[n - 1].clone())
    }

    /// `sql` with each `$n` replaced by `param(n)`.
    fn substitute_with(sql: &str, mut param: impl FnMut(usize) -> String) -> String {
        let mut out = String::with_capacity(sql.len() * 2);
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            out.push_str(&param(digits.parse().unwrap()));
        }
        out
    }
}
