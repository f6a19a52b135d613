//! The shop's reports for the admin: orders and revenue per day, orders per status, the
//! best-selling products, over a period. The database computes the sums; this module
//! validates the period and lays the days out.

use time::{Date, Duration, OffsetDateTime, Time};

use crate::entities::OrderStatus;
use crate::error::FieldError;
use crate::money::Money;
use crate::values::ProductId;

/// The longest period a report covers.
pub const MAX_PERIOD_DAYS: i64 = 366;
/// The period when none is asked for: the last 30 days.
pub const DEFAULT_PERIOD_DAYS: i64 = 30;
/// How many products the top list shows.
pub const TOP_PRODUCTS: u32 = 10;

/// The period of a report: `[from, to)`, whole UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl Period {
    /// From the `from` and `to` dates (`YYYY-MM-DD`, UTC, both included) an admin asked
    /// for; by default the 30 days up to and including `today`.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        today: Date,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut date = |field: &'static str, raw: Option<&str>| {
            raw.and_then(|raw| {
                let parsed = Date::parse(
                    raw.trim(),
                    time::macros::format_description!("[year]-[month]-[day]"),
                );
                if parsed.is_err() {
                    errors.push(FieldError::new(
                        field,
                        "invalid_date",
                        format!("{field} must be a date, YYYY-MM-DD"),
                    ));
                }
                parsed.ok()
            })
        };
        let last = date("to", to).unwrap_or(today);
        let first = date("from", from)
            .or_else(|| last.checked_sub(Duration::days(DEFAULT_PERIOD_DAYS - 1)));
        if !errors.is_empty() {
            return Err(errors);
        }
        // The calendar's ends: a period must start, and end the day after its last day.
        let (Some(first), Some(end)) = (first, last.next_day()) else {
            return Err(vec![FieldError::new(
                if first.is_none() { "from" } else { "to" },
                "invalid_date",
                "the period must lie within the years 0001 to 9999",
            )]);
        };
        let days = (last - first).whole_days() + 1;
        if days < 1 {
            return Err(vec![FieldError::new(
                "from",
                "invalid_period",
                "from must not be after to",
            )]);
        }
        if days > MAX_PERIOD_DAYS {
            return Err(vec![FieldError::new(
                "from",
                "invalid_period",
                format!("a report covers at most {MAX_PERIOD_DAYS} days"),
            )]);
        }
        Ok(Self {
            from: first.with_time(Time::MIDNIGHT).assume_utc(),
            to: end.with_time(Time::MIDNIGHT).assume_utc(),
        })
    }

    /// Every day of the period, in order.
    pub fn days(&self) -> Vec<Date> {
        let mut days = Vec::new();
        let mut day = self.from.date();
        while day < self.to.date() {
            days.push(day);
            day += Duration::days(1);
        }
        days
    }
}

/// One day of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayStats {
    pub day: Date,
    /// Orders placed that day, whatever became of them.
    pub orders: u64,
    /// The total of those not cancelled.
    pub revenue: Money,
}

/// A best-selling product over the period (orders not cancelled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopProduct {
    pub product_id: ProductId,
    /// Its name on its most recent order line.
    pub name: String,
    pub quantity: u64,
    pub revenue: Money,
}

/// What the database sums for a period.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sums {
    /// Only the days with orders, in any order.
    pub days: Vec<DayStats>,
    /// Orders placed in the period, per status they are in now.
    pub by_status: Vec<(OrderStatus, u64)>,
    /// By quantity, then revenue, at most [`TOP_PRODUCTS`].
    pub top_products: Vec<TopProduct>,
}

/// A report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub period: Period,
    /// Every day of the period, those without orders at zero.
    pub days: Vec<DayStats>,
    pub total_orders: u64,
    pub total_revenue: Money,
    /// Every status, zero included, in the lifecycle's order.
    pub by_status: Vec<(OrderStatus, u64)>,
    pub top_products: Vec<TopProduct>,
}

impl Report {
    /// Lays `sums` out over `period`.
    pub fn new(period: Period, sums: Sums) -> Self {
        let days: Vec<DayStats> = period
            .days()
            .into_iter()
            .map(|day| {
                sums.days
                    .iter()
                    .find(|stats| stats.day == day)
                    .cloned()
                    .unwrap_or(DayStats {
                        day,
                        orders: 0,
                        revenue: Money::ZERO,
                    })
            })
            .collect();
        let total_orders = days.iter().map(|day| day.orders).sum();
        let total_revenue = days
            .iter()
            .try_fold(Money::ZERO, |sum, day| sum.checked_add(day.revenue))
            .unwrap_or(Money::ZERO);
        let by_status = OrderStatus::ALL
            .iter()
            .map(|status| {
                let count = sums
                    .by_status
                    .iter()
                    .find(|(counted, _)| counted == status)
                    .map_or(0, |(_, count)| *count);
                (*status, count)
            })
            .collect();
        Self {
            period,
            days,
            total_orders,
            total_revenue,
            by_status,
            top_products: sums.top_products,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn a_period_is_whole_days_thirty_by_default_and_bounded() {
        let today = date!(2025 - 12 - 22);
        let period = Period::parse(None, None, today).unwrap();
        assert_eq!(period.days().len(), 30);
        assert_eq!(period.to.date(), date!(2025 - 12 - 23));
        let one = Period::parse(Some("2025-12-01"), Some("2025-12-01"), today).unwrap();
        assert_eq!(one.days(), [date!(2025 - 12 - 01)]);
        let fields = |errors: Vec<FieldError>| {
            errors
                .into_iter()
                .map(|e| (e.field, e.code))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(Period::parse(Some("yesterday"), Some("2025-13-01"), today).unwrap_err()),
            [
                ("to".to_owned(), "invalid_date"),
                ("from".to_owned(), "invalid_date")
            ]
        );
        assert_eq!(
            fields(Period::parse(Some("2025-12-02"), Some("2025-12-01"), today).unwrap_err()),
            [("from".to_owned(), "invalid_period")]
        );
        assert!(Period::parse(Some("2024-01-01"), Some("2025-12-01"), today).is_err());
        // The calendar's ends are refused, never overflowed.
        assert_eq!(
            fields(Period::parse(Some("9999-12-31"), Some("9999-12-31"), today).unwrap_err()),
            [("to".to_owned(), "invalid_date")]
        );
    }

    #[test]
    fn a_report_has_every_day_and_status() {
        let period = Period::parse(
            Some("2025-12-01"),
            Some("2025-12-03"),
            date!(2025 - 12 - 22),
        )
        .unwrap();
        let report = Report::new(
            period,
            Sums {
                days: vec![DayStats {
                    day: date!(2025 - 12 - 02),
                    orders: 3,
                    revenue: Money::from_minor(150_000).unwrap(),
                }],
                by_status: vec![(OrderStatus::Pending, 2), (OrderStatus::Cancelled, 1)],
                top_products: vec![],
            },
        );
        let orders: Vec<u64> = report.days.iter().map(|day| day.orders).collect();
        assert_eq!(orders, [0, 3, 0]);
        assert_eq!(report.total_orders, 3);
        assert_eq!(report.total_revenue, Money::from_minor(150_000).unwrap());
        assert_eq!(report.by_status.len(), 6);
        assert_eq!(report.by_status[0], (OrderStatus::Pending, 2));
        assert_eq!(report.by_status[5], (OrderStatus::Cancelled, 1));
    }
}
