//! sock_diag (inet_diag) netlink: list TCP sockets with their keepalive timers; pidfd_getfd for another process's sockets
#![deny(unsafe_code)]
