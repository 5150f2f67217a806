//! [`ShmError`]: everything that can go wrong with a shared segment or a peer.

use crate::os::OsError;
use core::fmt;

/// What a segment holds, recorded in its header so an `open` of the wrong type fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// Raw bytes: [`SharedRegion`](super::SharedRegion).
    Region = 1,
    /// [`SharedArray`](super::SharedArray).
    Array = 2,
    /// [`SharedBuffer`](super::SharedBuffer).
    Buffer = 3,
    /// [`CircularBuffer`](super::CircularBuffer).
    Ring = 4,
}

impl Kind {
    pub(crate) fn from_raw(raw: u32) -> Option<Kind> {
        match raw {
            1 => Some(Kind::Region),
            2 => Some(Kind::Array),
            3 => Some(Kind::Buffer),
            4 => Some(Kind::Ring),
            _ => None,
        }
    }
}

/// Why a shared-memory operation failed. Errors about a segment's contents mean another
/// process wrote something this one cannot trust; they are reported, never acted upon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShmError {
    /// The name is empty, too long, or holds a character other than `A–Z a–z 0–9 . _ -`.
    InvalidName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A parameter of a `create` is out of range (fewer than 2 nodes, a zero size, ...).
    InvalidParameter {
        /// Which parameter, and its limits.
        what: &'static str,
    },
    /// `create` found the name taken.
    AlreadyExists,
    /// `open` found no segment of that name.
    NotFound,
    /// The segment exists but its creator has not finished writing the header yet (retry).
    NotInitialised,
    /// The segment is shorter than its header, or than the size its header records.
    Truncated {
        /// Bytes the header (or the header's own size) needs.
        expected: u64,
        /// Bytes the segment has.
        actual: u64,
    },
    /// The segment does not start with this crate's magic number: not a pinalloc segment.
    Foreign,
    /// Made by a build with a different layout version.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// A segment of another kind (a ring opened as an array, ...).
    WrongKind {
        /// The kind asked for.
        expected: Kind,
        /// The raw kind found in the header.
        found: u32,
    },
    /// A typed open whose element type does not match the segment's.
    ElementMismatch {
        /// `size_of::<T>()` of the caller's type.
        expected_size: u64,
        /// The element size recorded in the header.
        found_size: u64,
    },
    /// The header's fields contradict each other, or a peer wrote an impossible value into
    /// shared state (a message length beyond its node, an unknown lock state).
    Corrupt {
        /// Which field.
        what: &'static str,
    },
    /// An `offset..offset + len` range (or an index) outside the segment's data.
    OutOfBounds {
        /// Start of the range, or the index.
        offset: u64,
        /// Length of the range (1 for an index).
        len: u64,
        /// Size of the data (or the array's length).
        size: u64,
    },
    /// A message longer than a node.
    MessageTooLarge {
        /// The message's length.
        len: u64,
        /// The node size.
        capacity: u64,
    },
    /// A destination too small for the message that was read; the message is consumed.
    BufferTooSmall {
        /// The message's length.
        len: u64,
        /// The destination's length.
        capacity: u64,
    },
    /// The wait ran out before a node or the lock became available.
    Timeout,
    /// The ring was shut down ([`CircularBuffer::shutdown`](super::CircularBuffer::shutdown));
    /// readers get this once it is also empty.
    Shutdown,
    /// The message at `position` was lost: its writer died (or panicked) after claiming the
    /// node and before publishing it. The node has been recovered; reading goes on with the
    /// next message.
    MessageLost {
        /// The message's position in the ring's sequence.
        position: u64,
    },
    /// The OS refused a call.
    Os(OsError),
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ShmError::InvalidName { reason } => write!(f, "invalid shared-memory name: {reason}"),
            ShmError::InvalidParameter { what } => write!(f, "invalid parameter: {what}"),
            ShmError::AlreadyExists => f.write_str("a shared-memory segment of that name already exists"),
            ShmError::NotFound => f.write_str("no shared-memory segment of that name"),
            ShmError::NotInitialised => f.write_str("the segment's creator has not finished initialising it"),
            ShmError::Truncated { expected, actual } => {
                write!(f, "segment truncated: {actual} bytes where {expected} are needed")
            }
            ShmError::Foreign => f.write_str("not a pinalloc shared-memory segment (bad magic number)"),
            ShmError::UnsupportedVersion { found } => write!(f, "unsupported segment layout version {found}"),
            ShmError::WrongKind { expected, found } => match Kind::from_raw(found) {
                Some(kind) => write!(f, "segment holds a {kind:?}, not a {expected:?}"),
                None => write!(f, "segment holds unknown kind {found}, not a {expected:?}"),
            },
            ShmError::ElementMismatch { expected_size, found_size } => write!(
                f,
                "element size mismatch: the segment's elements are {found_size} bytes, the type's {expected_size}"
            ),
            ShmError::Corrupt { what } => write!(f, "corrupt shared state: {what}"),
            ShmError::OutOfBounds { offset, len, size } => {
                write!(f, "range {offset}..{} outside the {size} bytes of data", offset.saturating_add(len))
            }
            ShmError::MessageTooLarge { len, capacity } => {
                write!(f, "message of {len} bytes does not fit a {capacity}-byte node")
            }
            ShmError::BufferTooSmall { len, capacity } => {
                write!(f, "message of {len} bytes does not fit the {capacity}-byte destination")
            }
            ShmError::Timeout => f.write_str("timed out"),
            ShmError::Shutdown => f.write_str("the ring has been shut down"),
            ShmError::MessageLost { position } => {
                write!(f, "message {position} was lost: its writer died before publishing it")
            }
            ShmError::Os(e) => write!(f, "OS error: {e}"),
        }
    }
}

impl std::error::Error for ShmError {}

impl From<OsError> for ShmError {
    fn from(e: OsError) -> Self {
        match e.errno() {
            Some(libc::EEXIST) => ShmError::AlreadyExists,
            Some(libc::ENOENT) => ShmError::NotFound,
            _ => ShmError::Os(e),
        }
    }
}
