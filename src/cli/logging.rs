//! Log lines on stderr: env_logger's human format, or with `--log-format json` one JSON
//! object a line (`ts`, `level`, `target`, `msg`, then the record's key-value pairs: a
//! request's `method`, `route`, `status`, `duration_ms`, `bytes_in`, `bytes_out`), for log
//! collectors. Nothing logs the operator token or a signature; the JSON summary of `serve`
//! leaves the token out as well.

use std::io::{self, IsTerminal, Write};

use env_logger::WriteStyle;
use env_logger::fmt::Formatter;
use log::kv::{self, Key, Value, VisitSource};

use super::{Cli, CliError, Command};
use crate::config::LogFormat;
use crate::log_sink::LogSink;

/// Logging as set up: the format, for [`report_failure`], and the log thread to finish.
pub struct Logging {
    pub format: LogFormat,
    sink: Option<LogSink>,
}

impl Logging {
    /// Writes every line logged so far to stderr (the end of `main`, before the last word).
    pub fn finish(self) {
        if let Some(sink) = self.sink {
            sink.finish();
        }
    }
}

/// Sets up logging for the command line given: for `serve`, env_logger's records go to
/// stderr through [`LogSink`]'s thread.
pub fn init_logging(cli: &Cli) -> Logging {
    let serve = matches!(cli.command, Command::Serve(_));
    // The server logs requests at info; the one-shot commands stay quiet.
    let default_filter = if serve { "info" } else { "warn" };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    let format = cli.global.log_format.unwrap_or_default();
    match format {
        LogFormat::Human => {
            // The fields are for machines; the message already says it for people.
            builder.format_timestamp_millis().format_key_values(|_, _| Ok(()));
        }
        LogFormat::Json => {
            builder.format(json_line);
            // A panic's message would otherwise be the one line that is not JSON.
            std::panic::set_hook(Box::new(|info| log::error!(target: "panic", "{info}")));
        }
    }
    // Colours as env_logger would choose them for stderr (it cannot tell through a pipe),
    // unless RUST_LOG_STYLE says otherwise.
    if std::env::var_os("RUST_LOG_STYLE").is_none() {
        let terminal = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        builder.write_style(if terminal { WriteStyle::Always } else { WriteStyle::Never });
    }
    // `serve` logs a line per request: through the log thread. The one-shot commands print to
    // stderr themselves between their few log lines, which keeps those in order.
    let sink = if serve {
        LogSink::start_for_stderr().map(|(sink, writer)| {
            builder.target(env_logger::Target::Pipe(Box::new(writer)));
            sink
        })
    } else {
        None
    };
    builder.init();
    Logging { format, sink }
}

/// The last word of a failed command: `taler-lite: ...` for a person, or one JSON line
/// (written directly: a filter such as `RUST_LOG=off` must not swallow why it failed).
pub fn report_failure(format: LogFormat, e: &CliError) {
    let line = match format {
        LogFormat::Human => Ok(format!("taler-lite: {e}")),
        LogFormat::Json => record_start(log::Level::Error, "taler_lite", &e.to_string()).map(|mut line| {
            line.push('}');
            line
        }),
    };
    match line {
        Ok(line) => eprintln!("{line}"),
        Err(_) => eprintln!("taler-lite: {e}"),
    }
}

/// `{"ts":...,"level":...,"target":...,"msg":...` without the closing brace.
fn record_start(level: log::Level, target: &str, msg: &str) -> io::Result<String> {
    let mut line = String::with_capacity(192);
    line.push_str("{\"ts\":");
    line.push_str(&json_string(&now_rfc3339_millis())?);
    line.push_str(",\"level\":");
    line.push_str(&json_string(&level.as_str().to_ascii_lowercase())?);
    line.push_str(",\"target\":");
    line.push_str(&json_string(target)?);
    line.push_str(",\"msg\":");
    line.push_str(&json_string(msg)?);
    Ok(line)
}

/// Now in UTC, RFC 3339 with milliseconds (as the human format shows it).
fn now_rfc3339_millis() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

fn json_line(buf: &mut Formatter, record: &log::Record<'_>) -> io::Result<()> {
    let line = record_start(record.level(), record.target(), &record.args().to_string())?;
    let mut fields = Fields { line, failed: None };
    // A source fails only through its visitor, which never fails here; `failed` says why if it does.
    let _ = record.key_values().visit(&mut fields);
    if let Some(e) = fields.failed {
        return Err(e);
    }
    let mut line = fields.line;
    line.push_str("}\n");
    buf.write_all(line.as_bytes())
}

/// Appends each key-value pair as a JSON member.
struct Fields {
    line: String,
    failed: Option<io::Error>,
}

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        // The four members every line has win over a pair of the same name.
        if ["ts", "level", "target", "msg"].contains(&key.as_str()) {
            return Ok(());
        }
        match (json_string(key.as_str()), json_value(&value)) {
            (Ok(k), Ok(v)) => {
                self.line.push(',');
                self.line.push_str(&k);
                self.line.push(':');
                self.line.push_str(&v);
            }
            (Err(e), _) | (_, Err(e)) => self.failed = Some(e),
        }
        Ok(())
    }
}

fn json_string(s: &str) -> io::Result<String> {
    serde_json::to_string(s).map_err(io::Error::other)
}

/// Numbers and booleans as JSON numbers and booleans, anything else as its text.
fn json_value(value: &Value<'_>) -> io::Result<String> {
    if let Some(b) = value.to_bool() {
        return Ok(b.to_string());
    }
    if let Some(n) = value.to_u64() {
        return Ok(n.to_string());
    }
    if let Some(n) = value.to_i64() {
        return Ok(n.to_string());
    }
    if let Some(n) = value.to_f64().and_then(serde_json::Number::from_f64) {
        return Ok(n.to_string());
    }
    json_string(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc_3339_with_milliseconds() {
        let ts = now_rfc3339_millis();
        assert_eq!(ts.len(), "2026-01-01T00:00:00.000Z".len(), "{ts}");
        assert!(
            time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339).is_ok(),
            "{ts}"
        );
    }

    #[test]
    fn values_keep_their_json_type() {
        assert_eq!(json_value(&Value::from(200u16)).unwrap(), "200");
        assert_eq!(json_value(&Value::from(-3i64)).unwrap(), "-3");
        assert_eq!(json_value(&Value::from(1.25f64)).unwrap(), "1.25");
        assert_eq!(json_value(&Value::from(f64::NAN)).unwrap(), "\"NaN\"");
        assert_eq!(json_value(&Value::from(true)).unwrap(), "true");
        assert_eq!(json_value(&Value::from("a \"b\"\n")).unwrap(), r#""a \"b\"\n""#);
    }
}
