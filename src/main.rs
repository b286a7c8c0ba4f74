//! The `rejudge` command: parse arguments, resolve settings, run the library, map errors to exit
//! codes (0: the run completed, failed rows included; 1: the run could not start or stopped; 2:
//! bad arguments).

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let arguments = cli::Arguments::parse();
    match cli::execute(arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
