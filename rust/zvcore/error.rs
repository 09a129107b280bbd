// SPDX-License-Identifier: GPL-2.0
//! Errors of the core. The kernel maps them to errnos (see [`Error::errno`]).

/// Why a core operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A buffer was too small to encode into or decode from.
    Truncated,
    /// A record's checksum does not match its contents.
    BadChecksum,
    /// A magic number is wrong: not zvpool metadata.
    BadMagic,
    /// A field holds a value outside its valid range.
    BadField(&'static str),
    /// The format version or an incompatible feature flag is not supported.
    Unsupported(&'static str),
    /// No space left (pool full, or out of caller-provided pages).
    NoSpace,
    /// An argument from the caller is invalid.
    Invalid(&'static str),
    /// The object is busy (e.g. open zone limit reached, live volume).
    Busy,
    /// The named object does not exist.
    NotFound,
    /// Metadata is inconsistent (found by recovery or the verifier).
    Corrupt(&'static str),
    /// The volume is read-only (a snapshot).
    ReadOnly,
    /// The write would take the volume past its quota (that volume only;
    /// the pool has space).
    Quota,
    /// The write would take space other volumes' reservations or the pool
    /// reserve hold (see `pool::quota`).
    Reserved,
    /// A data write did not complete on every device it went to (a
    /// mirrored volume's copies are then mapped neither).
    Io,
}

/// Result type of the core.
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// What went wrong, in words for a log line.
    pub const fn describe(self) -> &'static str {
        match self {
            Error::Truncated => "metadata block truncated",
            Error::BadChecksum => "metadata checksum mismatch",
            Error::BadMagic => "not zvpool metadata",
            Error::BadField(s) | Error::Unsupported(s) | Error::Invalid(s) | Error::Corrupt(s) => s,
            Error::NoSpace => "no space",
            Error::Busy => "busy",
            Error::NotFound => "no zvpool superblock on the devices given",
            Error::ReadOnly => "read-only",
            Error::Quota => "volume quota reached",
            Error::Reserved => "the rest of the pool is reserved",
            Error::Io => "a copy of the data was not written",
        }
    }

    /// The (positive) Linux errno that best describes this error.
    pub const fn errno(self) -> i32 {
        match self {
            Error::Truncated | Error::BadChecksum | Error::BadMagic | Error::BadField(_) => 117, // EUCLEAN
            Error::Corrupt(_) => 117,
            Error::Unsupported(_) => 95, // EOPNOTSUPP
            Error::NoSpace | Error::Quota | Error::Reserved => 28, // ENOSPC
            Error::Invalid(_) => 22,     // EINVAL
            Error::Busy => 16,           // EBUSY
            Error::NotFound => 2,        // ENOENT
            Error::ReadOnly => 30,       // EROFS
            Error::Io => 5,              // EIO
        }
    }
}
