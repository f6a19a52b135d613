//! The message text, rendered without any network.

use domain::entities::Order;
use domain::ports::OrderPlaced;
use infra_telegram::{MESSAGE_LIMIT, render_order_message};
use time::macros::offset;

use crate::support::{SEED_TEXT, huge_order, item, money, seed_order};

fn render(notification: &OrderPlaced) -> String {
    render_order_message(notification, offset!(+3))
}

fn with_order(change: impl FnOnce(&mut Order)) -> OrderPlaced {
    let mut notification = seed_order();
    change(&mut notification.order);
    notification
}

fn telegram_len(text: &str) -> usize {
    text.encode_utf16().count()
}

#[test]
fn the_seed_order_renders_exactly_the_seed_template() {
    assert_eq!(render(&seed_order()), SEED_TEXT);
}

#[test]
fn the_creation_time_follows_the_configured_offset() {
    let text = render_order_message(&seed_order(), time::UtcOffset::UTC);
    assert!(text.ends_with("🕐 Создан: 22.12.2025 12:30"), "{text}");
}

#[test]
fn amounts_with_kopecks_show_two_decimals() {
    let notification = with_order(|order| {
        order.items = vec![item(1, "Товар 1", "250.25", 2)];
        order.total_amount = money("500.50");
    });
    let text = render(&notification);
    assert!(text.contains("• Товар 1 × 2 = 500.50 ₽\n"), "{text}");
    assert!(text.contains("💰 Итого: 500.50 ₽\n"), "{text}");
}

#[test]
fn an_order_without_a_comment_has_no_comment_line() {
    for comment in [None, Some("   ".to_owned())] {
        let notification = with_order(|order| order.comment = comment);
        let text = render(&notification);
        assert!(!text.contains("Комментарий"), "{text}");
        assert!(
            text.contains("📞 Телефон: +79001234567\n\n🕐 Создан: 22.12.2025 15:30"),
            "{text}"
        );
    }
}

#[test]
fn html_in_the_comment_arrives_as_literal_text() {
    let notification = with_order(|order| order.comment = Some("<b>&</b>".to_owned()));
    let text = render(&notification);
    assert!(
        text.contains("💬 Комментарий: &lt;b&gt;&amp;&lt;/b&gt;\n"),
        "{text}"
    );
    assert!(!text.contains("<b>"));
}

#[test]
fn html_in_product_names_address_and_phone_is_escaped() {
    let notification = with_order(|order| {
        order.items[0].product_name = "Чай <Лучший> & Ко".to_owned();
        order.delivery_address = "<i>дом</i>".to_owned();
        order.phone = "<+7>".to_owned();
    });
    let text = render(&notification);
    assert!(
        text.contains("• Чай &lt;Лучший&gt; &amp; Ко × 2 = 500 ₽"),
        "{text}"
    );
    assert!(text.contains("📍 Адрес: &lt;i&gt;дом&lt;/i&gt;"), "{text}");
    assert!(text.contains("📞 Телефон: &lt;+7&gt;"), "{text}");
}

#[test]
fn a_huge_order_is_cut_to_the_limit_but_keeps_every_line() {
    let text = render(&huge_order());
    assert!(
        telegram_len(&text) <= MESSAGE_LIMIT,
        "{}",
        telegram_len(&text)
    );
    assert!(text.contains('…'));
    assert!(text.starts_with("🛒 Новый заказ #123\n"));
    assert_eq!(
        text.matches("\n• ").count(),
        50,
        "every item keeps its line"
    );
    assert!(text.contains("× 100 = 9999999 ₽"), "{text}");
    assert!(text.contains("💰 Итого: 499999950 ₽"));
    assert!(text.contains("📞 Телефон: +79001234567"));
    assert!(text.ends_with("🕐 Создан: 22.12.2025 15:30"));
}

#[test]
fn a_long_comment_is_shortened_before_the_address() {
    // About 4400 units in full: cutting some 300 from the comment is enough.
    let notification = with_order(|order| {
        order.comment = Some("к".repeat(1000));
        order.delivery_address = "а".repeat(500);
        order.items = (1..=50)
            .map(|n| item(n, &format!("Товар {n:02} {}", "я".repeat(30)), "10", 1))
            .collect();
    });
    let text = render(&notification);
    assert!(telegram_len(&text) <= MESSAGE_LIMIT);
    assert!(text.contains(&format!("📍 Адрес: {}\n", "а".repeat(500))));
    assert!(text.contains(&format!("Товар 50 {}", "я".repeat(30))));
    assert!(text.contains(&"к".repeat(500)), "{text}");
    assert!(!text.contains(&"к".repeat(1000)));
    assert!(text.contains("к…\n"), "{text}");
}

#[test]
fn an_order_that_fits_is_not_shortened() {
    let notification = with_order(|order| order.comment = Some("к".repeat(1000)));
    let text = render(&notification);
    assert!(text.contains(&"к".repeat(1000)));
    assert!(!text.contains('…'));
}

#[test]
fn shortening_never_cuts_inside_an_html_entity() {
    let notification = with_order(|order| {
        order.comment = Some("&".repeat(1000));
        order.delivery_address = "<>".repeat(250);
        order.items = (1..=50)
            .map(|n| item(n, &"&<>".repeat(40), "1", 1))
            .collect();
    });
    let text = render(&notification);
    assert!(telegram_len(&text) <= MESSAGE_LIMIT);
    assert!(text.contains('…'));
    let stray = text
        .match_indices('&')
        .filter(|(at, _)| {
            let rest = &text[*at..];
            !(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"))
        })
        .count();
    assert_eq!(stray, 0, "{text}");
}

#[test]
fn even_an_order_beyond_the_domain_limits_fits() {
    // Orders hold at most 50 lines, but the renderer must not rely on it.
    let notification = with_order(|order| {
        order.items = (1..=500)
            .map(|n| item(n, &"x".repeat(100), "1", 1))
            .collect();
    });
    let text = render(&notification);
    assert!(telegram_len(&text) <= MESSAGE_LIMIT);
    assert!(text.starts_with("🛒 Новый заказ #123\n"));
    assert!(text.ends_with('…'));
}
