/*
 * probe: creates sockets the way real programs do and prints what the
 * kernel reports for them, one line per socket:
 *
 *   <what> fd=3 errno=4242 keepalive=1 keepcnt=20 keepidle=180 keepintvl=60
 *          user_timeout=0 nodelay=0 cloexec=0 nonblock=0
 *
 * (a single line; an option getsockopt refuses reads -1). Stress modes print
 * one summary line of counters. Commands run in argv order:
 *
 *   socket DOMAIN TYPE PROTO   socket(); DOMAIN inet|inet6|unix|<n>,
 *                              TYPE stream|dgram|raw|seqpacket|<n> with
 *                              optional +cloexec/+nonblock, PROTO
 *                              tcp|udp|mptcp|<n>. errno is set to 4242
 *                              before the call; the line shows errno after.
 *                              The socket stays open.
 *   set OPTION VALUE           setsockopt on the last socket (keepalive,
 *                              keepidle, keepcnt, keepintvl), then a line.
 *   accept FD / accept4 FD     accept() / accept4(SOCK_CLOEXEC) on FD.
 *   threads N PER IDLE         N threads start together, PER sockets each.
 *   signal N IDLE              N sockets in the main loop while a SIGALRM
 *                              handler makes sockets too.
 *   fork N IDLE                N children forked while threads make sockets.
 *   leak N1 N2                 open fds and VmRSS after N1 and N2 sockets.
 *
 * IDLE is the TCP_KEEPIDLE every socket must have; a socket counts as good
 * when it has SO_KEEPALIVE=1 and that TCP_KEEPIDLE.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define SENTINEL_ERRNO 4242

static void die(const char *what) {
    fprintf(stderr, "probe: %s\n", what);
    exit(2);
}

static int opt(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, name, &v, &len) != 0)
        return -1;
    return v;
}

static void show(const char *what, int fd, int err) {
    int cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) ? 1 : 0;
    int nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) ? 1 : 0;
    printf("%s fd=%d errno=%d keepalive=%d keepcnt=%d keepidle=%d keepintvl=%d "
           "user_timeout=%d nodelay=%d cloexec=%d nonblock=%d\n",
           what, fd, err, opt(fd, SOL_SOCKET, SO_KEEPALIVE),
           opt(fd, IPPROTO_TCP, TCP_KEEPCNT), opt(fd, IPPROTO_TCP, TCP_KEEPIDLE),
           opt(fd, IPPROTO_TCP, TCP_KEEPINTVL),
           opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT),
           opt(fd, IPPROTO_TCP, TCP_NODELAY), cloexec, nonblock);
}

static int number(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        die("bad number");
    return (int)v;
}

static int domain_arg(const char *s) {
    if (!strcmp(s, "inet")) return AF_INET;
    if (!strcmp(s, "inet6")) return AF_INET6;
    if (!strcmp(s, "unix")) return AF_UNIX;
    return number(s);
}

static int type_arg(const char *s) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    int flags = 0;
    char *plus;
    while ((plus = strrchr(buf, '+'))) {
        if (!strcmp(plus, "+cloexec")) flags |= SOCK_CLOEXEC;
        else if (!strcmp(plus, "+nonblock")) flags |= SOCK_NONBLOCK;
        else die("bad type flag");
        *plus = '\0';
    }
    if (!strcmp(buf, "stream")) return SOCK_STREAM | flags;
    if (!strcmp(buf, "dgram")) return SOCK_DGRAM | flags;
    if (!strcmp(buf, "raw")) return SOCK_RAW | flags;
    if (!strcmp(buf, "seqpacket")) return SOCK_SEQPACKET | flags;
    return number(buf) | flags;
}

static int proto_arg(const char *s) {
    if (!strcmp(s, "tcp")) return IPPROTO_TCP;
    if (!strcmp(s, "udp")) return IPPROTO_UDP;
    if (!strcmp(s, "mptcp")) return 262;
    return number(s);
}

static int option_arg(const char *s, int *level) {
    *level = IPPROTO_TCP;
    if (!strcmp(s, "keepalive")) { *level = SOL_SOCKET; return SO_KEEPALIVE; }
    if (!strcmp(s, "keepidle")) return TCP_KEEPIDLE;
    if (!strcmp(s, "keepcnt")) return TCP_KEEPCNT;
    if (!strcmp(s, "keepintvl")) return TCP_KEEPINTVL;
    die("bad option");
    return -1;
}

/* A new TCP socket has keepalive and the expected TCP_KEEPIDLE. */
static int good_socket(int idle) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int ok = opt(fd, SOL_SOCKET, SO_KEEPALIVE) == 1 &&
             opt(fd, IPPROTO_TCP, TCP_KEEPIDLE) == idle;
    close(fd);
    return ok;
}

/* threads */

struct crowd {
    pthread_barrier_t start;
    int per_thread, idle;
    atomic_long made, good;
};

static void *crowd_member(void *arg) {
    struct crowd *c = arg;
    pthread_barrier_wait(&c->start);
    for (int i = 0; i < c->per_thread; i++) {
        int ok = good_socket(c->idle);
        atomic_fetch_add(&c->made, 1);
        atomic_fetch_add(&c->good, ok);
    }
    return NULL;
}

static void threads(int n, int per_thread, int idle) {
    struct crowd c = {.per_thread = per_thread, .idle = idle};
    pthread_t t[64];
    if (n < 1 || n > 64) die("1..64 threads");
    pthread_barrier_init(&c.start, NULL, n);
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, crowd_member, &c)) die("pthread_create");
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    printf("threads total=%ld good=%ld\n", atomic_load(&c.made), atomic_load(&c.good));
}

/* signal */

static atomic_int handler_idle;
static atomic_long handler_made, handler_good;

static void on_alarm(int sig) {
    (void)sig;
    int saved = errno;
    int ok = good_socket(atomic_load(&handler_idle));
    atomic_fetch_add(&handler_made, 1);
    atomic_fetch_add(&handler_good, ok);
    errno = saved;
}

static void in_signal_handler(int n, int idle) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    atomic_store(&handler_idle, idle);
    if (sigaction(SIGALRM, &sa, NULL)) die("sigaction");
    struct itimerval every = {{0, 100}, {0, 100}};
    if (setitimer(ITIMER_REAL, &every, NULL)) die("setitimer");
    long made = 0, good = 0;
    for (int i = 0; i < n; i++) {
        good += good_socket(idle);
        made++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("signal main=%ld main_good=%ld handler=%ld handler_good=%ld\n", made,
           good, atomic_load(&handler_made), atomic_load(&handler_good));
}

/* fork */

static atomic_int stop;

static void *churn(void *arg) {
    struct crowd *c = arg;
    while (!atomic_load(&stop)) {
        int ok = good_socket(c->idle);
        atomic_fetch_add(&c->made, 1);
        atomic_fetch_add(&c->good, ok);
    }
    return NULL;
}

static void fork_while_busy(int children, int idle) {
    struct crowd c = {.idle = idle};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, churn, &c)) die("pthread_create");
    int failed = 0, forked = 0;
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0)
            _exit(good_socket(idle) ? 0 : 1);
        forked++;
        int status;
        if (waitpid(pid, &status, 0) != pid) die("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("fork children=%d failed=%d thread_sockets=%ld thread_good=%ld\n",
           forked, failed, atomic_load(&c.made), atomic_load(&c.good));
}

/* leak */

static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) die("opendir /proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) die("fopen /proc/self/status");
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static void leak(int first, int second) {
    int fds_before = open_fds();
    /* Warm up stdio and the allocator before the first measurement. */
    long rss_start = rss_kib();
    for (int i = 0; i < first; i++)
        close(socket(AF_INET, SOCK_STREAM, 0));
    int fds_after = open_fds();
    long rss_first = rss_kib();
    for (int i = first; i < second; i++)
        close(socket(AF_INET, SOCK_STREAM, 0));
    long rss_second = rss_kib();
    printf("leak fds_before=%d fds_after=%d rss_start=%ld rss_first=%ld rss_second=%ld\n",
           fds_before, fds_after, rss_start, rss_first, rss_second);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int last = -1;
    for (int i = 1; i < argc;) {
        const char *cmd = argv[i];
#define NEED(n) do { if (i + (n) >= argc) die("missing arguments"); } while (0)
        if (!strcmp(cmd, "socket")) {
            NEED(3);
            int d = domain_arg(argv[i + 1]), t = type_arg(argv[i + 2]),
                p = proto_arg(argv[i + 3]);
            errno = SENTINEL_ERRNO;
            int fd = socket(d, t, p);
            int err = errno;
            if (fd < 0)
                printf("socket fd=-1 errno=%d\n", err);
            else
                show("socket", fd, err), last = fd;
            i += 4;
        } else if (!strcmp(cmd, "set")) {
            NEED(2);
            int level, name = option_arg(argv[i + 1], &level), v = number(argv[i + 2]);
            if (setsockopt(last, level, name, &v, sizeof v)) die("setsockopt");
            show("set", last, errno);
            i += 3;
        } else if (!strcmp(cmd, "accept") || !strcmp(cmd, "accept4")) {
            NEED(1);
            int listener = number(argv[i + 1]);
            errno = SENTINEL_ERRNO;
            int fd = cmd[6] ? accept4(listener, NULL, NULL, SOCK_CLOEXEC)
                            : accept(listener, NULL, NULL);
            int err = errno;
            if (fd < 0)
                printf("%s fd=-1 errno=%d\n", cmd, err);
            else
                show(cmd, fd, err);
            i += 2;
        } else if (!strcmp(cmd, "threads")) {
            NEED(3);
            threads(number(argv[i + 1]), number(argv[i + 2]), number(argv[i + 3]));
            i += 4;
        } else if (!strcmp(cmd, "signal")) {
            NEED(2);
            in_signal_handler(number(argv[i + 1]), number(argv[i + 2]));
            i += 3;
        } else if (!strcmp(cmd, "fork")) {
            NEED(2);
            fork_while_busy(number(argv[i + 1]), number(argv[i + 2]));
            i += 3;
        } else if (!strcmp(cmd, "leak")) {
            NEED(2);
            leak(number(argv[i + 1]), number(argv[i + 2]));
            i += 3;
        } else {
            die("unknown command");
        }
    }
    return 0;
}
