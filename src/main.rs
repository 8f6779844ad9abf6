//! The `framepipe` binary: parse flags, set up logging, dispatch (`framepipe::commands`), and
//! map an error to its exit code (0 all inputs done, 1 some input failed, 2 usage or
//! configuration error, 130 interrupted).
use std::process::ExitCode;

use clap::Parser;
use framepipe::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    framepipe::logging::init(cli.verbose, cli.quiet, cli.log_format);
    match framepipe::commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            framepipe::logging::error(None, &e);
            ExitCode::from(e.exit_code())
        }
    }
}
