//! Exact money amounts in roubles.

use std::fmt;

use rust_decimal::Decimal;

/// A non-negative amount of money with at most two decimal places (kopecks).
///
/// Stored exactly as a [`Decimal`]; convertible to and from integer minor units, which is
/// how the storage adapter keeps it so that every database stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

/// The largest amount the shop handles: ten billion roubles, far beyond any order, and
/// small enough that every sum of 50 lines × 100 units stays exact in an `i64` of kopecks.
const MAX_MINOR: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must not be negative")]
    Negative,
    #[error("amount must have at most two decimal places")]
    TooPrecise,
    #[error("amount is too large")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Parses a decimal amount, rejecting negatives, fractions of a kopeck and absurd sizes.
    pub fn parse(amount: Decimal) -> Result<Self, MoneyError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(MoneyError::Negative);
        }
        let normalized = amount.normalize();
        if normalized.scale() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        // Checked: a client can send any decimal (a price filter of 10^27), and plain `*`
        // panics on overflow.
        let minor = normalized
            .checked_mul(Decimal::ONE_HUNDRED)
            .ok_or(MoneyError::TooLarge)?;
        if minor > Decimal::from(MAX_MINOR) {
            return Err(MoneyError::TooLarge);
        }
        Ok(Money(with_two_places(amount)))
    }

    /// Builds an amount from integer minor units (kopecks).
    pub fn from_minor(minor: i64) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative);
        }
        if minor > MAX_MINOR {
            return Err(MoneyError::TooLarge);
        }
        Ok(Money(Decimal::new(minor, 2)))
    }

    /// The amount in integer minor units (kopecks).
    pub fn minor_units(&self) -> i64 {
        let mut value = self.0;
        value.rescale(2);
        // The invariant (scale ≤ 2, value ≤ MAX_MINOR) makes the mantissa fit an i64.
        i64::try_from(value.mantissa()).unwrap_or(i64::MAX)
    }

    /// The amount as a decimal with exactly two places, e.g. `250.00`.
    pub fn amount(&self) -> Decimal {
        self.0
    }

    /// `self × quantity`, or `None` past the shop's maximum amount.
    pub fn checked_mul(&self, quantity: u32) -> Option<Money> {
        let product = self.0.checked_mul(Decimal::from(quantity))?;
        Money::parse(product).ok()
    }

    /// `self + other`, or `None` past the shop's maximum amount.
    pub fn checked_add(&self, other: Money) -> Option<Money> {
        let sum = self.0.checked_add(other.0)?;
        Money::parse(sum).ok()
    }
}

fn with_two_places(amount: Decimal) -> Decimal {
    let mut value = amount;
    value.rescale(2);
    value
}

/// Formats with exactly two decimal places: `250.00`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn money_displays_two_decimal_places() {
        assert_eq!(Money::parse(dec("250")).unwrap().to_string(), "250.00");
        assert_eq!(Money::parse(dec("0.5")).unwrap().to_string(), "0.50");
    }

    #[test]
    fn money_rejects_negative_and_sub_kopeck_amounts() {
        assert_eq!(Money::parse(dec("-1")), Err(MoneyError::Negative));
        assert_eq!(Money::parse(dec("1.005")), Err(MoneyError::TooPrecise));
        assert!(
            Money::parse(dec("1.500")).is_ok(),
            "trailing zeros are not precision"
        );
    }

    #[test]
    fn money_round_trips_through_minor_units() {
        let m = Money::parse(dec("1234.56")).unwrap();
        assert_eq!(m.minor_units(), 123_456);
        assert_eq!(Money::from_minor(123_456).unwrap(), m);
        assert_eq!(Money::from_minor(-1), Err(MoneyError::Negative));
    }

    #[test]
    fn money_arithmetic_is_exact() {
        let price = Money::parse(dec("0.10")).unwrap();
        let three = price.checked_mul(3).unwrap();
        assert_eq!(three.amount(), dec("0.30"));
        let sum = three
            .checked_add(Money::parse(dec("0.20")).unwrap())
            .unwrap();
        assert_eq!(sum.to_string(), "0.50");
    }

    #[test]
    fn absurdly_large_amounts_are_refused_not_panicked_on() {
        assert_eq!(Money::parse(Decimal::MAX), Err(MoneyError::TooLarge));
        assert_eq!(
            Money::parse(dec("1000000000000000000000000000")),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(Money::parse(dec("10000000001")), Err(MoneyError::TooLarge));
    }

    #[test]
    fn money_overflow_is_reported_not_wrapped() {
        let big = Money::from_minor(MAX_MINOR).unwrap();
        assert!(big.checked_mul(2).is_none());
        assert!(big.checked_add(Money::from_minor(1).unwrap()).is_none());
    }
}
