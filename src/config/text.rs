//! One text form per setting, read the same way from a flag, its environment variable and the
//! TOML file.
//!
//! Every value type in `values.rs` has one `FromStr`; the macro here turns it into the
//! clap value parser and the serde `Deserialize` too, so the three sources cannot drift apart in
//! what they accept. The types' errors carry only the reason: one type serves several settings
//! (two sizes, three durations), so the setting's name is added where it is known, from clap's
//! argument id (the field name, which is also the TOML key) or from the TOML path.

use std::ffi::OsStr;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use serde::de::{self, Unexpected, Visitor};

use super::bad;

/// The clap value parser of a setting: its `FromStr`, with errors in the same one-line
/// `setting: reason` form as every other bad setting.
pub struct SettingParser<T>(PhantomData<fn() -> T>);

impl<T> SettingParser<T> {
    pub fn new() -> Self {
        SettingParser(PhantomData)
    }
}

impl<T> Default for SettingParser<T> {
    fn default() -> Self {
        SettingParser::new()
    }
}

// Derived Clone would demand `T: Clone` of a parser that holds no T.
impl<T> Clone for SettingParser<T> {
    fn clone(&self) -> Self {
        SettingParser::new()
    }
}

impl<T> TypedValueParser for SettingParser<T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: fmt::Display,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        self.parse_ref_(cmd, arg, value, ValueSource::CommandLine)
    }

    fn parse_ref_(
        &self,
        _cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
        source: ValueSource,
    ) -> Result<T, clap::Error> {
        let parsed = match value.to_str() {
            Some(text) => text.parse::<T>().map_err(|e| e.to_string()),
            None => Err(format!("'{}' is not valid UTF-8", value.to_string_lossy())),
        };
        parsed.map_err(|reason| {
            let setting = arg.map_or("value", |a| a.get_id().as_str());
            // A value nobody typed on the command line is easy to forget: say where it came from.
            let from = match arg.and_then(clap::Arg::get_env) {
                Some(env) if source == ValueSource::EnvVariable => {
                    format!(" (from {})", env.to_string_lossy())
                }
                _ => String::new(),
            };
            // A raw error is printed as it is, without clap's usage hint, so that a bad flag
            // stops start-up with one line like every other bad setting.
            clap::Error::raw(ErrorKind::ValueValidation, format!("{}{from}\n", bad(setting, reason)))
        })
    }
}

/// Reads a setting from a TOML string through its `FromStr`, and from a TOML integer too when
/// the type's text form is a bare number anyway (`short_subject_length = 12`).
pub struct TextVisitor<T> {
    expecting: &'static str,
    integers: bool,
    value: PhantomData<fn() -> T>,
}

impl<T> TextVisitor<T> {
    pub fn new(expecting: &'static str, integers: bool) -> Self {
        TextVisitor { expecting, integers, value: PhantomData }
    }
}

impl<T> Visitor<'_> for TextVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        if !self.integers {
            return Err(E::invalid_type(Unexpected::Signed(v), &self));
        }
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        if !self.integers {
            return Err(E::invalid_type(Unexpected::Unsigned(v), &self));
        }
        self.visit_str(&v.to_string())
    }
}

/// Makes a `FromStr` type a setting: its clap value parser and its TOML form. `or integer`
/// also accepts a TOML integer, read as the same digits would be.
macro_rules! setting_text {
    ($ty:ty, $expecting:literal) => {
        $crate::config::text::setting_text!(@impl $ty, $expecting, false);
    };
    ($ty:ty, $expecting:literal, or integer) => {
        $crate::config::text::setting_text!(@impl $ty, $expecting, true);
    };
    (@impl $ty:ty, $expecting:literal, $integers:expr) => {
        $crate::config::text::setting_flag!($ty);

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any($crate::config::text::TextVisitor::new($expecting, $integers))
            }
        }
    };
}

/// The clap half of [`setting_text`], for a type whose TOML form is not a string.
macro_rules! setting_flag {
    ($ty:ty) => {
        impl clap::builder::ValueParserFactory for $ty {
            type Parser = $crate::config::text::SettingParser<$ty>;
            fn value_parser() -> Self::Parser {
                $crate::config::text::SettingParser::new()
            }
        }
    };
}

pub(crate) use {setting_flag, setting_text};
