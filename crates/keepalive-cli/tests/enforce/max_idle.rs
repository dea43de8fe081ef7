//! Issue 10 item 2: what a program sets itself, before and after
//! connecting, against `--max-idle` and `--force` (the cgroup/setsockopt
//! companion program), judged by what a static C client and a Go client
//! read back with getsockopt, and by the return values of their own
//! setsockopt calls.

use super::*;

/// A static C client that runs its arguments as steps, in order, on one
/// TCP socket, and prints what each returned:
///
/// - `connect`: connects to ADDR PORT (`connected rc=`);
/// - `on`, `off`: `setsockopt(SO_KEEPALIVE, 1 | 0)` (`set rc= errno=`);
/// - `idle=N`, `intvl=N`, `cnt=N`: `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
///   `TCP_KEEPCNT`;
///
/// then `final keepalive= keepcnt= keepidle= keepintvl= user_timeout=`.
const SOCKOPT_C: &str = r#"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int opt(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, name, &v, &len) != 0) return -1;
    return v;
}

static void set(int fd, const char *what, int level, int name, int v) {
    errno = 0;
    int rc = setsockopt(fd, level, name, &v, sizeof v);
    printf("set_%s rc=%d errno=%d value=%d\n", what, rc, rc ? errno : 0, v);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sockopt_client ADDR PORT STEP...\n");
        return 2;
    }
    struct sockaddr_in in4;
    memset(&in4, 0, sizeof in4);
    in4.sin_family = AF_INET;
    in4.sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &in4.sin_addr) != 1) return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 2; }
    for (int i = 3; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "connect")) {
            int rc = connect(fd, (struct sockaddr *)&in4, sizeof in4);
            printf("connected rc=%d\n", rc);
            if (rc) { perror("connect"); return 2; }
        } else if (!strcmp(s, "on")) {
            set(fd, "keepalive", SOL_SOCKET, SO_KEEPALIVE, 1);
        } else if (!strcmp(s, "off")) {
            set(fd, "keepalive", SOL_SOCKET, SO_KEEPALIVE, 0);
        } else if (!strncmp(s, "idle=", 5)) {
            set(fd, "idle", IPPROTO_TCP, TCP_KEEPIDLE, atoi(s + 5));
        } else if (!strncmp(s, "intvl=", 6)) {
            set(fd, "intvl", IPPROTO_TCP, TCP_KEEPINTVL, atoi(s + 6));
        } else if (!strncmp(s, "cnt=", 4)) {
            set(fd, "cnt", IPPROTO_TCP, TCP_KEEPCNT, atoi(s + 4));
        } else {
            fprintf(stderr, "unknown step %s\n", s);
            return 2;
        }
    }
    printf("final keepalive=%d keepcnt=%d keepidle=%d keepintvl=%d user_timeout=%d\n",
           opt(fd, SOL_SOCKET, SO_KEEPALIVE), opt(fd, IPPROTO_TCP, TCP_KEEPCNT),
           opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), opt(fd, IPPROTO_TCP, TCP_KEEPINTVL),
           opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT));
    return 0;
}
"#;

/// A Go client (standard library only): dials ADDR:PORT with
/// `net.Dialer{KeepAlive: SECS}` (-1: Go leaves keepalive alone), then
/// optionally `SetKeepAlive(false)` (`off`) or `SetKeepAlivePeriod(1h)`
/// (`hour`), and prints `go keepalive= keepidle= keepintvl= keepcnt=` read
/// on the raw descriptor, and `go_err n=` (how many of its calls failed).
const CLIENT_GO: &str = r#"package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	secs, _ := strconv.Atoi(os.Args[2])
	d := net.Dialer{KeepAlive: time.Duration(secs) * time.Second}
	if secs < 0 {
		d.KeepAlive = -1
	}
	c, err := d.Dial("tcp4", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tc := c.(*net.TCPConn)
	failed := 0
	for _, step := range os.Args[3:] {
		switch step {
		case "off":
			if tc.SetKeepAlive(false) != nil {
				failed++
			}
		case "hour":
			if tc.SetKeepAlivePeriod(time.Hour) != nil {
				failed++
			}
		}
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		os.Exit(2)
	}
	var on, idle, intvl, cnt int
	raw.Control(func(fd uintptr) {
		on, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		intvl, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		cnt, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	})
	fmt.Printf("go keepalive=%d keepidle=%d keepintvl=%d keepcnt=%d\n", on, idle, intvl, cnt)
	fmt.Printf("go_err n=%d\n", failed)
}
"#;

/// Builds `source` once with `gcc -static`.
fn sockopt_client() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).unwrap();
        let pid = std::process::id();
        let src = dir.join(format!("sockopt_client.{pid}.c"));
        std::fs::write(&src, SOCKOPT_C).unwrap();
        let out = dir.join("sockopt_client");
        let partial = dir.join(format!("sockopt_client.{pid}.partial"));
        let result = run(
            Command::new("gcc")
                .args(["-static", "-O2", "-Wall", "-o"])
                .arg(&partial)
                .arg(&src),
            Duration::from_secs(120),
        );
        let _ = std::fs::remove_file(&src);
        assert!(result.status.success(), "gcc -static failed\n{result}");
        std::fs::rename(&partial, &out).unwrap();
        out
    })
}

/// Builds the Go client once with Debian's `go` (offline: standard
/// library only, caches in a temporary directory); `None`, with the reason,
/// when there is no Go toolchain.
fn go_client() -> Result<&'static Path, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let go = ["/usr/lib/go/bin/go", "/usr/bin/go"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| tool("go"))
            .ok_or("no Go toolchain (apt-get install golang-go)")?;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("go-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("main.go");
        std::fs::write(&src, CLIENT_GO).unwrap();
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go_keepalive_client");
        let mut cmd = Command::new(&go);
        cmd.current_dir(&dir)
            .env("GOCACHE", dir.join("cache"))
            .env("GOPATH", dir.join("gopath"))
            .env("HOME", &dir)
            .env("CGO_ENABLED", "0")
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOPROXY", "off")
            .args(["build", "-o"])
            .arg(&out)
            .arg("main.go");
        let result = run(&mut cmd, Duration::from_secs(300));
        let _ = std::fs::remove_dir_all(&dir);
        if !result.status.success() {
            return Err(format!("go build failed\n{result}"));
        }
        Ok(out)
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(Clone::clone)
}

/// Runs `bin args` inside `cg` (a shell moves itself in, then execs).
fn run_in(cg: &Path, bin: &Path, args: &[&str]) -> Output {
    let mut cmd = bare("sh");
    cmd.arg("-c")
        .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
        .arg(cg)
        .arg(bin)
        .args(args);
    run(&mut cmd, TIMEOUT)
}

/// The C client's steps run in `cg` against a fresh loopback listener:
/// its `final` values, after checking that every setsockopt returned 0.
pub(super) fn steps_in(cg: &Path, steps: &[&str]) -> Keepalive {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let args: Vec<&str> = ["127.0.0.1", port.as_str()]
        .into_iter()
        .chain(steps.iter().copied())
        .collect();
    let out = run_in(cg, sockopt_client(), &args);
    out.assert_success();
    for r in out.records() {
        if r.what.starts_with("set_") || r.what == "connected" {
            assert_eq!(
                r.get("rc"),
                0,
                "the program's call failed: {}\n{out}",
                r.line
            );
        }
    }
    out.only("final").keepalive()
}

/// The Go client in `cg`, dialing with KeepAlive `secs`: its view, and
/// that none of its calls failed.
fn go_in(cg: &Path, go: &Path, secs: &str, steps: &[&str]) -> Keepalive {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let args: Vec<&str> = [addr.as_str(), secs]
        .into_iter()
        .chain(steps.iter().copied())
        .collect();
    let out = run_in(cg, go, &args);
    out.assert_success();
    assert_eq!(out.only("go_err").get("n"), 0, "{out}");
    let r = out.only("go");
    Keepalive {
        on: r.get("keepalive"),
        count: r.get("keepcnt"),
        idle: r.get("keepidle"),
        interval: r.get("keepintvl"),
        user_timeout: 0,
    }
}

#[test]
fn max_idle_holds_against_the_programs_own_setsockopt() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("max-idle-c");
    // Without enforcement the program's calls take effect: the test's
    // premise.
    let free = steps_in(cg.path(), &["connect", "on", "idle=3600", "intvl=600"]);
    assert_eq!((free.on, free.idle, free.interval), (1, 3600, 600));
    assert_eq!(steps_in(cg.path(), &["connect", "on", "off"]).on, 0);

    let e = enforce(&["--cgroup", cg.arg(), "--max-idle", "10"]);
    assert_eq!(e.settings.mode, "max_idle");
    assert_eq!(e.settings.max_idle_secs, Some(10));
    assert!(e.setsockopt_prog_id.is_some(), "{e:?}");

    // Off and an hour after connecting: keepalive stays on, at most 10 s.
    let after = steps_in(cg.path(), &["connect", "off", "idle=3600", "intvl=3600"]);
    assert_eq!(after.on, 1, "{after:?}");
    assert!(after.idle <= 10 && after.interval <= 10, "{after:?}");
    // The same before connecting.
    let before = steps_in(cg.path(), &["off", "idle=3600", "intvl=3600", "connect"]);
    assert_eq!(before.on, 1, "{before:?}");
    assert!(before.idle <= 10 && before.interval <= 10, "{before:?}");
    // Nothing set by the program: on, capped from the kernel's 7200 s.
    let nothing = steps_in(cg.path(), &["connect"]);
    assert_eq!((nothing.on, nothing.idle, nothing.interval), (1, 10, 10));
    // Shorter values stand, and so does the count.
    let shorter = steps_in(cg.path(), &["connect", "on", "idle=5", "intvl=3", "cnt=4"]);
    assert_eq!(
        (shorter.on, shorter.idle, shorter.interval, shorter.count),
        (1, 5, 3, 4)
    );
    // --idle and --interval below the cap are applied where the program
    // did not switch keepalive on itself.
    enforce(&["--cgroup", cg.arg(), "--max-idle", "10", "--idle", "7"]);
    let given = steps_in(cg.path(), &["connect"]);
    assert_eq!((given.on, given.idle, given.interval), (1, 7, 10));
}

#[test]
fn max_idle_refuses_values_above_it() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("max-idle-refused");
    let out = run(
        keepalive().args([
            "enforce",
            "--cgroup",
            cg.arg(),
            "--max-idle",
            "10",
            "--idle",
            "60",
        ]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains("above --max-idle"), "{out}");
    let out = run(
        keepalive().args([
            "enforce",
            "--cgroup",
            cg.arg(),
            "--max-idle",
            "10",
            "--force",
        ]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
}

#[test]
fn force_holds_our_values_against_later_setsockopt() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("force-held");
    let mut args = vec!["--cgroup", cg.arg(), "--force"];
    args.extend(ENFORCE);
    let e = enforce(&args);
    assert_eq!(e.settings.mode, "force");
    let got = steps_in(
        cg.path(),
        &["connect", "off", "idle=3600", "intvl=600", "cnt=9"],
    );
    assert_eq!(got, ENFORCED, "our exact values, the calls returning 0");
    let before = steps_in(cg.path(), &["on", "idle=3600", "connect", "off"]);
    assert_eq!(before, ENFORCED);
}

#[test]
fn default_mode_leaves_the_programs_later_calls_alone() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("default-later");
    let mut args = vec!["--cgroup", cg.arg()];
    args.extend(ENFORCE);
    assert_eq!(enforce(&args).settings.mode, "default");
    assert_eq!(steps_in(cg.path(), &["connect"]), ENFORCED);
    let later = steps_in(cg.path(), &["connect", "idle=3600", "off"]);
    assert_eq!((later.on, later.idle), (0, 3600));
}

#[test]
fn go_client_under_default_mode_and_max_idle() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let go = match go_client() {
        Ok(go) => go,
        Err(why) => skip!("{why}"),
    };
    let cg = TestCgroup::new("go");
    // Go switches keepalive on itself after connecting, 15 s.
    let own = go_in(cg.path(), go, "0", &[]);
    assert_eq!(
        (own.on, own.idle, own.interval),
        (1, 15, 15),
        "Go's default"
    );

    // Default mode: enforcement acts at establishment, Go's own call after
    // it wins: it keeps its 15 s.
    enforce(&["--cgroup", cg.arg(), "--idle", "60", "--interval", "20"]);
    let default = go_in(cg.path(), go, "0", &[]);
    assert_eq!((default.on, default.idle, default.interval), (1, 15, 15));
    // KeepAlive: -1: Go leaves it alone, the enforcement's values stand.
    let left = go_in(cg.path(), go, "-1", &[]);
    assert_eq!((left.on, left.idle, left.interval), (1, 60, 20));

    enforce(&["--cgroup", cg.arg(), "--max-idle", "10"]);
    let capped = go_in(cg.path(), go, "0", &[]);
    assert_eq!(capped.on, 1);
    assert!(capped.idle <= 10 && capped.interval <= 10, "{capped:?}");
    // Shorter than the cap: Go's own 5 s stands.
    let shorter = go_in(cg.path(), go, "5", &[]);
    assert_eq!((shorter.on, shorter.idle, shorter.interval), (1, 5, 5));
    // KeepAlive: -1, and switching it off or to an hour after dialing:
    // still on, at most 10 s, and Go saw no error.
    for steps in [&[][..], &["off"], &["hour"], &["off", "hour"]] {
        let got = go_in(cg.path(), go, "-1", steps);
        assert_eq!(got.on, 1, "{steps:?}: {got:?}");
        assert!(got.idle <= 10 && got.interval <= 10, "{steps:?}: {got:?}");
    }
}

#[test]
fn status_shows_the_mode() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let (a, b, c) = (
        TestCgroup::new("mode-default"),
        TestCgroup::new("mode-force"),
        TestCgroup::new("mode-max-idle"),
    );
    enforce(&["--cgroup", a.arg(), "--idle", "60"]);
    enforce(&["--cgroup", b.arg(), "--idle", "60", "--force"]);
    enforce(&["--cgroup", c.arg(), "--max-idle", "45"]);
    let (all, _) = enforce_status();
    let mode_of = |cg: &TestCgroup| {
        let e = all
            .iter()
            .find(|e| e.cgroup.as_deref() == Some(cg.path()))
            .expect("listed");
        assert!(e.setsockopt_prog_id.is_some(), "{e:?}");
        let p = e.settings.as_ref().expect("settings");
        (p.mode.clone(), p.max_idle_secs)
    };
    assert_eq!(mode_of(&a), ("default".to_owned(), None));
    assert_eq!(mode_of(&b), ("force".to_owned(), None));
    assert_eq!(mode_of(&c), ("max_idle".to_owned(), Some(45)));

    let out = run(keepalive().args(["enforce", "--status"]), TIMEOUT);
    out.assert_success();
    let block = |cg: &TestCgroup| {
        let start = out
            .stdout
            .find(&format!("{} (cgroup id", cg.arg()))
            .unwrap_or_else(|| panic!("{} listed\n{out}", cg.arg()));
        let rest = &out.stdout[start..];
        let end = rest.find("  pins:").unwrap_or(rest.len());
        rest[..end].to_owned()
    };
    assert!(block(&a).contains("mode: default"), "{out}");
    assert!(block(&b).contains("mode: force"), "{out}");
    assert!(block(&c).contains("mode: max-idle 45s"), "{out}");
}

#[test]
fn remove_leaves_nothing_on_either_hook() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("remove-both");
    let e = enforce(&["--cgroup", cg.arg(), "--max-idle", "10"]);
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [e.prog_id]
    );
    assert_eq!(
        keepalive_bpf::attached_setsockopt_programs(cg.path()).unwrap(),
        [e.setsockopt_prog_id.unwrap()]
    );
    let r = remove(&["--cgroup", cg.arg()]);
    assert_eq!(r.detached.len(), 1, "{r:?}");
    assert_eq!(
        r.setsockopt_detached
            .iter()
            .map(|d| d.prog_id)
            .collect::<Vec<_>>(),
        [e.setsockopt_prog_id.unwrap()],
        "the companion link too"
    );
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(
        keepalive_bpf::attached_setsockopt_programs(cg.path()).unwrap(),
        Vec::<u32>::new()
    );
    assert!(
        !e.pin_dir.exists(),
        "no pin left in {}",
        e.pin_dir.display()
    );
    // The program's calls are its own again.
    let free = steps_in(cg.path(), &["connect", "on", "off"]);
    assert_eq!(free.on, 0);
}

/// `run --enforce --max-idle`: the command's own `SO_KEEPALIVE=0` and an
/// hour of idle are rewritten in its cgroup, and its calls succeed.
#[test]
fn run_enforce_takes_max_idle() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let out = run(
        keepalive()
            .args(["run", "--enforce", "--max-idle", "9", "--"])
            .arg(sockopt_client())
            .args([
                "127.0.0.1",
                &port,
                "connect",
                "off",
                "idle=3600",
                "intvl=3600",
            ]),
        TIMEOUT,
    );
    out.assert_success();
    for r in out.records() {
        if r.what.starts_with("set_") || r.what == "connected" {
            assert_eq!(r.get("rc"), 0, "{}\n{out}", r.line);
        }
    }
    let got = out.only("final").keepalive();
    assert_eq!(got.on, 1, "{got:?}\n{out}");
    assert!(got.idle <= 9 && got.interval <= 9, "{got:?}\n{out}");
    // --max-idle without --enforce, or with --force, is a usage error.
    for args in [
        &["run", "--max-idle", "9", "--", "true"][..],
        &[
            "run",
            "--enforce",
            "--force",
            "--max-idle",
            "9",
            "--",
            "true",
        ],
    ] {
        let out = run(keepalive().args(args), TIMEOUT);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{out}");
    }
}
