//! Which 4 MiB chunks of the address space hold the allocator's blocks, and what they hold:
//! one byte per [`SEGMENT`]-aligned chunk, so a bare pointer can be asked "is this ours?",
//! and `free`'s fast path "is this a small block of ours?", in one load each.
//!
//! The C ABI needs the answer: `free` and `realloc` receive pointers that may come from
//! elsewhere (the dynamic loader's early allocations, a library linked against another
//! allocator), and reading a header below such a pointer would crash. The same map is how
//! mimalloc and snmalloc tell their pointers apart.
//!
//! The byte of a chunk is [`Chunk::Small`] for every small-block segment, [`Chunk::Large`]
//! for the chunk holding the first byte of every live large block (the chunk of its header,
//! or for alignments of 4 MiB and more the chunk the block starts at), and zero for the
//! rest. Chunks never share a byte between two live mappings: both kinds of mapping are
//! aligned to [`SEGMENT`], and a large block's first byte lies in its own mapping (even a
//! zero-size one's: see `large::mapping_len`).
//!
//! The map covers the 47-bit user address space of x86-64 and AArch64 Linux with 2^25
//! bytes: a 32 MiB zero-initialised static whose pages the kernel only backs once written
//! (a page of the map covers 16 GiB of address space). A mapping above that range (only
//! possible when a program opts into 5-level addresses) is never registered, so its blocks
//! read as foreign: leaked by `free`, never misread.
//!
//! A byte rather than a bit per chunk: the bit took a second shift, the word's load and a
//! bit test, and a second bitmap to tell small segments from the rest (`free` ran 5 more
//! instructions). The byte map's 32 MiB (the bitmaps' 8) take memory only where written:
//! a few pages. They do count as reserved address space, against `RLIMIT_AS` and, where
//! overcommit is off (`vm.overcommit_memory=2`), against the commit limit.

use super::segment::SEGMENT;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

/// Address bits covered.
const ADDRESS_BITS: u32 = 47;
const CHUNK_SHIFT: u32 = SEGMENT.trailing_zeros();
const CHUNKS: usize = 1 << (ADDRESS_BITS - CHUNK_SHIFT);

/// One byte per chunk: zero or a [`Chunk`], read and written only atomically, through
/// [`byte`].
///
/// The bytes sit in one `UnsafeCell` rather than being an array of `AtomicU8`: each
/// reference to an array of 2^25 atomics is retagged element by element under miri's
/// borrow models, while a reference to one cell is retagged at once. The machine code is
/// the same.
struct ChunkMap(UnsafeCell<[u8; CHUNKS]>);

// SAFETY: the bytes are only accessed as atomics (`byte`).
unsafe impl Sync for ChunkMap {}

/// The chunks that are ours, with what they hold. `Release` on insertion pairs with the
/// `Acquire` in [`is_small`] and [`contains`] (publishing the chunk's header: magic and
/// kind). Clearing is `Relaxed`: a block of ours is only asked about while it is live,
/// before the free that lets its chunk go; and a foreign pointer can only fall in the chunk
/// once the chunk is unmapped, which happens after the clear. `free`'s fast path reads the
/// block's span after seeing [`Chunk::Small`]; that read is safe because the block was
/// handed to the freeing thread, which saw the span written, not because of this pairing.
static MAP: ChunkMap = ChunkMap(UnsafeCell::new([0; CHUNKS]));

/// What a registered chunk holds: its byte in the map (never zero).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Chunk {
    /// A small-block segment (its header starts the chunk).
    Small = 1,
    /// The first byte of a large block.
    Large = 2,
}

/// The byte of the chunk holding `addr`, if the map covers it.
#[inline(always)]
fn byte(addr: usize) -> Option<&'static AtomicU8> {
    let chunk = addr >> CHUNK_SHIFT;
    if chunk >= CHUNKS {
        return None;
    }
    // SAFETY: `chunk < CHUNKS`, so the byte lies in the array; the static lives forever,
    // and every access to its bytes goes through this function, so all are atomic.
    Some(unsafe { AtomicU8::from_ptr(MAP.0.get().cast::<u8>().add(chunk)) })
}

/// Marks the chunk holding `addr` as the allocator's, holding `kind`. Returns `false` if the
/// map does not cover it.
pub(crate) fn insert(addr: usize, kind: Chunk) -> bool {
    let Some(byte) = byte(addr) else { return false };
    // Release pairs with the Acquire in `is_small` and `contains`: a thread that sees the
    // byte sees the header written before it.
    byte.store(kind as u8, Ordering::Release);
    true
}

/// Clears the chunk holding `addr`, which held `kind`.
pub(crate) fn remove(addr: usize, kind: Chunk) {
    if let Some(byte) = byte(addr) {
        // Relaxed, no partner: this thread registered the chunk, or received its block,
        // after `insert`.
        debug_assert_eq!(byte.load(Ordering::Relaxed), kind as u8);
        // Relaxed: see `MAP`.
        byte.store(0, Ordering::Relaxed);
    }
}

/// The byte of the chunk holding `addr`: zero if it is not ours.
#[inline(always)]
fn read(addr: usize) -> u8 {
    // Acquire pairs with the Release in `insert`.
    byte(addr).map_or(0, |byte| byte.load(Ordering::Acquire))
}

/// Whether the chunk holding `addr` is the allocator's.
#[inline(always)]
pub(crate) fn contains(addr: usize) -> bool {
    read(addr) != 0
}

/// Whether the chunk holding `addr` is one of the allocator's small-block segments.
#[inline(always)]
pub(crate) fn is_small(addr: usize) -> bool {
    read(addr) == Chunk::Small as u8
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_told_apart() {
        // Far below where mmap places mappings, so no live segment shares these bytes.
        let base = 0x1234_0000_0000usize;
        assert!(!contains(base));
        assert!(insert(base + 100, Chunk::Small));
        assert!(contains(base) && contains(base + SEGMENT - 1) && is_small(base + 7));
        assert!(!contains(base + SEGMENT) && !contains(base - 1) && !is_small(base + SEGMENT));
        assert!(insert(base + SEGMENT, Chunk::Large));
        assert!(contains(base + SEGMENT) && !is_small(base + SEGMENT));
        remove(base, Chunk::Small);
        remove(base + SEGMENT, Chunk::Large);
        assert!(!contains(base + 100) && !is_small(base + 100) && !contains(base + SEGMENT));
        assert!(!insert(1 << 50, Chunk::Small) && !contains(1 << 50) && !is_small(1 << 50));
    }
}
