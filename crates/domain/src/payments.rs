//! Payments inside Telegram: a payment provider connected in BotFather (real currency) or
//! Telegram Stars (`XTR`).
//!
//! The flow: an order placed while payments are on owes an [`AmountDue`], fixed when it is
//! placed (from the stored total, exactly, in the currency's smallest units; or the sum of
//! the products' Stars prices). The customer asks for an invoice
//! ([`PaymentService::invoice`]): a `createInvoiceLink` whose payload names the order and a
//! random nonce stored with it, so a payload cannot be forged into another order. Telegram
//! then asks whether to go on (`pre_checkout_query`, [`judge_pre_checkout`]) and, once the
//! money moved, reports `successful_payment` — the only proof of payment. The storage
//! records each payment once by its `telegram_payment_charge_id` and, in the same
//! transaction, marks the order paid and moves it to CONFIRMED through the lifecycle
//! ([`judge_payment`] decides), with the outbox events that tell the manager and the
//! customer. A payment for an order that can no longer take it (cancelled, expired, paid
//! already) is recorded all the same and refunded: automatically for Stars
//! (`refundStarPayment`, through the outbox), by the manager through the provider
//! otherwise. Unpaid orders past their deadline are cancelled by the system
//! ([`PaymentService::expire_due`]), which returns their stock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::entities::{OrderStatus, User};
use crate::error::RepositoryError;
use crate::lifecycle::{
    ChangeRequest, ChangeStatusError, ChangedBy, Scope, StatusChange, can_transition, change_status,
};
use crate::money::Money;
use crate::outbox::{Notice, OutboxEvent};
use crate::ports::{ExclusiveRoles, NotifyError, OrderLifecycle};
use crate::settings::InvalidSetting;
use crate::values::{OrderId, ProductId, TelegramId};

/// A currency Telegram takes payments in, with the number of digits of its smallest unit
/// (`exp` in Telegram's `currencies.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

/// The currencies payment providers take through Telegram (core.telegram.org/bots/payments
/// #supported-currencies), with their exponents. Nearly all have two digits.
const PROVIDER_CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BYN", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GTQ", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KRW", 0),
    ("KZT", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("MAD", 2),
    ("MDL", 2),
    ("MNT", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("PAB", 2),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VND", 0),
    ("YER", 2),
    ("ZAR", 2),
];

impl Currency {
    /// Telegram Stars: whole stars, no provider.
    pub const STARS: Currency = Currency {
        code: "XTR",
        exponent: 0,
    };

    /// A provider currency by its ISO 4217 code (upper case), if Telegram takes it.
    pub fn provider(code: &str) -> Option<Currency> {
        PROVIDER_CURRENCIES
            .iter()
            .find(|(known, _)| *known == code)
            .map(|&(code, exponent)| Currency { code, exponent })
    }

    /// Any currency an order may owe in: a provider's or `XTR`.
    pub fn parse(code: &str) -> Option<Currency> {
        if code == Self::STARS.code {
            Some(Self::STARS)
        } else {
            Self::provider(code)
        }
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn is_stars(&self) -> bool {
        *self == Self::STARS
    }

    /// `amount` in this currency's smallest units, exactly; `None` when it has finer
    /// fractions than the currency (10.50 in yen) or does not fit.
    pub fn smallest_units(&self, amount: Money) -> Option<i64> {
        let kopecks = amount.minor_units();
        match self.exponent {
            2 => Some(kopecks),
            0 => (kopecks % 100 == 0).then_some(kopecks / 100),
            exponent => kopecks.checked_mul(10_i64.checked_pow(exponent.checked_sub(2)?)?),
        }
    }

    /// `units` of this currency written for people: `1 250.50 RUB`, `120 ⭐`.
    pub fn display(&self, units: i64) -> String {
        if self.is_stars() {
            return format!("{units} ⭐");
        }
        let divisor = 10_i64.pow(self.exponent);
        if self.exponent == 0 {
            format!("{units} {}", self.code)
        } else {
            format!(
                "{}.{:0width$} {}",
                units / divisor,
                units % divisor,
                self.code,
                width = self.exponent as usize
            )
        }
    }
}

/// How the shop takes payment (`PAYMENTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentMode {
    /// Orders are paid on delivery, as without payments: nothing is owed online.
    #[default]
    Off,
    /// A payment provider connected in BotFather, in this currency.
    Provider(Currency),
    /// Telegram Stars: every product needs a Stars price.
    Stars,
}

impl PaymentMode {
    /// The stable spelling of `PAYMENTS`: `off`, `provider`, `stars`.
    pub fn name(&self) -> &'static str {
        match self {
            PaymentMode::Off => "off",
            PaymentMode::Provider(_) => "provider",
            PaymentMode::Stars => "stars",
        }
    }
}

/// The longest `PAYMENT_TIMEOUT_MINUTES`: a week.
pub const MAX_TIMEOUT_MINUTES: u32 = 7 * 24 * 60;

/// What placing an order needs to know about payments: the mode, and how long an unpaid
/// order holds its stock (`PAYMENT_TIMEOUT_MINUTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentTerms {
    pub mode: PaymentMode,
    pub timeout: Duration,
}

impl Default for PaymentTerms {
    fn default() -> Self {
        Self {
            mode: PaymentMode::Off,
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl PaymentTerms {
    /// The terms from the settings' values: `PAYMENTS` (`off`, `provider`, `stars`),
    /// `PAYMENT_CURRENCY` (for `provider`) and `PAYMENT_TIMEOUT_MINUTES`.
    ///
    /// # Errors
    /// An unknown mode, a currency Telegram does not take, a timeout out of range.
    pub fn from_settings(
        mode: &str,
        currency: &str,
        timeout_minutes: u32,
    ) -> Result<Self, InvalidSetting> {
        let mode = match mode {
            "off" => PaymentMode::Off,
            "stars" => PaymentMode::Stars,
            "provider" => PaymentMode::Provider(Currency::provider(currency).ok_or_else(|| {
                InvalidSetting::new(
                    "PAYMENT_CURRENCY",
                    "must be a three-letter ISO 4217 code (upper case) that Telegram's \
                     payment providers take, such as RUB, USD or EUR",
                )
            })?),
            _ => {
                return Err(InvalidSetting::new(
                    "PAYMENTS",
                    "must be off, provider or stars",
                ));
            }
        };
        crate::settings::check_range(
            "PAYMENT_TIMEOUT_MINUTES",
            timeout_minutes,
            1..=MAX_TIMEOUT_MINUTES,
        )?;
        Ok(Self {
            mode,
            timeout: Duration::from_secs(u64::from(timeout_minutes) * 60),
        })
    }
}

/// The payment keys; each field name is its key (`payments` is `PAYMENTS`). The
/// provider's token is Telegram's (`PAYMENT_PROVIDER_TOKEN`, in infra-telegram's settings).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct PaymentSettings {
    /// `off` (paid on delivery), `provider` or `stars`.
    pub payments: String,
    /// A provider's currency, ISO 4217 (`provider` only).
    pub payment_currency: String,
    /// How long an unpaid order holds its stock, in minutes (1–10080).
    pub payment_timeout_minutes: u32,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            payments: "off".to_owned(),
            payment_currency: "RUB".to_owned(),
            payment_timeout_minutes: 30,
        }
    }
}

impl PaymentSettings {
    /// The terms, checked; the error names the key.
    pub fn terms(&self) -> Result<PaymentTerms, InvalidSetting> {
        PaymentTerms::from_settings(
            self.payments.trim().to_ascii_lowercase().as_str(),
            self.payment_currency.trim().to_ascii_uppercase().as_str(),
            self.payment_timeout_minutes,
        )
    }
}

/// Whether an order is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PaymentStatus {
    /// Payments were off when it was placed: paid on delivery.
    #[default]
    NotRequired,
    Unpaid,
    Paid,
    Refunded,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] = [
        PaymentStatus::NotRequired,
        PaymentStatus::Unpaid,
        PaymentStatus::Paid,
        PaymentStatus::Refunded,
    ];

    /// The stable spelling in JSON and the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::NotRequired => "not_required",
            PaymentStatus::Unpaid => "unpaid",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// What an order owes online: `amount` in `currency`'s smallest units (whole stars for
/// `XTR`). Fixed when the order is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountDue {
    pub currency: Currency,
    pub amount: i64,
}

impl AmountDue {
    pub fn display(&self) -> String {
        self.currency.display(self.amount)
    }
}

/// An order's payment, as the order carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrderPayment {
    pub status: PaymentStatus,
    /// `None` when nothing is owed online ([`PaymentStatus::NotRequired`]).
    pub due: Option<AmountDue>,
    /// Until when an unpaid order holds its stock.
    pub due_by: Option<OffsetDateTime>,
    pub paid_at: Option<OffsetDateTime>,
}

impl OrderPayment {
    /// A new order's payment: unpaid until `placed_at` + the timeout when it owes `due`,
    /// else not required.
    pub fn at_placement(
        due: Option<AmountDue>,
        placed_at: OffsetDateTime,
        terms: &PaymentTerms,
    ) -> Self {
        match due {
            None => Self::default(),
            Some(due) => Self {
                status: PaymentStatus::Unpaid,
                due: Some(due),
                due_by: placed_at.checked_add(time::Duration::seconds(
                    i64::try_from(terms.timeout.as_secs()).unwrap_or(i64::MAX),
                )),
                paid_at: None,
            },
        }
    }
}

/// What placing an order owes under `terms`, given its priced total and, when every line
/// has one, its total in Stars.
///
/// # Errors
/// [`PaymentDueError::NoStarsPrice`] in Stars mode when some products lack a Stars price;
/// [`PaymentDueError::NotPayable`] when the total cannot be expressed in the currency's
/// smallest units (a fraction of a yen) or is zero.
pub fn amount_due(
    terms: &PaymentTerms,
    total: Money,
    total_stars: Result<i64, Vec<ProductId>>,
) -> Result<Option<AmountDue>, PaymentDueError> {
    let due = match terms.mode {
        PaymentMode::Off => return Ok(None),
        PaymentMode::Stars => AmountDue {
            currency: Currency::STARS,
            amount: total_stars.map_err(PaymentDueError::NoStarsPrice)?,
        },
        PaymentMode::Provider(currency) => AmountDue {
            currency,
            amount: currency
                .smallest_units(total)
                .ok_or(PaymentDueError::NotPayable)?,
        },
    };
    if due.amount <= 0 {
        return Err(PaymentDueError::NotPayable);
    }
    Ok(Some(due))
}

/// Why an order cannot owe a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentDueError {
    #[error("products without a price in Telegram Stars: {0:?}")]
    NoStarsPrice(Vec<ProductId>),
    #[error("the total cannot be paid in the shop's currency")]
    NotPayable,
}

/// An invoice's payload: `o:<order id>:<nonce>`. Telegram gives it back in the
/// pre-checkout query and the payment; the nonce, random and stored with the order, makes
/// a payload for one order useless for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePayload {
    pub order_id: OrderId,
    pub nonce: String,
}

/// The nonce's length: 16 random bytes in URL-safe base64 without padding.
pub const NONCE_CHARS: usize = 22;

impl InvoicePayload {
    pub fn to_payload(&self) -> String {
        format!("o:{}:{}", self.order_id.0, self.nonce)
    }

    /// The payload Telegram sent back, if it is one of ours.
    pub fn parse(payload: &str) -> Option<Self> {
        let mut parts = payload.split(':');
        let (Some("o"), Some(id), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let order_id = OrderId(id.parse().ok()?);
        let valid_nonce = nonce.len() == NONCE_CHARS
            && nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid_nonce.then(|| InvoicePayload {
            order_id,
            nonce: nonce.to_owned(),
        })
    }

    /// A fresh random nonce.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn new_nonce() -> Result<String, RepositoryError> {
        use ring::rand::SecureRandom;
        let mut bytes = [0_u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| RepositoryError::Unknown(anyhow::anyhow!("no random source")))?;
        Ok(base64url(&bytes))
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// An order as payments see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayableOrder {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub total_amount: Money,
    pub customer: TelegramId,
    pub payment: OrderPayment,
    pub invoice_nonce: Option<String>,
    pub invoice_link: Option<String>,
}

impl PayableOrder {
    /// Whether a payment may be taken now: PENDING, unpaid, before its deadline.
    fn open_for_payment(&self, now: OffsetDateTime) -> Result<AmountDue, Refusal> {
        let due = match (self.payment.status, self.payment.due) {
            (PaymentStatus::Unpaid, Some(due)) => due,
            (PaymentStatus::Paid | PaymentStatus::Refunded, _) => return Err(Refusal::AlreadyPaid),
            _ => return Err(Refusal::NotPayable),
        };
        if self.status != OrderStatus::Pending {
            return Err(Refusal::NotPending);
        }
        if self.payment.due_by.is_some_and(|due_by| now >= due_by) {
            return Err(Refusal::Expired);
        }
        Ok(due)
    }
}

/// Why a payment for an order cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such order, not this customer's, or a payload that is not ours.
    UnknownOrder,
    /// Nothing is owed online (payments were off when it was placed).
    NotPayable,
    AlreadyPaid,
    /// Cancelled, or already being worked on.
    NotPending,
    /// Unpaid past its deadline.
    Expired,
    /// The amount or the currency differs from what the order owes.
    WrongAmount,
    /// The order could not be read (the database): the customer may try again.
    Unavailable,
}

impl Refusal {
    /// A short message for the customer (Telegram shows it in the payment form), in their
    /// language: English for `en`, Russian otherwise.
    pub fn message(&self, language_code: Option<&str>) -> &'static str {
        let english = language_code.is_some_and(|code| code == "en" || code.starts_with("en-"));
        match (self, english) {
            (Refusal::UnknownOrder, false) => "Заказ не найден.",
            (Refusal::UnknownOrder, true) => "Order not found.",
            (Refusal::NotPayable, false) => "Этот заказ оплачивается при получении.",
            (Refusal::NotPayable, true) => "This order is paid on delivery.",
            (Refusal::AlreadyPaid, false) => "Заказ уже оплачен.",
            (Refusal::AlreadyPaid, true) => "This order is already paid.",
            (Refusal::NotPending, false) => "Заказ отменён или уже в работе, оплата не нужна.",
            (Refusal::NotPending, true) => {
                "The order was cancelled or is already being processed; no payment is needed."
            }
            (Refusal::Expired, false) => {
                "Время на оплату истекло, заказ отменён. Оформите его заново."
            }
            (Refusal::Expired, true) => {
                "The time to pay has run out. Please place the order again."
            }
            (Refusal::WrongAmount, false) => "Сумма заказа изменилась. Откройте оплату заново.",
            (Refusal::WrongAmount, true) => {
                "The order's amount has changed. Please open the payment again."
            }
            (Refusal::Unavailable, false) => {
                "Не удалось проверить заказ. Попробуйте ещё раз через минуту."
            }
            (Refusal::Unavailable, true) => {
                "The order could not be checked. Please try again in a minute."
            }
        }
    }
}

/// Telegram's `pre_checkout_query`: may the payment go on?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreCheckout {
    pub query_id: String,
    pub from: i64,
    pub language_code: Option<String>,
    pub currency: String,
    pub total_amount: i64,
    pub payload: String,
}

/// The pre-checkout verdict: ok only if the payload names this customer's order (with its
/// nonce), it is PENDING, unpaid and before its deadline, and the amount and currency are
/// exactly what it owes.
pub fn judge_pre_checkout(
    order: Option<&PayableOrder>,
    query: &PreCheckout,
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    let order = matching_order(order, &query.payload, query.from)?;
    let due = order.open_for_payment(now)?;
    if due.currency.code() != query.currency || due.amount != query.total_amount {
        return Err(Refusal::WrongAmount);
    }
    Ok(())
}

/// The order, when `payload` is its invoice's (nonce included) and `from` its customer.
fn matching_order<'a>(
    order: Option<&'a PayableOrder>,
    payload: &str,
    from: i64,
) -> Result<&'a PayableOrder, Refusal> {
    let payload = InvoicePayload::parse(payload).ok_or(Refusal::UnknownOrder)?;
    match order {
        Some(order)
            if order.order_id == payload.order_id
                && order.customer.get() == from
                && order.invoice_nonce.as_deref().is_some_and(|nonce| {
                    crate::auth::constant_time_eq(nonce.as_bytes(), payload.nonce.as_bytes())
                }) =>
        {
            Ok(order)
        }
        _ => Err(Refusal::UnknownOrder),
    }
}

/// Telegram's `successful_payment`: the money moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPayment {
    /// Who paid (the message's `from`).
    pub from: i64,
    pub currency: String,
    pub total_amount: i64,
    pub payload: String,
    pub telegram_payment_charge_id: String,
    pub provider_payment_charge_id: Option<String>,
}

impl ReceivedPayment {
    /// The order its payload names, if it is one of ours.
    pub fn order_id(&self) -> Option<OrderId> {
        InvoicePayload::parse(&self.payload).map(|payload| payload.order_id)
    }

    pub fn is_stars(&self) -> bool {
        self.currency == Currency::STARS.code()
    }
}

/// What to do with a received payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentVerdict {
    /// It pays the order: mark it paid and confirm it.
    Apply,
    /// It cannot pay the order (why): a Stars payment is refunded automatically, a provider
    /// payment is flagged for the manager to refund through the provider.
    Refund(Refusal),
}

/// Decides a received payment against the order its payload names, as read (locked) in
/// the transaction that records it. The payment is taken by the order it names (its
/// nonce, its customer) while that order is unpaid and not cancelled, at exactly what it
/// owes: past the deadline too while the system has not cancelled it (the money is there
/// and the stock still held), and after a manager confirmed it unpaid. Anything else is
/// refunded.
pub fn judge_payment(order: Option<&PayableOrder>, payment: &ReceivedPayment) -> PaymentVerdict {
    let verdict = matching_order(order, &payment.payload, payment.from).and_then(|order| {
        let due = match (order.payment.status, order.payment.due) {
            (PaymentStatus::Unpaid, Some(due)) => due,
            (PaymentStatus::Paid | PaymentStatus::Refunded, _) => {
                return Err(Refusal::AlreadyPaid);
            }
            _ => return Err(Refusal::NotPayable),
        };
        if order.status == OrderStatus::Cancelled {
            return Err(Refusal::NotPending);
        }
        if due.currency.code() != payment.currency || due.amount != payment.total_amount {
            return Err(Refusal::WrongAmount);
        }
        Ok(())
    });
    match verdict {
        Ok(()) => PaymentVerdict::Apply,
        Err(refusal) => PaymentVerdict::Refund(refusal),
    }
}

/// What a payment that pays an order in `status` does to its status: PENDING becomes
/// CONFIRMED, by the system, as the lifecycle's table allows; an order a manager already
/// moved on keeps its status (`None`).
pub fn confirmation(
    order_id: OrderId,
    status: OrderStatus,
    at: OffsetDateTime,
) -> Option<StatusChange> {
    let to = OrderStatus::Confirmed;
    (status == OrderStatus::Pending && can_transition(status, to)).then_some(StatusChange {
        order_id,
        from: status,
        to,
        by: ChangedBy::System,
        at,
        note: None,
        admin: None,
    })
}

/// What is stored about a received payment: the verdict's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// The order is paid.
    Applied,
    /// A Stars payment that could not be taken: refunded through the outbox.
    RefundRequested,
    /// A provider payment that could not be taken: the manager refunds it.
    RefundManual,
}

impl PaymentOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentOutcome::Applied => "applied",
            PaymentOutcome::RefundRequested => "refund_requested",
            PaymentOutcome::RefundManual => "refund_manual",
        }
    }
}

impl PaymentVerdict {
    /// The outcome stored with the payment.
    pub fn outcome(&self, payment: &ReceivedPayment) -> PaymentOutcome {
        match self {
            PaymentVerdict::Apply => PaymentOutcome::Applied,
            PaymentVerdict::Refund(_) if payment.is_stars() => PaymentOutcome::RefundRequested,
            PaymentVerdict::Refund(_) => PaymentOutcome::RefundManual,
        }
    }

    /// The outbox events the verdict causes, besides a status change's, for an order that
    /// exists. A payment that pays it: the manager's "paid" notice and, when it does not
    /// confirm the order (a manager moved it on already, see [`confirms`]), the manager's
    /// message redrawn and the customer told (otherwise the status change tells them). One
    /// that cannot be taken: the Stars refund (when it is one) and notices to the manager
    /// and to the customer — not when the payer is not the order's customer, whom it does
    /// not concern.
    pub fn events(
        &self,
        order_id: OrderId,
        payment: &ReceivedPayment,
        recorded: PaymentId,
        confirmed: bool,
    ) -> Vec<OutboxEvent> {
        let (manager, customer) = match self.outcome(payment) {
            PaymentOutcome::Applied => {
                let mut events = vec![OutboxEvent::ManagerNotice {
                    order_id,
                    notice: Notice::Paid,
                }];
                if !confirmed {
                    events.push(OutboxEvent::ManagerMessageUpdate { order_id });
                    events.push(OutboxEvent::CustomerNotice {
                        order_id,
                        notice: Notice::Paid,
                    });
                }
                return events;
            }
            PaymentOutcome::RefundRequested => {
                (Notice::LatePaymentRefunded, Notice::LatePaymentRefunded)
            }
            PaymentOutcome::RefundManual => {
                (Notice::LatePaymentToRefund, Notice::LatePaymentToRefund)
            }
        };
        let mut events = Vec::new();
        if self.outcome(payment) == PaymentOutcome::RefundRequested {
            events.push(OutboxEvent::StarsRefund {
                order_id,
                payment: recorded,
            });
        }
        events.push(OutboxEvent::ManagerNotice {
            order_id,
            notice: manager,
        });
        if *self != PaymentVerdict::Refund(Refusal::UnknownOrder) {
            events.push(OutboxEvent::CustomerNotice {
                order_id,
                notice: customer,
            });
        }
        events
    }
}

/// The outbox events of cancelling an order that was paid: a Stars payment is refunded
/// automatically (and the manager told so); a provider payment is the manager's to refund
/// through the provider.
///
/// `paid_by`: the recorded payment that paid the order.
pub fn cancellation_refund_events(
    order_id: OrderId,
    payment: &OrderPayment,
    paid_by: Option<PaymentId>,
) -> Vec<OutboxEvent> {
    match (payment.status, payment.due, paid_by) {
        (PaymentStatus::Paid, Some(due), Some(paid_by)) if due.currency.is_stars() => vec![
            OutboxEvent::StarsRefund {
                order_id,
                payment: paid_by,
            },
            OutboxEvent::ManagerNotice {
                order_id,
                notice: Notice::CancelledPaidRefunded,
            },
            OutboxEvent::CustomerNotice {
                order_id,
                notice: Notice::CancelledPaidRefunded,
            },
        ],
        (PaymentStatus::Paid, Some(_), _) => vec![
            OutboxEvent::ManagerNotice {
                order_id,
                notice: Notice::CancelledPaidToRefund,
            },
            OutboxEvent::CustomerNotice {
                order_id,
                notice: Notice::CancelledPaidToRefund,
            },
        ],
        _ => Vec::new(),
    }
}

/// A recorded payment's id (the `payments` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentId(pub i64);

/// What came of recording a `successful_payment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentRecorded {
    /// Recorded before (a redelivery): nothing changed.
    Duplicate,
    /// Recorded now, with this outcome.
    Recorded(PaymentOutcome),
}

/// Telegram's `refunded_payment`: a Stars payment was refunded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundedPayment {
    pub telegram_payment_charge_id: String,
}

/// An invoice link for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub invoice_link: String,
    pub due: AmountDue,
    pub expires_at: Option<OffsetDateTime>,
}

/// What `createInvoiceLink` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRequest {
    pub order_id: OrderId,
    pub payload: String,
    pub due: AmountDue,
}

/// Why no invoice was given.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    /// Not the customer's order, or no such order.
    #[error("no such order")]
    NotFound,
    /// Payments are off (for the shop, or when the order was placed).
    #[error("this order is paid on delivery")]
    NotRequired,
    #[error("the order is already paid")]
    AlreadyPaid,
    /// Cancelled, or past PENDING.
    #[error("the order is {current} and cannot be paid")]
    NotPending { current: OrderStatus },
    #[error("the time to pay the order has run out")]
    Expired,
    /// Telegram refused or could not be reached.
    #[error("Telegram could not create the invoice: {0}")]
    Gateway(NotifyError),
    /// No bot is configured to make invoices with.
    #[error("no bot token is configured")]
    NotConfigured,
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// The storage's side of payments.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentRepository: Send + Sync {
    /// The order as payments see it, if it exists.
    async fn payable_order(&self, order: OrderId) -> Result<Option<PayableOrder>, RepositoryError>;

    /// Stores `nonce` as the order's invoice nonce unless it has one, and returns the one
    /// it has now (so two racing requests use the same).
    async fn claim_invoice_nonce(
        &self,
        order: OrderId,
        nonce: &str,
    ) -> Result<String, RepositoryError>;

    /// Keeps the invoice link made with `nonce`, for asking again.
    async fn store_invoice_link(
        &self,
        order: OrderId,
        nonce: &str,
        link: &str,
    ) -> Result<(), RepositoryError>;

    /// Records `payment` once (by its `telegram_payment_charge_id`) and, in the same
    /// transaction, acts on [`judge_payment`]'s verdict over the order read under its
    /// lock: marks it paid and applies PENDING → CONFIRMED (by the system) through the
    /// lifecycle with its events and [`Notice::Paid`]; or writes the refund's events
    /// ([`PaymentVerdict::events`]).
    async fn record_payment(
        &self,
        payment: &ReceivedPayment,
        at: OffsetDateTime,
    ) -> Result<PaymentRecorded, RepositoryError>;

    /// Marks the payment `telegram_payment_charge_id` refunded (and its order, when it
    /// paid one); `false` when no such payment is recorded. Repeating changes nothing.
    async fn record_refund(
        &self,
        refund: &RefundedPayment,
        at: OffsetDateTime,
    ) -> Result<bool, RepositoryError>;

    /// Unpaid PENDING orders whose deadline is at or before `now`, oldest first.
    async fn expired_unpaid(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OrderId>, RepositoryError>;
}

/// Telegram's payment calls that answer at once (a refund goes through the outbox).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// `createInvoiceLink`: the link the Mini App opens with `openInvoice`.
    async fn create_invoice_link(&self, request: &InvoiceRequest) -> Result<String, NotifyError>;

    /// `answerPreCheckoutQuery`: ok, or not with `error_message`.
    async fn answer_pre_checkout(
        &self,
        query_id: &str,
        error_message: Option<String>,
    ) -> Result<(), NotifyError>;
}

/// How long a pre-checkout query may wait for its order to be read: Telegram allows 10
/// seconds for the whole answer.
pub const PRE_CHECKOUT_READ_LIMIT: Duration = Duration::from_secs(5);

/// How long after its deadline an unpaid order is cancelled: a payment Telegram approved
/// just before the deadline has this long to arrive (a provider's can take a while)
/// before the order stops holding its stock.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(120);

/// The role of the one instance that expires unpaid orders on each round.
pub const EXPIRY_ROLE: &str = "payment-expiry";

/// How many unpaid orders one round expires at most.
pub const EXPIRY_BATCH: u32 = 100;

/// Payments: invoices, Telegram's pre-checkout queries and payments, and expiry.
#[derive(Clone)]
pub struct PaymentService {
    payments: Arc<dyn PaymentRepository>,
    orders: Arc<dyn OrderLifecycle>,
    gateway: Option<Arc<dyn PaymentGateway>>,
    relay_wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for PaymentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentService").finish_non_exhaustive()
    }
}

impl PaymentService {
    /// `gateway`: Telegram, when a bot token is configured (invoices need it). What an
    /// order owes was fixed when it was placed (`OrderService::with_payment_terms`), so
    /// the service needs no terms of its own.
    pub fn new(
        payments: Arc<dyn PaymentRepository>,
        orders: Arc<dyn OrderLifecycle>,
        gateway: Option<Arc<dyn PaymentGateway>>,
        relay_wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            payments,
            orders,
            gateway,
            relay_wake,
        }
    }

    /// An invoice link for the customer's own PENDING unpaid order: the one made before
    /// while it is valid, else a new one from `createInvoiceLink`.
    ///
    /// # Errors
    /// See [`InvoiceError`].
    pub async fn invoice(
        &self,
        customer: &User,
        order_id: OrderId,
        now: OffsetDateTime,
    ) -> Result<Invoice, InvoiceError> {
        let order = self
            .payments
            .payable_order(order_id)
            .await?
            .filter(|order| order.customer == customer.telegram_id)
            .ok_or(InvoiceError::NotFound)?;
        let due = order
            .open_for_payment(now)
            .map_err(|refusal| match refusal {
                Refusal::AlreadyPaid => InvoiceError::AlreadyPaid,
                Refusal::NotPending => InvoiceError::NotPending {
                    current: order.status,
                },
                Refusal::Expired => InvoiceError::Expired,
                _ => InvoiceError::NotRequired,
            })?;
        let answer = |invoice_link: String| Invoice {
            invoice_link,
            due,
            expires_at: order.payment.due_by,
        };
        if let Some(link) = &order.invoice_link {
            return Ok(answer(link.clone()));
        }
        let gateway = self.gateway.as_ref().ok_or(InvoiceError::NotConfigured)?;
        let nonce = self
            .payments
            .claim_invoice_nonce(order_id, &InvoicePayload::new_nonce()?)
            .await?;
        let payload = InvoicePayload { order_id, nonce };
        let link = gateway
            .create_invoice_link(&InvoiceRequest {
                order_id,
                payload: payload.to_payload(),
                due,
            })
            .await
            .map_err(InvoiceError::Gateway)?;
        self.payments
            .store_invoice_link(order_id, &payload.nonce, &link)
            .await?;
        Ok(answer(link))
    }

    /// Answers a pre-checkout query (Telegram waits at most 10 seconds). A failure to
    /// read the order refuses the payment rather than leave Telegram waiting.
    ///
    /// # Errors
    /// When the answer cannot be sent.
    pub async fn pre_checkout(
        &self,
        query: &PreCheckout,
        now: OffsetDateTime,
    ) -> Result<Result<(), Refusal>, NotifyError> {
        let verdict = match InvoicePayload::parse(&query.payload) {
            None => Err(Refusal::UnknownOrder),
            Some(payload) => {
                let read = self.payments.payable_order(payload.order_id);
                match tokio::time::timeout(PRE_CHECKOUT_READ_LIMIT, read).await {
                    Ok(Ok(order)) => judge_pre_checkout(order.as_ref(), query, now),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "could not read an order for a pre-checkout query");
                        Err(Refusal::Unavailable)
                    }
                    Err(_) => {
                        tracing::warn!("reading an order for a pre-checkout query took too long");
                        Err(Refusal::Unavailable)
                    }
                }
            }
        };
        let message = verdict
            .err()
            .map(|refusal| refusal.message(query.language_code.as_deref()));
        let Some(gateway) = &self.gateway else {
            return Err(NotifyError::Permanent {
                reason: "no bot token is configured".into(),
            });
        };
        gateway
            .answer_pre_checkout(&query.query_id, message.map(str::to_owned))
            .await?;
        Ok(verdict)
    }

    /// Refuses a pre-checkout query that cannot be read.
    ///
    /// # Errors
    /// When the answer cannot be sent.
    pub async fn refuse_pre_checkout(&self, query_id: &str) -> Result<(), NotifyError> {
        let Some(gateway) = &self.gateway else {
            return Err(NotifyError::Permanent {
                reason: "no bot token is configured".into(),
            });
        };
        gateway
            .answer_pre_checkout(
                query_id,
                Some(Refusal::UnknownOrder.message(None).to_owned()),
            )
            .await
    }

    /// Records a `successful_payment` (see [`PaymentRepository::record_payment`]).
    ///
    /// # Errors
    /// When it cannot be recorded: Telegram must deliver it again.
    pub async fn receive(
        &self,
        payment: &ReceivedPayment,
        now: OffsetDateTime,
    ) -> Result<PaymentRecorded, RepositoryError> {
        let recorded = self.payments.record_payment(payment, now).await?;
        match recorded {
            PaymentRecorded::Recorded(outcome) => {
                if outcome != PaymentOutcome::Applied {
                    tracing::warn!(
                        order_id = payment.order_id().map(|id| id.0),
                        outcome = outcome.as_str(),
                        "a payment arrived for an order that cannot take it; it is to be refunded"
                    );
                }
                self.relay_wake.notify_one();
            }
            PaymentRecorded::Duplicate => {}
        }
        Ok(recorded)
    }

    /// Records a `refunded_payment`.
    ///
    /// # Errors
    /// When it cannot be recorded.
    pub async fn refunded(
        &self,
        refund: &RefundedPayment,
        now: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        self.payments.record_refund(refund, now).await
    }

    /// Cancels (by the system) the unpaid orders past their deadline, a batch at a time,
    /// through the lifecycle: their stock comes back and the customer is told. Only the
    /// instance holding [`EXPIRY_ROLE`] does it on each round. An order paid meanwhile is
    /// no longer PENDING, so the compare-and-set leaves it alone.
    ///
    /// # Errors
    /// When the orders cannot be read.
    pub async fn expire_due(
        &self,
        roles: &dyn ExclusiveRoles,
        now: OffsetDateTime,
    ) -> Result<u32, RepositoryError> {
        // Runs whatever the mode: orders placed while payments were on still expire.
        let Some(lease) = roles.try_take(EXPIRY_ROLE).await? else {
            return Ok(0);
        };
        let result = self.expire_batch(now).await;
        lease.release().await;
        result
    }

    async fn expire_batch(&self, now: OffsetDateTime) -> Result<u32, RepositoryError> {
        let grace = time::Duration::seconds(i64::try_from(EXPIRY_GRACE.as_secs()).unwrap_or(0));
        let cutoff = now.checked_sub(grace).unwrap_or(now);
        let due = self.payments.expired_unpaid(cutoff, EXPIRY_BATCH).await?;
        let mut expired = 0;
        for order_id in due {
            let request = ChangeRequest {
                scope: Scope::Any,
                order_id,
                seen: Some(OrderStatus::Pending),
                to: OrderStatus::Cancelled,
                by: ChangedBy::System,
                at: now,
                note: Some(EXPIRY_NOTE.to_owned()),
                admin: None,
            };
            match change_status(self.orders.as_ref(), request).await {
                Ok(_) => expired += 1,
                // Paid or cancelled meanwhile: nothing to expire.
                Err(ChangeStatusError::AlreadyChanged { .. } | ChangeStatusError::NotFound) => {}
                Err(ChangeStatusError::NotAllowed { .. }) => {}
                Err(ChangeStatusError::Repository(error)) => return Err(error),
            }
        }
        if expired > 0 {
            tracing::info!(expired, "cancelled unpaid orders past their deadline");
            self.relay_wake.notify_one();
        }
        Ok(expired)
    }

    /// Expires unpaid orders every `every` until `shutdown` turns true.
    pub async fn run_expiry(
        self,
        roles: Arc<dyn ExclusiveRoles>,
        clock: Arc<dyn crate::clock::Clock>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(error) = self.expire_due(roles.as_ref(), clock.now()).await {
                tracing::warn!(%error, "could not expire unpaid orders; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                changed = shutdown.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// The history note of an order the system cancelled for want of payment.
pub const EXPIRY_NOTE: &str = "не оплачен вовремя";

#[cfg(test)]
mod tests;
