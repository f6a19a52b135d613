//! The ports: what the domain needs from the outside world.
//!
//! Every trait an adapter implements lives here: the repositories, the outbox and the
//! idempotency store (storage), the notifier (Telegram) and the storage probe. The types
//! they speak in stay with their use case ([`crate::outbox`], [`crate::idempotency`],
//! [`crate::order`], ...), as does the logic around them (the relay, key parsing).
//!
//! Adapters implement these traits; the domain and its tests see only the traits. Share
//! them as `Arc<dyn Port>`. With the `mocks` feature, mockall generates `Mock*` doubles.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::auth::TelegramUser;
use crate::entities::{Category, Order, OrderStatus, Product, User};
use crate::error::RepositoryError;
use crate::idempotency::{IdempotencyKey, KeyClaim, RequestFingerprint, StoredResponse};
use crate::money::Money;
use crate::order::{NewOrder, PlaceOrderError};
use crate::outbox::{
    ChangedBy, ClaimToken, ClaimedEvent, EventId, OutboxCounts, OutboxEvent, Recipient, Recorded,
};
use crate::pagination::{Page, Paginated};
use crate::values::{CategoryId, OrderId, ProductId, TelegramId, UserId};

/// Stores customers.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates the user with this Telegram id, or updates its username, names and language
    /// code when they differ from what is stored, and returns the stored user.
    ///
    /// MUST be a single atomic upsert: two first requests of one user racing each other
    /// both succeed and see the same [`User::id`]. `now` becomes `created_at` for a new
    /// user and `updated_at` whenever something changed.
    async fn upsert(
        &self,
        profile: &TelegramUser,
        now: OffsetDateTime,
    ) -> Result<User, RepositoryError>;
}

pub use crate::catalog::ProductFilter;

/// Reads the catalog.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CatalogRepository: Send + Sync {
    /// The visible categories under `parent` (`None`: the roots), ordered by `sort_order`,
    /// then `id`. Visible: active, and every category above it active too.
    async fn list_categories(
        &self,
        parent: Option<CategoryId>,
        page: Page,
    ) -> Result<Paginated<Category>, RepositoryError>;

    /// The visible children of each of `parents`, ordered by `sort_order`, then `id` (the
    /// caller groups them by `parent_id`).
    async fn child_categories(
        &self,
        parents: &[CategoryId],
    ) -> Result<Vec<Category>, RepositoryError>;

    /// The category if it exists and is visible; `None` otherwise.
    async fn find_category(&self, id: CategoryId) -> Result<Option<Category>, RepositoryError>;

    /// Active products of visible categories matching every part of `filter` (category,
    /// with its subtree when `include_descendants`, search text as a
    /// substring of the product's normalised name and description — see
    /// [`crate::catalog::product_search_text`] —, price range, in stock), ordered by
    /// `filter.sort` with `id` as the final tie-break (`Default`: `sort_order`, then `id`;
    /// `Newest`: newest first). `total` counts every match, not just this page.
    async fn list_products(
        &self,
        filter: ProductFilter,
        page: Page,
    ) -> Result<Paginated<Product>, RepositoryError>;

    /// The product if it exists, is active and its category is visible; `None`
    /// otherwise, so that a hidden product is indistinguishable from a missing one.
    async fn find_active_product(&self, id: ProductId) -> Result<Option<Product>, RepositoryError>;
}

/// Changes and tells the story of an order's status (see [`crate::lifecycle`]).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrderLifecycle: Send + Sync {
    /// The order's status, if it exists within `scope` (a customer's own orders only).
    async fn current_status(
        &self,
        scope: crate::lifecycle::Scope,
        order: OrderId,
    ) -> Result<Option<crate::entities::OrderStatus>, RepositoryError>;

    /// Applies the change in one transaction, as a compare-and-set on `change.from`: the
    /// status and `updated_at`, a history row, the events it causes
    /// ([`crate::outbox::OutboxEvent::OrderStatusChanged`] to the customer and
    /// [`crate::outbox::OutboxEvent::ManagerMessageUpdate`]), and for a cancellation the
    /// return of the order's units to limited stock. Nothing is written unless the status was still
    /// `change.from`.
    async fn apply_status_change(
        &self,
        change: crate::lifecycle::StatusChange,
    ) -> Result<crate::lifecycle::Applied, RepositoryError>;

    /// The newest `limit` open orders (PENDING, CONFIRMED, PROCESSING), newest first, each
    /// with its customer, as the manager chat shows them.
    async fn open_orders(&self, limit: u32) -> Result<Vec<OrderPlaced>, RepositoryError>;

    /// Writes a [`crate::outbox::OutboxEvent::ManagerMessageUpdate`] for the order, so
    /// that the manager's message shows the truth again (after a stale press).
    async fn refresh_manager_message(&self, order: OrderId) -> Result<(), RepositoryError>;

    /// The order's history, oldest first, starting with its creation (PENDING, by the
    /// customer).
    async fn history(
        &self,
        order: OrderId,
    ) -> Result<Vec<crate::lifecycle::StatusHistoryEntry>, RepositoryError>;
}

/// Remembers which Telegram updates arrived, so that each is handled once.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UpdateLog: Send + Sync {
    /// Records `update_id`; `true` the first time it is recorded (by any instance),
    /// `false` for a redelivery. MUST be atomic under concurrency.
    async fn first_seen(&self, update_id: i64, at: OffsetDateTime)
    -> Result<bool, RepositoryError>;

    /// Forgets updates recorded more than `age` ago (Telegram stops redelivering long
    /// before); returns how many.
    async fn forget_older_than(&self, age: std::time::Duration) -> Result<u64, RepositoryError>;
}

/// The orders as the admin API sees them: every customer's.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrderAdmin: Send + Sync {
    /// The orders matching `filter`, newest first (then by id, descending), a page at a
    /// time, with the number of all matches.
    async fn list_orders(
        &self,
        filter: &crate::admin::OrderFilter,
        page: Page,
    ) -> Result<Paginated<Order>, RepositoryError>;

    /// One order with its lines, its customer and its history; `None` when there is none.
    async fn order_details(
        &self,
        id: crate::values::OrderId,
    ) -> Result<Option<crate::admin::OrderDetails>, RepositoryError>;
}

/// Changes to the catalog through the admin API. Each change writes its audit row (who,
/// when, the fields before and after) in its own transaction.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CatalogAdmin: Send + Sync {
    /// Every category, inactive ones included, by `sort_order` then id.
    async fn all_categories(&self) -> Result<Vec<Category>, RepositoryError>;

    /// MUST refuse a taken slug ([`SlugTaken`]), a missing parent ([`ParentNotFound`]) and
    /// a parent the tree refuses ([`InvalidParent`]: the database enforces the tree).
    ///
    /// [`SlugTaken`]: crate::catalog_admin::CatalogChangeError::SlugTaken
    /// [`ParentNotFound`]: crate::catalog_admin::CatalogChangeError::ParentNotFound
    /// [`InvalidParent`]: crate::catalog_admin::CatalogChangeError::InvalidParent
    async fn create_category(
        &self,
        new: &crate::catalog_admin::NewCategory,
        context: crate::catalog_admin::ChangeContext,
    ) -> Result<Category, crate::catalog_admin::CatalogChangeError>;

    /// Sets the fields of `patch`; the same refusals as creating, and `NotFound`.
    async fn update_category(
        &self,
        id: crate::values::CategoryId,
        patch: &crate::catalog_admin::CategoryPatch,
        context: crate::catalog_admin::ChangeContext,
    ) -> Result<Category, crate::catalog_admin::CatalogChangeError>;

    /// Deletes an empty category; one with products or subcategories is refused with
    /// `CategoryNotEmpty` (deactivating it is the soft way).
    async fn delete_category(
        &self,
        id: crate::values::CategoryId,
        context: crate::catalog_admin::ChangeContext,
    ) -> Result<(), crate::catalog_admin::CatalogChangeError>;

    /// Products matching `filter`, active or not, in the filter's order, a page at a time.
    async fn list_products(
        &self,
        filter: &crate::catalog_admin::AdminProductFilter,
        page: Page,
    ) -> Result<Paginated<crate::catalog_admin::AdminProduct>, RepositoryError>;

    /// One product, active or not.
    async fn find_product(
        &self,
        id: crate::values::ProductId,
    ) -> Result<Option<crate::catalog_admin::AdminProduct>, RepositoryError>;

    /// MUST refuse a taken SKU (`SkuTaken`) and a missing category (`CategoryNotFound`).
    async fn create_product(
        &self,
        new: &crate::catalog_admin::NewProduct,
        context: crate::catalog_admin::ChangeContext,
    ) -> Result<crate::catalog_admin::AdminProduct, crate::catalog_admin::CatalogChangeError>;

    /// Sets the fields of `patch`; the same refusals, and `NotFound`.
    async fn update_product(
        &self,
        id: crate::values::ProductId,
        patch: &crate::catalog_admin::ProductPatch,
        context: crate::catalog_admin::ChangeContext,
    ) -> Result<crate::catalog_admin::AdminProduct, crate::catalog_admin::CatalogChangeError>;

    /// Deletes a product no order names; one in orders is refused with `ProductInOrders`
    /// (orders keep their snapshots; deactivate it instead).
    async fn delete_product(
        &self,
        id: crate::values::ProductId,
        context: crate::catalog_admin::ChangeContext,
    ) -> Result<(), crate::catalog_admin::CatalogChangeError>;

    /// Upserts the file's categories by slug and products by SKU (a product without one
    /// by its category and name), all or nothing, with one audit row: any problem refuses
    /// the whole file with every problem found (`Import`). A dry run changes nothing and
    /// answers what would be created, updated and left unchanged.
    async fn import(
        &self,
        file: &crate::catalog_io::ImportFile,
        dry_run: bool,
        context: crate::catalog_admin::ChangeContext,
    ) -> Result<crate::catalog_io::ImportReport, crate::catalog_admin::CatalogChangeError>;

    /// The whole catalog as a file: categories parents first (then by sort order and id),
    /// products by category, sort order and id.
    async fn export(&self) -> Result<crate::catalog_io::CatalogFile, RepositoryError>;

    /// Sets or adjusts a product's stock in one statement, so that it never loses a
    /// concurrent order's decrement; returns the stock now (`None`: unlimited). An
    /// adjustment below zero, or of unlimited stock, is a `StockConflict`.
    async fn change_stock(
        &self,
        product: crate::values::ProductId,
        change: &crate::catalog_admin::StockChange,
        context: crate::catalog_admin::ChangeContext,
    ) -> Result<Option<u32>, crate::catalog_admin::CatalogChangeError>;
}

/// The sums behind the admin's reports, computed by the database.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait StatsRepository: Send + Sync {
    /// The orders placed in `period`: per UTC day (count, and revenue of those not
    /// cancelled), per current status, and the best-selling products of those not
    /// cancelled (at most [`crate::stats::TOP_PRODUCTS`], by quantity then revenue).
    async fn sums(
        &self,
        period: crate::stats::Period,
    ) -> Result<crate::stats::Sums, RepositoryError>;
}

/// The audit log of admin changes (written by each change, in its transaction).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// The entries matching `filter`, newest first, a page at a time.
    async fn list_audit(
        &self,
        filter: &crate::admin::AuditFilter,
        page: Page,
    ) -> Result<Paginated<crate::admin::AuditEntry>, RepositoryError>;
}

/// Where a polling bot gets its updates: Telegram's `getUpdates`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UpdateSource: Send + Sync {
    /// The updates from `offset` on (`None`: every update Telegram has not had confirmed),
    /// waiting up to `wait` for one to arrive. Asking with an offset confirms every update
    /// before it, which Telegram then never sends again.
    async fn next_updates(
        &self,
        offset: Option<i64>,
        wait: std::time::Duration,
    ) -> Result<Vec<crate::bot::Update>, PollError>;
}

/// Why `getUpdates` gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// 409: a webhook is set, or another process polls with the same token. Telegram
    /// refuses until that changes.
    #[error("Telegram refused to poll: {0}")]
    Conflict(String),
    /// Telegram refused the bot itself (401, 403, 404: a wrong or revoked token).
    #[error("Telegram refused the bot: {0}")]
    Refused(String),
    /// A 429, a 5xx or a network failure: worth asking again, after `retry_after` when
    /// Telegram said.
    #[error("Telegram could not be polled: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<std::time::Duration>,
    },
}

/// A role that only one instance may hold at a time (such as polling Telegram), held
/// for as long as the instance keeps its [`RoleLease`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ExclusiveRoles: Send + Sync {
    /// Takes `role` if no instance holds it: `None` when one does.
    async fn try_take(
        &self,
        role: &'static str,
    ) -> Result<Option<Box<dyn RoleLease>>, RepositoryError>;
}

/// A held role. It ends with [`RoleLease::release`], or when the instance (or its database
/// connection) goes.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RoleLease: Send {
    /// Whether the role is still held: `false` once the connection that holds it is lost
    /// (another instance may then take it).
    async fn still_held(&mut self) -> bool;

    /// Gives the role up.
    async fn release(self: Box<Self>);
}

/// The bot's direct answers to people who write to it: interactive, so sent at once
/// rather than through the outbox (a lost welcome costs the user a second `/start`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BotReplies: Send + Sync {
    /// The answer to `/start` in `chat_id`: a welcome, with the Mini App's button when
    /// the shop has one.
    async fn welcome(&self, chat_id: i64) -> Result<(), NotifyError>;

    /// The answer to a button press (`answerCallbackQuery`, which every press needs, or
    /// the presser's client keeps spinning): what came of it.
    async fn answer_button(
        &self,
        callback_id: &str,
        outcome: crate::bot::ButtonOutcome,
    ) -> Result<(), NotifyError>;

    /// `/admin` from an admin: a button that opens the admin panel, in `chat_id`. Telegram
    /// allows such a button only in a private chat: elsewhere (`private_chat` false), say
    /// where to ask instead.
    async fn admin_panel(&self, chat_id: i64, private_chat: bool) -> Result<(), NotifyError>;

    /// `/orders` from a manager: each open order as its manager-chat message with its
    /// buttons, in `chat_id`; or a line saying there are none.
    async fn show_open_orders(
        &self,
        chat_id: i64,
        orders: &[OrderPlaced],
    ) -> Result<(), NotifyError>;
}

/// Stores orders.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Prices and stores a new order in one transaction.
    ///
    /// MUST read and lock the current products inside the transaction (in product-id order,
    /// so two carts never deadlock) and price the draft with [`crate::order::price_order`],
    /// so the snapshot is the price at commit time; MUST decrement limited stock by each
    /// line's quantity with a conditional update (`stock >= n`), the database's
    /// `CHECK (stock >= 0)` as the backstop; MUST attach the order to
    /// `order.idempotency_key` (already claimed through
    /// [`IdempotencyStore::claim`]) when there is one; MUST write
    /// the order, all its lines and its `order_created` outbox event (see
    /// [`crate::outbox`]) atomically, with status `PENDING`: an order without its event, or
    /// an event without its order, must be impossible.
    ///
    /// # Errors
    /// - [`PlaceOrderError::ProductNotFound`] / [`PlaceOrderError::ProductUnavailable`] /
    ///   [`PlaceOrderError::InsufficientStock`] as [`crate::order::price_order`] decides
    ///   (or as the conditional stock update finds), with nothing written;
    /// - [`PlaceOrderError::Repository`] for storage failures, with nothing written.
    async fn place(&self, order: NewOrder) -> Result<Order, PlaceOrderError>;

    /// The user's orders, newest first (ties broken by id, descending), with their lines.
    async fn list_for_user(
        &self,
        user: UserId,
        page: Page,
    ) -> Result<Paginated<Order>, RepositoryError>;

    /// The order if it exists and belongs to `user`; `None` otherwise, so that another
    /// customer's order is indistinguishable from a missing one.
    async fn find_for_user(
        &self,
        user: UserId,
        id: OrderId,
    ) -> Result<Option<Order>, RepositoryError>;
}

/// What the manager is told about a new order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPlaced {
    pub order: Order,
    /// The customer's Telegram id, shown to the manager as "ID 987654321".
    pub customer: TelegramId,
}

/// A customer's order changed status: a new message in their private chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChanged {
    /// The customer, whose private chat the message goes to.
    pub customer: TelegramId,
    /// The customer's language as Telegram reported it (`"en"`, `"ru"`, ...), if known.
    pub language_code: Option<String>,
    pub order_id: OrderId,
    pub total_amount: Money,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub by: ChangedBy,
    /// The order's payment as it is when the message is sent: a paid order says so, and
    /// one paid online shows what it owes in its currency.
    pub payment: crate::payments::OrderPayment,
}

/// What the notifier is asked to deliver: a new message to a chat, or an edit of one it
/// sent before. The notifier renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A new order: a new message in the manager chat.
    NewOrder(OrderPlaced),
    /// A status change: a new message in the customer's private chat.
    StatusChanged(StatusChanged),
    /// Edit the manager-chat message `message_id` (the order's new-order message) to show
    /// `order` as it is now.
    ManagerMessageEdit { message_id: i64, order: OrderPlaced },
    /// A new message in the manager chat telling `notice` about `order`.
    ManagerNotice {
        notice: crate::outbox::Notice,
        order: OrderPlaced,
    },
    /// A new message in the customer's private chat telling `notice` about `order`, in
    /// their language.
    CustomerNotice {
        notice: crate::outbox::Notice,
        order: OrderPlaced,
        language_code: Option<String>,
    },
    /// `refundStarPayment`: give the customer's stars back. A payment already refunded
    /// counts as done.
    StarsRefund {
        order_id: OrderId,
        user_id: TelegramId,
        telegram_payment_charge_id: String,
    },
}

impl Notification {
    /// The order it is about, for logs.
    pub fn order_id(&self) -> OrderId {
        match self {
            Notification::NewOrder(placed)
            | Notification::ManagerMessageEdit { order: placed, .. }
            | Notification::ManagerNotice { order: placed, .. }
            | Notification::CustomerNotice { order: placed, .. } => placed.order.id,
            Notification::StatusChanged(changed) => changed.order_id,
            Notification::StarsRefund { order_id, .. } => *order_id,
        }
    }
}

/// Why a notification was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Telegram's flood control (a 429 with the wait Telegram asked for): the chat is
    /// limited, not the message, so the wait costs the event no attempt.
    #[error("notification rate limited: {reason}")]
    RateLimited {
        reason: String,
        retry_after: Duration,
    },
    /// Worth retrying: network trouble, a timeout, a 5xx. `retry_after` is the server's
    /// `Retry-After`, when it sent one: nothing goes to the chat before then. Either way
    /// it is a failed attempt, so an event that keeps failing goes dead.
    #[error("transient notification failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: a bad token, an unknown chat, a bot blocked by the user or
    /// not allowed to start the conversation. Refusals are per chat: they hold no chat.
    #[error("permanent notification failure: {reason}")]
    Permanent { reason: String },
}

/// Proof that a notification was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryReceipt {
    /// Telegram's id of the message, when the channel has one.
    pub message_id: Option<i64>,
}

/// Tells the shop's manager and customers about orders.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Renders and delivers one notification to its chat.
    ///
    /// MUST return the sent (or edited) message's id in the receipt when the channel has
    /// one. An edit whose message already shows the text MUST count as delivered. A 429
    /// MUST be [`NotifyError::RateLimited`]; a refusal that retrying cannot change (403
    /// "bot was blocked by the user", 403 "bot can't initiate conversation with a user",
    /// 400 "chat not found") MUST be [`NotifyError::Permanent`].
    ///
    /// Error reasons MUST NOT contain secrets (the bot token) or the customer's personal
    /// data, because callers log them.
    async fn deliver(&self, notification: &Notification) -> Result<DeliveryReceipt, NotifyError>;
}

/// How full the database connection pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Connections currently lent out to queries.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The pool's maximum size.
    pub max: u32,
}

/// What operators need to know about the storage: is it there, and how busy is it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait StorageProbe: Send + Sync {
    /// One round trip to the database. Callers bound it with their own timeout.
    async fn ping(&self) -> Result<(), RepositoryError>;

    /// The pool's occupancy right now; no I/O.
    fn pool_stats(&self) -> PoolStats;
}

/// Stores outbox events (see [`crate::outbox`]). Events are created in the transaction of
/// the change that causes them ([`OrderRepository::place`] writes the order's
/// `order_created` event; the storage adapter offers a function that appends any
/// [`crate::outbox::OutboxEvent`] inside a given transaction); this port moves them
/// through their life.
///
/// An event is *pending* (waiting for delivery), *sent* or *dead*. A pending event is *due*
/// when its `next_attempt_at` has passed and no unexpired lease holds it.
///
/// Every instant here is the storage's own clock, never the caller's: leases, schedules,
/// holds and retention are durations the storage adds to its "now". Several server
/// instances share one database but not one wall clock, and a lease judged by two clocks
/// that disagree by more than its length would let two relays send one event.
///
/// Each claim writes a fresh [`ClaimToken`] on the event; every update of a claimed event
/// MUST carry it and MUST change nothing unless the event is still pending and still holds
/// that token. A relay whose lease ran out while it was sending (a stall, a pause) then
/// learns that its claim is lost ([`Recorded::LeaseLost`]) instead of overwriting the work
/// of the relay that claimed the event after it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` due events, oldest first, under a lease of `lease` from the
    /// storage's now and a fresh token each, and returns them with their notifications.
    /// An event whose chat is held ([`Outbox::hold_chat`]) is not due. A manager-message
    /// update whose order's new-order message has no known message id yet is returned with
    /// [`crate::outbox::NotReady`].
    ///
    /// MUST be safe under concurrency: two claimers never both receive an event while the
    /// first one's lease is unexpired (on PostgreSQL, `FOR UPDATE SKIP LOCKED`).
    async fn claim_due(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedEvent>, RepositoryError>;

    /// Marks the event sent (at the storage's now), keeping Telegram's message id, and
    /// clears its lease.
    async fn mark_sent(
        &self,
        id: EventId,
        token: &ClaimToken,
        message_id: Option<i64>,
    ) -> Result<Recorded, RepositoryError>;

    /// Schedules another attempt `delay` from the storage's now: stores `attempts`,
    /// `next_attempt_at` and the error (which MUST hold no secrets or personal data), and
    /// clears the lease.
    async fn retry_later(
        &self,
        id: EventId,
        token: &ClaimToken,
        attempts: u32,
        delay: std::time::Duration,
        error: &str,
    ) -> Result<Recorded, RepositoryError>;

    /// Moves the event to the dead state with its reason (at the storage's now), and clears
    /// its lease; with `then`, appends that event in the same transaction (only if the
    /// claim still held), so that what its death leaves someone to do is never lost.
    async fn mark_dead(
        &self,
        id: EventId,
        token: &ClaimToken,
        attempts: u32,
        reason: &str,
        then: Option<OutboxEvent>,
    ) -> Result<Recorded, RepositoryError>;

    /// Clears the leases of events claimed but not attempted, keeping their schedule. An
    /// event whose claim was lost keeps its new owner's lease.
    async fn release(&self, claims: &[(EventId, ClaimToken)]) -> Result<(), RepositoryError>;

    /// Holds `chat`'s pending events back for `wait` from the storage's now (Telegram asked
    /// that chat to wait): none of them is claimed before then, by this relay or any
    /// other; other chats' events are not affected. A hold never moves earlier. One write
    /// however many events wait: the events themselves keep their schedule.
    async fn hold_chat(
        &self,
        chat: &Recipient,
        wait: std::time::Duration,
    ) -> Result<(), RepositoryError>;

    /// Counts pending and dead events, and finds when the oldest pending one was created.
    ///
    /// MUST NOT read sent events: they are nearly every row, and this runs every few
    /// seconds (on PostgreSQL, each part is served by a partial index of its state).
    async fn counts(&self) -> Result<OutboxCounts, RepositoryError>;

    /// Puts every dead event back in line: pending, due at the storage's now, attempts
    /// reset. Returns how many.
    async fn retry_dead(&self) -> Result<u64, RepositoryError>;

    /// Deletes up to `limit` sent events sent more than `age` ago (by the storage's clock);
    /// returns how many. Pending and dead events are never deleted.
    async fn delete_sent(
        &self,
        age: std::time::Duration,
        limit: u32,
    ) -> Result<u64, RepositoryError>;
}

/// Stores idempotency keys (see [`crate::idempotency`]).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `user`'s request, atomically: of concurrent claims of one key,
    /// exactly one gets [`KeyClaim::Claimed`].
    ///
    /// An expired key (older than [`KEY_TTL`](crate::idempotency::KEY_TTL)) is treated as new; so is an in-progress key
    /// with no order whose claim is older than [`IN_PROGRESS_LEASE`](crate::idempotency::IN_PROGRESS_LEASE). A key whose stored
    /// fingerprint differs gets [`KeyClaim::Mismatch`], whatever its state.
    async fn claim(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        fingerprint: RequestFingerprint,
        now: OffsetDateTime,
    ) -> Result<KeyClaim, RepositoryError>;

    /// Stores the response of the request that claimed the key, for replay.
    async fn complete(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        response: StoredResponse,
    ) -> Result<(), RepositoryError>;

    /// Forgets a claimed key whose request failed without placing an order, so that the
    /// client may retry with it. A key that has an order is kept.
    async fn release(&self, user: UserId, key: &IdempotencyKey) -> Result<(), RepositoryError>;

    /// Deletes keys older than [`KEY_TTL`](crate::idempotency::KEY_TTL); returns how many.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, RepositoryError>;
}
