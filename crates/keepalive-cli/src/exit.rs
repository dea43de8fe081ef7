//! Exit statuses, in one place.

use std::process::ExitCode;

/// How `keepalive` exits (`keepalive run` exits with its command's status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done, and keepalive is on where it was checked.
    Success = 0,
    /// An operation failed, or `check` found keepalive off.
    Failure = 1,
    /// The command line is wrong (clap's own usage errors exit 2 too).
    Usage = 2,
    /// The command cannot be executed (permission, not an executable).
    CannotExecute = 126,
    /// The command was not found.
    NotFound = 127,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
