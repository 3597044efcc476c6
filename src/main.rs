//! The taler-lite binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use taler_lite::cli::{Cli, Command, execute};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs requests at info; the one-shot commands stay quiet.
    let default_filter = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
        .format_timestamp_millis()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("taler-lite: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taler-lite: {e}");
            ExitCode::FAILURE
        }
    }
}
