//! An in-kernel keepalive enforcer: a cgroup BPF sock_ops program generated in Rust and loaded with bpf(2)
#![deny(unsafe_code)]
