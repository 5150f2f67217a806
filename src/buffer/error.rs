//! Why a pool could not be created.

use core::fmt;

/// The error of [`BufferPool::with_slots`](super::BufferPool::with_slots) and
/// [`BufferPool::try_new`](super::BufferPool::try_new).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The slot count is not in `1..=64` (one bit of the slot word per slot).
    InvalidSlotCount {
        /// The count asked for.
        slots: usize,
    },
    /// The capacity does not fit in an allocation (`isize::MAX` bytes with the header).
    CapacityTooLarge {
        /// The capacity asked for.
        capacity: usize,
    },
    /// The allocator refused the pool's storage.
    OutOfMemory {
        /// Bytes asked for, header included.
        bytes: usize,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PoolError::InvalidSlotCount { slots } => {
                write!(f, "a buffer pool has 1 to 64 slots, not {slots}")
            }
            PoolError::CapacityTooLarge { capacity } => {
                write!(f, "a buffer pool of {capacity} bytes does not fit in an allocation")
            }
            PoolError::OutOfMemory { bytes } => {
                write!(f, "out of memory allocating a buffer pool's {bytes} bytes")
            }
        }
    }
}

impl core::error::Error for PoolError {}
