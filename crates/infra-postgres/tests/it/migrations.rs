//! The migrations go up, down (reversing every step) and up again on both backends.

use infra_postgres::test_support::TestDatabase;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{T0, category, count, new_user, place_order, product_id, seed};

contract_tests!(
    every_step_goes_down_and_up_again,
    adding_search_text_fills_it_in_for_existing_products,
    image_url_becomes_the_first_image_and_comes_back,
    existing_categories_become_active_roots_and_the_tree_goes_cleanly,
    the_trigram_index_comes_and_goes_and_the_products_stay,
    the_word_index_learns_the_existing_products_and_goes_cleanly,
    manager_notices_come_and_go_with_their_step,
    the_audit_log_and_the_status_index_come_and_go,
    the_sku_comes_and_goes_and_the_products_stay,
);

/// Rolls back one step at a time until `last` is the last applied migration. Tests of a
/// step start from the schema just before or after it, whatever steps come later.
async fn down_to(db: &TestDatabase, last: &str) {
    let connection = db.database().connection();
    loop {
        let applied = Migrator::get_applied_migrations(connection).await.unwrap();
        let newest = applied.last().map(|m| m.name().to_owned());
        assert!(newest.is_some(), "{last} is not applied");
        if newest.as_deref() == Some(last) {
            return;
        }
        Migrator::down(connection, Some(1)).await.unwrap();
    }
}

/// The tables, indexes and triggers of our schema (not the migrator's bookkeeping, nor
/// the indexes backing primary keys and UNIQUE constraints), sorted; on PostgreSQL also
/// our functions (not an extension's, such as `pg_trgm`'s) and sequences other than serial
/// columns'.
async fn schema_objects(db: &TestDatabase) -> Vec<String> {
    let sql = if db.is_sqlite() {
        "SELECT type || ' ' || name AS object FROM sqlite_master \
         WHERE type IN ('table', 'index', 'trigger') AND name NOT LIKE 'sqlite_%' \
         AND name <> 'seaql_migrations' ORDER BY object"
    } else {
        "SELECT 'table ' || table_name AS object FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> 'seaql_migrations' \
         UNION ALL \
         SELECT 'index ' || indexname FROM pg_indexes \
         WHERE schemaname = 'public' AND indexname LIKE 'idx_%' \
         UNION ALL \
         SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal \
         UNION ALL \
         SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace \
         AND NOT EXISTS (SELECT 1 FROM pg_depend WHERE classid = 'pg_proc'::regclass \
                         AND objid = pg_proc.oid AND deptype = 'e') \
         UNION ALL \
         SELECT 'sequence ' || sequencename FROM pg_sequences \
         WHERE schemaname = 'public' AND sequencename NOT LIKE '%_id_seq' \
         ORDER BY object"
    };
    let connection = db.database().connection();
    connection
        .query_all_raw(Statement::from_string(
            connection.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<String>("", "object").unwrap())
        .collect()
}

/// The columns of `table`, sorted.
async fn columns(db: &TestDatabase, table: &str) -> Vec<String> {
    let sql = if db.is_sqlite() {
        format!("SELECT name AS column_name FROM pragma_table_info('{table}') ORDER BY name")
    } else {
        format!(
            "SELECT column_name::text AS column_name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY column_name"
        )
    };
    let connection = db.database().connection();
    connection
        .query_all_raw(Statement::from_string(
            connection.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<String>("", "column_name").unwrap())
        .collect()
}

const PRODUCT_COLUMNS: [&str; 10] = [
    "category_id",
    "created_at",
    "description",
    "id",
    "image_url",
    "is_active",
    "name",
    "price_minor",
    "sort_order",
    "updated_at",
];

async fn every_step_goes_down_and_up_again(db: &TestDatabase) {
    let connection = db.database().connection();
    new_user(db, 1).await;
    seed(db, &[category("pizza", 0, &[("Маргарита", "450", 0)])]).await;
    // The product steps after 10 are walked down and up by their own tests below.
    down_to(db, "m20250101_000010_outbox_dead_index").await;
    let full = [
        "index idx_idempotency_keys_created_at",
        "index idx_order_items_order_id",
        "index idx_orders_user_id_created_at",
        "index idx_outbox_events_pending_id",
        "index idx_products_category_id_sort_order",
        "index idx_products_is_active_price_minor",
        "table categories",
        "table idempotency_keys",
        "table order_items",
        "table orders",
        "table outbox_events",
        "table outbox_holds",
        "table products",
        "table users",
    ];
    // Migration 8's trigger (and on PostgreSQL its function and sequence).
    let revision_objects: &[&str] = if db.is_sqlite() {
        &["trigger products_revision"]
    } else {
        &[
            "function products_bump_revision",
            "sequence products_revision_seq",
            "trigger products_revision",
        ]
    };
    let mut with_revision_objects: Vec<&str> = full.to_vec();
    with_revision_objects.extend(revision_objects);
    with_revision_objects.sort_unstable();
    // Migration 9's index of sent events.
    let mut with_claims: Vec<&str> = with_revision_objects.clone();
    with_claims.push("index idx_outbox_events_sent_at");
    with_claims.sort_unstable();
    // Migration 10's index of dead events.
    let mut with_dead_index = with_claims.clone();
    with_dead_index.push("index idx_outbox_events_dead_id");
    with_dead_index.sort_unstable();
    assert_eq!(schema_objects(db).await, with_dead_index);
    assert!(
        columns(db, "outbox_events")
            .await
            .contains(&"claim_token".to_owned())
    );
    let mut with_stock: Vec<&str> = PRODUCT_COLUMNS.to_vec();
    with_stock.extend(["search_text", "stock"]);
    with_stock.sort_unstable();
    let mut with_revision = with_stock.clone();
    with_revision.push("revision");
    with_revision.sort_unstable();
    assert_eq!(columns(db, "products").await, with_revision);

    // The index of dead events goes.
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(schema_objects(db).await, with_claims);

    // The claim token and the index of sent events go.
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(schema_objects(db).await, with_revision_objects);
    assert!(
        !columns(db, "outbox_events")
            .await
            .contains(&"claim_token".to_owned())
    );

    // The revision and its trigger go; the product stays, and can still be repriced.
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(columns(db, "products").await, with_stock);
    assert_eq!(schema_objects(db).await, full);
    db.execute("UPDATE products SET price_minor = 50000")
        .await
        .unwrap();
    assert_eq!(count(db, "products").await, 1);

    Migrator::down(connection, Some(1)).await.unwrap();
    let mut before_holds: Vec<&str> = full
        .iter()
        .filter(|object| {
            !["table outbox_holds", "index idx_outbox_events_pending_id"].contains(object)
        })
        .copied()
        .collect();
    before_holds.push("index idx_outbox_events_status_next_attempt_at");
    before_holds.sort_unstable();
    assert_eq!(schema_objects(db).await, before_holds);
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(
        schema_objects(db).await,
        [
            "index idx_order_items_order_id",
            "index idx_orders_user_id_created_at",
            "index idx_outbox_events_status_next_attempt_at",
            "index idx_products_category_id_sort_order",
            "index idx_products_is_active_price_minor",
            "table categories",
            "table order_items",
            "table orders",
            "table outbox_events",
            "table products",
            "table users",
        ]
    );
    // Down with a product in the table: the columns go, the product stays.
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(columns(db, "products").await, PRODUCT_COLUMNS);
    assert_eq!(count(db, "products").await, 1);

    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(
        schema_objects(db).await,
        [
            "index idx_order_items_order_id",
            "index idx_orders_user_id_created_at",
            "index idx_products_category_id_sort_order",
            "table categories",
            "table order_items",
            "table orders",
            "table products",
            "table users",
        ]
    );
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(
        schema_objects(db).await,
        [
            "index idx_products_category_id_sort_order",
            "table categories",
            "table products",
            "table users",
        ]
    );
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(schema_objects(db).await, ["table users"]);
    Migrator::down(connection, Some(1)).await.unwrap();
    assert!(schema_objects(db).await.is_empty());
    assert!(
        Migrator::get_applied_migrations(connection)
            .await
            .unwrap()
            .is_empty()
    );

    Migrator::up(connection, None).await.unwrap();
    assert_eq!(
        Migrator::get_pending_migrations(connection)
            .await
            .unwrap()
            .len(),
        0
    );
    down_to(db, "m20250101_000010_outbox_dead_index").await;
    assert_eq!(schema_objects(db).await, with_dead_index);
    Migrator::up(connection, None).await.unwrap();
    // The schema works again, from empty tables.
    assert_eq!(count(db, "users").await, 0);
    new_user(db, 1).await;
    assert_eq!(count(db, "users").await, 1);
}

/// Products written before `search_text` existed get theirs from the migration, computed
/// as the application computes it for new ones.
async fn adding_search_text_fills_it_in_for_existing_products(db: &TestDatabase) {
    let connection = db.database().connection();
    // Back to before stock and search text.
    down_to(db, "m20250101_000004_create_outbox_events").await;
    db.execute("INSERT INTO categories (name, slug) VALUES ('Пицца', 'pizza')")
        .await
        .unwrap();
    let products = [
        ("Пицца  МАРГАРИТА", Some("Томаты, Моцарелла\tи ЁЖИКИ")),
        ("Квас", None),
    ];
    for (name, description) in products {
        let description = description.map_or("NULL".to_owned(), |d| format!("'{d}'"));
        db.execute(&format!(
            "INSERT INTO products (category_id, name, description, price_minor, created_at, \
             updated_at) SELECT id, '{name}', {description}, 100, '2025-01-01T00:00:00.000000Z', \
             '2025-01-01T00:00:00.000000Z' FROM categories"
        ))
        .await
        .unwrap();
    }

    Migrator::up(connection, None).await.unwrap();

    for (name, description) in products {
        let stored = connection
            .query_one_raw(Statement::from_sql_and_values(
                connection.get_database_backend(),
                if db.is_sqlite() {
                    "SELECT search_text, stock FROM products WHERE name = ?"
                } else {
                    "SELECT search_text, stock FROM products WHERE name = $1"
                },
                [name.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.try_get::<String>("", "search_text").unwrap(),
            domain::catalog::product_search_text(name, description)
        );
        // Existing products are unlimited.
        assert_eq!(stored.try_get::<Option<i32>>("", "stock").unwrap(), None);
    }
}

/// The migration keeps a copy of the domain's normalisation (a migration must not change
/// when the domain does); the two must agree, or products written before the column
/// existed would be found differently from new ones.
#[test]
fn the_migrations_search_text_is_the_domains() {
    let samples = [
        ("Пицца Маргарита", Some("Томатный соус, моцарелла, базилик")),
        ("ПИЦЦА  пепперони", None),
        ("Ёжик в тумане", Some("Мёд и ЁЛКА")),
        ("  Coca-Cola\t0,5 л ", Some("\nГАЗИРОВКА\u{a0}со льдом")),
        ("ΣΊΣΥΦΟΣ", Some("Straße İstanbul")),
        ("100% сок_яблоко", Some("")),
        ("", None),
    ];
    for (name, description) in samples {
        assert_eq!(
            migration::product_search_text(name, description),
            domain::catalog::product_search_text(name, description),
            "{name:?} / {description:?}"
        );
    }
}

/// Migration 11: each product's `image_url` becomes its one-image gallery (none: `[]`),
/// the database refuses a gallery that is not a JSON array of at most 10, and going down
/// brings the first image back as `image_url`.
async fn image_url_becomes_the_first_image_and_comes_back(db: &TestDatabase) {
    let connection = db.database().connection();
    seed(
        db,
        &[category(
            "pizza",
            0,
            &[("Маргарита", "450", 0), ("Квас", "90", 0)],
        )],
    )
    .await;
    down_to(db, "m20250101_000008_products_revision").await;
    db.execute(
        "UPDATE products SET image_url = 'https://cdn.example.com/a\"b.jpg' \
         WHERE name = 'Маргарита'",
    )
    .await
    .unwrap();

    Migrator::up(connection, None).await.unwrap();
    assert!(
        !columns(db, "products")
            .await
            .contains(&"image_url".to_owned())
    );
    let images = |name: &'static str| async move {
        let row = db
            .database()
            .connection()
            .query_one_raw(Statement::from_string(
                db.database().connection().get_database_backend(),
                format!("SELECT images FROM products WHERE name = '{name}'"),
            ))
            .await
            .unwrap()
            .unwrap();
        let text: String = row.try_get("", "images").unwrap();
        serde_json::from_str::<Vec<String>>(&text).unwrap()
    };
    assert_eq!(
        images("Маргарита").await,
        ["https://cdn.example.com/a\"b.jpg"]
    );
    assert!(images("Квас").await.is_empty());

    // Not an array, or more than ten: refused by the database itself.
    let eleven = serde_json::to_string(&vec!["https://e.com/x.jpg"; 11]).unwrap();
    for bad in ["'{}'", "'\"x\"'", "'not json'", &format!("'{eleven}'")] {
        assert!(
            db.execute(&format!("UPDATE products SET images = {bad}"))
                .await
                .is_err(),
            "{bad}"
        );
    }
    let ten = serde_json::to_string(&vec!["https://e.com/x.jpg"; 10]).unwrap();
    db.execute(&format!(
        "UPDATE products SET images = '{ten}' WHERE name = 'Квас'"
    ))
    .await
    .unwrap();

    down_to(db, "m20250101_000008_products_revision").await;
    assert!(!columns(db, "products").await.contains(&"images".to_owned()));
    let first = connection
        .query_all_raw(Statement::from_string(
            connection.get_database_backend(),
            "SELECT image_url FROM products ORDER BY name".to_owned(),
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<Option<String>>("", "image_url").unwrap())
        .collect::<Vec<_>>();
    // Ordered by name: Квас, Маргарита.
    assert_eq!(
        first,
        [
            Some("https://e.com/x.jpg".to_owned()),
            Some("https://cdn.example.com/a\"b.jpg".to_owned())
        ]
    );
    Migrator::up(connection, None).await.unwrap();
}

/// Migration 12: the categories a shop already has become active roots; down removes the
/// tree (its columns, triggers and index) and keeps the categories.
async fn existing_categories_become_active_roots_and_the_tree_goes_cleanly(db: &TestDatabase) {
    let connection = db.database().connection();
    seed(
        db,
        &[
            category("pizza", 0, &[("Маргарита", "450", 0)]),
            category("drinks", 1, &[]),
        ],
    )
    .await;
    let objects_with_tree = schema_objects(db).await;
    down_to(db, "m20250101_000011_product_images").await;
    assert!(
        !columns(db, "categories")
            .await
            .contains(&"parent_id".to_owned())
    );
    assert!(
        !columns(db, "categories")
            .await
            .contains(&"is_active".to_owned())
    );
    let without_tree = schema_objects(db).await;
    assert!(
        without_tree.iter().all(|o| !o.contains("categories_tree")
            && !o.contains("categories_parent")
            && !o.contains("categories_keep")
            && !o.contains("idx_categories_parent_id")),
        "{without_tree:?}"
    );
    assert_eq!(count(db, "categories").await, 2);

    Migrator::up(connection, None).await.unwrap();
    assert_eq!(schema_objects(db).await, objects_with_tree);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM categories WHERE parent_id IS NULL AND is_active")
            .await
            .unwrap(),
        2
    );
}

/// Migration 13: on PostgreSQL the trigram index of `search_text` comes with the step and
/// goes with it, and `pg_trgm` stays (it is the database's, see the migration); on SQLite
/// the step changes nothing. The products are there all along.
async fn the_trigram_index_comes_and_goes_and_the_products_stay(db: &TestDatabase) {
    let connection = db.database().connection();
    seed(
        db,
        &[category(
            "pizza",
            0,
            &[("Маргарита", "450", 0), ("Квас", "90", 0)],
        )],
    )
    .await;
    const STEP: &str = "m20250101_000013_products_search_trigram";
    const INDEX: &str = "index idx_products_search_text_trgm";
    let applied: Vec<String> = Migrator::get_applied_migrations(connection)
        .await
        .unwrap()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let step = applied.iter().position(|name| name == STEP).unwrap();
    let before = applied[step - 1].clone();
    let extension = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'";

    down_to(db, STEP).await;
    let with_index = schema_objects(db).await;
    down_to(db, &before).await;
    let without_index = schema_objects(db).await;
    assert_eq!(count(db, "products").await, 2);
    if db.is_sqlite() {
        assert_eq!(without_index, with_index);
    } else {
        assert!(!without_index.contains(&INDEX.to_owned()));
        let mut expected = without_index.clone();
        expected.push(INDEX.to_owned());
        expected.sort_unstable();
        assert_eq!(with_index, expected);
        assert_eq!(db.query_i64(extension).await.unwrap(), 1);
    }

    // Up again, with the extension already there.
    Migrator::up(connection, None).await.unwrap();
    down_to(db, STEP).await;
    assert_eq!(schema_objects(db).await, with_index);
    assert_eq!(count(db, "products").await, 2);
}

/// Migration 17: on PostgreSQL the word index and its dictionary come with the step, the
/// dictionary holding the words of the products already there, and go with it; on SQLite
/// the step changes nothing. The products are there all along.
async fn the_word_index_learns_the_existing_products_and_goes_cleanly(db: &TestDatabase) {
    const STEP: &str = "m20250101_000017_products_search_words";
    let connection = db.database().connection();
    down_to(db, STEP).await;
    let with_words = schema_objects(db).await;
    let columns_with_words = columns(db, "products").await;
    Migrator::down(connection, Some(1)).await.unwrap();
    let without_words = schema_objects(db).await;
    seed(
        db,
        &[category(
            "pizza",
            0,
            &[("Пицца Маргарита", "450", 0), ("Квас", "90", 0)],
        )],
    )
    .await;

    Migrator::up(connection, None).await.unwrap();
    down_to(db, STEP).await;
    assert_eq!(schema_objects(db).await, with_words);
    assert_eq!(count(db, "products").await, 2);
    if db.is_sqlite() {
        assert_eq!(without_words, with_words);
        return;
    }
    let mut expected = without_words.clone();
    expected.extend([
        "function botshop_learn_search_words".to_owned(),
        "function botshop_search_words".to_owned(),
        "index idx_products_search_words".to_owned(),
        "index idx_search_dictionary_trgm".to_owned(),
        "table search_dictionary".to_owned(),
        "trigger products_search_words_insert".to_owned(),
        "trigger products_search_words_update".to_owned(),
    ]);
    expected.sort_unstable();
    assert_eq!(with_words, expected);
    assert!(columns_with_words.contains(&"search_words".to_owned()));
    // The products written before the step are in the dictionary.
    for word in ["пицца", "маргарита", "квас"] {
        let known = format!("SELECT count(*) FROM search_dictionary WHERE word = '{word}'");
        assert_eq!(db.query_i64(&known).await.unwrap(), 1, "{word}");
    }

    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(schema_objects(db).await, without_words);
    assert!(
        !columns(db, "products")
            .await
            .contains(&"search_words".to_owned())
    );
    assert_eq!(count(db, "products").await, 2);
}

/// Migration 18: the outbox admits `manager_notice` events; going down deletes them (and
/// only them) and refuses new ones, on both backends.
async fn manager_notices_come_and_go_with_their_step(db: &TestDatabase) {
    const STEP: &str = "m20250101_000018_outbox_manager_notice";
    let connection = db.database().connection();
    // The order is placed with today's schema (the store reads every column it knows).
    seed(db, &[category("pizza", 0, &[("Маргарита", "450", 0)])]).await;
    let user = new_user(db, 1001).await;
    let order = place_order(db, &user, product_id(db, "Маргарита").await, 1, T0).await;
    down_to(db, STEP).await;
    let with_notices = schema_objects(db).await;
    let notice = format!(
        "INSERT INTO outbox_events (kind, order_id, chat, payload, status, next_attempt_at, created_at) \
         VALUES ('manager_notice', {}, 'manager_chat', '{{\"notice\": \"cancelled_by_customer\"}}', \
                 'PENDING', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
        order.id.0
    );
    db.execute(&notice).await.unwrap();
    assert_eq!(count(db, "outbox_events").await, 2);

    Migrator::down(connection, Some(1)).await.unwrap();
    // The new order's announcement stays; the notice goes, and no new one is admitted.
    assert_eq!(count(db, "outbox_events").await, 1);
    assert!(db.execute(&notice).await.is_err());

    Migrator::up(connection, None).await.unwrap();
    down_to(db, STEP).await;
    assert_eq!(schema_objects(db).await, with_notices);
    db.execute(&notice).await.unwrap();
    assert_eq!(count(db, "outbox_events").await, 2);
}

/// Migration 19: the audit log and the orders' status index come with the step and go
/// with it; the orders stay.
async fn the_audit_log_and_the_status_index_come_and_go(db: &TestDatabase) {
    const STEP: &str = "m20250101_000019_admin_audit_log";
    let connection = db.database().connection();
    seed(db, &[category("pizza", 0, &[("Маргарита", "450", 0)])]).await;
    let user = new_user(db, 1001).await;
    place_order(db, &user, product_id(db, "Маргарита").await, 1, T0).await;
    down_to(db, STEP).await;
    let with_audit = schema_objects(db).await;

    Migrator::down(connection, Some(1)).await.unwrap();
    let without_audit = schema_objects(db).await;
    let mut expected = without_audit.clone();
    expected.extend([
        "index idx_audit_log_at".to_owned(),
        "index idx_audit_log_entity".to_owned(),
        "index idx_orders_status_created_at".to_owned(),
        "table audit_log".to_owned(),
    ]);
    expected.sort_unstable();
    assert_eq!(with_audit, expected);
    assert_eq!(count(db, "orders").await, 1);

    Migrator::up(connection, None).await.unwrap();
    down_to(db, STEP).await;
    assert_eq!(schema_objects(db).await, with_audit);
    assert_eq!(count(db, "orders").await, 1);
}

/// Migration 20: `products.sku` and its unique index come and go; the products stay.
async fn the_sku_comes_and_goes_and_the_products_stay(db: &TestDatabase) {
    const STEP: &str = "m20250101_000020_product_sku";
    let connection = db.database().connection();
    down_to(db, STEP).await;
    seed(
        db,
        &[category(
            "pizza",
            0,
            &[("Маргарита", "450", 0), ("Квас", "90", 1)],
        )],
    )
    .await;
    db.execute("UPDATE products SET sku = 'PZ-1' WHERE name = 'Маргарита'")
        .await
        .unwrap();
    assert!(
        db.execute("UPDATE products SET sku = 'PZ-1' WHERE name = 'Квас'")
            .await
            .is_err(),
        "a SKU is unique"
    );
    Migrator::down(connection, Some(1)).await.unwrap();
    assert!(!columns(db, "products").await.contains(&"sku".to_owned()));
    assert_eq!(count(db, "products").await, 2);
    Migrator::up(connection, None).await.unwrap();
    assert!(columns(db, "products").await.contains(&"sku".to_owned()));
    assert_eq!(count(db, "products").await, 2);
}
