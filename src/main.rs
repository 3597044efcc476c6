//! The taler-lite binary: parse the command line, set up logging, run.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use taler_lite::cli::{Cli, CliError, execute, init_logging, report_failure};
use taler_lite::config::LogFormat;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version`: printed as clap prints them, on stdout.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let failure = CliError::from_clap(&e);
            report_failure(log_format_asked(), &failure);
            return ExitCode::from(failure.exit_code());
        }
    };
    let logging = init_logging(&cli);
    let workers = worker_threads();
    // Thread names tell the thread groups apart in /proc/PID/task/*/comm (loadgen's CPU per
    // operation): `build` launches the `workers` worker threads through the blocking pool, one new
    // thread each since none is idle yet, so they take the first names; every later thread of
    // the pool runs `spawn_blocking` work (the crate does not use `block_in_place`, which would
    // hand a worker's core to a new pool thread). The writer thread names itself.
    let spawned = AtomicUsize::new(0);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name_fn(move || match spawned.fetch_add(1, Ordering::Relaxed) {
            n if n < workers => format!("tl-worker-{n}"),
            _ => "tl-blocking".to_owned(),
        })
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("taler-lite: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(execute(cli));
    // Whatever the runtime's tasks log while they stop is written before the last word.
    drop(runtime);
    let format = logging.format;
    logging.finish();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_failure(format, &e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// The log format asked for on a command line that could not be parsed: from the
/// environment or a `--log-format` that is there, so that a JSON log stays JSON.
fn log_format_asked() -> LogFormat {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().enumerate().find_map(|(i, arg)| {
        let rest = arg.strip_prefix("--log-format")?;
        match rest.strip_prefix('=') {
            Some(value) => Some(value.to_owned()),
            None if rest.is_empty() => args.get(i + 1).cloned(),
            None => None,
        }
    });
    from_args
        .or_else(|| std::env::var("TALER_LITE_LOG_FORMAT").ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

/// Tokio's own default, made explicit so that the thread names count the same workers:
/// `TOKIO_WORKER_THREADS` when it is a positive number, else the available parallelism.
fn worker_threads() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}
