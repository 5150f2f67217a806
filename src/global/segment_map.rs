//! Which 4 MiB chunks of the address space hold the allocator's blocks: one bit per
//! [`SEGMENT`]-aligned chunk, so a bare pointer can be asked "is this ours?" in one load;
//! and a second map of the same shape for the chunks that are small-block segments, so
//! that `free`'s fast path asks "is this a small block of ours?" in one load too (without
//! it, it asked the first map, then read the chunk's header for its kind).
//!
//! The C ABI needs the answer: `free` and `realloc` receive pointers that may come from
//! elsewhere (the dynamic loader's early allocations, a library linked against another
//! allocator), and reading a header below such a pointer would crash. The same map is how
//! mimalloc and snmalloc tell their pointers apart.
//!
//! A bit of [`MAP`] is set for every small-block segment and for the chunk holding the first
//! byte of every live large block (the chunk of its header, or for alignments of 4 MiB and
//! more the chunk the block starts at). Chunks never share a bit between two live mappings: both
//! kinds of mapping are aligned to [`SEGMENT`], and a large block's first byte lies in its
//! own mapping (even a zero-size one's: see `large::mapping_len`). [`SMALL`] holds the bits
//! of the small-block segments alone: a subset of [`MAP`] whenever a block of the segment
//! is live (a segment's bits are set before its first block is handed out and cleared
//! after its last one came back).
//!
//! Each map covers the 47-bit user address space of x86-64 and AArch64 Linux with 2^25 bits:
//! a 4 MiB zero-initialised static whose pages the kernel only backs once written (a page of
//! a map covers 128 GiB of address space). A mapping above that range (only possible when
//! a program opts into 5-level addresses) is never registered, so its blocks read as
//! foreign: leaked by `free`, never misread.

use super::segment::SEGMENT;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

/// Address bits covered.
const ADDRESS_BITS: u32 = 47;
const CHUNK_SHIFT: u32 = SEGMENT.trailing_zeros();
const WORDS: usize = 1 << (ADDRESS_BITS - CHUNK_SHIFT - 6);

/// One bit per chunk, read and written only atomically, through [`ChunkMap::word`].
///
/// The words sit in one `UnsafeCell` rather than being an array of `AtomicU64`: each
/// reference to an array of 2^19 atomics is retagged element by element under miri's
/// borrow models (about a third of a second per `free`), while a reference to one cell is
/// retagged at once. The machine code is the same.
#[repr(C, align(8))]
struct ChunkMap(UnsafeCell<[u64; WORDS]>);

// SAFETY: the words are only accessed as atomics (`word`).
unsafe impl Sync for ChunkMap {}

impl ChunkMap {
    const fn new() -> Self {
        ChunkMap(UnsafeCell::new([0; WORDS]))
    }

    /// Word `index` (`< WORDS`, which `slot` guarantees).
    #[inline(always)]
    fn word(&'static self, index: usize) -> &'static AtomicU64 {
        debug_assert!(index < WORDS);
        // SAFETY: `index < WORDS`, so the word lies in the array; `u64` words at the
        // start of an 8-aligned array are aligned for `AtomicU64`; the static lives forever,
        // and every access to its words goes through this function, so all are atomic.
        unsafe { AtomicU64::from_ptr(self.0.get().cast::<u64>().add(index)) }
    }
}

/// The chunks that are ours. `Release` on set pairs with the `Acquire` in [`contains`]
/// (publishing the chunk's header: magic and kind). Clearing is `Relaxed`: a block of ours
/// is only asked about while it is live, before the free that lets its chunk go; and a
/// foreign pointer can only fall in the chunk once the chunk is unmapped, which happens
/// after the clear.
static MAP: ChunkMap = ChunkMap::new();

/// The chunks that are small-block segments; set and cleared with [`MAP`]'s bit, with the
/// same orderings and the same argument (the `Release` on set pairs with the `Acquire` in
/// [`is_small`]). `free`'s fast path reads the block's span after seeing the bit; that
/// read is safe because the block was handed to the freeing thread, which saw the span
/// written, not because of this pairing.
static SMALL: ChunkMap = ChunkMap::new();

/// What a registered chunk holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Chunk {
    /// A small-block segment (its header starts the chunk).
    Small,
    /// The first byte of a large block.
    Large,
}

/// The word index and bit of the chunk holding `addr`, if the map covers it.
#[inline(always)]
fn slot(addr: usize) -> Option<(usize, u64)> {
    let chunk = addr >> CHUNK_SHIFT;
    let word = chunk >> 6;
    if word >= WORDS {
        return None;
    }
    Some((word, 1u64 << (chunk & 63)))
}

/// Marks the chunk holding `addr` as the allocator's, holding `kind`. Returns `false` if the
/// maps do not cover it.
pub(crate) fn insert(addr: usize, kind: Chunk) -> bool {
    let Some((word, bit)) = slot(addr) else { return false };
    // Release pairs with the Acquire in `is_small` and `contains`: a thread that sees the
    // bit sees the header written before it. `SMALL` first (and cleared last), so that
    // a thread seeing the `MAP` bit of a small segment sees its `SMALL` bit too.
    if kind == Chunk::Small {
        SMALL.word(word).fetch_or(bit, Ordering::Release);
    }
    MAP.word(word).fetch_or(bit, Ordering::Release);
    true
}

/// Clears the chunk holding `addr`, which held `kind`.
pub(crate) fn remove(addr: usize, kind: Chunk) {
    if let Some((word, bit)) = slot(addr) {
        // Relaxed: see `MAP`.
        MAP.word(word).fetch_and(!bit, Ordering::Relaxed);
        if kind == Chunk::Small {
            SMALL.word(word).fetch_and(!bit, Ordering::Relaxed);
        }
    }
}

/// Whether `map` has the bit of the chunk holding `addr`.
#[inline(always)]
fn has(map: &'static ChunkMap, addr: usize) -> bool {
    match slot(addr) {
        // Acquire pairs with the Release in `insert`.
        Some((word, bit)) => map.word(word).load(Ordering::Acquire) & bit != 0,
        None => false,
    }
}

/// Whether the chunk holding `addr` is the allocator's.
#[inline(always)]
pub(crate) fn contains(addr: usize) -> bool {
    has(&MAP, addr)
}

/// Whether the chunk holding `addr` is one of the allocator's small-block segments.
#[inline(always)]
pub(crate) fn is_small(addr: usize) -> bool {
    has(&SMALL, addr)
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_told_apart() {
        // Far below where mmap places mappings, so no live segment shares these bits.
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
