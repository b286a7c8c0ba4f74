//! The `rejudge` command: parse arguments, resolve settings, run the library, and map the ending
//! to an exit status:
//!
//! - 0: every row has a verdict (or cannot be judged, and says why);
//! - 1: the run could not start, or had to stop (bad input, a judge that cannot be used, a
//!   broken journal, another run in the folder);
//! - 2: bad command-line arguments;
//! - 3: the run finished but some rows failed (transient errors, unreadable answers); running
//!   the same command again sends just the requests that failed, so `until rejudge ...; do
//!   sleep 60; done` works (an answer still unreadable after its re-ask is final);
//! - 4: the budget (`--max-cost`) would have been passed; raising it and running the same
//!   command again continues;
//! - 130: interrupted (Ctrl-C, SIGTERM); running the same command again resumes.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// The exit status of a run that finished with failed rows.
const FAILED_ROWS: u8 = 3;
/// The exit status of an interrupted run, as shells report a SIGINT.
const INTERRUPTED: u8 = 130;
/// The exit status of a run stopped by its budget.
const BUDGET: u8 = 4;

fn main() -> ExitCode {
    let arguments = cli::Arguments::parse();
    match cli::execute(arguments) {
        Ok(cli::Finish::Complete) => ExitCode::SUCCESS,
        Ok(cli::Finish::FailedRows) => ExitCode::from(FAILED_ROWS),
        Err(error) => match error.downcast_ref::<rejudge::run::RunError>() {
            Some(interrupted @ rejudge::run::RunError::Interrupted { .. }) => {
                eprintln!("{interrupted}");
                ExitCode::from(INTERRUPTED)
            }
            Some(budget @ rejudge::run::RunError::Budget { .. }) => {
                eprintln!("rejudge: {budget}");
                ExitCode::from(BUDGET)
            }
            _ => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}
