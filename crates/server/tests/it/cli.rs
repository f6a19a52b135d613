use std::process::Command;

use domain::auth::{DEFAULT_MAX_AGE, InitDataVerifier, init_data_from_authorization};

/// Runs the real binary with a clean configuration in a scratch directory.
fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    let dir = std::env::temp_dir().join(format!("botshop-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    command.current_dir(dir);
    for key in server::config::keys() {
        command.env_remove(key);
    }
    command
}

#[test]
fn sign_init_data_prints_a_header_the_configured_token_verifies() {
    let output = server()
        .env("TELEGRAM_BOT_TOKEN", "777:CLI-TOKEN")
        .args([
            "sign-init-data",
            "--user-id",
            "987654321",
            "--first-name",
            "Иван",
            "--username",
            "ivan",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let header = String::from_utf8(output.stdout).unwrap();
    let init_data = init_data_from_authorization(Some(header.trim())).unwrap();
    let verified = InitDataVerifier::new("777:CLI-TOKEN", DEFAULT_MAX_AGE)
        .verify(init_data, time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(verified.user.id.get(), 987_654_321);
    assert_eq!(verified.user.first_name.as_deref(), Some("Иван"));
    assert_eq!(verified.user.username.as_deref(), Some("ivan"));
}

#[test]
fn a_bad_configuration_value_stops_start_up_naming_the_key() {
    let output = server()
        .env("PORT", "eighty")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr).to_ascii_lowercase();
    assert!(stderr.contains("port"), "{stderr}");
}

#[test]
fn production_mode_refuses_to_start_without_token_and_chat() {
    let output = server().env("DEBUG", "false").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TELEGRAM_BOT_TOKEN"), "{stderr}");
}

/// What a new user might try: PostgreSQL and every interface, no token, DEBUG left at
/// its default. It must not serve with the public demo token.
#[test]
fn a_public_server_never_starts_on_the_demo_token() {
    let output = server()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("HOST", "0.0.0.0")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TELEGRAM_BOT_TOKEN"), "{stderr}");
    assert!(!stderr.contains("serving"), "{stderr}");
}

#[test]
fn migrate_and_seed_commands_work_on_the_embedded_database() {
    let dir = std::env::temp_dir().join(format!("botshop-cli-migrate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let output = server().current_dir(&dir).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    let status = run(&["migrate", "up"]);
    assert!(status.lines().count() >= 4, "{status}");
    assert!(status.lines().all(|l| l.starts_with("applied")), "{status}");
    assert!(run(&["seed"]).contains("5 categories created"));
    assert!(
        run(&["seed"]).contains("5 already present"),
        "seeding twice keeps what exists"
    );

    let status = run(&["migrate", "down"]);
    assert_eq!(
        status.lines().filter(|l| l.starts_with("pending")).count(),
        1,
        "{status}"
    );
    let status = run(&["migrate", "down", "--all"]);
    assert!(status.lines().all(|l| l.starts_with("pending")), "{status}");

    run(&["migrate", "up"]);
    run(&["seed"]);
    let status = run(&["migrate", "fresh"]);
    assert!(status.lines().all(|l| l.starts_with("applied")), "{status}");
    // fresh destroyed the data: seeding creates the catalog again.
    assert!(run(&["seed"]).contains("5 categories created"));

    // The catalog exported: JSON to standard output, CSV to a file.
    let json: serde_json::Value = serde_json::from_str(&run(&["catalog", "export"])).unwrap();
    assert_eq!(json["categories"].as_array().unwrap().len(), 5);
    let products = json["products"].as_array().unwrap().len();
    assert!(products > 0);
    let file = dir.join("catalog.csv");
    run(&[
        "catalog",
        "export",
        "--format",
        "csv",
        file.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(csv.starts_with("kind,slug,parent_slug,"), "{csv}");
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("product,")).count(),
        products
    );
    // And back: nothing to change, in a dry run and for real.
    let dry = run(&["catalog", "import", "--dry-run", file.to_str().unwrap()]);
    assert!(
        dry.starts_with("dry run") && dry.contains("0 created, 0 updated"),
        "{dry}"
    );
    let done = run(&["catalog", "import", file.to_str().unwrap()]);
    assert!(done.contains("products: 0 created, 0 updated"), "{done}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `server telegram ...` against a fake Bot API: the webhook is registered with the
/// secret and BotShop's update types, and read back.
#[tokio::test]
async fn telegram_commands_register_and_show_the_webhook() {
    use wiremock::matchers::{body_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let fake = MockServer::start().await;
    let ok = |result: serde_json::Value| {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true, "result": result}))
    };
    Mock::given(method("POST"))
        .and(path("/bot777:CLI-TOKEN/setWebhook"))
        .and(body_json(serde_json::json!({
            "url": "https://shop.example.com/telegram/webhook",
            "secret_token": "cli_webhook-secret",
            "allowed_updates": ["message", "callback_query", "pre_checkout_query"],
        })))
        .respond_with(ok(serde_json::json!(true)))
        .expect(1)
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path("/bot777:CLI-TOKEN/getWebhookInfo"))
        .respond_with(ok(serde_json::json!({
            "url": "https://shop.example.com/telegram/webhook",
            "has_custom_certificate": false,
            "pending_update_count": 3,
            "last_error_date": 1_700_000_000,
            "last_error_message": "Connection timed out",
        })))
        .mount(&fake)
        .await;
    let api = fake.uri();
    let run = move |args: &'static [&'static str], secret: bool| {
        let mut command = server();
        command
            .env("TELEGRAM_BOT_TOKEN", "777:CLI-TOKEN")
            .env("MANAGER_CHAT_ID", "424242")
            .env("TELEGRAM_API_URL", &api)
            .args(args);
        if secret {
            command.env("TELEGRAM_WEBHOOK_SECRET", "cli_webhook-secret");
        }
        command.output().unwrap()
    };
    let set = tokio::task::spawn_blocking({
        let run = run.clone();
        move || {
            run(
                &[
                    "telegram",
                    "set-webhook",
                    "--url",
                    "https://shop.example.com/telegram/webhook",
                ],
                true,
            )
        }
    })
    .await
    .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let info = tokio::task::spawn_blocking(move || run(&["telegram", "info"], false))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&info.stdout);
    assert!(
        stdout.contains("https://shop.example.com/telegram/webhook"),
        "{stdout}"
    );
    assert!(stdout.contains("pending updates:  3"), "{stdout}");
    assert!(stdout.contains("Connection timed out"), "{stdout}");
}

#[test]
fn set_webhook_needs_the_secret() {
    let output = server()
        .env("TELEGRAM_BOT_TOKEN", "777:CLI-TOKEN")
        .env("TELEGRAM_API_URL", "http://127.0.0.1:9")
        .args([
            "telegram",
            "set-webhook",
            "--url",
            "https://shop.example.com/telegram/webhook",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TELEGRAM_WEBHOOK_SECRET"), "{stderr}");
}
