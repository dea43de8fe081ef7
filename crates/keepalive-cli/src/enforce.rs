//! `keepalive enforce` (being written).

use crate::cli::EnforceArgs;
use crate::exit::Exit;

pub fn enforce(_args: &EnforceArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("keepalive enforce is not implemented yet")
}
