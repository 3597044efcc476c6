//! `backup` and `check`: the operator's tools for the whole file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{CliError, escape};
use crate::clock::Clock;
use crate::config::{FileConfig, GlobalArgs};
use crate::store::backup::{self, BackupError};
use crate::store::check::{self, CheckOptions, Finding, Observer};
use crate::subject;

/// Progress is worth showing from this many bytes on.
const PROGRESS_FROM: u64 = 8 << 20;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The copy to make (written as DEST.tmp first, then renamed)
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    /// Replace DEST if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The server's short_subject_length, which the stored short subjects were derived with
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub short_subject_length: usize,
    /// The server's qr_reference_prefix (0 to 6 digits)
    #[arg(long, value_name = "DIGITS", default_value = "")]
    pub qr_reference_prefix: String,
    /// A staged upload (a body still streaming in) older than this is a leftover
    #[arg(long, value_name = "MINUTES", default_value_t = 60)]
    pub staged_max_age_minutes: u64,
}

/// A bar or spinner on stderr, only when stderr is a terminal.
fn on_terminal(bar: impl FnOnce() -> ProgressBar) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(bar)
}

fn byte_bar(label: &'static str, total: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix}: [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    ProgressBar::new(total).with_style(style).with_prefix(label)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// `backup DEST [--force]`.
pub async fn backup_command(
    global: &GlobalArgs,
    file: &FileConfig,
    args: BackupArgs,
) -> Result<(), CliError> {
    let store = super::open_read_only(global, file)?;
    let source = store.path().to_owned();
    let protected = crate::config::secret_files(&source, file);
    let worker = store.clone();
    let made = tokio::task::spawn_blocking(move || {
        let mut bar: Option<ProgressBar> = None;
        let made = backup::backup(&worker, &args.dest, args.force, &protected, &mut |done, total| {
            if bar.is_none() && total > PROGRESS_FROM {
                bar = on_terminal(|| byte_bar("backup", total));
            }
            if let Some(bar) = &bar {
                bar.set_length(total);
                bar.set_position(done);
            }
        });
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        made
    })
    .await
    .map_err(|e| CliError::Failed(format!("the backup task failed: {e}")));
    store.close();
    let report = made?.map_err(|e| match e {
        BackupError::Store(e) => CliError::Store(e),
        other => CliError::Failed(format!("backup: {other}")),
    })?;
    println!("backup of {} written to {}", source.display(), report.path.display());
    println!("  size:     {} bytes ({})", report.bytes, mib(report.bytes));
    println!("  duration: {:.3} s", report.duration.as_secs_f64());
    println!("  rows:");
    for (table, rows) in &report.rows {
        println!("    {table:<20} {rows:>10}");
    }
    if report.staged_dropped > 0 {
        println!("  left out: {} upload(s) still streaming in (not acknowledged yet)", report.staged_dropped);
    }
    Ok(())
}

/// Prints findings as they come, with progress on a terminal.
struct Printer {
    bar: Option<ProgressBar>,
}

impl Printer {
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{text}")),
            None => println!("{text}"),
        }
    }

    fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Printer {
    fn step(&mut self, name: &'static str) {
        if let Some(bar) = &self.bar {
            bar.set_message(name);
            return;
        }
        self.bar = on_terminal(|| {
            let spinner = ProgressBar::new_spinner().with_message(name);
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner
        });
    }

    fn bodies(&mut self, total_bytes: u64) {
        if total_bytes > PROGRESS_FROM
            && let Some(bar) = on_terminal(|| byte_bar("hashing bodies", total_bytes))
            && let Some(spinner) = self.bar.replace(bar)
        {
            spinner.finish_and_clear();
        }
    }

    fn hashed(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn finding(&mut self, finding: &Finding) {
        self.line(&escape(&finding.to_string()));
    }
}

/// `check`: one line per finding on stdout, a summary on stderr; fails
/// (exit 1) when there is any finding.
pub async fn check_command(global: &GlobalArgs, file: &FileConfig, args: CheckArgs) -> Result<(), CliError> {
    if !(1..=subject::MAX_SHORT_LENGTH).contains(&args.short_subject_length) {
        return Err(CliError::Failed(format!(
            "--short-subject-length: {} is not between 1 and {}",
            args.short_subject_length,
            subject::MAX_SHORT_LENGTH
        )));
    }
    if subject::qr_reference(&[0; 32], &args.qr_reference_prefix).is_err() {
        return Err(CliError::Failed(format!(
            "--qr-reference-prefix: '{}' is not 0 to 6 digits",
            escape(&args.qr_reference_prefix)
        )));
    }
    let store = super::open_read_only(global, file)?;
    let options = CheckOptions {
        short_subject_length: args.short_subject_length,
        qr_reference_prefix: args.qr_reference_prefix,
        staged_max_age: Duration::from_secs(args.staged_max_age_minutes.saturating_mul(60)),
        now_us: Clock::default().now_us(),
    };
    let worker = store.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let mut printer = Printer { bar: None };
        let summary = check::check(&worker, &options, &mut printer);
        printer.done();
        summary
    })
    .await
    .map_err(|e| CliError::Failed(format!("the check task failed: {e}")));
    store.close();
    let summary = checked??;
    let rows: Vec<String> = summary.rows.iter().map(|(table, n)| format!("{table} {n}")).collect();
    let what = format!(
        "schema version {}; bodies {} ({}), uploads {}, staged {}, live registrations {}; rows: {}",
        summary.schema_version,
        summary.bodies,
        mib(summary.body_bytes),
        summary.uploads,
        summary.staged,
        summary.live_registrations,
        rows.join(", ")
    );
    if summary.findings == 0 {
        eprintln!("check: sound ({what})");
        Ok(())
    } else {
        Err(CliError::Failed(format!("check: {} finding(s) ({what})", summary.findings)))
    }
}
