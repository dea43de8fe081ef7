//! The environment of `libkeepalive.so`, for programs that want to honour
//! the same variables.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use keepalive_core::Settings;
use keepalive_core::env::{ErrorKind, Var};

/// The settings parsed from an environment, and the values refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvSettings {
    /// The settings; a refused value leaves its option to the kernel default.
    pub settings: Settings,
    /// The refused values, at most one per variable.
    pub invalid: Vec<InvalidVar>,
}

/// A refused variable, with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidVar {
    /// The variable.
    pub var: Var,
    /// Its raw value.
    pub value: OsString,
    /// Why it was refused.
    pub kind: ErrorKind,
}

impl fmt::Display for InvalidVar {
    /// The line `libkeepalive.so` prints for it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let invalid = keepalive_core::env::Invalid {
            var: self.var,
            value: self.value.as_bytes(),
            kind: self.kind,
        };
        fmt::Display::fmt(&invalid, f)
    }
}

impl std::error::Error for InvalidVar {}

/// Parses the process environment as `libkeepalive.so` does.
pub fn from_env() -> EnvSettings {
    from_vars(std::env::vars_os())
}

/// Parses `(name, value)` pairs as `libkeepalive.so` parses its environment.
///
/// ```
/// let env = keepalive::from_vars([("KEEPIDLE", "3m"), ("KEEPCNT", "200")]);
/// assert_eq!(env.settings.idle.map(|s| s.get()), Some(180));
/// assert_eq!(env.settings.count, None);
/// assert_eq!(env.invalid[0].var.name(), "KEEPCNT");
/// ```
pub fn from_vars<I, K, V>(vars: I) -> EnvSettings
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<OsString>,
    V: Into<OsString>,
{
    let owned: Vec<(OsString, OsString)> = vars
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let parsed =
        keepalive_core::env::from_vars(owned.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    EnvSettings {
        settings: parsed.settings,
        invalid: parsed
            .invalid()
            .map(|i| InvalidVar {
                var: i.var,
                value: std::ffi::OsStr::from_bytes(i.value).to_owned(),
                kind: i.kind,
            })
            .collect(),
    }
}
