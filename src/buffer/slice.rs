//! `Slice`: a taken frame, owned, sendable, freed on drop.
//!
//! Pool-backed slices point into the pool's storage and give their slot back when dropped,
//! on whichever thread that happens (one `fetch_xor`, see [`ownership`](super::ownership));
//! alloc-mode frames and converted vectors own heap memory.
//!
//! A slice is the only owner of its bytes, so it is not `Clone` (buffer_sv2 3.0.1 derives
//! `Clone`, and two clones free one slot twice):
//!
//! ```compile_fail
//! let slice = pinalloc::buffer::Slice::from(vec![1u8, 2, 3]);
//! let twin = slice.clone();
//! ```

use alloc::vec::Vec;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use super::storage::{HeapBytes, Storage};

/// A frame taken from a [`Buffer`](super::Buffer): dereferences to its bytes.
pub struct Slice {
    repr: Repr,
}

enum Repr {
    /// Bytes `[ptr, ptr + len)` of a pool's storage, owned through slot `bit`.
    Pool { ptr: NonNull<u8>, len: usize, storage: Storage, bit: u64 },
    /// An alloc-mode frame.
    Heap(HeapBytes),
    /// A vector handed in through `From<Vec<u8>>`.
    Vec(Vec<u8>),
}

// SAFETY: a pool-backed slice is the only accessor of its bytes until it releases its slot,
// and the release is a Release read-modify-write the pool acquires (`ownership`); the
// storage outlives it by the same protocol. The heap variants are owned vectors.
unsafe impl Send for Slice {}
// SAFETY: `&Slice` only reads the bytes; there is no interior mutability.
unsafe impl Sync for Slice {}

impl Slice {
    /// A pool-backed slice.
    ///
    /// # Safety
    /// `[ptr, ptr + len)` lies in `storage`'s bytes, is initialised, and is owned by slot
    /// `bit` (exactly one bit, of this storage's word), which the pool has just given out:
    /// nothing else accesses the bytes until this slice releases the slot, and the storage
    /// stays allocated until the slot protocol says this slice or another party frees it.
    #[inline]
    pub(crate) unsafe fn from_pool(ptr: NonNull<u8>, len: usize, storage: Storage, bit: u64) -> Self {
        Slice { repr: Repr::Pool { ptr, len, storage, bit } }
    }

    pub(crate) fn from_heap(bytes: HeapBytes) -> Self {
        Slice { repr: Repr::Heap(bytes) }
    }

    /// An empty slice owning nothing.
    pub const fn empty() -> Self {
        Slice { repr: Repr::Vec(Vec::new()) }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pool { len, .. } => *len,
            Repr::Heap(bytes) => bytes.len(),
            Repr::Vec(bytes) => bytes.len(),
        }
    }

    /// Whether the slice has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pool slot this slice owns (`0..slots`), or `None` for heap memory.
    pub fn pool_slot(&self) -> Option<usize> {
        match &self.repr {
            Repr::Pool { bit, .. } => Some(bit.trailing_zeros() as usize),
            _ => None,
        }
    }

    /// Whether the bytes live in a pool's storage.
    pub fn is_pooled(&self) -> bool {
        self.pool_slot().is_some()
    }
}

impl Deref for Slice {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.repr {
            // SAFETY: the bytes are initialised and ours until drop (`from_pool`'s contract);
            // `&self` keeps them from being written meanwhile.
            Repr::Pool { ptr, len, .. } => unsafe { core::slice::from_raw_parts(ptr.as_ptr(), *len) },
            Repr::Heap(bytes) => bytes,
            Repr::Vec(bytes) => bytes,
        }
    }
}

impl DerefMut for Slice {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.repr {
            // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
            Repr::Pool { ptr, len, .. } => unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), *len) },
            Repr::Heap(bytes) => bytes,
            Repr::Vec(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for Slice {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for Slice {
    #[inline]
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl From<Vec<u8>> for Slice {
    fn from(bytes: Vec<u8>) -> Self {
        Slice { repr: Repr::Vec(bytes) }
    }
}

impl Default for Slice {
    fn default() -> Self {
        Slice::empty()
    }
}

impl PartialEq<[u8]> for Slice {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl fmt::Debug for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slice").field("len", &self.len()).field("pool_slot", &self.pool_slot()).finish()
    }
}

impl Drop for Slice {
    #[inline]
    fn drop(&mut self) {
        if let Repr::Pool { storage, bit, .. } = self.repr {
            // SAFETY: the storage lives until the slot protocol says otherwise, and this
            // slice's slot is still out, so it cannot have said so yet.
            let last = unsafe { storage.word() }.release(bit);
            if last {
                // SAFETY: `release` returned true: the pool is gone and every other slice
                // released; nobody touches the storage again.
                unsafe { storage.free() };
            }
        }
    }
}
