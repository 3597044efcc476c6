//! Taler timestamps: whole seconds since the Unix epoch, or "never".
//!
//! In JSON a timestamp is `{"t_s": <seconds>}` or `{"t_s": "never"}`; inside signed structs it is
//! a `TimestampNBO`, big-endian *microseconds* (never = all ones). Both forms must match GNU
//! Taler exactly, because signatures are made over the second one by clients that parsed the
//! first.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MICROS_PER_SEC: u64 = 1_000_000;

/// A point in time with second precision, or `Never` (which is later than every other).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    // Seconds since the epoch; `NEVER_REPR` means never. Invariant: either `NEVER_REPR` or at
    // most `MAX_SECS`, so the derived ordering puts never last and `to_nbo` cannot overflow.
    secs: u64,
}

const NEVER_REPR: u64 = u64::MAX;

impl Timestamp {
    /// Largest second count whose microsecond value fits in a `u64` (GNUnet's FOREVER is the cap).
    pub const MAX_SECS: u64 = u64::MAX / MICROS_PER_SEC;

    /// The timestamp that never comes.
    pub const NEVER: Timestamp = Timestamp { secs: NEVER_REPR };

    /// The current time, rounded down to whole seconds.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// A timestamp `secs` seconds after the epoch. Values beyond [`Self::MAX_SECS`] saturate to
    /// [`Self::NEVER`], as GNUnet's time arithmetic does; use [`Self::try_from_secs`] to reject them.
    pub fn from_secs(secs: u64) -> Self {
        Self::try_from_secs(secs).unwrap_or(Self::NEVER)
    }

    /// The whole seconds of a server time in microseconds since the epoch (as the
    /// database stores them); times before the epoch are the epoch.
    pub fn from_unix_micros(us: i64) -> Self {
        Self::from_secs(u64::try_from(us.div_euclid(MICROS_PER_SEC as i64)).unwrap_or(0))
    }

    /// A timestamp `secs` seconds after the epoch, or `None` if it cannot be represented in
    /// microseconds.
    pub fn try_from_secs(secs: u64) -> Option<Self> {
        (secs <= Self::MAX_SECS).then_some(Timestamp { secs })
    }

    /// Seconds since the epoch, or `None` for never.
    pub fn secs(&self) -> Option<u64> {
        (!self.is_never()).then_some(self.secs)
    }

    /// Whether this is the "never" timestamp.
    pub fn is_never(&self) -> bool {
        self.secs == NEVER_REPR
    }

    /// The `TimestampNBO` form used inside signed structs: big-endian microseconds since the
    /// epoch, all ones for never.
    pub fn to_nbo(&self) -> [u8; 8] {
        let micros = if self.is_never() {
            u64::MAX
        } else {
            // Cannot saturate: the invariant keeps secs <= MAX_SECS.
            self.secs.saturating_mul(MICROS_PER_SEC)
        };
        micros.to_be_bytes()
    }
}

/// An RFC 3339 time with an offset (`2027-01-01T00:00:00Z`), in microseconds since the epoch.
pub fn parse_rfc3339_us(text: &str) -> Result<i64, String> {
    let at = time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("'{text}' is not an RFC 3339 time such as 2027-01-01T00:00:00Z ({e})"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1000).map_err(|_| format!("'{text}' is out of range"))
}

/// Microseconds since the epoch as RFC 3339 in UTC (whole seconds), for people to read.
pub fn format_rfc3339(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{us} µs"))
}

impl From<SystemTime> for Timestamp {
    /// Rounds down to whole seconds; times before the epoch become the epoch.
    fn from(t: SystemTime) -> Self {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self::from_secs(secs)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.secs() {
            Some(s) => write!(f, "Timestamp({s})"),
            None => f.write_str("Timestamp(never)"),
        }
    }
}

impl Timestamp {
    /// For people: RFC 3339 in UTC to the second (`2026-12-03T08:17:00Z`), or `never`. Raw
    /// seconds are for machines (`--json`, the API).
    pub fn rfc3339(&self) -> String {
        let formatted = self
            .secs()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(i64::try_from(s).ok()?).ok())
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
        formatted.unwrap_or_else(|| "never".to_owned())
    }
}

impl fmt::Display for Timestamp {
    /// Seconds since the epoch, or `never`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.secs() {
            Some(s) => write!(f, "{s}"),
            None => f.write_str("never"),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self.secs() {
            Some(s) => map.serialize_entry("t_s", &s)?,
            None => map.serialize_entry("t_s", "never")?,
        }
        map.end()
    }
}

/// The value of `t_s`, checked as it is read so that errors name the exact problem.
struct TsValue(Timestamp);

impl<'de> Deserialize<'de> for TsValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TsValueVisitor)
    }
}

struct TsValueVisitor;

impl<'de> Visitor<'de> for TsValueVisitor {
    type Value = TsValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("t_s as a non-negative integer number of seconds or \"never\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TsValue, E> {
        Timestamp::try_from_secs(v).map(TsValue).ok_or_else(|| {
            E::custom(format!("t_s {v} is too large (at most {} seconds)", Timestamp::MAX_SECS))
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TsValue, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("t_s must not be negative, got {v}"))),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<TsValue, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("t_s {v} is too large"))),
        }
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<TsValue, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) if v < 0 => Err(E::custom(format!("t_s must not be negative, got {v}"))),
            Err(_) => Err(E::custom(format!("t_s {v} is too large"))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<TsValue, E> {
        // GNU Taler only accepts JSON integers here; even 1.0 is not one.
        Err(E::custom(format!("t_s must be an integer number of seconds, got {v}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TsValue, E> {
        if v.eq_ignore_ascii_case("never") {
            Ok(TsValue(Timestamp::NEVER))
        } else {
            Err(E::custom(format!("t_s string must be \"never\", got {v:?}")))
        }
    }
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp object {\"t_s\": <seconds> | \"never\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Timestamp, A::Error> {
        let mut found: Option<Timestamp> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "t_s" {
                if found.is_some() {
                    return Err(de::Error::duplicate_field("t_s"));
                }
                found = Some(map.next_value::<TsValue>()?.0);
            } else {
                // Extra members are allowed (and ignored), as in GNU Taler's parser.
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        found.ok_or_else(|| de::Error::missing_field("t_s"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TimestampVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Timestamp, String> {
        serde_json::from_str::<Timestamp>(s).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_seconds_and_never() {
        assert_eq!(parse(r#"{"t_s": 1700000000}"#).unwrap().secs(), Some(1700000000));
        assert_eq!(parse(r#"{"t_s": 0}"#).unwrap().secs(), Some(0));
        for never in ["never", "NEVER", "Never", "nEvEr"] {
            assert_eq!(parse(&format!(r#"{{"t_s": "{never}"}}"#)).unwrap(), Timestamp::NEVER);
        }
        // Extra members are ignored.
        assert_eq!(parse(r#"{"x": [1, {"y": 2}], "t_s": 5, "t_ms": 7}"#).unwrap(), Timestamp::from_secs(5));
    }

    #[test]
    fn rejects_malformed_with_reason() {
        let cases = [
            (r#"{"t_s": 1.5}"#, "integer"),
            (r#"{"t_s": 1.0}"#, "integer"),
            (r#"{"t_s": -1}"#, "negative"),
            (r#"{"t_s": "soon"}"#, "never"),
            (r#"{"t_s": ""}"#, "never"),
            (r#"{"t_s": null}"#, "t_s"),
            (r#"{"t_s": true}"#, "t_s"),
            (r#"{"t_s": [1]}"#, "t_s"),
            (r#"{}"#, "missing field `t_s`"),
            (r#"{"t_ms": 1}"#, "missing field `t_s`"),
            (r#"{"t_s": 1, "t_s": 2}"#, "duplicate"),
            (r#"1700000000"#, "timestamp object"),
            (r#""never""#, "timestamp object"),
            (r#"null"#, "timestamp object"),
            (r#"{"t_s": 18446744073710}"#, "too large"),
            (r#"{"t_s": 18446744073709551615}"#, "too large"),
            (r#"{"t_s": 99999999999999999999999}"#, "t_s"),
        ];
        for (input, reason) in cases {
            let err = parse(input).expect_err(input);
            assert!(err.contains(reason), "{input}: {err}");
        }
    }

    #[test]
    fn max_secs_boundary() {
        let max = Timestamp::MAX_SECS;
        assert_eq!(max, 18_446_744_073_709);
        let t = parse(&format!(r#"{{"t_s": {max}}}"#)).unwrap();
        assert_eq!(t.to_nbo(), (max * 1_000_000).to_be_bytes());
        assert!(Timestamp::try_from_secs(max + 1).is_none());
        assert_eq!(Timestamp::from_secs(max + 1), Timestamp::NEVER);
    }

    #[test]
    fn nbo_is_big_endian_micros() {
        assert_eq!(Timestamp::from_secs(1_700_000_000).to_nbo(), 1_700_000_000_000_000u64.to_be_bytes());
        assert_eq!(Timestamp::from_secs(0).to_nbo(), [0; 8]);
        assert_eq!(Timestamp::NEVER.to_nbo(), [0xff; 8]);
    }

    #[test]
    fn ordering_and_conversions() {
        assert!(Timestamp::from_secs(1) < Timestamp::from_secs(2));
        assert!(Timestamp::from_secs(Timestamp::MAX_SECS) < Timestamp::NEVER);
        assert_eq!(Timestamp::NEVER.secs(), None);
        assert!(Timestamp::NEVER.is_never());
        let before_epoch = UNIX_EPOCH - std::time::Duration::from_secs(10);
        assert_eq!(Timestamp::from(before_epoch), Timestamp::from_secs(0));
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        assert_eq!(Timestamp::from(t).secs(), Some(1));
        assert!(Timestamp::now().secs().unwrap() > 1_700_000_000);
        assert_eq!(Timestamp::NEVER.to_string(), "never");
        assert_eq!(Timestamp::from_secs(3).to_string(), "3");
    }

    #[test]
    fn json_round_trip() {
        for t in [Timestamp::from_secs(1_700_000_000), Timestamp::NEVER] {
            let s = serde_json::to_string(&t).unwrap();
            assert_eq!(parse(&s).unwrap(), t);
        }
        assert_eq!(serde_json::to_string(&Timestamp::NEVER).unwrap(), r#"{"t_s":"never"}"#);
        assert_eq!(serde_json::to_string(&Timestamp::from_secs(7)).unwrap(), r#"{"t_s":7}"#);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
            let _ = parse(&format!(r#"{{"t_s": {s}}}"#));
        }

        #[test]
        fn secs_round_trip(secs in 0..=Timestamp::MAX_SECS) {
            let t = Timestamp::from_secs(secs);
            prop_assert_eq!(t.secs(), Some(secs));
            prop_assert_eq!(parse(&serde_json::to_string(&t).unwrap()).unwrap(), t);
        }
    }
}
