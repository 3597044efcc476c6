//! Taler amounts: `CUR:VALUE[.FRACTION]`.
//!
//! The value is at most 2^52 (so that it fits a double in JavaScript wallets)
//! and the fraction has at most 8 digits (units of 10^-8). Parsing is as strict
//! as GNU Taler's `TALER_string_to_amount`: no sign, no whitespace, no empty
//! fraction after a dot; printing drops trailing fraction zeros.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units of the fraction per unit of value.
pub const FRACTION_BASE: u32 = 100_000_000;
/// Largest value (2^52).
pub const MAX_VALUE: u64 = 1 << 52;
/// Longest currency name.
pub const MAX_CURRENCY_LEN: usize = 11;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Amount {
    currency: String,
    value: u64,
    fraction: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("'{0}' has no ':' between currency and value")]
    NoColon(String),
    #[error("currency '{0}' is not 1-11 letters A-Z")]
    Currency(String),
    #[error("value '{0}' is not decimal digits")]
    Value(String),
    #[error("value {0} exceeds 2^52")]
    TooLarge(String),
    #[error("fraction '{0}' is not 1-8 decimal digits")]
    Fraction(String),
}

impl Amount {
    pub fn new(currency: &str, value: u64, fraction: u32) -> Result<Amount, AmountError> {
        check_currency(currency)?;
        if value > MAX_VALUE {
            return Err(AmountError::TooLarge(value.to_string()));
        }
        if fraction >= FRACTION_BASE {
            return Err(AmountError::Fraction(fraction.to_string()));
        }
        Ok(Amount { currency: currency.to_owned(), value, fraction })
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    pub fn value(&self) -> u64 {
        self.value
    }

    pub fn fraction(&self) -> u32 {
        self.fraction
    }

    pub fn is_zero(&self) -> bool {
        self.value == 0 && self.fraction == 0
    }

    /// Orders amounts of one currency; `None` across currencies.
    pub fn cmp_same_currency(&self, other: &Amount) -> Option<Ordering> {
        (self.currency == other.currency).then(|| (self.value, self.fraction).cmp(&(other.value, other.fraction)))
    }
}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Amount) -> Option<Ordering> {
        self.cmp_same_currency(other)
    }
}

fn check_currency(c: &str) -> Result<(), AmountError> {
    if c.is_empty() || c.len() > MAX_CURRENCY_LEN || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AmountError::Currency(c.to_owned()));
    }
    Ok(())
}

impl FromStr for Amount {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Amount, AmountError> {
        let (currency, number) = s.split_once(':').ok_or_else(|| AmountError::NoColon(s.to_owned()))?;
        check_currency(currency)?;
        let (value, fraction) = match number.split_once('.') {
            Some((v, f)) => (v, Some(f)),
            None => (number, None),
        };
        // "EUR:.5" is accepted (empty value means 0), "EUR:" is not.
        if (value.is_empty() && fraction.is_none()) || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Value(value.to_owned()));
        }
        let value = if value.is_empty() {
            0
        } else {
            value.parse::<u64>().map_err(|_| AmountError::TooLarge(value.to_owned()))?
        };
        if value > MAX_VALUE {
            return Err(AmountError::TooLarge(value.to_string()));
        }
        let fraction = match fraction {
            None => 0,
            Some(f) => {
                if f.is_empty() || f.len() > 8 || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(AmountError::Fraction(f.to_owned()));
                }
                let digits: u32 = f.parse().map_err(|_| AmountError::Fraction(f.to_owned()))?;
                digits * 10u32.pow(8 - f.len() as u32)
            }
        };
        Ok(Amount { currency: currency.to_owned(), value, fraction })
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fraction == 0 {
            return write!(f, "{}:{}", self.currency, self.value);
        }
        let digits = format!("{:08}", self.fraction);
        write!(f, "{}:{}.{}", self.currency, self.value, digits.trim_end_matches('0'))
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vectors() {
        let v: serde_json::Value = serde_json::from_str(include_str!("../test-data/amounts.json")).unwrap();
        for pair in v["valid"].as_array().unwrap() {
            let input = pair[0].as_str().unwrap();
            let amount: Amount = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(amount.to_string(), pair[1].as_str().unwrap());
        }
        for bad in v["invalid"].as_array().unwrap() {
            let bad = bad.as_str().unwrap();
            assert!(bad.parse::<Amount>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn reasons_and_order() {
        assert!(matches!("KUDOS".parse::<Amount>(), Err(AmountError::NoColon(_))));
        assert!(matches!("kudos:1".parse::<Amount>(), Err(AmountError::Currency(_))));
        assert!(matches!("EUR:1.".parse::<Amount>(), Err(AmountError::Fraction(_))));
        assert!(matches!("EUR:4503599627370497".parse::<Amount>(), Err(AmountError::TooLarge(_))));
        assert!(matches!("EUR:99999999999999999999999".parse::<Amount>(), Err(AmountError::TooLarge(_))));
        let a: Amount = "EUR:1.5".parse().unwrap();
        let b: Amount = "EUR:1.05".parse().unwrap();
        assert!(a > b);
        assert_eq!(a.partial_cmp(&"CHF:1".parse().unwrap()), None);
        assert!("EUR:0.0".parse::<Amount>().unwrap().is_zero());
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"EUR:1.5\"");
    }

    proptest! {
        #[test]
        fn print_parse_round_trip(cur in "[A-Z]{1,11}", value in 0u64..=MAX_VALUE, fraction in 0u32..FRACTION_BASE) {
            let a = Amount::new(&cur, value, fraction).unwrap();
            let back: Amount = a.to_string().parse().unwrap();
            prop_assert_eq!(back, a);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Amount>();
        }
    }
}
