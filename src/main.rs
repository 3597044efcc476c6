//! The taler-lite binary: parse the command line, set up logging, run.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use taler_lite::cli::{Cli, execute, init_logging, report_failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            ExitCode::FAILURE
        }
    }
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
