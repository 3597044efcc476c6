//! The machinery behind the one declaration of the settings (`settings.rs`): from one entry
//! a setting, [`settings!`] makes the clap field (flag and environment variable), the TOML key
//! (the same field, through serde), the field of the resolved [`super::Settings`], the line
//! that picks its value (flag or environment > file > default) and the default that `--help`
//! and the README show. Nothing here names a setting.

use std::str::FromStr;

use super::{ConfigError, bad};

/// Declares the settings of `serve` once. Each entry:
///
/// ```text
/// /// Help text (clap's `--help`; the `[default: ...]` is added from the mode)
/// #[arg(long, env = "TALER_LITE_NAME")]           // clap; #[serde(...)] for the TOML key
/// name: Option<ValueType> => ResolvedType, mode(DEFAULT);
/// ```
///
/// where `ValueType` is a `values.rs` type (its `FromStr` is the one parser of all three
/// sources) and `mode` is one of
/// - `default("text")`: the first of flag, file and the parsed default, converted with
///   `Into` into `ResolvedType`;
/// - `optional("shown")`: the first of flag and file, `Option<ResolvedType>`, `shown` being
///   what `--help` and the README say happens without it;
/// - `switch("off")`: an on/off setting, `bool`;
/// - `by_hand("shown")` (no `=> ResolvedType`): read as the others, resolved in
///   `settings.rs`'s `by_hand` into fields of the `@resolved_by_hand` block, because it depends
///   on other settings or is read from more than one layer. An empty `shown` shows no default.
macro_rules! settings {
    (
        $(
            $(#[$attr:meta])*
            $name:ident : $layer:ty $(=> $out:ty)?, $mode:ident($shown:tt);
        )*
        @resolved_by_hand {
            $( $(#[$hattr:meta])* $hvis:vis $hname:ident : $hty:ty, )*
        }
    ) => {
        /// One layer of the settings of `serve`: the flags and environment variables as clap
        /// read them, or the TOML file ([`FileConfig`]). A field's name is its TOML key and
        /// the name its errors carry. Declared in `settings.rs`, which says how to add one.
        #[derive(clap::Args, serde::Deserialize, Clone, Debug, Default)]
        #[serde(deny_unknown_fields)]
        #[command(mut_args($crate::config::declare::show_default))]
        pub struct ServeArgs {
            $( $(#[$attr])* pub $name: $layer, )*
        }

        /// Everything `serve` runs with, resolved and checked. The fields named as a setting
        /// are that setting's value (see [`ServeArgs`] for each one's meaning).
        #[derive(Clone, Debug)]
        pub struct Settings {
            $( $( pub $name: $out, )? )*
            $( $(#[$hattr])* $hvis $hname: $hty, )*
        }

        /// The fields of [`Settings`] that `by_hand` resolves.
        struct ByHand {
            $( $hname: $hty, )*
        }

        impl Settings {
            /// The settings from the flags and environment (`args`, as clap read them), the
            /// file and the defaults, in that order of precedence.
            pub fn resolve(
                global: &GlobalArgs,
                args: &ServeArgs,
                file: &FileConfig,
            ) -> Result<Settings, ConfigError> {
                let hand = by_hand(global, args, file)?;
                Ok(Settings {
                    $( $( $name: $crate::config::declare::resolve_setting!(
                        $mode, $shown, $name, args, file, $out
                    ), )? )*
                    $( $hname: hand.$hname, )*
                })
            }
        }

        /// Each setting's default as `--help` and the README show it, by field name.
        pub const SHOWN_DEFAULTS: &[(&str, &str)] = &[
            $( (stringify!($name), $crate::config::declare::shown_default!($mode, $shown)), )*
        ];
    };
}

/// What `--help` and the README say of a default: an empty text default is `empty`.
macro_rules! shown_default {
    (default, "") => {
        "empty"
    };
    ($mode:ident, $shown:tt) => {
        $shown
    };
}

/// The value of one setting of mode `default`, `optional` or `switch`.
macro_rules! resolve_setting {
    (default, $default:expr, $name:ident, $args:ident, $file:ident, $out:ty) => {{
        let value: $out = $crate::config::declare::convert($crate::config::declare::pick(
            stringify!($name),
            &$args.$name,
            &$file.$name,
            $default,
        )?);
        value
    }};
    (optional, $shown:expr, $name:ident, $args:ident, $file:ident, $out:ty) => {{
        let value: $out = $crate::config::declare::either(&$args.$name, &$file.$name).map(Into::into);
        value
    }};
    (switch, $shown:expr, $name:ident, $args:ident, $file:ident, $out:ty) => {{
        let value: $out = $crate::config::declare::switch(&$args.$name, &$file.$name);
        value
    }};
}

pub(crate) use {resolve_setting, settings, shown_default};

/// Adds the declared default to a setting's help, as clap's own `[default: ...]` would look
/// (clap's cannot be used: a default known to clap would hide the file's value).
pub fn show_default(arg: clap::Arg) -> clap::Arg {
    let id = arg.get_id().as_str();
    let Some((_, shown)) = super::SHOWN_DEFAULTS.iter().find(|(name, _)| *name == id) else {
        return arg;
    };
    if shown.is_empty() {
        return arg;
    }
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.help(format!("{help} [default: {shown}]"))
}

/// `Into`, as a function (so that a value already of its resolved type is no lint).
pub fn convert<T: Into<U>, U>(value: T) -> U {
    value.into()
}

/// An on/off setting: the flag's (or environment's) value, else the file's, else off.
pub fn switch<T: Clone + Into<bool>>(flag: &Option<T>, file: &Option<T>) -> bool {
    either(flag, file).is_some_and(Into::into)
}

/// The flag's value (clap has put the environment's there when no flag was given), else the
/// file's.
pub fn either<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.as_ref().or(file.as_ref()).cloned()
}

/// [`either`], else the default.
pub fn pick<T>(setting: &str, flag: &Option<T>, file: &Option<T>, default: &str) -> Result<T, ConfigError>
where
    T: Clone + FromStr,
    T::Err: std::fmt::Display,
{
    match either(flag, file) {
        Some(value) => Ok(value),
        None => default_value(setting, default),
    }
}

/// Defaults are kept as text, in the form the README and `--help` show; the zero-configuration
/// test parses every one, so this fails only for a wrong default.
pub fn default_value<T>(setting: &str, default: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    default.parse().map_err(|e| bad(setting, format!("default '{default}': {e}")))
}
