/*
 * libnodelay.so: a second LD_PRELOAD library, to test chaining. Its
 * socket() calls the next socket() in lookup order (dlsym RTLD_NEXT) and
 * then sets TCP_NODELAY on TCP sockets, so both libraries' effects can be
 * read back from the socket.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol) {
    static int (*next)(int, int, int);
    if (!next)
        next = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    if (!next) {
        errno = ENOSYS;
        return -1;
    }
    int fd = next(domain, type, protocol);
    if (fd >= 0 && (domain == AF_INET || domain == AF_INET6) &&
        (type & 0xf) == SOCK_STREAM) {
        int saved = errno, one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        errno = saved;
    }
    return fd;
}
