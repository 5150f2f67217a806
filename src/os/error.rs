//! The one error type of the OS layer.

use core::fmt;

/// Why the OS layer could not do what was asked. Every fallible call in [`crate::os`]
/// returns this; nothing in the layer panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OsError {
    /// A length of zero, or one that overflows once rounded up to pages and alignment.
    InvalidSize {
        /// The length that was asked for.
        requested: usize,
    },
    /// An alignment that is not a power of two.
    InvalidAlignment {
        /// The alignment that was asked for.
        align: usize,
    },
    /// An `offset..offset + len` range that does not lie inside the mapping.
    OutOfBounds {
        /// Start of the range, relative to the mapping.
        offset: usize,
        /// Length of the range.
        len: usize,
        /// Length of the mapping.
        mapping_len: usize,
    },
    /// A NUMA node this machine does not have (or that the kernel cannot address).
    InvalidNode {
        /// The node that was asked for.
        node: usize,
    },
    /// The thread could not be pinned to this core (not in the allowed set, or pinning is
    /// not permitted here).
    PinRefused {
        /// The core that was asked for.
        core: usize,
    },
    /// The kernel refused the call.
    Syscall {
        /// The call that failed (`"mmap"`, `"madvise"`, ...).
        call: &'static str,
        /// The `errno` it returned.
        errno: i32,
    },
    /// The operation is not available in this build or on this machine (the miri backend
    /// cannot bind memory to nodes, a kernel without NUMA has no `mbind`, ...).
    Unsupported {
        /// What was not available.
        what: &'static str,
    },
}

impl OsError {
    /// The `errno` behind a [`OsError::Syscall`], if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            OsError::Syscall { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Symbolic names for the errors these calls actually return; anything else prints as a number.
fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::ENOMEM => "ENOMEM (out of memory or address space)",
        libc::EINVAL => "EINVAL (invalid argument)",
        libc::EPERM => "EPERM (operation not permitted)",
        libc::EACCES => "EACCES (permission denied)",
        libc::ENOSYS => "ENOSYS (not implemented by this kernel)",
        libc::EFAULT => "EFAULT (bad address)",
        libc::EAGAIN => "EAGAIN (resource temporarily unavailable)",
        libc::EIO => "EIO (I/O error)",
        _ => return None,
    })
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OsError::InvalidSize { requested } => {
                write!(f, "invalid mapping size {requested} (zero, or too large once rounded to pages)")
            }
            OsError::InvalidAlignment { align } => {
                write!(f, "invalid alignment {align} (must be a power of two)")
            }
            OsError::OutOfBounds { offset, len, mapping_len } => write!(
                f,
                "range {offset}..{offset}+{len} does not lie inside a mapping of {mapping_len} bytes"
            ),
            OsError::InvalidNode { node } => write!(f, "NUMA node {node} does not exist here"),
            OsError::PinRefused { core } => {
                write!(f, "cannot pin this thread to core {core} (not allowed or not present)")
            }
            OsError::Syscall { call, errno } => match errno_name(errno) {
                Some(name) => write!(f, "{call} failed: {name}"),
                None => write!(f, "{call} failed: errno {errno}"),
            },
            OsError::Unsupported { what } => write!(f, "{what} is not supported here"),
        }
    }
}

impl core::error::Error for OsError {}

#[cfg(feature = "std")]
impl From<OsError> for std::io::Error {
    fn from(error: OsError) -> Self {
        match error {
            OsError::Syscall { errno, .. } => std::io::Error::from_raw_os_error(errno),
            OsError::Unsupported { .. } => std::io::Error::new(std::io::ErrorKind::Unsupported, error),
            _ => std::io::Error::new(std::io::ErrorKind::InvalidInput, error),
        }
    }
}
