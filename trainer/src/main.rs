use std::process::ExitCode;

use clap::Parser;
use flowgate_trainer::cli::{Cli, run};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flowgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
