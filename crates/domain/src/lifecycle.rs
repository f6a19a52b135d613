//! The order lifecycle: which status may follow which, who changed it, and the one use
//! case that changes it. A manager's button, the admin API, a customer's cancellation and
//! a payment all go through [`change_status`]; nothing else decides a transition.
//!
//! ```text
//! PENDING → CONFIRMED → PROCESSING → SHIPPED → DELIVERED     (a step may be skipped)
//!    ↓           ↓            ↓
//!    └───────────┴────────────┴──→ CANCELLED
//! ```
//!
//! DELIVERED and CANCELLED are final. A change is a compare-and-set on the status the
//! caller saw: of two managers pressing at once, one changes the order and the other is
//! told it already changed.

use time::OffsetDateTime;

use crate::admin::Admin;
use crate::entities::{Order, OrderStatus};
use crate::error::{FieldError, RepositoryError};
use crate::outbox::{Notice, OutboxEvent};
use crate::ports::OrderLifecycle;
use crate::values::{OrderId, TelegramId, UserId};

/// Every allowed transition, `(from, to)`: forward along the chain (skipping is allowed,
/// e.g. CONFIRMED → SHIPPED for pickup), and CANCELLED from the three open statuses.
pub const TRANSITIONS: &[(OrderStatus, OrderStatus)] = {
    use OrderStatus::*;
    &[
        (Pending, Confirmed),
        (Pending, Processing),
        (Pending, Shipped),
        (Pending, Delivered),
        (Pending, Cancelled),
        (Confirmed, Processing),
        (Confirmed, Shipped),
        (Confirmed, Delivered),
        (Confirmed, Cancelled),
        (Processing, Shipped),
        (Processing, Delivered),
        (Processing, Cancelled),
        (Shipped, Delivered),
    ]
};

/// Whether `to` may follow `from`.
pub fn can_transition(from: OrderStatus, to: OrderStatus) -> bool {
    TRANSITIONS.contains(&(from, to))
}

/// The statuses that may follow `from`, in lifecycle order (what a manager's buttons
/// offer); empty for a final status.
pub fn next_statuses(from: OrderStatus) -> Vec<OrderStatus> {
    OrderStatus::ALL
        .into_iter()
        .filter(|to| can_transition(from, *to))
        .collect()
}

/// Whether nothing may follow `status`.
pub fn is_final(status: OrderStatus) -> bool {
    next_statuses(status).is_empty()
}

/// The statuses of orders still being worked on.
pub const OPEN_STATUSES: [OrderStatus; 3] = [
    OrderStatus::Pending,
    OrderStatus::Confirmed,
    OrderStatus::Processing,
];

/// Who changed a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangedBy {
    /// The customer who placed the order.
    Customer,
    /// A manager, by their Telegram id.
    Manager(TelegramId),
    /// BotShop itself (a payment, a timeout).
    System,
}

impl ChangedBy {
    /// The stable spelling in the API and the database: `customer`, `manager`, `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChangedBy::Customer => "customer",
            ChangedBy::Manager(_) => "manager",
            ChangedBy::System => "system",
        }
    }
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusHistoryEntry {
    pub from: Option<OrderStatus>,
    pub status: OrderStatus,
    pub by: ChangedBy,
    pub at: OffsetDateTime,
    pub note: Option<String>,
}

/// A change to apply: the order, the status the caller saw, the one wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub order_id: OrderId,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub by: ChangedBy,
    pub at: OffsetDateTime,
    pub note: Option<String>,
    /// The admin who asked for it through the admin API: the change is then recorded in
    /// the audit log, in its transaction.
    pub admin: Option<Admin>,
}

impl StatusChange {
    /// The audit log's record of the change when an admin made it: `order.status`, the
    /// status before, and the status (and note) after.
    pub fn audit(&self) -> Option<AuditRecord> {
        let admin = self.admin?;
        let mut after = serde_json::json!({ "status": self.to.as_str() });
        if let Some(note) = &self.note {
            after["note"] = serde_json::Value::String(note.clone());
        }
        Some(AuditRecord {
            actor: admin.actor(),
            action: "order.status",
            entity: "order",
            entity_id: self.order_id.0.to_string(),
            before: serde_json::json!({ "status": self.from.as_str() }),
            after,
        })
    }

    /// The outbox events the change causes, written in its transaction: the customer's
    /// message, the manager's order message redrawn and, when the customer cancelled, a
    /// notice the manager hears (an edit makes no sound).
    pub fn events(&self) -> Vec<OutboxEvent> {
        let order_id = self.order_id;
        let mut events = vec![
            OutboxEvent::OrderStatusChanged {
                order_id,
                from: self.from,
                to: self.to,
                by: self.by,
            },
            OutboxEvent::ManagerMessageUpdate { order_id },
        ];
        if self.by == ChangedBy::Customer && self.to == OrderStatus::Cancelled {
            events.push(OutboxEvent::ManagerNotice {
                order_id,
                notice: Notice::CancelledByCustomer,
            });
        }
        events
    }
}

/// An admin change to record in the audit log, in the change's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub actor: String,
    pub action: &'static str,
    pub entity: &'static str,
    pub entity_id: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// What the storage did with a [`StatusChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The status was `from` and is now `to`; the order as it is now.
    Changed(Box<Order>),
    /// The status was no longer `from`: nothing changed.
    Stale { current: OrderStatus },
    /// No such order.
    NotFound,
}

/// Whose order may be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The customer's own orders only (someone else's is "not found").
    Customer(UserId),
    /// Any order (a manager, the admin API, the system).
    Any,
}

/// Why a status change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeStatusError {
    #[error("no such order")]
    NotFound,
    /// `to` may not follow the order's current status.
    #[error("an order that is {from} cannot become {to}")]
    NotAllowed { from: OrderStatus, to: OrderStatus },
    /// The status moved since the caller saw it (another manager, the customer).
    #[error("the order is already {current}")]
    AlreadyChanged { current: OrderStatus },
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// The longest note a status change may carry, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// A status change's note as sent: trimmed, none when blank; at most
/// [`MAX_NOTE_CHARS`] characters and no control characters other than newline and tab.
pub fn parse_note(note: Option<&str>) -> Result<Option<String>, FieldError> {
    match note.map(str::trim) {
        None | Some("") => Ok(None),
        Some(note) if note.chars().count() > MAX_NOTE_CHARS => Err(FieldError::new(
            "note",
            "too_long",
            format!("note must be at most {MAX_NOTE_CHARS} characters"),
        )),
        Some(note) if crate::values::has_control_character(note) => Err(FieldError::new(
            "note",
            "control_character",
            "note must not contain control characters (other than newline and tab)",
        )),
        Some(note) => Ok(Some(note.to_owned())),
    }
}

/// A request to move an order to `to`, by `by`, at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    pub scope: Scope,
    pub order_id: OrderId,
    /// The status the caller based the request on, when it knows one.
    pub seen: Option<OrderStatus>,
    pub to: OrderStatus,
    pub by: ChangedBy,
    pub at: OffsetDateTime,
    pub note: Option<String>,
    /// The admin asking through the admin API (audited), if any.
    pub admin: Option<Admin>,
}

/// Applies a [`ChangeRequest`].
///
/// `seen` is the status the caller based the request on (the one a manager's button was
/// drawn for); when given and no longer current, the answer is [`AlreadyChanged`] and
/// nothing changes. The storage applies the change as a compare-and-set on the current
/// status, writing in one transaction the status, a history row, the outbox events it
/// causes (the customer's message in their chat, the manager's order message refreshed)
/// and, for a cancellation, the return of limited stock.
///
/// [`AlreadyChanged`]: ChangeStatusError::AlreadyChanged
pub async fn change_status(
    orders: &dyn OrderLifecycle,
    request: ChangeRequest,
) -> Result<Order, ChangeStatusError> {
    let ChangeRequest {
        scope,
        order_id,
        seen,
        to,
        by,
        at,
        note,
        admin,
    } = request;
    let current = orders
        .current_status(scope, order_id)
        .await?
        .ok_or(ChangeStatusError::NotFound)?;
    if seen.is_some_and(|seen| seen != current) {
        return Err(ChangeStatusError::AlreadyChanged { current });
    }
    if !can_transition(current, to) {
        return Err(ChangeStatusError::NotAllowed { from: current, to });
    }
    let change = StatusChange {
        order_id,
        from: current,
        to,
        by,
        at,
        note,
        admin,
    };
    match orders.apply_status_change(change).await? {
        Applied::Changed(order) => Ok(*order),
        Applied::Stale { current } => Err(ChangeStatusError::AlreadyChanged { current }),
        Applied::NotFound => Err(ChangeStatusError::NotFound),
    }
}

/// Why a customer's cancellation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// Not the customer's order, or no such order.
    #[error("no such order")]
    NotFound,
    /// A customer may cancel only while the order is PENDING.
    #[error("the order is {current} and can no longer be cancelled by the customer")]
    NotCancellable { current: OrderStatus },
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// The customer cancels their own order: allowed only while it is PENDING (once the shop
/// confirmed it, only a manager can). The same compare-and-set as every change, from
/// PENDING.
pub async fn cancel_by_customer(
    orders: &dyn OrderLifecycle,
    customer: UserId,
    order_id: OrderId,
    at: OffsetDateTime,
) -> Result<Order, CancelError> {
    let request = ChangeRequest {
        scope: Scope::Customer(customer),
        order_id,
        seen: Some(OrderStatus::Pending),
        to: OrderStatus::Cancelled,
        by: ChangedBy::Customer,
        at,
        note: None,
        admin: None,
    };
    match change_status(orders, request).await {
        Ok(order) => Ok(order),
        Err(ChangeStatusError::NotFound) => Err(CancelError::NotFound),
        Err(
            ChangeStatusError::AlreadyChanged { current }
            | ChangeStatusError::NotAllowed { from: current, .. },
        ) => Err(CancelError::NotCancellable { current }),
        Err(ChangeStatusError::Repository(error)) => Err(CancelError::Repository(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockOrderLifecycle;
    use OrderStatus::*;

    #[test]
    fn the_table_is_forward_with_skips_and_cancellation_while_open() {
        assert_eq!(
            next_statuses(Pending),
            [Confirmed, Processing, Shipped, Delivered, Cancelled]
        );
        assert_eq!(
            next_statuses(Confirmed),
            [Processing, Shipped, Delivered, Cancelled]
        );
        assert_eq!(next_statuses(Processing), [Shipped, Delivered, Cancelled]);
        assert_eq!(next_statuses(Shipped), [Delivered]);
        assert!(is_final(Delivered) && is_final(Cancelled));
        // Never backwards, never to itself.
        for from in OrderStatus::ALL {
            assert!(!can_transition(from, from));
            assert!(!can_transition(from, Pending));
        }
        assert!(!can_transition(Shipped, Cancelled));
        assert!(!can_transition(Cancelled, Delivered));
    }

    fn order(status: OrderStatus) -> Order {
        Order {
            payment: Default::default(),
            id: OrderId(7),
            user_id: UserId(1),
            status,
            total_amount: crate::Money::ZERO,
            delivery_address: String::new(),
            phone: String::new(),
            comment: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            items: vec![],
        }
    }

    fn lifecycle(current: Option<OrderStatus>, applied: Applied) -> MockOrderLifecycle {
        let mut orders = MockOrderLifecycle::new();
        orders
            .expect_current_status()
            .returning(move |_, _| Ok(current));
        orders
            .expect_apply_status_change()
            .returning(move |_| Ok(applied.clone()));
        orders
    }

    async fn change(
        orders: &MockOrderLifecycle,
        seen: Option<OrderStatus>,
        to: OrderStatus,
    ) -> Result<Order, ChangeStatusError> {
        change_status(
            orders,
            ChangeRequest {
                scope: Scope::Any,
                order_id: OrderId(7),
                seen,
                to,
                by: ChangedBy::System,
                at: OffsetDateTime::UNIX_EPOCH,
                note: None,
                admin: None,
            },
        )
        .await
    }

    #[tokio::test]
    async fn an_allowed_change_is_applied_from_the_current_status() {
        let mut orders = MockOrderLifecycle::new();
        orders
            .expect_current_status()
            .returning(|_, _| Ok(Some(Pending)));
        orders
            .expect_apply_status_change()
            .withf(|c| c.from == Pending && c.to == Confirmed && c.order_id == OrderId(7))
            .times(1)
            .returning(|_| Ok(Applied::Changed(Box::new(order(Confirmed)))));
        let changed = change(&orders, Some(Pending), Confirmed).await.unwrap();
        assert_eq!(changed.status, Confirmed);
    }

    #[tokio::test]
    async fn refusals_change_nothing() {
        // Not allowed from the current status: never applied.
        let mut orders = MockOrderLifecycle::new();
        orders
            .expect_current_status()
            .returning(|_, _| Ok(Some(Delivered)));
        orders.expect_apply_status_change().never();
        assert!(matches!(
            change(&orders, None, Cancelled).await,
            Err(ChangeStatusError::NotAllowed {
                from: Delivered,
                to: Cancelled
            })
        ));
        // A stale button: the status it was drawn for is gone.
        assert!(matches!(
            change(&orders, Some(Pending), Confirmed).await,
            Err(ChangeStatusError::AlreadyChanged { current: Delivered })
        ));
        let missing = lifecycle(None, Applied::NotFound);
        assert!(matches!(
            change(&missing, None, Confirmed).await,
            Err(ChangeStatusError::NotFound)
        ));
    }

    #[tokio::test]
    async fn a_customer_cancels_only_while_pending() {
        let pending = lifecycle(Some(Pending), Applied::Changed(Box::new(order(Cancelled))));
        let cancelled =
            cancel_by_customer(&pending, UserId(1), OrderId(7), OffsetDateTime::UNIX_EPOCH)
                .await
                .unwrap();
        assert_eq!(cancelled.status, Cancelled);
        let mut confirmed = MockOrderLifecycle::new();
        confirmed
            .expect_current_status()
            .withf(|scope, _| *scope == Scope::Customer(UserId(1)))
            .returning(|_, _| Ok(Some(Confirmed)));
        confirmed.expect_apply_status_change().never();
        assert!(matches!(
            cancel_by_customer(
                &confirmed,
                UserId(1),
                OrderId(7),
                OffsetDateTime::UNIX_EPOCH
            )
            .await,
            Err(CancelError::NotCancellable { current: Confirmed })
        ));
    }

    #[tokio::test]
    async fn losing_the_race_is_already_changed() {
        let orders = lifecycle(Some(Pending), Applied::Stale { current: Cancelled });
        assert!(matches!(
            change(&orders, None, Confirmed).await,
            Err(ChangeStatusError::AlreadyChanged { current: Cancelled })
        ));
    }

    #[test]
    fn only_a_customers_cancellation_sends_the_manager_a_notice() {
        let change = |to, by| StatusChange {
            order_id: OrderId(7),
            from: OrderStatus::Pending,
            to,
            by,
            at: OffsetDateTime::UNIX_EPOCH,
            note: None,
            admin: None,
        };
        let notices = |change: StatusChange| {
            change
                .events()
                .into_iter()
                .filter(|event| matches!(event, OutboxEvent::ManagerNotice { .. }))
                .collect::<Vec<_>>()
        };
        let manager = ChangedBy::Manager(TelegramId::parse(42).unwrap());
        assert_eq!(
            notices(change(OrderStatus::Cancelled, ChangedBy::Customer)),
            [OutboxEvent::ManagerNotice {
                order_id: OrderId(7),
                notice: Notice::CancelledByCustomer
            }]
        );
        assert!(notices(change(OrderStatus::Cancelled, manager)).is_empty());
        assert!(notices(change(OrderStatus::Cancelled, ChangedBy::System)).is_empty());
        assert!(notices(change(OrderStatus::Confirmed, manager)).is_empty());
        // Every change tells the customer and redraws the manager's message.
        let events = change(OrderStatus::Confirmed, manager).events();
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn a_note_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(parse_note(None).unwrap(), None);
        assert_eq!(parse_note(Some("   ")).unwrap(), None);
        assert_eq!(
            parse_note(Some(" СДЭК 1 ")).unwrap().as_deref(),
            Some("СДЭК 1")
        );
        assert_eq!(
            parse_note(Some("строка\nдругая")).unwrap().as_deref(),
            Some("строка\nдругая")
        );
        assert_eq!(
            parse_note(Some(&"x".repeat(501))).unwrap_err().code,
            "too_long"
        );
        assert_eq!(
            parse_note(Some("a\u{0}b")).unwrap_err().code,
            "control_character"
        );
    }
}
