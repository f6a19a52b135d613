//! Wiring: builds the adapters and services from [`Settings`] and serves the API.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::HttpServer;
use actix_web::dev::Server;
use anyhow::Context;
use domain::TelegramId;
use domain::admin::AdminAuthenticator;
use domain::auth::InitDataVerifier;
use domain::bot::{BotService, Poller, PollerConfig};
use domain::clock::SystemClock;
use domain::media::MediaService;
use domain::outbox::{PRUNE_BATCH, Relay, prune_sent};
use domain::payments::{PaymentGateway, PaymentMode, PaymentService};
use domain::ports::{IdempotencyStore, Outbox, UpdateLog};
use domain::services::authenticate::Authenticator;
use domain::services::place_order::OrderService;
use http_actix::{ApiState, CorsMode, Http, TelegramWebhook};
use infra_postgres::Database;
use infra_telegram::{TelegramNotifier, UpdatesMode};
use migration::{Migrator, MigratorTrait};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::{Notifications, Settings};
use crate::demo;

/// A built, bound application, ready to run.
pub struct Application {
    port: u16,
    server: Server,
    database: Database,
    relay: Option<JoinHandle<()>>,
    poller: Option<JoinHandle<()>>,
    expiry: JoinHandle<()>,
    catalog_changes: JoinHandle<()>,
    purge: JoinHandle<()>,
    outbox_gauges: Option<JoinHandle<()>>,
    stop_background: watch::Sender<bool>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects to the database (migrating and seeding it as configured), builds every
    /// adapter, starts the notification relay and binds the listener. Binding happens
    /// here, so a test can ask for port 0 and learn the real port from [`Application::port`].
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let database = connect(settings).await?;
        if settings.database.run_migrations {
            Migrator::up(database.connection(), None)
                .await
                .context("could not apply database migrations")?;
        }
        let store = Arc::new(database.store());
        if settings.database.target().is_embedded() && store.catalog_is_empty().await? {
            store
                .seed_catalog(&demo::catalog(&settings.public_base_url()))
                .await?;
            tracing::info!("the embedded database was empty: loaded the demo catalog");
        }

        let relay_wake = Arc::new(Notify::new());
        let (keys_to_purge, outbox_to_prune): (Arc<dyn IdempotencyStore>, Arc<dyn Outbox>) =
            (store.clone(), store.clone());
        let store_for_updates: Arc<dyn UpdateLog> = store.clone();
        let (stop_background, background_stopped) = watch::channel(false);
        let mut webhook = None;
        let mut poller_task = None;
        let mut payment_service = None;
        let relay = match &settings.notifications {
            Notifications::Telegram { chat_id } => {
                let telegram = Arc::new(telegram_notifier(settings, *chat_id)?);
                warn_if_manager_unreachable(Arc::clone(&telegram));
                set_menu_button(Arc::clone(&telegram));
                // Who may press the order buttons: the admins, and the manager chat itself
                // when it is a person (a group's id is negative).
                let mut managers: Vec<TelegramId> = settings
                    .auth
                    .admin_telegram_ids
                    .iter()
                    .filter_map(|id| TelegramId::parse(*id).ok())
                    .collect();
                managers.extend(TelegramId::parse(*chat_id).ok());
                let gateway: Arc<dyn PaymentGateway> = telegram.clone();
                let payments = PaymentService::new(
                    store.clone(),
                    store.clone(),
                    Some(gateway),
                    Arc::clone(&relay_wake),
                );
                payment_service = Some(payments.clone());
                let bot = || {
                    BotService::new(
                        store.clone(),
                        telegram.clone(),
                        store.clone(),
                        managers.clone(),
                        Arc::clone(&relay_wake),
                    )
                    .with_admins(admin_ids(settings))
                    // Payments are recorded whatever PAYMENTS says now: one that arrives
                    // is never lost (an order that owes nothing refunds it).
                    .with_payments(payments.clone())
                };
                match settings.updates {
                    UpdatesMode::Webhook => {
                        let secret = settings
                            .http
                            .webhook_secret()
                            .context("TELEGRAM_UPDATES=webhook needs TELEGRAM_WEBHOOK_SECRET")?;
                        if settings.payment_terms.mode != PaymentMode::Off {
                            warn_if_webhook_misses_updates(Arc::clone(&telegram));
                        }
                        webhook = Some(TelegramWebhook {
                            bot: bot(),
                            secret: secret.to_owned().into(),
                        });
                    }
                    UpdatesMode::Polling => {
                        let (source, roles, bot) =
                            (telegram.clone(), store.clone(), Arc::new(bot()));
                        let make_poller = move || {
                            Poller::new(
                                source.clone(),
                                roles.clone(),
                                Arc::clone(&bot),
                                Arc::new(SystemClock),
                                PollerConfig::default(),
                            )
                        };
                        poller_task = Some(tokio::spawn(supervise(
                            "Telegram poller",
                            move |stop| make_poller().run(stop),
                            background_stopped.clone(),
                        )));
                    }
                    UpdatesMode::Off => {}
                }
                let (outbox, config, wake) = (
                    store.clone(),
                    settings.relay_config(),
                    Arc::clone(&relay_wake),
                );
                let make_relay = move || {
                    Relay::new(
                        outbox.clone(),
                        telegram.clone(),
                        Arc::new(SystemClock),
                        config.clone(),
                        Arc::clone(&wake),
                    )
                };
                Some(tokio::spawn(supervise(
                    "notification relay",
                    move |stop| make_relay().run(stop),
                    background_stopped.clone(),
                )))
            }
            Notifications::Off { reason } => {
                tracing::warn!(
                    reason,
                    "manager notifications are OFF: orders are accepted and their notifications wait \
                     in the outbox until Telegram is configured"
                );
                None
            }
        };

        let payments = payment_service.unwrap_or_else(|| {
            PaymentService::new(store.clone(), store.clone(), None, Arc::clone(&relay_wake))
        });
        // Unpaid orders past their deadline are cancelled whatever PAYMENTS says now:
        // orders placed while it was on still hold stock.
        let expiry_task = {
            let (payments, roles, every) = (
                payments.clone(),
                store.clone(),
                settings.payment_expiry_interval,
            );
            tokio::spawn(supervise(
                "payment expiry",
                move |stop| {
                    payments
                        .clone()
                        .run_expiry(roles.clone(), Arc::new(SystemClock), every, stop)
                },
                background_stopped.clone(),
            ))
        };
        let serve_webhook = webhook.is_some();
        let verifier = Arc::new(InitDataVerifier::new(
            settings.bot_token.expose(),
            settings.auth.max_age(),
        ));
        let admin_auth = AdminAuthenticator::new(
            Arc::clone(&verifier),
            admin_ids(settings),
            settings.auth.admin_api_token.clone(),
        );
        let media_store = infra_media::open(&settings.media_target)
            .await
            .context("could not open the media storage")?;
        match &settings.media_target {
            infra_media::MediaTarget::Local(dir) => {
                tracing::info!(dir = %dir.display(), "uploaded pictures are kept in MEDIA_DIR")
            }
            infra_media::MediaTarget::S3(s3) => tracing::info!(
                bucket = %s3.bucket,
                endpoint = %s3.endpoint,
                "uploaded pictures are kept in S3"
            ),
        }
        if settings.known_public_base_url().is_none() {
            tracing::warn!(
                "PUBLIC_BASE_URL is not set: picture uploads are refused (their URLs would name \
                 no reachable address) and /admin answers without the panel's button"
            );
        }
        let media = MediaService::new(Arc::new(infra_media::ImageCodec::new()), media_store);
        let state = ApiState {
            catalog: store.clone(),
            orders: store.clone(),
            lifecycle: store.clone(),
            relay_wake: Arc::clone(&relay_wake),
            telegram: webhook,
            order_service: OrderService::new(store.clone(), store.clone(), relay_wake)
                .with_payment_terms(settings.payment_terms),
            payments,
            authenticator: Authenticator::new(verifier, store.clone()),
            admin_auth,
            order_admin: store.clone(),
            catalog_admin: store.clone(),
            audit: store.clone(),
            stats: store.clone(),
            media,
            // The panel's development sign-in, with the demo token in the local embedded
            // setup only (its initData could not pass a real token's check anyway).
            dev_sign_in: (settings.demo_token && settings.is_local()).then(|| {
                Arc::new(InitDataVerifier::new(
                    settings.bot_token.expose(),
                    settings.auth.max_age(),
                ))
            }),
            media_url: settings
                .known_public_base_url()
                .map(|base| format!("{base}{}", http_actix::MEDIA_PATH)),
            storage: Arc::new(database.clone()),
            outbox: store,
        };
        // DEBUG=true opens CORS to any origin, unless origins are configured.
        let mut config = settings.http.config(settings.cors_allows_any_origin());
        config.telegram_webhook = serve_webhook;
        match config.cors_mode() {
            CorsMode::Closed => tracing::warn!(
                "CORS: no CORS_ALLOWED_ORIGINS and DEBUG=false, so no cross-origin requests are allowed; \
                 set CORS_ALLOWED_ORIGINS to the Mini App's domains"
            ),
            CorsMode::AnyOrigin => {
                tracing::warn!("CORS: DEBUG=true allows any origin; never run production like this")
            }
            CorsMode::AllowList(origins) => {
                tracing::info!(?origins, "CORS: allowing the configured origins")
            }
        }
        // Built once: its rate limiters and metrics are shared by every worker.
        let http = Http::new(state, config).context("could not set up the HTTP API")?;

        // `/metrics` serves the outbox counts this task reads every few seconds, so that a
        // scrape never queries the database.
        let outbox_gauges = http.outbox_gauges().map(|gauges| {
            tokio::spawn(gauges.run(
                http_actix::OUTBOX_GAUGES_REFRESH_INTERVAL,
                background_stopped.clone(),
            ))
        });
        // Catalog changes announced by any instance (this one included) drop the cached
        // answers they made stale (on SQLite, the cancellations this process commits).
        let invalidator = http.catalog_invalidator();
        let catalog_changes = tokio::spawn(infra_postgres::follow_catalog_changes(
            database.clone(),
            Arc::new(move |change| invalidator.apply(&change)),
            background_stopped.clone(),
        ));
        let purge = tokio::spawn(purge_expired_rows(
            keys_to_purge,
            outbox_to_prune,
            store_for_updates,
            settings.relay.retention(),
            background_stopped,
        ));

        let (host, port) = (settings.http.host.as_str(), settings.http.port);
        let listener = TcpListener::bind((host, port))
            .with_context(|| format!("could not listen on {host}:{port}"))?;
        let address = listener
            .local_addr()
            .context("could not read the bound address")?;
        let server = HttpServer::new(move || http.app())
            .listen(listener)
            .context("could not start the HTTP server")?
            .shutdown_timeout(settings.http.shutdown_timeout().as_secs())
            // actix treats SIGINT as a forced stop; we handle both signals ourselves so that
            // each one drains in-flight requests (see `run_until_stopped`).
            .disable_signals()
            .run();
        tracing::info!(%address, "BotShop is serving on http://{address}");
        Ok(Self {
            port: address.port(),
            server,
            database,
            relay,
            poller: poller_task,
            expiry: expiry_task,
            catalog_changes,
            purge,
            outbox_gauges,
            stop_background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: stops accepting
    /// connections, lets in-flight requests finish (up to `SHUTDOWN_TIMEOUT_SECS`), stops
    /// the relay — which finishes its current send and releases its other claims — and the
    /// other background tasks, and closes the pool.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let signals = tokio::spawn(async move {
            match shutdown_signal().await {
                Ok(signal) => {
                    tracing::info!(signal, "shutting down: finishing in-flight requests");
                    handle.stop(true).await;
                }
                Err(error) => tracing::error!(%error, "cannot listen for shutdown signals"),
            }
        });
        let served = self.server.await.context("the HTTP server failed");
        signals.abort();
        let _ = self.stop_background.send(true);
        if let Some(relay) = self.relay
            && let Err(error) = relay.await
        {
            tracing::error!(%error, "the notification relay crashed");
        }
        if let Some(poller) = self.poller
            && let Err(error) = poller.await
        {
            tracing::error!(%error, "the Telegram poller crashed");
        }
        if let Err(error) = self.expiry.await {
            tracing::error!(%error, "the payment expiry crashed");
        }
        if let Err(error) = self.catalog_changes.await {
            tracing::error!(%error, "the catalog change listener crashed");
        }
        if let Err(error) = self.purge.await {
            tracing::error!(%error, "the idempotency key purge crashed");
        }
        if let Some(gauges) = self.outbox_gauges
            && let Err(error) = gauges.await
        {
            tracing::error!(%error, "the outbox gauges' refresher crashed");
        }
        self.database.close().await?;
        served?;
        tracing::info!("BotShop stopped");
        Ok(())
    }
}

/// Runs a background task (`what`, for the log) until shutdown, making it again with
/// `make` whenever it crashes: notifications, and the bot hearing its managers, must not
/// stop silently while the API goes on.
async fn supervise<F>(
    what: &'static str,
    make: impl Fn(watch::Receiver<bool>) -> F + Send + 'static,
    stop: watch::Receiver<bool>,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(make(stop.clone())).await {
            Ok(()) => return,
            Err(error) => {
                if *stop.borrow() {
                    return;
                }
                tracing::error!(%error, "the {what} crashed; restarting it");
                // A pause, so that a task failing at once does not spin.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// How often expired idempotency keys and old sent notifications are deleted.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
/// How long a Telegram update id is remembered: Telegram stops redelivering within a day.
const UPDATE_MEMORY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Deletes idempotency keys older than 24 hours and sent notifications older than
/// `retention` (`OUTBOX_RETENTION_DAYS`), at start and then hourly, until stopped. Every
/// instance does it; on PostgreSQL concurrent deletes skip each other's rows.
async fn purge_expired_rows(
    keys: Arc<dyn IdempotencyStore>,
    outbox: Arc<dyn Outbox>,
    updates: Arc<dyn UpdateLog>,
    retention: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        match keys.purge_expired(time::OffsetDateTime::now_utc()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired idempotency keys"),
            Err(error) => tracing::warn!(%error, "could not purge expired idempotency keys"),
        }
        match updates.forget_older_than(UPDATE_MEMORY).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "forgot old Telegram update ids"),
            Err(error) => tracing::warn!(%error, "could not forget old Telegram update ids"),
        }
        match prune_sent(outbox.as_ref(), retention, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "deleted sent notifications past their retention"),
            Err(error) => tracing::warn!(%error, "could not delete old sent notifications"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Resolves with the name of the first SIGTERM or SIGINT.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = terminate.recv() => Ok("SIGTERM"),
            _ = interrupt.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}

/// Connects to the configured database.
pub async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    Database::connect(
        &settings.database.target().url(),
        settings.database.pool_options(),
    )
    .await
    .context("could not connect to the database")
}

pub(crate) fn telegram_notifier(
    settings: &Settings,
    chat_id: i64,
) -> anyhow::Result<TelegramNotifier> {
    let mut config = settings
        .telegram
        .config(settings.bot_token.clone(), chat_id);
    config.admin_panel_url = settings
        .known_public_base_url()
        .map(|base| format!("{base}{}", http_actix::ADMIN_PANEL_PATH));
    TelegramNotifier::new(config).context("invalid Telegram configuration")
}

/// The Telegram ids in `ADMIN_TELEGRAM_IDS`.
fn admin_ids(settings: &Settings) -> Vec<TelegramId> {
    settings
        .auth
        .admin_telegram_ids
        .iter()
        .filter_map(|id| TelegramId::parse(*id).ok())
        .collect()
}

/// With `MINI_APP_URL`, makes the bot's menu button open the Mini App, without delaying
/// start-up; a failure is logged, and the next start tries again.
fn set_menu_button(telegram: Arc<TelegramNotifier>) {
    let Some(url) = telegram.mini_app_url().map(str::to_owned) else {
        return;
    };
    tokio::spawn(async move {
        match telegram.set_menu_button(&url).await {
            Ok(()) => tracing::info!("the bot's menu button opens the Mini App"),
            Err(error) => tracing::warn!(%error, "could not set the bot's menu button"),
        }
    });
}

/// Checks, without delaying start-up, that the bot can write to the manager.
/// Payments need `pre_checkout_query` updates: a webhook registered before BotShop handled
/// them leaves them out, and every payment would time out. Says so at start-up.
fn warn_if_webhook_misses_updates(telegram: Arc<TelegramNotifier>) {
    tokio::spawn(async move {
        match telegram.webhook_info().await {
            Ok(info) => {
                let missing = info.misses_updates();
                if !missing.is_empty() {
                    tracing::warn!(
                        missing = missing.join(","),
                        "the webhook was registered without update types BotShop handles \
                         (payments need pre_checkout_query): run `server telegram set-webhook \
                         --url ...` again"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "could not read the webhook's settings"),
        }
    });
}

fn warn_if_manager_unreachable(telegram: Arc<TelegramNotifier>) {
    tokio::spawn(async move {
        if let Err(error) = telegram.check_chat().await {
            tracing::warn!(
                %error,
                "the bot cannot reach MANAGER_CHAT_ID: new-order messages will wait in the outbox. \
                 The usual cause is that the manager never sent /start to the bot"
            );
        }
    });
}
