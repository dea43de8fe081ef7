//! `keepalive`: TCP keepalive for programs that don't ask for it.

mod attach;
mod check;
mod child;
mod cli;
mod doctor;
mod enforce;
mod exit;
mod generate;
mod human;
mod in_place;
mod install;
mod json;
mod library;
mod ls;
mod metrics;
mod reach;
mod run;
mod status;
mod sysctl;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version land here too, with exit code 0; usage
            // errors exit 2. A closed stdout under `--help | head` is no error.
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(&args),
        Command::Sysctl(args) => sysctl::sysctl(&args),
        Command::Install(args) => install::install(&args),
        Command::Uninstall(args) => install::uninstall(&args),
        Command::Ls(args) => ls::ls(&args),
        Command::Attach(args) => attach::attach(&args),
        Command::Enforce(args) => enforce::enforce(&args),
        Command::Doctor(args) => doctor::doctor(&args),
        Command::Metrics(args) => metrics::metrics(&args),
        Command::Generate(args) => generate::generate(&args),
        Command::Status(args) => status::status(&args),
    };
    exit::finish(result).into()
}
