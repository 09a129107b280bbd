// SPDX-License-Identifier: GPL-2.0
//! Errors and exit codes: usage errors (exit 2), failed operations (exit 1),
//! and the text of errno values.

use std::io;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

// Linux errno values the ABI uses (asm-generic numbering).
pub const ENOENT: i32 = 2;
pub const EIO: i32 = 5;
pub const EACCES: i32 = 13;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const ENOSPC: i32 = 28;
pub const EROFS: i32 = 30;
pub const EOPNOTSUPP: i32 = 95;
pub const EUCLEAN: i32 = 117;
pub const ENOTEMPTY: i32 = 39;

/// Name and text of the errno values zvpool and the VFS return.
fn errno_info(n: i32) -> Option<(&'static str, &'static str)> {
    Some(match n {
        1 => ("EPERM", "Operation not permitted"),
        2 => ("ENOENT", "No such file or directory"),
        5 => ("EIO", "Input/output error"),
        6 => ("ENXIO", "No such device or address"),
        12 => ("ENOMEM", "Cannot allocate memory"),
        13 => ("EACCES", "Permission denied"),
        16 => ("EBUSY", "Device or resource busy"),
        17 => ("EEXIST", "File exists"),
        19 => ("ENODEV", "No such device"),
        20 => ("ENOTDIR", "Not a directory"),
        21 => ("EISDIR", "Is a directory"),
        22 => ("EINVAL", "Invalid argument"),
        27 => ("EFBIG", "File too large"),
        28 => ("ENOSPC", "No space left on device"),
        30 => ("EROFS", "Read-only file system"),
        34 => ("ERANGE", "Numerical result out of range"),
        36 => ("ENAMETOOLONG", "File name too long"),
        39 => ("ENOTEMPTY", "Directory not empty"),
        95 => ("EOPNOTSUPP", "Operation not supported"),
        110 => ("ETIMEDOUT", "Connection timed out"),
        117 => ("EUCLEAN", "Structure needs cleaning"),
        _ => return None,
    })
}

/// `Device or resource busy (EBUSY)`, or the system's text for other errors.
pub fn io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => match errno_info(n) {
            Some((name, text)) => format!("{text} ({name})"),
            None => {
                let s = e.to_string();
                match s.find(" (os error") {
                    Some(i) => format!("{} (errno {n})", &s[..i]),
                    None => s,
                }
            }
        },
        None => e.to_string(),
    }
}

/// A failed backend call: the errno, its text and the kernel's logged reason.
#[derive(Debug, Clone)]
pub struct OsFail {
    pub errno: Option<i32>,
    pub text: String,
    pub kernel: Vec<String>,
}

impl OsFail {
    pub fn new(e: &io::Error, kernel: Vec<String>) -> Self {
        OsFail {
            errno: e.raw_os_error(),
            text: io_text(e),
            kernel,
        }
    }

    pub fn is(&self, errno: i32) -> bool {
        self.errno == Some(errno)
    }

    /// `<text>; kernel: <line>; <line>`.
    pub fn reason(&self) -> String {
        if self.kernel.is_empty() {
            self.text.clone()
        } else {
            format!("{}; kernel: {}", self.text, self.kernel.join("; "))
        }
    }

    /// Turns this into a failure of the operation `what`.
    pub fn fail(&self, what: impl Into<String>) -> Failure {
        Failure::new(what, self.reason())
    }

    /// Like `fail`, with an explanation put before the errno text.
    pub fn fail_because(&self, what: impl Into<String>, why: &str) -> Failure {
        Failure::new(what, format!("{why} [{}]", self.reason()))
    }
}

/// A failed operation: `zvpoolctl: <what>: <reason>`, then one line per note
/// (rollback steps, hints).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub what: String,
    pub reason: String,
    pub notes: Vec<String>,
}

impl Failure {
    pub fn new(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Failure {
            what: what.into(),
            reason: reason.into(),
            notes: Vec::new(),
        }
    }

    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.notes.push(n.into());
        self
    }

    pub fn notes(mut self, n: Vec<String>) -> Self {
        self.notes.extend(n);
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Bad command line; `cmd` is the command path for the usage hint
    /// (`"pool create"`), empty for the top level.
    Usage {
        msg: String,
        cmd: String,
    },
    Failed(Failure),
    /// The command printed what it had to say; exit with this code.
    Exit(i32),
}

impl Error {
    pub fn usage(msg: impl Into<String>, cmd: &str) -> Self {
        Error::Usage {
            msg: msg.into(),
            cmd: cmd.to_string(),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. } => EXIT_USAGE,
            Error::Failed(_) => EXIT_FAILED,
            Error::Exit(code) => *code,
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        Error::Failed(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text() {
        let e = io::Error::from_raw_os_error(EBUSY);
        assert_eq!(io_text(&e), "Device or resource busy (EBUSY)");
        let f = OsFail::new(&e, vec!["zvpool: tank: member busy".into()]);
        assert_eq!(
            f.reason(),
            "Device or resource busy (EBUSY); kernel: zvpool: tank: member busy"
        );
        let e = io::Error::from_raw_os_error(84);
        assert!(io_text(&e).ends_with("(errno 84)"));
        let e = io::Error::other("short write");
        assert_eq!(io_text(&e), "short write");
    }
}
