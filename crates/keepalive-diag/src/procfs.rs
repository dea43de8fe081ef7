//! Which process holds which socket: `/proc/PID/fd/N` is a symbolic link
//! to `socket:[INODE]` for a socket, the inode sock_diag reports (proc(5)).
//!
//! Reading another user's `/proc/PID/fd` needs ptrace-read rights over it
//! (root, or the same user); processes whose descriptors could not be read
//! are counted, so that a socket found in none of the readable ones can be
//! told apart ("unknown") from a socket no process holds (TIME_WAIT, an
//! orphan, a kernel socket). Every function takes the proc root, so tests
//! use a directory of their own.
//!
//! Which cgroup a process is in, `/proc/PID/cgroup` (cgroups(7)), names
//! the systemd unit it runs in, where systemd manages the host: the unit
//! to enforce keepalive on, and the name an operator knows it by.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The mount point of procfs.
pub const PROC: &str = "/proc";

/// The inode in a `/proc/PID/fd/N` link target `socket:[INODE]`; `None`
/// for anything else (`pipe:[..]`, a path).
///
/// ```
/// use keepalive_diag::socket_link_inode;
/// assert_eq!(socket_link_inode(b"socket:[123456]"), Some(123456));
/// assert_eq!(socket_link_inode(b"pipe:[123456]"), None);
/// ```
pub fn socket_link_inode(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A socket descriptor of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketFd {
    /// The descriptor number in that process.
    pub fd: i32,
    /// The socket inode.
    pub inode: u64,
}

/// The socket descriptors of process `pid`, from `<proc>/<pid>/fd`, by
/// descriptor number. Descriptors closed while they are read are left out.
/// `PermissionDenied` when the caller may not read them.
pub fn process_sockets(proc_root: &Path, pid: u32) -> io::Result<Vec<SocketFd>> {
    let dir = proc_root.join(pid.to_string()).join("fd");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A descriptor closed meanwhile: skip it.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if let Some(inode) = socket_link_inode(target.as_os_str().as_bytes()) {
            out.push(SocketFd { fd, inode });
        }
    }
    out.sort();
    Ok(out)
}

/// The command name of `pid` (`<proc>/<pid>/comm`, at most 15 bytes as the
/// kernel keeps it), `None` when it cannot be read.
pub fn command(proc_root: &Path, pid: u32) -> Option<String> {
    let text = std::fs::read(proc_root.join(pid.to_string()).join("comm")).ok()?;
    let text = String::from_utf8_lossy(&text);
    Some(text.strip_suffix('\n').unwrap_or(&text).to_owned())
}

/// The cgroup v2 path of `pid`, from `<proc>/<pid>/cgroup`: the path on
/// its `0::PATH` line (relative to the reader's cgroup namespace), as on a
/// unified host or, on a hybrid one, beside the v1 hierarchies. `None`
/// when there is no such line (cgroup v1 only). An error when the file
/// cannot be read (`NotFound`: the process is gone).
pub fn cgroup(proc_root: &Path, pid: u32) -> io::Result<Option<String>> {
    let text = std::fs::read(proc_root.join(pid.to_string()).join("cgroup"))?;
    Ok(cgroup_v2_path(&String::from_utf8_lossy(&text)).map(str::to_owned))
}

/// The path on the `0::PATH` line of a `/proc/PID/cgroup` text, without
/// the ` (deleted)` the kernel appends when that cgroup was removed.
fn cgroup_v2_path(text: &str) -> Option<&str> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(path.strip_suffix(" (deleted)").unwrap_or(path))
}

/// The kinds of systemd units that have processes in a cgroup of their
/// own, most specific first: `.slice` only groups other units.
const UNIT_SUFFIXES: [&str; 5] = [".service", ".scope", ".socket", ".mount", ".swap"];

/// The systemd unit a cgroup path belongs to: the last component that is a
/// unit with processes (`*.service`, `*.scope`, `*.socket`, and the rare
/// `*.mount`, `*.swap`), else the last `*.slice`, else `None`. A service
/// that makes cgroups of its own below its unit's (delegation) is still
/// that service.
///
/// ```
/// use keepalive_diag::unit_of;
/// assert_eq!(unit_of("/system.slice/nginx.service"), Some("nginx.service"));
/// assert_eq!(unit_of("/user.slice/user-1000.slice"), Some("user-1000.slice"));
/// assert_eq!(unit_of("/"), None);
/// ```
pub fn unit_of(cgroup_path: &str) -> Option<&str> {
    let is = |c: &str, suffix: &str| c.len() > suffix.len() && c.ends_with(suffix);
    let mut components = cgroup_path.rsplit('/');
    components
        .clone()
        .find(|c| UNIT_SUFFIXES.iter().any(|s| is(c, s)))
        .or_else(|| components.find(|c| is(c, ".slice")))
}

/// A process holding a socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`comm`), empty when unreadable.
    pub command: String,
    /// The descriptor number there.
    pub fd: i32,
}

/// Socket inodes mapped to the processes that hold them.
#[derive(Clone, Debug, Default)]
pub struct Owners {
    by_inode: HashMap<u64, Vec<Owner>>,
    /// Processes whose descriptors could not be read (no right to).
    denied: usize,
}

impl Owners {
    /// Scans every process in `proc_root`.
    pub fn scan(proc_root: &Path) -> io::Result<Owners> {
        let mut owners = Owners::default();
        for entry in std::fs::read_dir(proc_root)? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            owners.add(proc_root, pid);
        }
        owners.sort();
        Ok(owners)
    }

    /// The sockets of process `pid` only. An error when its descriptors
    /// cannot be read.
    pub fn of_process(proc_root: &Path, pid: u32) -> io::Result<Owners> {
        let mut owners = Owners::default();
        let command = command(proc_root, pid).unwrap_or_default();
        for s in process_sockets(proc_root, pid)? {
            owners.insert(s.inode, pid, &command, s.fd);
        }
        owners.sort();
        Ok(owners)
    }

    fn add(&mut self, proc_root: &Path, pid: u32) {
        match process_sockets(proc_root, pid) {
            Ok(sockets) => {
                if sockets.is_empty() {
                    return;
                }
                let command = command(proc_root, pid).unwrap_or_default();
                for s in sockets {
                    self.insert(s.inode, pid, &command, s.fd);
                }
            }
            Err(e) if denied(&e) => self.add_denied(),
            // The process exited meanwhile (NotFound), or is a kernel
            // thread: nothing of it to see.
            Err(_) => {}
        }
    }

    /// Records that process `pid` holds socket `inode` at `fd`.
    pub(crate) fn insert(&mut self, inode: u64, pid: u32, command: &str, fd: i32) {
        self.by_inode.entry(inode).or_default().push(Owner {
            pid,
            command: command.to_owned(),
            fd,
        });
    }

    /// Counts one process whose descriptors could not be read.
    pub(crate) fn add_denied(&mut self) {
        self.denied += 1;
    }

    fn sort(&mut self) {
        for v in self.by_inode.values_mut() {
            v.sort();
        }
    }

    /// The processes holding socket `inode`, by pid then descriptor.
    pub fn get(&self, inode: u64) -> &[Owner] {
        self.by_inode.get(&inode).map_or(&[], Vec::as_slice)
    }

    /// The number of processes whose descriptors could not be read; when 0
    /// a socket found in none is held by no process.
    pub fn denied(&self) -> usize {
        self.denied
    }
}

/// True for the errors reading `/proc/PID/fd` gives without the right to.
fn denied(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A fake proc root, removed on drop.
    struct FakeProc(tempfile::TempDir);

    impl FakeProc {
        fn new() -> FakeProc {
            FakeProc(tempfile::tempdir().unwrap())
        }

        fn root(&self) -> &Path {
            self.0.path()
        }

        /// Process `pid` named `comm` with descriptors `fd -> target`.
        fn process(&self, pid: u32, comm: &str, fds: &[(i32, &str)]) {
            let dir = self.root().join(pid.to_string());
            std::fs::create_dir_all(dir.join("fd")).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            for (fd, target) in fds {
                symlink(target, dir.join("fd").join(fd.to_string())).unwrap();
            }
        }
    }

    #[test]
    fn link_targets() {
        assert_eq!(socket_link_inode(b"socket:[1]"), Some(1));
        assert_eq!(socket_link_inode(b"socket:[]"), None);
        assert_eq!(socket_link_inode(b"socket:[12a]"), None);
        assert_eq!(socket_link_inode(b"socket:[99999999999999999999999]"), None);
        assert_eq!(socket_link_inode(b"/dev/null"), None);
        assert_eq!(socket_link_inode(b"anon_inode:[pidfd]"), None);
    }

    #[test]
    fn sockets_of_one_process() {
        let p = FakeProc::new();
        p.process(
            42,
            "nginx",
            &[
                (0, "/dev/null"),
                (7, "socket:[700]"),
                (3, "socket:[300]"),
                (4, "pipe:[5]"),
            ],
        );
        assert_eq!(
            process_sockets(p.root(), 42).unwrap(),
            [
                SocketFd { fd: 3, inode: 300 },
                SocketFd { fd: 7, inode: 700 }
            ]
        );
        assert_eq!(command(p.root(), 42).as_deref(), Some("nginx"));
        let e = process_sockets(p.root(), 43).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn scan_maps_inodes_to_every_holder() {
        let p = FakeProc::new();
        p.process(10, "master", &[(5, "socket:[500]")]);
        p.process(11, "worker", &[(5, "socket:[500]"), (6, "socket:[600]")]);
        p.process(12, "other", &[(1, "/dev/null")]);
        std::fs::create_dir_all(p.root().join("self")).unwrap();
        std::fs::write(p.root().join("uptime"), "1 1\n").unwrap();
        let owners = Owners::scan(p.root()).unwrap();
        assert_eq!(
            owners.get(500),
            [
                Owner {
                    pid: 10,
                    command: "master".into(),
                    fd: 5
                },
                Owner {
                    pid: 11,
                    command: "worker".into(),
                    fd: 5
                }
            ]
        );
        assert_eq!(owners.get(600).len(), 1);
        assert!(owners.get(999).is_empty());
        assert_eq!(owners.denied(), 0);
    }

    #[test]
    fn a_process_without_fd_directory_is_skipped() {
        // A kernel thread's or an exiting process's fd directory is
        // missing or empty: that is no reason to call an owner unknown.
        let p = FakeProc::new();
        std::fs::create_dir_all(p.root().join("2")).unwrap();
        p.process(3, "x", &[(3, "socket:[3]")]);
        let owners = Owners::scan(p.root()).unwrap();
        assert_eq!(owners.get(3)[0].pid, 3);
        assert_eq!(owners.denied(), 0);
    }

    #[test]
    fn only_permission_errors_count_as_denied() {
        use rustix::io::Errno;
        let e = |errno: Errno| io::Error::from_raw_os_error(errno.raw_os_error());
        assert!(denied(&e(Errno::ACCESS)));
        assert!(denied(&e(Errno::PERM)));
        assert!(!denied(&e(Errno::NOENT)));
    }

    #[test]
    fn of_process_reads_one() {
        let p = FakeProc::new();
        p.process(10, "a", &[(5, "socket:[500]")]);
        p.process(11, "b", &[(6, "socket:[600]")]);
        let owners = Owners::of_process(p.root(), 11).unwrap();
        assert!(owners.get(500).is_empty());
        assert_eq!(owners.get(600)[0].command, "b");
    }

    #[test]
    fn units_of_cgroup_paths() {
        for (path, unit) in [
            ("/system.slice/nginx.service", Some("nginx.service")),
            (
                "/user.slice/user-1000.slice/session-2.scope",
                Some("session-2.scope"),
            ),
            (
                "/kubepods.slice/kubepods-burstable.slice/\
                 kubepods-burstable-pod123.slice/cri-containerd-abc.scope",
                Some("cri-containerd-abc.scope"),
            ),
            ("/system.slice/sshd.socket", Some("sshd.socket")),
            (
                "/system.slice/docker.service/sub/group",
                Some("docker.service"),
            ),
            ("/init.scope", Some("init.scope")),
            ("/user.slice/user-1000.slice", Some("user-1000.slice")),
            ("/system.slice", Some("system.slice")),
            ("/", None),
            ("", None),
            ("/process_api/b7854156e950ba221be39f686f999a01", None),
            ("/machine/.service", None),
            ("/a.slice/b.slice/.scope", Some("b.slice")),
        ] {
            assert_eq!(unit_of(path), unit, "{path}");
        }
    }

    #[test]
    fn cgroup_v2_line() {
        let unified = "0::/system.slice/nginx.service\n";
        assert_eq!(cgroup_v2_path(unified), Some("/system.slice/nginx.service"));
        // A hybrid host: v1 hierarchies, then the unified one (this
        // machine's own /proc/self/cgroup).
        let hybrid = "9:name=systemd:/\n\
                      4:memory:/process_api/b78\n\
                      1:cpu:/\n\
                      0::/\n";
        assert_eq!(cgroup_v2_path(hybrid), Some("/"));
        let v1_only = "12:pids:/user.slice\n1:name=systemd:/user.slice/a.scope\n";
        assert_eq!(cgroup_v2_path(v1_only), None);
        assert_eq!(
            cgroup_v2_path("0::/system.slice/gone.service (deleted)\n"),
            Some("/system.slice/gone.service")
        );
        assert_eq!(cgroup_v2_path(""), None);
    }

    #[test]
    fn cgroup_of_a_process() {
        let p = FakeProc::new();
        p.process(42, "nginx", &[]);
        let file = p.root().join("42/cgroup");
        std::fs::write(&file, "1:name=systemd:/x\n0::/system.slice/nginx.service\n").unwrap();
        assert_eq!(
            cgroup(p.root(), 42).unwrap().as_deref(),
            Some("/system.slice/nginx.service")
        );
        std::fs::write(&file, "1:name=systemd:/x\n").unwrap();
        assert_eq!(cgroup(p.root(), 42).unwrap(), None, "v1 only");
        let e = cgroup(p.root(), 43).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn real_proc_cgroup_of_ourselves() {
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let want = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned);
        let got = cgroup(Path::new(PROC), std::process::id()).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn real_proc_finds_our_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = crate::socket_inode(&l).unwrap().unwrap();
        let owners = Owners::of_process(Path::new(PROC), std::process::id()).unwrap();
        assert_eq!(owners.get(inode)[0].pid, std::process::id());
    }
}
