//! `keepalive run`: executes a command with libkeepalive.so preloaded.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use keepalive::UserTimeout;

use crate::cli::{RunArgs, SettingsArgs};
use crate::exit::Exit;
use crate::{library, reach};

pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    let lib = library::find()?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    if let Some(path) = reach::resolve(program)
        && let Some((culprit, why)) = reach::check(&path)
    {
        eprintln!("keepalive: {}", why.warning(&culprit));
    }
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env(
            "LD_PRELOAD",
            preload_list(&lib, std::env::var_os("LD_PRELOAD").as_deref()),
        )
        .env("KEEPALIVE", if args.off { "off" } else { "on" })
        .envs(variables(&args.settings));
    if args.debug {
        cmd.env("KEEPALIVE_DEBUG", "1");
    }
    // exec only returns on failure; on success the command's exit status,
    // signals included, is ours.
    let err = cmd.exec();
    let name = Path::new(program).display();
    let (exit, hint) = match err.kind() {
        std::io::ErrorKind::NotFound => (Exit::NotFound, "command not found"),
        std::io::ErrorKind::PermissionDenied => (Exit::CannotExecute, "permission denied"),
        _ => (Exit::CannotExecute, "cannot execute"),
    };
    eprintln!("keepalive: {name}: {hint} ({err})");
    Ok(exit)
}

/// `lib` first, then the existing entries (space- or colon-separated, as
/// ld.so(8) reads them) other than `lib` itself, colon-separated.
pub fn preload_list(lib: &Path, existing: Option<&OsStr>) -> OsString {
    let mut out = lib.as_os_str().as_bytes().to_vec();
    let existing = existing.map(OsStr::as_bytes).unwrap_or_default();
    for entry in existing.split(|b| *b == b':' || *b == b' ') {
        if !entry.is_empty() && entry != lib.as_os_str().as_bytes() {
            out.push(b':');
            out.extend_from_slice(entry);
        }
    }
    OsString::from_vec(out)
}

/// The preload's variables for the settings given on the command line.
pub fn variables(s: &SettingsArgs) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if let Some(v) = s.idle {
        vars.push(("KEEPIDLE", v.get().to_string()));
    }
    if let Some(v) = s.interval {
        vars.push(("KEEPINTVL", v.get().to_string()));
    }
    if let Some(v) = s.count {
        vars.push(("KEEPCNT", v.get().to_string()));
    }
    match s.user_timeout {
        Some(UserTimeout::Auto) => vars.push(("TCP_USER_TIMEOUT", "auto".to_owned())),
        Some(UserTimeout::Millis(ms)) => vars.push(("TCP_USER_TIMEOUT", ms.get().to_string())),
        None => {}
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_idle, parse_probes, parse_user_timeout_arg};

    #[test]
    fn preload_goes_first_once() {
        let lib = Path::new("/x/libkeepalive.so");
        assert_eq!(preload_list(lib, None), "/x/libkeepalive.so");
        assert_eq!(
            preload_list(lib, Some(OsStr::new("a.so /x/libkeepalive.so:b.so"))),
            "/x/libkeepalive.so:a.so:b.so"
        );
    }

    #[test]
    fn variables_from_flags() {
        let s = SettingsArgs {
            idle: parse_idle("2m").ok(),
            interval: parse_idle("10").ok(),
            count: parse_probes("4").ok(),
            user_timeout: parse_user_timeout_arg("1500ms").ok(),
        };
        assert_eq!(
            variables(&s),
            [
                ("KEEPIDLE", "120".to_owned()),
                ("KEEPINTVL", "10".to_owned()),
                ("KEEPCNT", "4".to_owned()),
                ("TCP_USER_TIMEOUT", "1500".to_owned())
            ]
        );
    }
}
