mod cli;
mod doctor;
mod durations;
#[allow(unsafe_code, reason = "kills a test process with libc::kill")]
mod enforce;
mod exit;
#[allow(unsafe_code, reason = "holds ld.so.preload's lock with libc::flock")]
mod install;
mod ls;
mod metrics;
#[allow(
    unsafe_code,
    reason = "the timeline reads CLOCK_MONOTONIC through libc"
)]
mod netns;
mod package;
mod preload;
mod programs;
mod status;
mod sysctl;
mod systemd;
#[allow(
    unsafe_code,
    reason = "the helpers set socket options and spawn processes through libc"
)]
mod util;
