//! The taler-lite binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use taler_lite::cli::{Cli, execute, init_logging, report_failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = init_logging(&cli);
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
            report_failure(log_format, &e);
            ExitCode::FAILURE
        }
    }
}
