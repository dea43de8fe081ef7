//! Children run with a deadline: spawn, wait, what they printed.

use std::fmt;
use std::io::Read;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::Record;

/// How long a test program may run before it counts as hung.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cmd` (bounded by [`TIMEOUT`]) and panics, showing its output,
/// unless it exits with status 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd, TIMEOUT);
    out.assert_success();
    out
}

/// Lets the child inherit `fd` (which the test keeps open): FD_CLOEXEC is
/// cleared in the child only, so no other test's child inherits it.
pub fn inherit_fd(cmd: &mut Command, fd: RawFd) {
    // SAFETY: the closure only calls fcntl(2), which is async-signal-safe,
    // as code between fork and exec must be.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What a finished child did.
pub struct Output {
    pub pid: u32,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {}, {}\n--- stdout:\n{}--- stderr:\n{}---",
            self.pid, self.status, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// The lines of stdout in the probe's `what key=value ...` form.
    pub fn records(&self) -> Vec<Record> {
        self.stdout.lines().filter_map(Record::parse).collect()
    }

    /// The one record of this kind; panics, showing the output, when there
    /// is not exactly one.
    pub fn only(&self, what: &str) -> Record {
        let mut found: Vec<Record> = self
            .records()
            .into_iter()
            .filter(|r| r.what == what)
            .collect();
        assert_eq!(found.len(), 1, "expected one `{what}` line\n{self}");
        found.remove(0)
    }

    /// Panics, showing the output, unless the child exited with status 0.
    pub fn assert_success(&self) {
        assert!(self.status.success(), "the program failed\n{self}");
    }

    /// The stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// Runs `cmd` with stdin closed and stdout/stderr captured; panics (after
/// killing it) when it runs longer than `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    wait(spawn(cmd), timeout)
}

/// Starts `cmd` in its own process group with stdin closed and
/// stdout/stderr piped.
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A program a test has just copied can be busy for a moment: another
    // test thread's fork may still hold the copy's write descriptor until
    // its exec closes it (ETXTBSY).
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                thread::sleep(Duration::from_millis(10));
            }
            result => return result.unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        }
    }
}

/// Waits for `child` (from [`spawn`]) and collects its output; when it runs
/// longer than `timeout`, kills its process group and panics.
pub fn wait(mut child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait().expect("waitpid") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                kill_group(pid);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    };
    let out = Output {
        pid,
        status: status.unwrap_or_default(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        status.is_some(),
        "hung: still running after {timeout:?}, killed\n{out}"
    );
    out
}

/// Reads `pipe` to its end in a thread, as text.
fn read_all<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Kills the process group `pid` leads (a child from [`spawn`]; for
/// another child this finds no group and does nothing).
fn kill_group(pid: u32) {
    let pgid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with a negative pid signals the group the child leads;
    // the child is not reaped yet, so its pid cannot have been reused.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// A child that is killed (with its process group) and reaped when dropped,
/// for programs that would otherwise wait long (curl on a stalled server).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            kill_group(self.0.id());
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
