mod cli;
mod install;
mod preload;
mod programs;
mod sysctl;
mod util;
