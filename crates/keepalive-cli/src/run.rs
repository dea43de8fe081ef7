//! `keepalive run`: executes a command with libkeepalive.so preloaded, or
//! with `--enforce` in a cgroup of its own where the kernel enforces
//! keepalive (cgroup BPF).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use keepalive::{Settings, UserTimeout};
use keepalive_bpf::{Finished, RunScope};

use crate::cli::RunArgs;
use crate::exit::Exit;
use crate::{library, reach};

pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    if args.enforce {
        return run_enforced(&args);
    }
    let lib = library::find()?;
    if lib
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b' ' | b':' | b'\t' | b'\n'))
    {
        anyhow::bail!(
            "the library's path {} holds a space or colon, which LD_PRELOAD cannot carry: \
             set KEEPALIVE_LIBRARY to a copy under a plain path, or run `keepalive install`",
            lib.display()
        );
    }
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    if let Some(path) = reach::resolve(program)
        && let Some((culprit, why)) = reach::check(&path)
    {
        eprintln!("keepalive: {}", why.warning(&culprit));
    }
    let settings = args.settings.settings();
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env(
            "LD_PRELOAD",
            preload_list(&lib, std::env::var_os("LD_PRELOAD").as_deref()),
        )
        .env("KEEPALIVE", if args.off { "off" } else { "on" })
        .envs(variables(&settings));
    if !args.off {
        drop_invalid_inherited(&mut cmd, &settings);
    }
    if args.debug {
        cmd.env("KEEPALIVE_DEBUG", "1");
    }
    // exec only returns on failure; on success the command's exit status,
    // signals included, is ours.
    let err = cmd.exec();
    let (exit, why) = exec_error(Path::new(program), &err);
    eprintln!("keepalive: {}: {why}", Path::new(program).display());
    Ok(exit)
}

/// The exit status and the one reason for a command that could not be
/// executed: `command not found`, `is a directory`, `permission denied`,
/// or the system's words without the error number.
pub(crate) fn exec_error(program: &Path, err: &std::io::Error) -> (Exit, String) {
    match err.kind() {
        std::io::ErrorKind::NotFound => (Exit::NotFound, "command not found".to_owned()),
        _ if program.is_dir() => (Exit::CannotExecute, "is a directory".to_owned()),
        std::io::ErrorKind::PermissionDenied => {
            (Exit::CannotExecute, "permission denied".to_owned())
        }
        _ => (
            Exit::CannotExecute,
            crate::exit::without_error_numbers(&err.to_string()),
        ),
    }
}

/// `run --enforce`: the command runs in a new cgroup with keepalive
/// enforced there by the kernel (cgroup BPF), so static and Go binaries get
/// it too. The cgroup, the pins and the link go when the command exits;
/// the exit status, or the signal that killed it, is the command's.
fn run_enforced(args: &RunArgs) -> anyhow::Result<Exit> {
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let name = Path::new(program).display();
    // execvp's lookup, to say "not found" before creating anything.
    match reach::resolve(program) {
        None => {
            eprintln!("keepalive: {name}: command not found");
            return Ok(Exit::NotFound);
        }
        Some(path) if path.is_dir() => {
            eprintln!("keepalive: {name}: is a directory");
            return Ok(Exit::CannotExecute);
        }
        Some(path) if !path.exists() => {
            eprintln!("keepalive: {name}: command not found");
            return Ok(Exit::NotFound);
        }
        Some(_) => {}
    }
    let policy = crate::enforce::policy_of(&args.settings, args.force, args.max_idle)?;
    let scope = RunScope::create(&policy).context("run --enforce")?;
    let mut cmd = Command::new(program);
    cmd.args(rest);
    // The signals stay taken until the scope is cleaned up, so that none
    // can interrupt the clean-up.
    let mut foreground = None;
    let waited = scope.procs_file().and_then(|procs| {
        foreground
            .insert(crate::child::Foreground::take()?)
            .run(&mut cmd, procs)
    });
    let status = match waited {
        Ok(status) => status,
        Err(err) => {
            let cgroup = scope.cgroup().display().to_string();
            drop(scope);
            drop(foreground);
            let (exit, why) = match exec_error(Path::new(program), &err) {
                // The exec is not what failed: the child's move into the
                // cgroup did.
                (Exit::CannotExecute, why)
                    if err.kind() != std::io::ErrorKind::PermissionDenied
                        && !Path::new(program).is_dir() =>
                {
                    (
                        Exit::CannotExecute,
                        format!("cannot execute it in cgroup {cgroup}: {why}"),
                    )
                }
                other => other,
            };
            eprintln!("keepalive: {name}: {why}");
            return Ok(exit);
        }
    };
    let finished = scope.finish();
    drop(foreground);
    match finished {
        Ok(Finished::Removed) => {}
        Ok(Finished::Left { cgroup, pids }) => {
            let dir = cgroup.display();
            let who = if pids.is_empty() {
                "processes the command started may still run".to_owned()
            } else {
                let list: Vec<String> = pids.iter().map(u32::to_string).collect();
                format!(
                    "{} process(es) the command started still run (pid {})",
                    pids.len(),
                    list.join(", ")
                )
            };
            eprintln!(
                "keepalive: {who} in {dir} or below it: keepalive stays enforced there; \
                 once they have exited, undo it with \
                 `keepalive enforce --cgroup {dir} --remove`, then remove the cgroup \
                 (`rmdir`, the cgroups below it first)"
            );
        }
        Err(err) => eprintln!(
            "keepalive: cleaning up after the command failed: {:#}",
            anyhow::Error::from(err)
        ),
    }
    // Everything is cleaned up: nothing is left for destructors to do.
    crate::child::exit_as(status)
}

/// Inherited preload variables that the library would refuse (and that no
/// option replaces): reported here, once, and removed from the command's
/// environment, instead of one warning from every process the command
/// starts. `KEEPALIVE` is not inherited: `run` sets it.
fn drop_invalid_inherited(cmd: &mut Command, settings: &Settings) {
    let given = variables(settings);
    let inherited = std::env::vars_os().filter(|(name, _)| name != "KEEPALIVE");
    for bad in keepalive::from_vars(inherited).invalid {
        let name = bad.var.name();
        if !given.iter().any(|(set, _)| *set == name) {
            eprintln!("{bad}");
            cmd.env_remove(name);
        }
    }
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

/// The preload's variables for `s` (`KEEPALIVE` aside).
pub fn variables(s: &Settings) -> Vec<(&'static str, String)> {
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
    use crate::cli::{SettingsArgs, parse_idle, parse_probes, parse_user_timeout_arg};

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
    fn exec_errors_say_it_once() {
        let not_found = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            exec_error(Path::new("nosuchcmd"), &not_found),
            (Exit::NotFound, "command not found".to_owned())
        );
        let denied = std::io::Error::from_raw_os_error(13);
        assert_eq!(
            exec_error(Path::new("/tmp"), &denied),
            (Exit::CannotExecute, "is a directory".to_owned())
        );
        let format = std::io::Error::from_raw_os_error(8);
        let (exit, why) = exec_error(Path::new("/etc/passwd"), &format);
        assert_eq!(exit, Exit::CannotExecute);
        assert!(!why.contains("os error"), "{why}");
        assert!(!why.is_empty());
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
            variables(&s.settings()),
            [
                ("KEEPIDLE", "120".to_owned()),
                ("KEEPINTVL", "10".to_owned()),
                ("KEEPCNT", "4".to_owned()),
                ("TCP_USER_TIMEOUT", "1500".to_owned())
            ]
        );
    }
}
