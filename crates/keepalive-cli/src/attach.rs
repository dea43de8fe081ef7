//! `keepalive attach` (being written).

use crate::cli::AttachArgs;
use crate::exit::Exit;

pub fn attach(_args: &AttachArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("keepalive attach is not implemented yet")
}
