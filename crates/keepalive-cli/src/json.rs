//! `--json` output: JSON Lines, each `{"type":TYPE,"data":DATA}` (the
//! shape ripgrep's `--json` uses), so a script can dispatch on `type`.
//! With `--json`, stdout carries nothing else; diagnostics go to stderr.

use std::io::Write;

use serde::Serialize;

#[derive(Serialize)]
struct Line<T: Serialize> {
    r#type: &'static str,
    data: T,
}

/// Writes `{"type":TYPE,"data":DATA}` and a newline to `out`.
pub fn write_line<T: Serialize>(
    out: &mut impl Write,
    r#type: &'static str,
    data: T,
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, &Line { r#type, data })?;
    writeln!(out)?;
    Ok(())
}

/// [`write_line`] to stdout.
pub fn print_line<T: Serialize>(r#type: &'static str, data: T) -> anyhow::Result<()> {
    write_line(&mut std::io::stdout().lock(), r#type, data)
}
