/*
 * libctor.so: a library whose constructor makes a TCP socket, as a library
 * that connects at load time would. It reports, on stderr, what the kernel
 * shows for that socket:
 *
 *   ctor: keepalive=1 keepidle=180
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int opt(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, name, &v, &len) != 0)
        return -1;
    return v;
}

__attribute__((constructor)) static void connect_at_load(void) {
    char line[128];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(line, sizeof line, "ctor: socket failed\n");
    } else {
        snprintf(line, sizeof line, "ctor: keepalive=%d keepidle=%d\n",
                 opt(fd, SOL_SOCKET, SO_KEEPALIVE), opt(fd, IPPROTO_TCP, TCP_KEEPIDLE));
        close(fd);
    }
    (void)!write(2, line, strlen(line));
}
