//! `keepalive`: TCP keepalive for programs that don't ask for it.
#![deny(unsafe_code)]

mod attach;
mod check;
mod child;
mod cli;
mod enforce;
mod exit;
mod install;
mod json;
mod library;
mod ls;
mod reach;
mod run;
mod sysctl;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version land here too, with exit code 0.
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
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            // A closed pipe (`keepalive check | head -1`) is not an error.
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return Exit::Success.into();
            }
            let _ = writeln!(std::io::stderr(), "keepalive: {err:#}");
            Exit::Failure.into()
        }
    }
}
