/*
 * bench_socket: time socket() + close() in a tight loop.
 *
 * Built and run by ../preload.rs (`cargo bench -p keepalive-cli --bench
 * preload`), with and without LD_PRELOAD=libkeepalive.so.
 *
 * usage: bench_socket MODE ITERATIONS REPETITIONS
 *   MODE is one of
 *     tcp         socket(AF_INET, SOCK_STREAM, 0)
 *     tcp-manual  the same, then the four setsockopt calls the preload makes
 *                 (SO_KEEPALIVE, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL):
 *                 the floor the preload cannot go under
 *     udp         socket(AF_INET, SOCK_DGRAM, 0): the preload must not touch it
 *     paired      all of the above in one process, in alternating blocks of
 *                 ITERATIONS calls, so that slow drifts of the machine's
 *                 speed hit every variant alike: socket() as the program
 *                 sees it (through a preload, if one is loaded) against
 *                 libc's own socket(), looked up with dlsym() so that no
 *                 preload is in its way
 *
 * Output, one record a line:
 *   probe SO_KEEPALIVE TCP_KEEPCNT TCP_KEEPIDLE TCP_KEEPINTVL
 *       options found on one socket of MODE before timing (-1: not
 *       readable; paired: a TCP socket from socket()), so the caller can
 *       check that the preload really was in effect, or really absent;
 *   rep NS
 *       tcp, tcp-manual, udp: nanoseconds per call for one repetition of
 *       ITERATIONS calls, one line per repetition, after an untimed warm-up;
 *   set TCP TCP_LIBC TCP_MANUAL_LIBC UDP UDP_LIBC
 *       paired: nanoseconds per call for one block of each variant, one line
 *       per repetition; *_LIBC call libc's socket() directly.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Fixed values for the manual options: the ones the benchmark gives the
 * preload. */
enum { MANUAL_KEEPCNT = 20, MANUAL_KEEPIDLE = 180, MANUAL_KEEPINTVL = 60 };

/* What one timed call does. The first five are, in this order, the columns
 * of a "set" line. */
enum variant {
	TCP,             /* socket(), interposed if a preload is loaded */
	TCP_LIBC,        /* libc's socket() */
	TCP_MANUAL_LIBC, /* libc's socket() + the four setsockopt calls */
	UDP,             /* socket(), interposed if a preload is loaded */
	UDP_LIBC,        /* libc's socket() */
	PAIRED_VARIANTS, /* count of the above */
	TCP_MANUAL = PAIRED_VARIANTS, /* socket() + the four setsockopt calls */
};

typedef int (*socket_fn)(int, int, int);

/* libc's socket(), bypassing any preload; set up in main() for paired. */
static socket_fn libc_socket;

static void die(const char *what)
{
	fprintf(stderr, "bench_socket: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_int(int fd, int level, int name, int value)
{
	if (setsockopt(fd, level, name, &value, sizeof value) != 0)
		die("setsockopt");
}

static int get_int(int fd, int level, int name)
{
	int value = -1;
	socklen_t len = sizeof value;

	if (getsockopt(fd, level, name, &value, &len) != 0)
		return -1;
	return value;
}

static void set_manual_options(int fd)
{
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, MANUAL_KEEPCNT);
	set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, MANUAL_KEEPIDLE);
	set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, MANUAL_KEEPINTVL);
}

/* Opens the socket of one call of variant v. */
static int open_socket(enum variant v)
{
	int fd;

	switch (v) {
	case TCP:
	case TCP_MANUAL:
		fd = socket(AF_INET, SOCK_STREAM, 0);
		break;
	case TCP_LIBC:
	case TCP_MANUAL_LIBC:
		fd = libc_socket(AF_INET, SOCK_STREAM, 0);
		break;
	case UDP:
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		break;
	default:
		fd = libc_socket(AF_INET, SOCK_DGRAM, 0);
		break;
	}
	if (fd < 0)
		die("socket");
	if (v == TCP_MANUAL || v == TCP_MANUAL_LIBC)
		set_manual_options(fd);
	return fd;
}

static void probe(enum variant v)
{
	int fd = open_socket(v);
	int tcp = v != UDP && v != UDP_LIBC;

	printf("probe %d %d %d %d\n", get_int(fd, SOL_SOCKET, SO_KEEPALIVE),
	       tcp ? get_int(fd, IPPROTO_TCP, TCP_KEEPCNT) : -1,
	       tcp ? get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE) : -1,
	       tcp ? get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL) : -1);
	close(fd);
}

static double now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime");
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Runs `iterations` socket() + close() of variant v; ns per call. */
static double block(enum variant v, long iterations)
{
	double start = now_ns();

	for (long i = 0; i < iterations; i++) {
		if (close(open_socket(v)) != 0)
			die("close");
	}
	return (now_ns() - start) / (double)iterations;
}

int main(int argc, char **argv)
{
	enum variant single = TCP;
	int paired = 0;
	long iterations, reps;

	if (argc != 4) {
		fprintf(stderr, "usage: %s tcp|tcp-manual|udp|paired ITERATIONS REPETITIONS\n",
			argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "tcp") == 0)
		single = TCP;
	else if (strcmp(argv[1], "tcp-manual") == 0)
		single = TCP_MANUAL;
	else if (strcmp(argv[1], "udp") == 0)
		single = UDP;
	else if (strcmp(argv[1], "paired") == 0)
		paired = 1;
	else {
		fprintf(stderr, "bench_socket: unknown mode %s\n", argv[1]);
		return 2;
	}
	iterations = strtol(argv[2], NULL, 10);
	reps = strtol(argv[3], NULL, 10);
	if (iterations <= 0 || reps <= 0) {
		fprintf(stderr, "bench_socket: ITERATIONS and REPETITIONS must be > 0\n");
		return 2;
	}

	if (paired) {
		void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);

		if (libc == NULL || (libc_socket = (socket_fn)dlsym(libc, "socket")) == NULL) {
			fprintf(stderr, "bench_socket: cannot find libc's socket(): %s\n",
				dlerror());
			return 1;
		}
	}

	probe(single);

	if (!paired) {
		/* Warm-up: fault in the code paths, the fd table, the slabs. */
		block(single, iterations / 4 + 1);
		for (long r = 0; r < reps; r++)
			printf("rep %.2f\n", block(single, iterations));
		return fflush(stdout) == 0 ? 0 : 1;
	}

	for (int v = 0; v < PAIRED_VARIANTS; v++)
		block(v, iterations);
	for (long r = 0; r < reps; r++) {
		double ns[PAIRED_VARIANTS];

		/* Rotate the order, so no variant always follows the same one. */
		for (int i = 0; i < PAIRED_VARIANTS; i++) {
			int v = (int)((i + r) % PAIRED_VARIANTS);

			ns[v] = block(v, iterations);
		}
		printf("set %.2f %.2f %.2f %.2f %.2f\n", ns[TCP], ns[TCP_LIBC],
		       ns[TCP_MANUAL_LIBC], ns[UDP], ns[UDP_LIBC]);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
