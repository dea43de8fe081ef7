//! `keepalive generate` (hidden): the man pages and shell completions,
//! generated from the clap definitions, so that they say what `--help`
//! says. The package ships the copies committed under `packaging/`; a test
//! regenerates them and fails when they differ.
//!
//! Refresh them with `cargo run -p keepalive-cli -- generate --man
//! packaging/man1 --completions packaging/completions`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit::Exit;

/// Write the man pages and shell completions (for packaging).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").args(["man", "completions"]).required(true).multiple(true)))]
pub struct GenerateArgs {
    /// Write keepalive.1 and one keepalive-COMMAND.1 per command into DIR.
    #[arg(long, value_name = "DIR")]
    pub man: Option<PathBuf>,

    /// Write the bash, zsh and fish completions into DIR
    /// (keepalive.bash, _keepalive, keepalive.fish).
    #[arg(long, value_name = "DIR")]
    pub completions: Option<PathBuf>,
}

/// The name the completions complete.
const BIN: &str = "keepalive";

/// The shells, each with the file name its completion is written to.
pub const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "keepalive.bash"),
    (Shell::Zsh, "_keepalive"),
    (Shell::Fish, "keepalive.fish"),
];

pub fn generate(args: &GenerateArgs) -> anyhow::Result<Exit> {
    let mut written = Vec::new();
    if let Some(dir) = &args.man {
        create_dir(dir)?;
        for (name, page) in man_pages()? {
            written.push(write(dir, &name, &page)?);
        }
    }
    if let Some(dir) = &args.completions {
        create_dir(dir)?;
        for (shell, name) in SHELLS {
            written.push(write(dir, name, &completion(shell))?);
        }
    }
    let mut out = io::stdout().lock();
    for path in written {
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(Exit::Success)
}

/// Every man page, as (file name, roff text): `keepalive.1`, then one page
/// per visible command and subcommand (`keepalive-run.1`,
/// `keepalive-sysctl-set.1`, ...), in the order `--help` lists them.
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    add_pages(&cmd, &mut pages)?;
    Ok(pages)
}

fn add_pages(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).manual("keepalive manual");
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("cannot render {}", man.get_filename()))?;
    pages.push((man.get_filename(), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        add_pages(sub, pages)?;
    }
    Ok(())
}

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = without_hidden_commands(Cli::command());
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut script);
    script
}

/// `cmd` without its hidden subcommands: clap_complete offers hidden
/// subcommands too (it only leaves out hidden arguments and values), and
/// clap cannot remove a subcommand, so the top level is made again. It has
/// no arguments of its own besides --help and --version.
fn without_hidden_commands(cmd: clap::Command) -> clap::Command {
    let visible: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut top = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(cmd.is_subcommand_required_set())
        .subcommands(visible);
    if let Some(about) = cmd.get_about() {
        top = top.about(about.clone());
    }
    top
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_visible_command_and_none_for_generate() {
        let names: Vec<String> = man_pages().unwrap().into_iter().map(|(n, _)| n).collect();
        for name in [
            "keepalive.1",
            "keepalive-run.1",
            "keepalive-doctor.1",
            "keepalive-metrics.1",
            "keepalive-sysctl-set.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    }

    #[test]
    fn completions_leave_out_generate() {
        for (shell, _) in SHELLS {
            let script = String::from_utf8(completion(shell)).unwrap();
            assert!(script.contains("doctor"), "{shell}");
            assert!(!script.contains("generate"), "{shell}: {script}");
        }
    }
}
