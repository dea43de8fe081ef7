//! Exit statuses and the one way out of `main`.
//!
//! 0: done. 1: only a command that checks found a problem (`check`:
//! keepalive is off). 2: an error, or a wrong command line (clap's usage
//! errors exit 2 too). `keepalive run` exits with its command's status,
//! 126 and 127 when the command cannot be executed or is not found. A
//! closed stdout (`keepalive ls | head -1`) ends quietly with 0.

use std::io::{self, Write};
use std::process::ExitCode;

/// How `keepalive` exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; `check`: keepalive is on.
    Success = 0,
    /// A check found a problem (`check`: keepalive is off). Never an error.
    Problem = 1,
    /// An operation failed, or the command line is wrong.
    Error = 2,
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

/// How a command's result ends the process: errors are printed on one
/// line (the whole chain, `{:#}`) and exit 2, unless stdout was closed
/// by its reader somewhere in the chain, which is no error.
pub fn finish(result: anyhow::Result<Exit>) -> Exit {
    match result {
        Ok(exit) => exit,
        Err(err) if is_broken_pipe(&err) => Exit::Success,
        Err(err) => {
            let _ = writeln!(io::stderr(), "keepalive: {}", message(&err));
            Exit::Error
        }
    }
}

/// The error chain on one line, each cause once: `a: b: c`, without the
/// `(os error N)` that std appends (the words already say it), and without
/// a cause whose words the previous message already ends with.
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = without_error_numbers(&cause.to_string());
        let text = text.as_str();
        if text.is_empty() || out.ends_with(text) {
            continue;
        }
        if !out.is_empty() {
            out += ": ";
        }
        out += text;
    }
    out
}

/// True when any error in the chain is a write to a closed pipe (EPIPE:
/// Rust ignores SIGPIPE, so `| head` shows up as this error).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(io::ErrorKind::BrokenPipe)
    })
}

/// `text` without each ` (os error N)` std appends to an I/O error's words;
/// whatever follows one (a hint) is kept.
pub fn without_error_numbers(text: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after.as_bytes().get(digits) == Some(&b')') {
            out += &rest[..at];
            rest = &after[digits + 1..];
        } else {
            out += &rest[..at + MARK.len()];
            rest = after;
        }
    }
    out + rest
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    fn pipe() -> io::Error {
        io::Error::from(io::ErrorKind::BrokenPipe)
    }

    #[test]
    fn broken_pipe_deep_in_the_chain_is_quiet() {
        let err = Err::<(), _>(pipe())
            .context("writing the table")
            .context("ls")
            .unwrap_err();
        assert!(is_broken_pipe(&err));
        assert_eq!(finish(Err(err)), Exit::Success);
    }

    #[test]
    fn broken_pipe_inside_serde_json_is_quiet() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(pipe())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = serde_json::to_writer(Closed, &"x").unwrap_err();
        assert!(is_broken_pipe(
            &anyhow::Error::from(err).context("ls --json")
        ));
    }

    #[test]
    fn each_cause_once_without_error_numbers() {
        let err = anyhow::Error::from(io::Error::from_raw_os_error(2))
            .context("cannot open /sys/fs/cgroup/x")
            .context("cannot enforce keepalive on x");
        assert_eq!(
            message(&err),
            "cannot enforce keepalive on x: cannot open /sys/fs/cgroup/x: \
             No such file or directory"
        );
        // A message that already ends with its cause's words says it once.
        let err = anyhow::Error::from(io::Error::from_raw_os_error(13))
            .context("cannot read /etc/x: Permission denied");
        assert_eq!(message(&err), "cannot read /etc/x: Permission denied");
    }

    #[test]
    fn a_hint_after_the_error_number_is_kept() {
        assert_eq!(
            without_error_numbers(
                "cannot list: No such file or directory (os error 2) (no TCP sock_diag \
                 support: is the tcp_diag module available?)"
            ),
            "cannot list: No such file or directory (no TCP sock_diag support: is the \
             tcp_diag module available?)"
        );
        assert_eq!(without_error_numbers("a (os error x)"), "a (os error x)");
        assert_eq!(without_error_numbers("plain"), "plain");
    }

    #[test]
    fn other_errors_exit_2() {
        let err = anyhow::anyhow!(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&err));
        assert_eq!(finish(Err(err)), Exit::Error);
        assert_eq!(finish(Ok(Exit::Problem)), Exit::Problem);
    }
}
