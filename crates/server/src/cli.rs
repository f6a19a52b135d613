//! The command line: `server [serve]`, `server migrate ...`, `server seed`,
//! `server backup FILE`, `server sign-init-data ...`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use domain::auth::InitDataVerifier;
use domain::ports::Outbox;
use migration::{MigrationStatus, Migrator, MigratorTrait};

use crate::app::{Application, connect};
use crate::config::Settings;
use crate::demo;

#[derive(Debug, Parser)]
#[command(
    name = "server",
    version,
    about = "BotShop: the backend of a Telegram Mini App shop"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Load the demo catalog (4 root categories and a subcategory, 21 products). Existing
    /// categories are kept.
    Seed,
    /// Inspect or repair the notification outbox.
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Copy the embedded SQLite database to FILE, consistently, while the server runs.
    /// PostgreSQL is backed up with pg_dump instead (see README, Backups).
    Backup {
        /// The new file to write; an existing file is never overwritten.
        file: std::path::PathBuf,
    },
    /// Set up the bot with Telegram: its webhook.
    Telegram {
        #[command(subcommand)]
        action: TelegramAction,
    },
    /// Export or import the catalog (see README, Administration).
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Exit 0 if this machine's server answers `GET /health` (for Docker's HEALTHCHECK).
    Healthcheck,
    /// Print an `Authorization` header value signed with the configured bot token, to try
    /// the API with curl.
    SignInitData {
        /// The Telegram user id to sign for.
        #[arg(long)]
        user_id: i64,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogAction {
    /// Write the whole catalog to FILE (or standard output): categories by slug, products
    /// by SKU, as JSON or CSV.
    Export {
        /// `json` (default) or `csv`.
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
        /// Where to write it; standard output when absent. An existing file is replaced.
        file: Option<std::path::PathBuf>,
    },
    /// Import FILE (the export's shape, JSON or CSV by its extension), all or nothing:
    /// categories by slug, products by SKU. Audited as `cli`.
    Import {
        file: std::path::PathBuf,
        /// Only print what would be created, updated and left unchanged.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the last N applied migrations (default 1), or all of them with --all.
    Down {
        #[arg(short = 'n', long, default_value_t = 1, conflicts_with = "all")]
        steps: u32,
        #[arg(long)]
        all: bool,
    },
    /// List every migration and whether it is applied.
    Status,
    /// Revert every migration and apply them all again. Destroys all data.
    Fresh,
}

#[derive(Debug, Subcommand)]
pub enum TelegramAction {
    /// Point the bot's updates at URL (https://…/telegram/webhook) with
    /// TELEGRAM_WEBHOOK_SECRET, for the update types BotShop handles.
    SetWebhook {
        #[arg(long)]
        url: String,
    },
    /// Remove the webhook.
    DeleteWebhook,
    /// Show the webhook as Telegram sees it (getWebhookInfo).
    Info,
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Counts of pending, sent and dead notifications, and the oldest pending one.
    Status,
    /// Put dead notifications back in line (after fixing the token or the chat).
    RetryDead,
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate { action } => migrate(&settings, action).await,
        Command::Seed => seed(&settings).await,
        Command::Outbox { action } => outbox(&settings, action).await,
        Command::Backup { file } => backup(&settings, &file).await,
        Command::Healthcheck => healthcheck(&settings).await,
        Command::Catalog { action } => catalog(&settings, action).await,
        Command::Telegram { action } => telegram(&settings, action).await,
        Command::SignInitData {
            user_id,
            username,
            first_name,
            last_name,
        } => {
            println!(
                "{}",
                sign_init_data(&settings, user_id, username, first_name, last_name)?
            );
            Ok(())
        }
    }
}

async fn telegram(settings: &Settings, action: TelegramAction) -> anyhow::Result<()> {
    if settings.demo_token {
        anyhow::bail!("TELEGRAM_BOT_TOKEN is not set: these commands talk to your bot");
    }
    // The manager chat plays no part in these calls.
    let chat = settings.telegram.manager_chat_id.unwrap_or(1);
    let bot = crate::app::telegram_notifier(settings, chat)?;
    match action {
        TelegramAction::SetWebhook { url } => {
            let Some(secret) = settings.http.webhook_secret() else {
                anyhow::bail!(
                    "TELEGRAM_WEBHOOK_SECRET is not set: Telegram must send it with every update"
                );
            };
            bot.set_webhook(&url, secret)
                .await
                .context("Telegram refused the webhook")?;
            println!("webhook set: {url}");
        }
        TelegramAction::DeleteWebhook => {
            bot.delete_webhook()
                .await
                .context("Telegram refused to delete the webhook")?;
            println!("webhook deleted");
        }
        TelegramAction::Info => {
            let info = bot
                .webhook_info()
                .await
                .context("could not read the webhook from Telegram")?;
            let url = if info.url.is_empty() {
                "(none)"
            } else {
                &info.url
            };
            println!("url:              {url}");
            println!("pending updates:  {}", info.pending_update_count);
            if let Some(message) = &info.last_error_message {
                println!("last error:       {message}");
            }
        }
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    if settings.demo_token {
        tracing::warn!(
            demo_token = crate::config::DEMO_BOT_TOKEN,
            "TELEGRAM_BOT_TOKEN is not set: using the public demo token; sign requests with `server sign-init-data`"
        );
    }
    let application = Application::build(&settings).await?;
    application.run_until_stopped().await
}

async fn migrate(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    let database = connect(settings).await?;
    let db = database.connection();
    match action {
        MigrateAction::Up => Migrator::up(db, None).await.context("migrate up failed")?,
        MigrateAction::Down { steps, all } => {
            Migrator::down(db, if all { None } else { Some(steps) })
                .await
                .context("migrate down failed")?
        }
        // Reverting every step, rather than SeaORM's drop-all-tables `fresh`, works with
        // SQLite's enforced foreign keys, whose drop order SeaORM does not respect.
        MigrateAction::Fresh => Migrator::refresh(db)
            .await
            .context("migrate fresh failed")?,
        MigrateAction::Status => {}
    }
    for migration in Migrator::get_migration_with_status(db)
        .await
        .context("could not read migration status")?
    {
        let status = match migration.status() {
            MigrationStatus::Applied => "applied",
            MigrationStatus::Pending => "pending",
        };
        println!("{status:8} {}", migration.name());
    }
    database.close().await?;
    Ok(())
}

async fn seed(settings: &Settings) -> anyhow::Result<()> {
    let database = connect(settings).await?;
    if settings.database.run_migrations {
        Migrator::up(database.connection(), None)
            .await
            .context("could not apply database migrations")?;
    }
    let outcome = database
        .store()
        .seed_catalog(&demo::catalog(&settings.public_base_url()))
        .await?;
    println!(
        "demo catalog: {} categories created, {} already present, {} products created",
        outcome.categories_created, outcome.categories_skipped, outcome.products_created
    );
    database.close().await?;
    Ok(())
}

async fn catalog(settings: &Settings, action: CatalogAction) -> anyhow::Result<()> {
    use domain::ports::CatalogAdmin;
    let database = connect(settings).await?;
    if settings.database.run_migrations {
        Migrator::up(database.connection(), None)
            .await
            .context("could not apply database migrations")?;
    }
    let outcome = match action {
        CatalogAction::Export { format, file } => export(&database, &format, file.as_deref()).await,
        CatalogAction::Import { file, dry_run } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("could not read {}", file.display()))?;
            let csv = file
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
            let parsed = if csv {
                domain::catalog_io::ImportFile::from_csv(&text)
            } else {
                domain::catalog_io::ImportFile::from_json(&text)
            };
            let imported = match parsed {
                Ok(parsed) => {
                    let context = domain::catalog_admin::ChangeContext {
                        admin: domain::admin::Admin::Operator,
                        at: time::OffsetDateTime::now_utc(),
                    };
                    database.store().import(&parsed, dry_run, context).await
                }
                Err(problems) => Err(domain::catalog_admin::CatalogChangeError::Import(problems)),
            };
            match imported {
                Ok(report) => {
                    println!(
                        "{}categories: {} created, {} updated, {} unchanged; products: {} created, {} updated, {} unchanged",
                        if dry_run {
                            "dry run, nothing changed: "
                        } else {
                            ""
                        },
                        report.categories.created,
                        report.categories.updated,
                        report.categories.unchanged,
                        report.products.created,
                        report.products.updated,
                        report.products.unchanged
                    );
                    Ok(())
                }
                Err(domain::catalog_admin::CatalogChangeError::Import(problems)) => {
                    for problem in &problems {
                        eprintln!(
                            "line {}: {}: {}",
                            problem.line, problem.field, problem.message
                        );
                    }
                    Err(anyhow::anyhow!(
                        "nothing was imported: {} problems",
                        problems.len()
                    ))
                }
                Err(error) => Err(anyhow::Error::new(error).context("the import failed")),
            }
        }
    };
    database.close().await?;
    outcome
}

async fn export(
    database: &infra_postgres::Database,
    format: &str,
    file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use domain::ports::CatalogAdmin;
    let exported = database.store().export().await?;
    let text = if format == "csv" {
        exported.to_csv()
    } else {
        let mut json =
            serde_json::to_string_pretty(&exported).context("could not write the catalog")?;
        json.push('\n');
        json
    };
    match file {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("could not write {}", path.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("could not write the catalog")?;
        }
    }
    Ok(())
}

/// The embedded database's online backup. Refused on PostgreSQL before connecting, and
/// for an embedded file that does not exist (connecting would create an empty one).
async fn backup(settings: &Settings, file: &std::path::Path) -> anyhow::Result<()> {
    use crate::config::{DatabaseTarget, ExposeSecret};
    match settings.database.target() {
        DatabaseTarget::EmbeddedSqlite(path) => anyhow::ensure!(
            std::path::Path::new(&path).exists(),
            "there is no database at SQLITE_PATH={path} to back up"
        ),
        DatabaseTarget::Url(url) => anyhow::ensure!(
            url.expose_secret()
                .to_ascii_lowercase()
                .starts_with("sqlite:"),
            "`server backup` copies the embedded SQLite database; DATABASE_URL is PostgreSQL, \
             so back it up with pg_dump (the docker-compose `backup` service does it on a \
             schedule; see README.md, Backups and restore drill)"
        ),
    }
    let database = connect(settings).await?;
    let backed_up = database.backup_sqlite_into(file).await;
    database.close().await?;
    backed_up.with_context(|| format!("could not back up to {}", file.display()))?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or_default();
    println!("backed up to {} ({size} bytes)", file.display());
    Ok(())
}

/// A plain HTTP/1.1 GET of /health on the configured port, so the container image needs no
/// curl. A wildcard HOST is reached through the loopback address.
async fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = match settings.http.host.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" | "[::]" => "::1",
        other => other,
    };
    let check = async {
        let mut stream = tokio::net::TcpStream::connect((host, settings.http.port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(3), check)
        .await
        .context("the health check timed out")?
        .context("the server is not reachable")?;
    let status_line = String::from_utf8_lossy(&response);
    let status_line = status_line.lines().next().unwrap_or_default();
    anyhow::ensure!(status_line.contains(" 200 "), "unhealthy: {status_line}");
    println!("healthy");
    Ok(())
}

async fn outbox(settings: &Settings, action: OutboxAction) -> anyhow::Result<()> {
    let database = connect(settings).await?;
    let store = database.store();
    if let OutboxAction::RetryDead = action {
        let revived = store
            .retry_dead()
            .await
            .context("could not revive dead notifications")?;
        println!("{revived} dead notifications put back in line");
    }
    let counts = store.counts().await.context("could not read the outbox")?;
    println!("pending: {}", counts.pending);
    println!("dead:    {}", counts.dead);
    if let Some(oldest) = counts.oldest_pending {
        let age = time::OffsetDateTime::now_utc() - oldest;
        println!(
            "oldest pending: {} ({}s ago)",
            oldest
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            age.whole_seconds()
        );
    }
    database.close().await?;
    Ok(())
}

/// `tma <initData>` for the configured bot, dated now.
pub fn sign_init_data(
    settings: &Settings,
    user_id: i64,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
) -> anyhow::Result<String> {
    anyhow::ensure!(user_id > 0, "--user-id must be a positive Telegram user id");
    let mut user = serde_json::json!({ "id": user_id });
    for (key, value) in [
        ("username", username),
        ("first_name", first_name),
        ("last_name", last_name),
    ] {
        if let Some(value) = value {
            user[key] = serde_json::Value::String(value);
        }
    }
    let verifier = InitDataVerifier::new(settings.bot_token.expose(), settings.auth.max_age());
    let auth_date = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let user = user.to_string();
    let init_data = verifier.sign(&[
        ("auth_date", &auth_date),
        ("query_id", "botshop-cli"),
        ("user", &user),
    ]);
    Ok(format!("tma {init_data}"))
}
