//! Backups restore: `server backup FILE` of the embedded database taken while the server
//! runs, and `deploy/backup.sh`'s pg_dump (with its rotation) restored with pg_restore,
//! each served by a fresh server that shows the customer the same orders.

use std::path::{Path, PathBuf};
use std::process::Command;

use infra_postgres::test_support::TestDatabase;
use serde_json::{Value, json};

use crate::process::{Database, ServerProcess, command, start};
use crate::support::{FakeTelegram, auth};

const CUSTOMER: i64 = 8_001;

/// A scratch directory of this test's own, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("botshop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Places `count` orders for [`CUSTOMER`] and one for somebody else.
async fn place_orders(server: &ServerProcess, count: i64) {
    let client = reqwest::Client::new();
    for (n, customer) in (0..count)
        .map(|_| CUSTOMER)
        .chain([CUSTOMER + 1])
        .enumerate()
    {
        let response = client
            .post(format!("http://127.0.0.1:{}/api/v1/orders", server.port))
            .header("Authorization", auth(customer, "Покупатель"))
            .json(&json!({
                "items": [{"product_id": 1, "quantity": n + 1}, {"product_id": 2, "quantity": 1}],
                "delivery_address": "ул. Пушкина, д. 10",
                "phone": "+79001234567",
                "comment": format!("заказ {n}"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
    }
}

/// The customer's orders page, as the Mini App gets it.
async fn my_orders(server: &ServerProcess) -> Value {
    let response = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/api/v1/orders/my?limit=50",
            server.port
        ))
        .header("Authorization", auth(CUSTOMER, "Покупатель"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

fn run(command: &mut Command) -> std::process::Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test]
async fn an_online_backup_of_the_embedded_database_serves_the_same_orders() {
    let telegram = FakeTelegram::start().await;
    let live_dir = scratch("backup-live");
    let live = Database::Sqlite(live_dir.join("botshop.db").to_string_lossy().into_owned());
    let server = start(&live, &telegram.server.uri());
    place_orders(&server, 3).await;
    let orders = my_orders(&server).await;
    assert_eq!(orders.as_array().map(Vec::len), Some(3), "{orders}");

    // While the server runs, its pool open and the orders perhaps only in the WAL.
    let backup = scratch("backup-files").join("botshop-backup.db");
    let output = run(command(&live, &telegram.server.uri())
        .arg("backup")
        .arg(&backup));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("backed up to"),
        "{output:?}"
    );
    // A second backup to the same file is refused: nothing is overwritten.
    let again = command(&live, &telegram.server.uri())
        .arg("backup")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{again:?}"
    );

    // The restore drill: the backup copied into place, a server started on it.
    let restored_dir = scratch("backup-restored");
    let restored_file = restored_dir.join("botshop.db");
    std::fs::copy(&backup, &restored_file).unwrap();
    let restored = start(
        &Database::Sqlite(restored_file.to_string_lossy().into_owned()),
        &telegram.server.uri(),
    );
    assert_eq!(my_orders(&restored).await, orders);

    drop((server, restored));
    for dir in [live_dir, restored_dir, backup.parent().unwrap().to_owned()] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn backup_refuses_postgres_and_points_to_pg_dump() {
    let output = command(
        &Database::Url("postgres://nobody@127.0.0.1:1/none".to_owned()),
        "http://127.0.0.1:9",
    )
    .args(["backup", "never-written.db"])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(stderr.contains("README"), "{stderr}");
    assert!(
        !stderr.contains("could not connect"),
        "refused before connecting: {stderr}"
    );
}

/// libpq's connection variables for a `postgres://` URL, as docker-compose gives them to
/// the backup service.
fn libpq_environment(url: &str) -> Vec<(&'static str, String)> {
    let url = reqwest::Url::parse(url).unwrap();
    let mut environment = vec![
        ("PGHOST", url.host_str().unwrap().to_owned()),
        ("PGPORT", url.port().unwrap_or(5432).to_string()),
        ("PGUSER", url.username().to_owned()),
        ("PGDATABASE", url.path().trim_start_matches('/').to_owned()),
    ];
    if let Some(password) = url.password() {
        environment.push(("PGPASSWORD", password.to_owned()));
    }
    environment
}

fn dumps_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_compose_backup_scripts_dump_rotates_and_restores_into_a_fresh_database() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    db.store()
        .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
        .await
        .unwrap();
    let telegram = FakeTelegram::start().await;
    let server = start(&Database::Url(db.url().to_owned()), &telegram.server.uri());
    place_orders(&server, 3).await;
    let orders = my_orders(&server).await;
    assert_eq!(orders.as_array().map(Vec::len), Some(3), "{orders}");

    // Three older dumps, so that one run with BACKUP_KEEP=2 has to rotate.
    let dir = scratch("pg-backups");
    let old = [
        "botshop-20200101T000000Z.dump",
        "botshop-20200102T000000Z.dump",
        "botshop-20200103T000000Z.dump",
    ];
    for name in old {
        std::fs::write(dir.join(name), b"an old dump").unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/backup.sh");
    let output = run(Command::new("sh")
        .arg(&script)
        .envs(libpq_environment(db.url()))
        .env("BACKUP_DIR", &dir)
        .env("BACKUP_KEEP", "2")
        .env("BACKUP_ONCE", "1"));
    let dumps = dumps_in(&dir);
    assert_eq!(
        dumps.len(),
        2,
        "only the newest BACKUP_KEEP remain: {dumps:?}"
    );
    assert_eq!(dumps[0], old[2], "{dumps:?}");
    let newest = &dumps[1];
    assert!(
        newest.starts_with("botshop-")
            && newest.ends_with("Z.dump")
            && !old.contains(&newest.as_str()),
        "{dumps:?}"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(newest.as_str()),
        "{output:?}"
    );

    // The restore drill: a fresh, empty database, pg_restore, a server on it.
    let fresh = format!("botshop_restore_{}", std::process::id());
    db.execute(&format!("DROP DATABASE IF EXISTS {fresh}"))
        .await
        .unwrap();
    db.execute(&format!("CREATE DATABASE {fresh}"))
        .await
        .unwrap();
    let mut fresh_url = reqwest::Url::parse(db.url()).unwrap();
    fresh_url.set_path(&fresh);
    run(Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(fresh_url.as_str())
        .arg(dir.join(newest)));
    let restored = start(
        &Database::Url(fresh_url.to_string()),
        &telegram.server.uri(),
    );
    assert_eq!(my_orders(&restored).await, orders);

    drop((server, restored));
    db.execute(&format!("DROP DATABASE {fresh} WITH (FORCE)"))
        .await
        .unwrap();
    db.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
