//! Taler amounts: `CUR:VALUE[.FRACTION]` with eight fractional digits.
//!
//! The exact grammar matters because GNU Taler clients reject what the C library rejects and a
//! server must not accept more: currency 1-11 of `A`-`Z`, value at most 2^52, fraction 1-8
//! digits, no signs, spaces or separators. Printing drops trailing fraction zeros, as Taler does.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// One unit is this many fraction units (eight decimal places).
pub const FRACTION_BASE: u32 = 100_000_000;

/// Largest allowed `value` (2^52, `TALER_AMOUNT_MAX_VALUE`), so amounts survive a trip through
/// JavaScript doubles in the wallet.
pub const MAX_VALUE: u64 = 1 << 52;

/// Longest currency code (`TALER_CURRENCY_LEN` minus its NUL).
pub const MAX_CURRENCY_LEN: usize = 11;

const FRACTION_DIGITS: usize = 8;

/// Why an amount string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmountError {
    /// No `:` between currency and value.
    #[error("amount must have the form CUR:VALUE[.FRACTION], missing ':'")]
    MissingColon,
    /// The currency is empty, too long or not all `A`-`Z`.
    #[error("currency must be 1-11 upper-case letters A-Z, got {0:?}")]
    InvalidCurrency(String),
    /// Nothing after the `:` (neither value nor fraction).
    #[error("amount has no value after ':'")]
    MissingValue,
    /// The value has a character other than a digit.
    #[error("amount value must be decimal digits only, found {0:?}")]
    InvalidValue(char),
    /// The value exceeds 2^52.
    #[error("amount value exceeds the maximum of 2^52 (4503599627370496)")]
    ValueTooLarge,
    /// A `.` not followed by any digit.
    #[error("amount fraction is empty after '.'")]
    EmptyFraction,
    /// More than eight fraction digits.
    #[error("amount fraction has more than 8 digits")]
    FractionTooLong,
    /// The fraction has a character other than a digit.
    #[error("amount fraction must be decimal digits only, found {0:?}")]
    InvalidFraction(char),
    /// A fraction of one unit or more given to [`Amount::new`].
    #[error("fraction must be below {FRACTION_BASE}")]
    FractionOutOfRange,
}

/// A non-negative amount of a currency, `value + fraction / FRACTION_BASE` units.
///
/// Invariants (enforced by every constructor): valid currency, `value <= MAX_VALUE`,
/// `fraction < FRACTION_BASE`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Amount {
    currency: String,
    value: u64,
    fraction: u32,
}

fn validate_currency(c: &str) -> Result<(), AmountError> {
    if c.is_empty() || c.len() > MAX_CURRENCY_LEN || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AmountError::InvalidCurrency(c.to_owned()));
    }
    Ok(())
}

impl Amount {
    /// Builds an amount from its parts, checking the same rules as parsing.
    pub fn new(currency: &str, value: u64, fraction: u32) -> Result<Self, AmountError> {
        validate_currency(currency)?;
        if value > MAX_VALUE {
            return Err(AmountError::ValueTooLarge);
        }
        if fraction >= FRACTION_BASE {
            return Err(AmountError::FractionOutOfRange);
        }
        Ok(Amount { currency: currency.to_owned(), value, fraction })
    }

    /// Zero in `currency`.
    pub fn zero(currency: &str) -> Result<Self, AmountError> {
        Self::new(currency, 0, 0)
    }

    /// Parses `CUR:VALUE[.FRACTION]`.
    pub fn parse(s: &str) -> Result<Self, AmountError> {
        let (currency, number) = s.split_once(':').ok_or(AmountError::MissingColon)?;
        validate_currency(currency)?;
        if number.is_empty() {
            return Err(AmountError::MissingValue);
        }
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (number, None),
        };
        let mut value: u64 = 0;
        for c in int_part.chars() {
            let d = c.to_digit(10).ok_or(AmountError::InvalidValue(c))?;
            // Checking against MAX_VALUE at every step also keeps the u64 from overflowing.
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d)))
                .filter(|&v| v <= MAX_VALUE)
                .ok_or(AmountError::ValueTooLarge)?;
        }
        let mut fraction: u32 = 0;
        if let Some(f) = frac_part {
            if f.is_empty() {
                return Err(AmountError::EmptyFraction);
            }
            let mut scale = FRACTION_BASE;
            for (i, c) in f.chars().enumerate() {
                let d = c.to_digit(10).ok_or(AmountError::InvalidFraction(c))?;
                if i >= FRACTION_DIGITS {
                    return Err(AmountError::FractionTooLong);
                }
                scale /= 10;
                fraction += d * scale;
            }
        }
        Ok(Amount { currency: currency.to_owned(), value, fraction })
    }

    /// The currency code.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// Whole units.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Fraction in units of 1/[`FRACTION_BASE`].
    pub fn fraction(&self) -> u32 {
        self.fraction
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.value == 0 && self.fraction == 0
    }

    /// Compares two amounts of the same currency; `None` if the currencies differ.
    pub fn cmp_same_currency(&self, other: &Amount) -> Option<Ordering> {
        (self.currency == other.currency)
            .then(|| (self.value, self.fraction).cmp(&(other.value, other.fraction)))
    }
}

impl PartialOrd for Amount {
    /// Amounts of different currencies are incomparable.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.cmp_same_currency(other)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.currency, self.value)?;
        if self.fraction != 0 {
            let digits = format!("{:08}", self.fraction);
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, AmountError> {
        Self::parse(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Amount::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Deserialize)]
    struct Vectors {
        valid: Vec<(String, String)>,
        invalid: Vec<String>,
    }

    #[test]
    fn vectors() {
        let v: Vectors = serde_json::from_str(include_str!("../test-data/amounts.json")).unwrap();
        assert_eq!(v.valid.len(), 6);
        assert_eq!(v.invalid.len(), 13);
        for (input, printed) in v.valid {
            let a = Amount::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(a.to_string(), printed, "{input}");
            assert_eq!(Amount::parse(&printed).unwrap(), a);
        }
        for input in v.invalid {
            assert!(Amount::parse(&input).is_err(), "{input} must be rejected");
        }
    }

    #[test]
    fn invalid_reasons() {
        use AmountError::*;
        let cases = [
            ("KUDOS", MissingColon),
            ("KUDOS:", MissingValue),
            ("kudos:1", InvalidCurrency("kudos".into())),
            (":1", InvalidCurrency(String::new())),
            ("ABCDEFGHIJKL:1", InvalidCurrency("ABCDEFGHIJKL".into())),
            ("EU R:1", InvalidCurrency("EU R".into())),
            ("EUR:1.", EmptyFraction),
            ("EUR:.", EmptyFraction),
            ("EUR:1.123456789", FractionTooLong),
            ("EUR:4503599627370497", ValueTooLarge),
            ("EUR:99999999999999999999999999", ValueTooLarge),
            ("EUR:1 ", InvalidValue(' ')),
            (" EUR:1", InvalidCurrency(" EUR".into())),
            ("EUR: 1", InvalidValue(' ')),
            ("EUR:-1", InvalidValue('-')),
            ("EUR:+1", InvalidValue('+')),
            ("EUR:1,5", InvalidValue(',')),
            ("EUR:1.2.3", InvalidFraction('.')),
            ("EUR:1.5 ", InvalidFraction(' ')),
            ("EUR:1e3", InvalidValue('e')),
            ("EUR:\u{0661}", InvalidValue('\u{0661}')),
        ];
        for (input, expected) in cases {
            let err = Amount::parse(input).unwrap_err();
            assert_eq!(err, expected, "{input}");
            assert!(!err.to_string().is_empty());
        }
        assert!(Amount::parse("EUR:1.x").unwrap_err().to_string().contains("fraction"));
    }

    #[test]
    fn values_and_printing() {
        let a = Amount::parse("EUR:.5").unwrap();
        assert_eq!((a.value(), a.fraction()), (0, 50_000_000));
        assert_eq!(a.currency(), "EUR");
        let a = Amount::parse("EUR:0012.00000001").unwrap();
        assert_eq!((a.value(), a.fraction()), (12, 1));
        assert_eq!(a.to_string(), "EUR:12.00000001");
        assert_eq!(Amount::parse("EUR:0.0").unwrap().to_string(), "EUR:0");
        assert!(Amount::parse("EUR:0.00000000").unwrap().is_zero());
        assert!(!Amount::parse("EUR:0.00000001").unwrap().is_zero());
        assert_eq!(Amount::zero("EUR").unwrap().to_string(), "EUR:0");
        assert_eq!(Amount::new("EUR", 1, FRACTION_BASE), Err(AmountError::FractionOutOfRange));
        assert_eq!(Amount::new("EUR", MAX_VALUE + 1, 0), Err(AmountError::ValueTooLarge));
        assert!(Amount::new("eur", 1, 0).is_err());
        assert_eq!(Amount::new("EUR", 3, 10).unwrap().to_string(), "EUR:3.0000001");
    }

    #[test]
    fn comparison() {
        let a: Amount = "EUR:1.5".parse().unwrap();
        let b: Amount = "EUR:1.49999999".parse().unwrap();
        let c: Amount = "CHF:1".parse().unwrap();
        assert!(a > b);
        assert_eq!(a.cmp_same_currency(&b), Some(Ordering::Greater));
        assert_eq!(a.partial_cmp(&c), None);
        // Neither greater, smaller nor equal across currencies.
        assert!(a.partial_cmp(&c).is_none() && a != c);
        assert!(!a.gt(&c) && !a.lt(&c));
        assert_eq!(a.partial_cmp(&"EUR:1.50".parse().unwrap()), Some(Ordering::Equal));
    }

    #[test]
    fn serde() {
        let a: Amount = serde_json::from_str("\"KUDOS:1.50\"").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"KUDOS:1.5\"");
        let err = serde_json::from_str::<Amount>("\"EUR:1.\"").unwrap_err().to_string();
        assert!(err.contains("fraction is empty"), "{err}");
        let err = serde_json::from_str::<Amount>("1.5").unwrap_err().to_string();
        assert!(err.contains("string"), "{err}");
    }

    proptest! {
        #[test]
        fn print_parse_round_trip(cur in "[A-Z]{1,11}", value in 0..=MAX_VALUE, fraction in 0..FRACTION_BASE) {
            let a = Amount::new(&cur, value, fraction).unwrap();
            let printed = a.to_string();
            let back = Amount::parse(&printed).unwrap();
            prop_assert_eq!(&back, &a);
            prop_assert_eq!(back.to_string(), printed);
        }

        #[test]
        fn parse_print_round_trip(cur in "[A-Z]{1,11}", value in "[0-9]{0,15}", frac in proptest::option::of("[0-9]{1,8}")) {
            let s = match &frac {
                Some(f) => format!("{cur}:{value}.{f}"),
                None => format!("{cur}:{value}"),
            };
            match Amount::parse(&s) {
                Ok(a) => prop_assert_eq!(Amount::parse(&a.to_string()).unwrap(), a),
                Err(e) => prop_assert!(
                    value.is_empty() && frac.is_none() && e == AmountError::MissingValue
                        || e == AmountError::ValueTooLarge,
                    "{s}: {e}"
                ),
            }
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = Amount::parse(&s);
            let _ = Amount::parse(&format!("EUR:{s}"));
        }
    }
}
