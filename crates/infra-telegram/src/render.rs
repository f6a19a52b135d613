//! The messages the bot sends, each a pure function of what it is about, easy to test
//! exactly: the manager's new-order message (and its edits, which add the order's
//! status), and the customer's status-change message in their language.

use domain::Money;
use domain::entities::{Order, OrderStatus};
use domain::outbox::Notice;
use domain::payments::{OrderPayment, PaymentStatus};
use domain::ports::{OrderPlaced, StatusChanged};
use time::{OffsetDateTime, UtcOffset};

/// The most a message may hold, in UTF-16 code units of the HTML text we send.
///
/// Telegram's limit is 4096 characters counted after entity parsing. We count the text
/// *before* parsing (so `&amp;` costs five, not one) and in UTF-16 code units (so an emoji
/// costs two): both only overestimate, so a message within this bound is always accepted.
pub const MESSAGE_LIMIT: usize = 4096;

/// Marks a field that was cut to fit the limit.
const ELLIPSIS: char = '…';

/// Renders the new-order message in Telegram's HTML mode.
///
/// Every customer- or catalog-supplied text is HTML-escaped, so it arrives as literal text.
/// The result never exceeds [`MESSAGE_LIMIT`]: when it would, the comment is shortened
/// first, then the address, then the product names (each cut marked with "…"), and as a
/// last resort the text itself — the manager must always get the message.
pub fn render_order_message(notification: &OrderPlaced, utc_offset: UtcOffset) -> String {
    render_order_message_within(notification, utc_offset, MESSAGE_LIMIT)
}

/// The language of a customer's messages: Russian unless Telegram says the customer uses
/// English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Russian,
    English,
}

impl Language {
    /// English for `en` and its regional tags (`en-gb`), Russian for everything else,
    /// including no code at all: the shop's own language.
    pub fn from_code(code: Option<&str>) -> Self {
        match code {
            Some(code)
                if code.eq_ignore_ascii_case("en")
                    || code.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("en-")) =>
            {
                Language::English
            }
            _ => Language::Russian,
        }
    }
}

/// What an order in `status` is, as the end of "Заказ #123 …" / "Order #123 …".
/// The label of the manager's button that moves an order to `to`.
pub fn button_label(to: OrderStatus) -> &'static str {
    match to {
        OrderStatus::Pending => "↩️ Новый",
        OrderStatus::Confirmed => "✅ Подтвердить",
        OrderStatus::Processing => "⚙️ В работу",
        OrderStatus::Shipped => "🚚 Отправлен",
        OrderStatus::Delivered => "📦 Доставлен",
        OrderStatus::Cancelled => "❌ Отменить",
    }
}

pub fn status_phrase(status: OrderStatus, language: Language) -> &'static str {
    match (language, status) {
        (Language::Russian, OrderStatus::Pending) => "ожидает подтверждения",
        (Language::Russian, OrderStatus::Confirmed) => "подтверждён",
        (Language::Russian, OrderStatus::Processing) => "в работе",
        (Language::Russian, OrderStatus::Shipped) => "отправлен",
        (Language::Russian, OrderStatus::Delivered) => "доставлен",
        (Language::Russian, OrderStatus::Cancelled) => "отменён",
        (Language::English, OrderStatus::Pending) => "is awaiting confirmation",
        (Language::English, OrderStatus::Confirmed) => "is confirmed",
        (Language::English, OrderStatus::Processing) => "is being prepared",
        (Language::English, OrderStatus::Shipped) => "has been shipped",
        (Language::English, OrderStatus::Delivered) => "has been delivered",
        (Language::English, OrderStatus::Cancelled) => "has been cancelled",
    }
}

/// The customer's message about their order's new status, in their language, with the
/// order's total. Nothing in it comes from a user, so there is nothing to escape.
pub fn render_status_message(change: &StatusChanged) -> String {
    let language = Language::from_code(change.language_code.as_deref());
    let (order, total) = match language {
        Language::Russian => ("Заказ", "Сумма"),
        Language::English => ("Order", "Total"),
    };
    let amount = match change.payment.due {
        Some(due) => due.display(),
        None => format_rubles(change.total_amount),
    };
    let paid = match (change.payment.status, language) {
        (PaymentStatus::Paid, Language::Russian) => "\n💳 Оплачен",
        (PaymentStatus::Paid, Language::English) => "\n💳 Paid",
        (PaymentStatus::Refunded, Language::Russian) => "\n💳 Оплата возвращена",
        (PaymentStatus::Refunded, Language::English) => "\n💳 Payment refunded",
        _ => "",
    };
    format!(
        "📦 {order} #{} {}{paid}\n💰 {total}: {amount}",
        change.order_id,
        status_phrase(change.to, language),
    )
}

/// A notice to the manager chat about an order (a new message, so that it is heard):
/// "❌ Клиент отменил заказ #123" and the order's total. It holds nothing the customer
/// typed.
pub fn render_manager_notice(notice: Notice, placed: &OrderPlaced) -> String {
    let id = placed.order.id;
    let what = match notice {
        Notice::CancelledByCustomer => format!("❌ Клиент отменил заказ #{id}"),
        Notice::Paid => format!("💳 Оплачен заказ #{id}"),
        Notice::LatePaymentRefunded => format!(
            "⚠️ Оплата заказа #{id} пришла, когда его уже нельзя было оплатить \
             (отменён, просрочен или уже оплачен). Звёзды возвращаются покупателю автоматически."
        ),
        Notice::LatePaymentToRefund => format!(
            "⚠️ Оплата заказа #{id} пришла, когда его уже нельзя было оплатить \
             (отменён, просрочен или уже оплачен). Верните деньги покупателю через \
             платёжного провайдера."
        ),
        Notice::CancelledPaidRefunded => format!(
            "↩️ Оплаченный заказ #{id} отменён. Звёзды возвращаются покупателю автоматически."
        ),
        Notice::CancelledPaidToRefund => format!(
            "⚠️ Оплаченный заказ #{id} отменён. Верните деньги покупателю через \
             платёжного провайдера."
        ),
        Notice::RefundFailed => format!(
            "⚠️ Не удалось вернуть звёзды за заказ #{id}. Проверьте баланс звёзд бота и \
             повторите возврат: server outbox retry-dead (он повторит и другие \
             неотправленные сообщения)."
        ),
    };
    let amount = match placed.order.payment.due {
        Some(due) if notice != Notice::CancelledByCustomer => due.display(),
        _ => format_rubles(placed.order.total_amount),
    };
    format!("{what}\n💰 Сумма: {amount}")
}

/// A notice to the customer about their order's payment, in their language. It holds
/// nothing anyone typed.
pub fn render_customer_notice(
    notice: Notice,
    placed: &OrderPlaced,
    language_code: Option<&str>,
) -> String {
    let id = placed.order.id;
    let english = Language::from_code(language_code) == Language::English;
    let what = match (notice, english) {
        (Notice::LatePaymentRefunded, false) => format!(
            "⚠️ Оплата заказа #{id} пришла, когда заказ уже нельзя было оплатить. \
             Звёзды вернутся на ваш счёт."
        ),
        (Notice::LatePaymentRefunded, true) => format!(
            "⚠️ Your payment for order #{id} arrived when the order could no longer be paid. \
             Your Stars are being refunded."
        ),
        (Notice::LatePaymentToRefund, false) => format!(
            "⚠️ Оплата заказа #{id} пришла, когда заказ уже нельзя было оплатить. \
             Магазин вернёт деньги."
        ),
        (Notice::LatePaymentToRefund, true) => format!(
            "⚠️ Your payment for order #{id} arrived when the order could no longer be paid. \
             The shop will refund it."
        ),
        (Notice::CancelledPaidRefunded, false) => {
            format!("↩️ Заказ #{id} отменён. Звёзды вернутся на ваш счёт.")
        }
        (Notice::CancelledPaidRefunded, true) => {
            format!("↩️ Order #{id} was cancelled. Your Stars are being refunded.")
        }
        (Notice::CancelledPaidToRefund, false) => {
            format!("↩️ Заказ #{id} отменён. Магазин вернёт деньги.")
        }
        (Notice::CancelledPaidToRefund, true) => {
            format!("↩️ Order #{id} was cancelled. The shop will refund your payment.")
        }
        (Notice::Paid, false) => format!("💳 Заказ #{id} оплачен"),
        (Notice::Paid, true) => format!("💳 Order #{id} is paid"),
        (Notice::CancelledByCustomer, false) => format!("❌ Заказ #{id} отменён"),
        (Notice::CancelledByCustomer, true) => format!("❌ Order #{id} was cancelled"),
        // The manager's to see to: the customer was told their stars are coming back.
        (Notice::RefundFailed, false) => {
            format!("⚠️ Возврат звёзд за заказ #{id} задерживается. Магазин свяжется с вами.")
        }
        (Notice::RefundFailed, true) => {
            format!(
                "⚠️ The refund of your Stars for order #{id} is delayed. The shop will be in touch."
            )
        }
    };
    let amount = match placed.order.payment.due {
        Some(due) => due.display(),
        None => format_rubles(placed.order.total_amount),
    };
    let total = if english { "Amount" } else { "Сумма" };
    format!("{what}\n💰 {total}: {amount}")
}

/// The line the manager's order message shows about an order paid online (none for one
/// paid on delivery, whose message stays the seed's).
fn payment_line(payment: &OrderPayment) -> Option<String> {
    let due = payment.due?;
    let state = match payment.status {
        PaymentStatus::Paid => "💳 Оплачен",
        PaymentStatus::Refunded => "💳 Оплата возвращена",
        PaymentStatus::Unpaid | PaymentStatus::NotRequired => "💳 Не оплачен",
    };
    Some(format!("{state}: {}", due.display()))
}

/// The manager's message about an order as it is now, for editing the new-order message:
/// the same text, then the order's status. Within [`MESSAGE_LIMIT`] like the original:
/// the order's part is shortened to leave room for the status.
pub fn render_manager_update(notification: &OrderPlaced, utc_offset: UtcOffset) -> String {
    let status = format!(
        "\n\n📌 Статус: {}",
        status_phrase(notification.order.status, Language::Russian)
    );
    let mut text = render_order_message_within(
        notification,
        utc_offset,
        MESSAGE_LIMIT.saturating_sub(telegram_len(&status)),
    );
    text.push_str(&status);
    text
}

/// [`render_order_message`] within `limit` instead of [`MESSAGE_LIMIT`].
fn render_order_message_within(
    notification: &OrderPlaced,
    utc_offset: UtcOffset,
    limit: usize,
) -> String {
    let order = &notification.order;
    let frame = Frame {
        order,
        customer: notification.customer.to_string(),
        phone: escape_html(&order.phone),
        created_at: format_created_at(order.created_at, utc_offset),
    };
    let mut fields = Fields {
        comment: order
            .comment
            .as_deref()
            .filter(|comment| !comment.trim().is_empty())
            .map(escape_html),
        address: escape_html(&order.delivery_address),
        names: order
            .items
            .iter()
            .map(|item| escape_html(&item.product_name))
            .collect(),
    };

    let text = frame.assemble(&fields);
    let excess = telegram_len(&text).saturating_sub(limit);
    if excess == 0 {
        return text;
    }

    // The comment is the least important part for handling the order, so it goes first.
    if let Some(comment) = &mut fields.comment {
        *comment = shorten(comment, telegram_len(comment).saturating_sub(excess));
    }
    let text = frame.assemble(&fields);
    let excess = telegram_len(&text).saturating_sub(limit);
    if excess == 0 {
        return text;
    }

    fields.address = shorten(
        &fields.address,
        telegram_len(&fields.address).saturating_sub(excess),
    );
    let text = frame.assemble(&fields);
    if telegram_len(&text) <= limit {
        return text;
    }

    let names = std::mem::take(&mut fields.names);
    let without_names = telegram_len(&frame.assemble(&Fields {
        names: vec![String::new(); names.len()],
        ..fields.clone()
    }));
    let cap = name_cap(&names, limit.saturating_sub(without_names));
    fields.names = names.iter().map(|name| shorten(name, cap)).collect();
    let text = frame.assemble(&fields);
    if telegram_len(&text) <= limit {
        return text;
    }

    // Unreachable for orders the domain accepts (at most 50 lines), but an `Order` is plain
    // data; cutting the tail still delivers the order's id, which is what matters most.
    shorten(&text, limit)
}

/// Formats an amount as the manager reads it: `500 ₽` for whole roubles, `500.50 ₽`
/// otherwise.
pub fn format_rubles(amount: Money) -> String {
    // Integer kopecks keep this exact and independent of the decimal's internal scale.
    let minor = amount.minor_units();
    let (roubles, kopecks) = (minor / 100, minor % 100);
    if kopecks == 0 {
        format!("{roubles} ₽")
    } else {
        format!("{roubles}.{kopecks:02} ₽")
    }
}

/// The parts of the message that are never shortened (except by the last resort).
struct Frame<'a> {
    order: &'a Order,
    customer: String,
    phone: String,
    created_at: String,
}

/// The already-escaped parts that may be shortened to fit the limit.
#[derive(Clone)]
struct Fields {
    comment: Option<String>,
    address: String,
    /// One per order item, in the same order.
    names: Vec<String>,
}

impl Frame<'_> {
    fn assemble(&self, fields: &Fields) -> String {
        let order = self.order;
        let mut lines = vec![
            format!("🛒 Новый заказ #{}", order.id),
            String::new(),
            format!("👤 Покупатель: ID {}", self.customer),
            String::new(),
            "📦 Состав заказа:".to_owned(),
        ];
        for (item, name) in order.items.iter().zip(&fields.names) {
            lines.push(format!(
                "• {name} × {} = {}",
                item.quantity,
                format_rubles(item.line_total())
            ));
        }
        lines.push(String::new());
        lines.push(format!("💰 Итого: {}", format_rubles(order.total_amount)));
        if let Some(line) = payment_line(&order.payment) {
            lines.push(line);
        }
        lines.push(String::new());
        lines.push(format!("📍 Адрес: {}", fields.address));
        lines.push(format!("📞 Телефон: {}", self.phone));
        if let Some(comment) = &fields.comment {
            lines.push(format!("💬 Комментарий: {comment}"));
        }
        lines.push(String::new());
        lines.push(format!("🕐 Создан: {}", self.created_at));
        lines.join("\n")
    }
}

/// `dd.mm.yyyy HH:MM` in the manager's offset.
fn format_created_at(created_at: OffsetDateTime, utc_offset: UtcOffset) -> String {
    // Only a date at the very edge of `time`'s range cannot be shifted; showing it in its
    // stored offset beats failing the notification.
    let local = created_at
        .checked_to_offset(utc_offset)
        .unwrap_or(created_at);
    format!(
        "{:02}.{:02}.{:04} {:02}:{:02}",
        local.day(),
        u8::from(local.month()),
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// Escapes text for Telegram's HTML mode, which requires exactly these three.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// The length Telegram's limit is checked against; see [`MESSAGE_LIMIT`].
fn telegram_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Cuts escaped text to at most `max_len` (but never below the one "…" that marks the
/// cut), never inside an HTML entity or a character.
fn shorten(escaped: &str, max_len: usize) -> String {
    if telegram_len(escaped) <= max_len {
        return escaped.to_owned();
    }
    let budget = max_len.saturating_sub(ELLIPSIS.len_utf16());
    let mut rest = escaped;
    let mut kept_bytes = 0;
    let mut kept_len = 0;
    while let Some(c) = rest.chars().next() {
        // All text here went through `escape_html`, so every '&' starts an entity that
        // ends at the next ';'; it is kept or dropped as a whole.
        let token_bytes = if c == '&' {
            rest.find(';').map_or(1, |at| at + 1)
        } else {
            c.len_utf8()
        };
        let token_len = telegram_len(&rest[..token_bytes]);
        if kept_len + token_len > budget {
            break;
        }
        kept_len += token_len;
        kept_bytes += token_bytes;
        rest = &rest[token_bytes..];
    }
    let mut shortened = escaped[..kept_bytes].trim_end().to_owned();
    shortened.push(ELLIPSIS);
    shortened
}

/// The largest per-name length such that all names, each shortened to it, fit `budget`.
///
/// Short names stay whole and long ones share what is left equally, so one huge name does
/// not wipe out all the others. Returns 0 if even "…" for every name does not fit.
fn name_cap(names: &[String], budget: usize) -> usize {
    let lengths: Vec<usize> = names.iter().map(|name| telegram_len(name)).collect();
    // What the names cost once shortened to `cap`; it never decreases as `cap` grows.
    let cost = |cap: usize| -> usize {
        lengths
            .iter()
            .map(|&len| if len <= cap { len } else { cap.max(1) })
            .sum()
    };
    let (mut low, mut high) = (0, lengths.iter().copied().max().unwrap_or(0));
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if cost(middle) <= budget {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn money(amount: &str) -> Money {
        Money::parse(Decimal::from_str(amount).unwrap()).unwrap()
    }

    #[test]
    fn every_status_has_words_in_both_languages() {
        let russian = [
            "ожидает подтверждения",
            "подтверждён",
            "в работе",
            "отправлен",
            "доставлен",
            "отменён",
        ];
        let english = [
            "is awaiting confirmation",
            "is confirmed",
            "is being prepared",
            "has been shipped",
            "has been delivered",
            "has been cancelled",
        ];
        for (i, status) in OrderStatus::ALL.into_iter().enumerate() {
            assert_eq!(status_phrase(status, Language::Russian), russian[i]);
            assert_eq!(status_phrase(status, Language::English), english[i]);
        }
    }

    #[test]
    fn english_is_chosen_only_for_english_speakers() {
        assert_eq!(Language::from_code(Some("en")), Language::English);
        assert_eq!(Language::from_code(Some("en-gb")), Language::English);
        for other in [Some("ru"), Some("uk"), Some("eng"), Some(""), None] {
            assert_eq!(Language::from_code(other), Language::Russian, "{other:?}");
        }
    }

    fn change(to: OrderStatus, language: Option<&str>) -> StatusChanged {
        StatusChanged {
            payment: Default::default(),
            customer: domain::TelegramId::parse(7).unwrap(),
            language_code: language.map(str::to_owned),
            order_id: domain::OrderId(123),
            total_amount: money("1500.50"),
            from: OrderStatus::Pending,
            to,
            by: domain::outbox::ChangedBy::System,
        }
    }

    #[test]
    fn the_status_message_names_the_order_its_status_and_its_total() {
        assert_eq!(
            render_status_message(&change(OrderStatus::Confirmed, Some("ru"))),
            "📦 Заказ #123 подтверждён\n💰 Сумма: 1500.50 ₽"
        );
        assert_eq!(
            render_status_message(&change(OrderStatus::Confirmed, Some("en"))),
            "📦 Order #123 is confirmed\n💰 Total: 1500.50 ₽"
        );
        assert_eq!(
            render_status_message(&change(OrderStatus::Cancelled, None)),
            "📦 Заказ #123 отменён\n💰 Сумма: 1500.50 ₽"
        );
    }

    fn placed(status: OrderStatus, comment: String) -> OrderPlaced {
        let at = time::macros::datetime!(2025-12-22 12:30 UTC);
        OrderPlaced {
            order: Order {
                payment: Default::default(),
                id: domain::OrderId(5),
                user_id: domain::UserId(1),
                status,
                total_amount: money("100"),
                delivery_address: "addr".into(),
                phone: "+79001234567".into(),
                comment: Some(comment),
                created_at: at,
                updated_at: at,
                items: vec![],
            },
            customer: domain::TelegramId::parse(7).unwrap(),
        }
    }

    #[test]
    fn the_managers_update_is_the_order_message_with_its_status() {
        let order = placed(OrderStatus::Delivered, "ok".into());
        assert_eq!(
            render_manager_update(&order, UtcOffset::UTC),
            format!(
                "{}\n\n📌 Статус: доставлен",
                render_order_message(&order, UtcOffset::UTC)
            )
        );
    }

    #[test]
    fn the_managers_update_of_a_huge_order_still_fits_with_its_status() {
        let order = placed(OrderStatus::Confirmed, "к".repeat(5000));
        let text = render_manager_update(&order, UtcOffset::UTC);
        assert!(telegram_len(&text) <= MESSAGE_LIMIT);
        assert!(text.ends_with("📌 Статус: подтверждён"));
        assert!(text.contains(ELLIPSIS), "the comment was shortened instead");
    }

    #[test]
    fn whole_roubles_have_no_decimals() {
        assert_eq!(format_rubles(money("500")), "500 ₽");
        assert_eq!(format_rubles(money("500.00")), "500 ₽");
        assert_eq!(format_rubles(money("0")), "0 ₽");
    }

    #[test]
    fn kopecks_are_shown_with_two_decimals() {
        assert_eq!(format_rubles(money("500.5")), "500.50 ₽");
        assert_eq!(format_rubles(money("0.05")), "0.05 ₽");
        assert_eq!(format_rubles(money("1234.99")), "1234.99 ₽");
    }

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(escape_html("<b>&</b>"), "&lt;b&gt;&amp;&lt;/b&gt;");
        assert_eq!(escape_html("Чай \"Липтон\""), "Чай \"Липтон\"");
    }

    #[test]
    fn time_is_shown_in_the_managers_offset() {
        let at = time::macros::datetime!(2025-12-22 22:30 UTC);
        assert_eq!(
            format_created_at(at, time::macros::offset!(+3)),
            "23.12.2025 01:30"
        );
        assert_eq!(format_created_at(at, UtcOffset::UTC), "22.12.2025 22:30");
    }

    #[test]
    fn short_text_is_left_alone() {
        assert_eq!(shorten("abc", 3), "abc");
    }

    #[test]
    fn shortened_text_ends_with_an_ellipsis_and_fits() {
        let cut = shorten("abcdef", 4);
        assert_eq!(cut, "abc…");
        assert_eq!(shorten("abcdef", 0), "…");
    }

    #[test]
    fn shortening_never_splits_an_entity() {
        // "a&amp;b": keeping 3 units would split "&amp;", so only "a" survives.
        assert_eq!(shorten("a&amp;b", 4), "a…");
        assert_eq!(shorten("a&amp;b", 7), "a&amp;b");
        assert_eq!(shorten("a&amp;bc", 7), "a&amp;…");
    }

    #[test]
    fn shortening_counts_emoji_as_two_units() {
        // Each 🛒 costs two UTF-16 units; with "…" only one fits in four.
        assert_eq!(shorten("🛒🛒🛒", 4), "🛒…");
    }

    #[test]
    fn shortening_drops_trailing_spaces_before_the_ellipsis() {
        assert_eq!(shorten("ab   cdef", 6), "ab…");
    }

    #[test]
    fn name_cap_keeps_short_names_whole_and_shares_the_rest() {
        let names = vec!["ab".to_owned(), "x".repeat(100), "y".repeat(100)];
        // 2 for "ab", then 2 × 9 for the long ones.
        assert_eq!(name_cap(&names, 20), 9);
        assert_eq!(name_cap(&names, 1000), 100);
        assert_eq!(name_cap(&names, 0), 0);
    }
}
