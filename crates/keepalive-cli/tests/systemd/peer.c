/*
 * peer: the statically linked programs of the systemd test (tests/systemd),
 * built on the host with `gcc -static` and copied into the container, so
 * that no preload can reach them: only `keepalive enforce` can.
 *
 *   peer listen PORT           listens on 127.0.0.1:PORT and holds every
 *                              connection it accepts, forever.
 *   peer connect PORT FILE     connects to 127.0.0.1:PORT once a second,
 *                              keeps the newest connection open, and after
 *                              each connect appends one line about that
 *                              connection to FILE (a single write):
 *                                pid=P seq=N keepalive=0|1 idle=S intvl=S cnt=N
 *                              seq counts from 1 in each process, so the
 *                              first line after a start is its first
 *                              connection.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int option(int fd, int level, int name)
{
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(fd, level, name, &value, &len) != 0)
        return -1;
    return value;
}

static struct sockaddr_in loopback(const char *port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sin;
}

static int listen_forever(const char *port)
{
    struct sockaddr_in sin = loopback(port);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, 64) != 0) {
        perror("peer listen");
        return 1;
    }
    for (;;) {
        /* Accepted connections stay open: the descriptors are never closed. */
        if (accept(fd, NULL, NULL) < 0 && errno != EINTR && errno != ECONNABORTED) {
            if (errno == EMFILE)
                sleep(1);
            else {
                perror("peer accept");
                return 1;
            }
        }
    }
}

static int report(const char *file, long seq, int fd)
{
    char line[256];
    int n = snprintf(line, sizeof line, "pid=%ld seq=%ld keepalive=%d idle=%d intvl=%d cnt=%d\n",
                     (long)getpid(), seq, option(fd, SOL_SOCKET, SO_KEEPALIVE),
                     option(fd, IPPROTO_TCP, TCP_KEEPIDLE), option(fd, IPPROTO_TCP, TCP_KEEPINTVL),
                     option(fd, IPPROTO_TCP, TCP_KEEPCNT));
    int out = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (out < 0)
        return -1;
    if (write(out, line, (size_t)n) != n) {
        close(out);
        return -1;
    }
    return close(out);
}

static int connect_forever(const char *port, const char *file)
{
    struct sockaddr_in sin = loopback(port);
    int held = -1;
    long seq = 0;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            perror("peer socket");
            return 1;
        }
        if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
            /* The listener is not up yet: try again. */
            close(fd);
            usleep(200 * 1000);
            continue;
        }
        if (report(file, ++seq, fd) != 0) {
            perror(file);
            return 1;
        }
        if (held >= 0)
            close(held);
        held = fd;
        sleep(1);
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "listen") == 0)
        return listen_forever(argv[2]);
    if (argc == 4 && strcmp(argv[1], "connect") == 0)
        return connect_forever(argv[2], argv[3]);
    fprintf(stderr, "usage: peer listen PORT | peer connect PORT FILE\n");
    return 2;
}
