//! `keepalive ls` (being written).

use crate::cli::LsArgs;
use crate::exit::Exit;

pub fn ls(_args: &LsArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("keepalive ls is not implemented yet")
}
