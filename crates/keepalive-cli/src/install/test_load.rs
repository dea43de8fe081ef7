//! Test-loading a library before it is installed: `keepalive check` runs
//! under it and must report keepalive on.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{KEEPALIVE_ON, TEST_LOAD_TIMEOUT};

/// Proves that `lib` loads and switches keepalive on: runs this executable's
/// `check` with `LD_PRELOAD=lib` and none of the preload's variables, and
/// wants `SO_KEEPALIVE is ON`, exit status 0 and no loader error about it.
pub(crate) fn test_load(lib: &Path) -> anyhow::Result<()> {
    let (dir, name) = match (lib.parent(), lib.file_name()) {
        (Some(dir), Some(name)) => (dir, name),
        _ => bail!("{} is not a library file", lib.display()),
    };
    // LD_PRELOAD splits on spaces and colons: name the file relative to
    // its directory, so that only the file name has to be free of them.
    if name.as_bytes().iter().any(|b| b" \t\n:".contains(b)) {
        bail!(
            "cannot test-load {}: LD_PRELOAD cannot name a file whose name holds a space, \
             tab or colon; rename it",
            lib.display()
        );
    }
    let exe = std::env::current_exe().context("cannot find the keepalive executable's path")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("check")
        .current_dir(dir)
        .env("LD_PRELOAD", Path::new(".").join(name));
    for (var, _) in std::env::vars_os() {
        let bytes = var.as_bytes();
        if bytes.starts_with(b"KEEP") || bytes == b"TCP_USER_TIMEOUT" || bytes == b"LD_DEBUG" {
            cmd.env_remove(&var);
        }
    }
    let out = output_within(&mut cmd, TEST_LOAD_TIMEOUT)
        .with_context(|| format!("cannot test-load {}", lib.display()))?;
    // ld.so(8): "ERROR: ld.so: object './x.so' from LD_PRELOAD cannot be
    // preloaded (invalid ELF header): ignored." Lines about entries of the
    // live /etc/ld.so.preload say "from /etc/ld.so.preload" instead.
    if let Some(line) = out
        .stderr
        .lines()
        .find(|l| l.contains("cannot be preloaded") && l.contains("from LD_PRELOAD"))
    {
        bail!(
            "{} does not load, so it was not installed; the loader said: {}",
            lib.display(),
            line.trim()
        );
    }
    if !out.status.success() || !out.stdout.starts_with(KEEPALIVE_ON) {
        let said = if out.stderr.trim().is_empty() {
            out.stdout.trim()
        } else {
            out.stderr.trim()
        };
        bail!(
            "{} loads but does not give a new socket keepalive, so it was not installed: \
             `{} check` under it ended with {} and printed {:?}; install the libkeepalive.so \
             built with this keepalive",
            lib.display(),
            exe.display(),
            out.status,
            said
        );
    }
    Ok(())
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with stdin closed and its output captured; kills it after
/// `limit`.
fn output_within(cmd: &mut Command, limit: Duration) -> anyhow::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start it")?;
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = collect(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = collect(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "it still ran after {limit:?} (killed); a library that hangs must not be preloaded"
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
