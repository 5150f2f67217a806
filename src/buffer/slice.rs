//! `Slice`: a taken frame, owned, sendable, freed on drop.
//!
//! Pool-backed slices point into the pool's storage and give their slot back when dropped,
//! on whichever thread that happens (one `fetch_xor`, see [`ownership`](super::ownership));
//! alloc-mode frames in a spill buffer give its bit back the same way (see
//! [`spill`](super::spill)); other alloc-mode frames and converted vectors own heap memory.
//!
//! A slice is four words, the same whoever owns its bytes: where they are, how many, and
//! who frees them. Reading never asks the owner, and dropping a pool-backed slice is
//! inlined to the one atomic; freeing heap memory is a cold call.
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
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use super::storage::{HeapBytes, PoolSlot, heap};

/// A frame taken from a [`Buffer`](super::Buffer): dereferences to its bytes.
///
/// Invariant: `[ptr, ptr + len)` is initialised and this slice's alone; `owner` says how
/// it is freed (for the heap owners, `ptr`, `len` and the capacity are a vector's raw parts).
pub struct Slice {
    ptr: NonNull<u8>,
    len: usize,
    owner: Owner,
}

const _: () = assert!(size_of::<Slice>() == 4 * size_of::<usize>(), "a slice is four words");

/// Who frees a slice's bytes.
#[derive(Clone, Copy)]
enum Owner {
    /// A slot of a pool's storage: the bytes lie in that storage.
    Pool(PoolSlot),
    /// A spill bit of a pool's storage: the bytes lie in the spill buffer the storage's
    /// table holds for that bit.
    Spill(PoolSlot),
    /// An alloc-mode frame: the raw parts of a [`HeapBytes`] with this capacity.
    Heap { capacity: usize },
    /// A vector handed in through `From<Vec<u8>>`: its raw parts, with this capacity.
    Vec { capacity: usize },
}

// SAFETY: a pool-backed slice is the only accessor of its bytes until it releases its slot,
// and the release is a Release read-modify-write the pool acquires (`ownership`); the
// storage outlives it by the same protocol. The heap variants own their vectors, whose
// allocators free from any thread.
unsafe impl Send for Slice {}
// SAFETY: `&Slice` only reads the bytes; there is no interior mutability.
unsafe impl Sync for Slice {}

impl Slice {
    /// A pool-backed slice.
    ///
    /// # Safety
    /// `[ptr, ptr + len)` lies in the bytes of `slot`'s storage, is initialised, and is
    /// owned by `slot`, which the pool has just given out: nothing else accesses the bytes
    /// until this slice releases the slot, and the storage stays allocated until the slot
    /// protocol says this slice or another party frees it.
    #[inline]
    pub(crate) unsafe fn from_pool(ptr: NonNull<u8>, len: usize, slot: PoolSlot) -> Self {
        Slice { ptr, len, owner: Owner::Pool(slot) }
    }

    /// An alloc-mode frame in a spill buffer.
    ///
    /// # Safety
    /// As for [`Slice::from_pool`], with `slot` a spill bit and `[ptr, ptr + len)` in the
    /// buffer the storage's table holds for it.
    #[inline]
    pub(crate) unsafe fn from_spill(ptr: NonNull<u8>, len: usize, slot: PoolSlot) -> Self {
        Slice { ptr, len, owner: Owner::Spill(slot) }
    }

    /// An alloc-mode frame. It is rebuilt with [`heap`] when freed, so it must come from
    /// there (the pool's frames do; and every `PinAlloc` shares one heap anyway).
    pub(crate) fn from_heap(bytes: HeapBytes) -> Self {
        let mut bytes = ManuallyDrop::new(bytes);
        Self::from_vector_parts(bytes.as_mut_ptr(), bytes.len(), Owner::Heap { capacity: bytes.capacity() })
    }

    /// A slice over a vector taken apart (left in a `ManuallyDrop`): its pointer, its
    /// length, and `owner` holding its capacity.
    fn from_vector_parts(ptr: *mut u8, len: usize, owner: Owner) -> Self {
        let ptr = NonNull::new(ptr).expect("a vector's pointer is non-null");
        Slice { ptr, len, owner }
    }

    /// An empty slice owning nothing.
    pub const fn empty() -> Self {
        Slice { ptr: NonNull::dangling(), len: 0, owner: Owner::Vec { capacity: 0 } }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slice has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pool slot this slice owns (`0..slots`), or `None` for heap memory.
    pub fn pool_slot(&self) -> Option<usize> {
        match self.owner {
            Owner::Pool(slot) => Some(slot.index()),
            _ => None,
        }
    }

    /// Whether the bytes live in a pool's storage.
    pub fn is_pooled(&self) -> bool {
        matches!(self.owner, Owner::Pool(_))
    }

    /// Whether the bytes are an alloc-mode frame in one of the pool's spill buffers, which
    /// the pool writes into again once this slice is dropped (see the
    /// [module docs](super#modes)).
    pub fn is_spilled(&self) -> bool {
        matches!(self.owner, Owner::Spill(_))
    }

    /// Frees heap-owned bytes, or releases a spill bit: the rare cases of `drop`, kept out
    /// of its inlined path.
    ///
    /// # Safety
    /// Called once, from `drop`: the slice's heap parts are not used again.
    #[cold]
    #[inline(never)]
    unsafe fn free_heap(&mut self) {
        let (ptr, len) = (self.ptr.as_ptr(), self.len);
        match self.owner {
            // Nothing to free (an empty slice): a capacity of 0 allocated nothing.
            Owner::Pool(_) | Owner::Heap { capacity: 0 } | Owner::Vec { capacity: 0 } => {}
            // SAFETY: the spill bit is still out, so its storage is live; nothing touches the
            // buffer after this (`from_spill`'s contract), and this runs once.
            Owner::Spill(slot) => unsafe { slot.release() },
            Owner::Heap { capacity } => {
                // SAFETY: the raw parts of a `HeapBytes` taken apart in `from_heap`, rebuilt
                // once (the caller's promise).
                drop(unsafe { HeapBytes::from_raw_parts_in(ptr, len, capacity, heap()) })
            }
            Owner::Vec { capacity } => {
                // SAFETY: the raw parts of a global-allocator `Vec` taken apart in `from`,
                // rebuilt once (the caller's promise).
                drop(unsafe { Vec::from_raw_parts(ptr, len, capacity) })
            }
        }
    }
}

impl Deref for Slice {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `[ptr, ptr + len)` is initialised and owned by this slice until it drops
        // (`from_pool`'s contract, or the vector's own bytes); `&self` keeps them from being
        // written meanwhile.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Slice {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
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
        let mut bytes = ManuallyDrop::new(bytes);
        Slice::from_vector_parts(bytes.as_mut_ptr(), bytes.len(), Owner::Vec { capacity: bytes.capacity() })
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
        match self.owner {
            // SAFETY: this slice's slot is still out, so its storage is live; nothing
            // touches the slice's bytes after this (`from_pool`'s contract), and `drop` runs
            // once, so the slot is released once.
            Owner::Pool(slot) => unsafe { slot.release() },
            // SAFETY: `drop` runs once.
            _ => unsafe { self.free_heap() },
        }
    }
}
