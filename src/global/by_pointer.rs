//! The allocator addressed the C way: by pointer alone, without the `Layout`.
//!
//! Rust hands `dealloc` the layout it allocated with, and the fast paths recompute the size
//! class from it. `free(ptr)` and `realloc(ptr, n)` have only the pointer, so here the
//! block is looked up instead:
//!
//! 1. [`PinAlloc::owns`] asks the [segment map](super::segment_map) whether the pointer's
//!    4 MiB chunk is the allocator's; anything else is foreign and must not be touched.
//! 2. A block that does not start its chunk, in a chunk whose header says "small", is a
//!    small block: its span (segment header → page index → span) names the class.
//! 3. Anything else is a large block, whose header is found by `large::header_of`.
//!
//! From the class or the large header follows the block's *equivalent layout*: a layout
//! that, handed to `dealloc` or `realloc`, reaches the same block the same way the original
//! one would (a block size of the class at alignment 16; a large block's usable size at its
//! header offset). So every by-pointer operation reuses the layout-driven paths, and their
//! debug checks, unchanged; only `free` of a small block has its own fast path, which asks
//! the chunk's byte in the segment map instead of steps 1 and 2:
//! one load says both "ours" and "small" ([`PinAlloc::free_if_owned`] is C's `free` so).
//!
//! That fast path reads the block's page slot in the span table, which holds the class (as
//! its list's offset in a thread cache) and the span's holder (for a block past its span's
//! first page, over 8 KiB, a copy of the class and no holder), so it also reads the holder:
//! a block of a span another thread is carving goes on a list of its own, which goes back to
//! the spans (to their holders) a batch at a time; any other block goes on the thread's
//! list of freed blocks, which its allocations take over when their list runs dry. A thread
//! freeing a block it was handed by another (cache-scratch's pattern) therefore does not
//! take that block, whose cache line the other thread may be writing, for its own next
//! allocation (*passive false sharing*: it made cache-scratch 3.4 times slower here than
//! under mimalloc, which sends such a block back to its page's owner); nor does it pass it
//! to a third thread through the depot (larson ran 10% slower so).

use super::large;
use super::segment::{NO_OWNER, SEGMENT, SegmentHeader, SegmentKind, Span};
use super::size_class::{block_size, class_of};
use super::thread_cache::FreeList;
use super::{PinAlloc, debug_checks, segment_map, thread_cache};
use crate::os;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

/// The span of the small block at `ptr`, or `None` for a large block.
///
/// # Safety
/// `ptr` is a live block of this allocator.
#[inline(always)]
unsafe fn small_span(ptr: *const u8) -> Option<*mut Span> {
    if ptr.addr() & (SEGMENT - 1) == 0 {
        // Only a large block aligned to 4 MiB or more starts a chunk.
        return None;
    }
    // SAFETY: per the contract the chunk starts with a segment or large header, whose
    // first fields agree; a small segment's page index for a live block is stable.
    unsafe {
        let header = SegmentHeader::of(ptr);
        match (*header).kind {
            SegmentKind::Small => Some(SegmentHeader::span_of(ptr)),
            SegmentKind::Large => None,
        }
    }
}

/// A layout that reaches the live block at `ptr` the way its own layout did.
///
/// # Safety
/// `ptr` is a live block of this allocator.
unsafe fn equivalent_layout(ptr: *mut u8) -> Layout {
    // SAFETY: per the contract.
    unsafe {
        let (size, align) = match small_span(ptr) {
            Some(span) => (block_size((*span).class()), 16),
            None => {
                let header = large::header_of(ptr);
                (large::usable_size(header), (*header).offset)
            }
        };
        // SAFETY: a block size is a multiple of 16, a header offset a power of two (see
        // `large::alloc`), and neither rounds past `isize::MAX`.
        Layout::from_size_align_unchecked(size, align)
    }
}

/// The usable size of the block at `ptr`: at least what was asked for.
///
/// # Safety
/// `ptr` was returned by this allocator and is live.
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    // SAFETY: forwarded.
    unsafe { equivalent_layout(os::root_provenance(ptr.cast_mut())).size() }
}

impl PinAlloc {
    /// Whether `ptr` is a block this allocator handed out and has not seen freed, as far as
    /// a bare pointer can tell: `true` for every live block (of any `PinAlloc`: all share
    /// one heap), `false` for null and for pointers of other allocators, the stack or
    /// statics. Precisely, whether `ptr` lies in a small-block segment or in the first
    /// 4 MiB chunk of a live large block. One load, no locks.
    #[inline]
    pub fn owns(&self, ptr: *const u8) -> bool {
        segment_map::contains(ptr.addr())
    }

    /// A block of at least `size` bytes, aligned to 16, from this thread's list if `size` is
    /// at most 1 KiB and the list has one: the allocation fast path alone, for a caller with
    /// a slow path of its own (C's `malloc`, whose slow path also sets `errno`). `None` says
    /// only that the fast path cannot serve it. The block is freed like any other: by
    /// [`PinAlloc::free`], [`PinAlloc::free_if_owned`], or `dealloc` with a layout of
    /// `size` bytes aligned to 16.
    #[inline(always)]
    pub fn alloc_cached(&self, size: usize) -> Option<NonNull<u8>> {
        if debug_checks::ENABLED {
            return None;
        }
        let block = self.pop_cached(size, 16)?;
        // SAFETY: a block is never null.
        Some(unsafe { NonNull::new_unchecked(block) })
    }

    /// Frees the block at `ptr` without its layout, as C's `free`; like glibc's, it leaves
    /// `errno` as it was, even when purging or unmapping fails inside.
    ///
    /// A small block from a span another thread is carving goes on a list that returns to
    /// that span in batches; any other goes on the thread's list, to be reused (see the
    /// module docs). For a pointer that may be foreign (C's `free`), see
    /// [`PinAlloc::free_if_owned`].
    ///
    /// # Safety
    /// `ptr` was returned by this allocator (through any of its APIs) and is live; it is not
    /// used again.
    #[inline]
    pub unsafe fn free(&self, ptr: *mut u8) {
        if !debug_checks::ENABLED && segment_map::is_small(ptr.addr()) {
            // SAFETY: per the contract, a live block; in a small segment, a small one.
            return unsafe { self.free_small(ptr) };
        }
        // SAFETY: forwarded.
        unsafe { self.free_slow(ptr) }
    }

    /// [`PinAlloc::free`] for a pointer that may not be this allocator's: frees it and
    /// returns `true` if it is, returns `false` and touches nothing if it is not (null, or
    /// memory from elsewhere; see [`PinAlloc::owns`]). What C's `free` needs, in one lookup
    /// for a small block where `owns` then `free` take two.
    ///
    /// # Safety
    /// `ptr` is null, foreign, or a live block of this allocator that is not used again.
    #[inline]
    pub unsafe fn free_if_owned(&self, ptr: *mut u8) -> bool {
        if !debug_checks::ENABLED && segment_map::is_small(ptr.addr()) {
            // SAFETY: in a registered small segment, so not foreign (a foreign pointer falls in
            // the chunk only after it is unmapped, which follows clearing the byte): by the
            // contract a live block of ours, and a small one.
            unsafe { self.free_small(ptr) };
            return true;
        }
        // SAFETY: forwarded.
        unsafe { self.free_if_owned_slow(ptr) }
    }

    /// The fast path of a small block's free: onto the thread's own list, or onto its list
    /// for blocks of spans other threads hold.
    ///
    /// # Safety
    /// `ptr` is a live small block of this allocator, not used again.
    #[inline(always)]
    unsafe fn free_small(&self, ptr: *mut u8) {
        // SAFETY: the block's page slot holds its class as a list offset (`Span::bin`,
        // written before the block was first handed out), which `bin_at` takes; the lists are
        // this thread's.
        unsafe {
            let slot = SegmentHeader::page_slot(os::root_provenance(ptr));
            let bin = (*slot).bin;
            let cache = thread_cache::current();
            // Relaxed: a hint (see `Span::owner`). A block past its span's first page (over
            // 8 KiB: no false sharing to speak of) reads `NO_OWNER` and stays with this thread.
            let holder = (*slot).owner.load(Ordering::Relaxed);
            // One branch, not one per test (`holder != token`, `holder != NO_OWNER`): in a
            // steady state about half the blocks come from the span this thread carves and
            // half from spans no one holds, so a branch on either test alone goes each way
            // at random (larson mispredicted every other free so), while `others` is rarely
            // true but in a producer's blocks, and then nearly always. A branch keeps the
            // list's address off the owner load's chain, which choosing it by data (a cmov)
            // put on it: larson took 0.95 of the time, 0.96 without thread turnover (12
            // alternating pairs each).
            let others = thread_cache::held_by_others(holder, (*cache).token);
            let lists = if others { &raw mut (*cache).remote } else { &raw mut (*cache).bins };
            if !(*thread_cache::bin_at(lists, bin)).try_push(ptr) {
                let list = if others { FreeList::Others } else { FreeList::Own };
                self.free_small_slow(ptr, thread_cache::class_at(bin), list);
            }
        }
    }

    /// A small block's free whose list is full (or whose thread is not set up). `extern
    /// "C"`, so that it cannot unwind: the C exports' call to it is then a plain jump (a
    /// panic inside, such as a failed debug assertion, aborts).
    ///
    /// # Safety
    /// As for [`PinAlloc::free`]; `ptr` is a small block of `class`.
    #[cold]
    #[inline(never)]
    unsafe extern "C" fn free_small_slow(&self, ptr: *mut u8, class: usize, mut list: FreeList) {
        let cache = thread_cache::current();
        // SAFETY: this thread's cache; `ptr`'s page slot as in `free_small`.
        unsafe {
            if (*cache).token == NO_OWNER {
                // A cache not set up holds no span, yet `held_by_others` returns false for
                // every holder with its token (its lists have no room then, so the block
                // comes here): every held span's block is another's. (tests/free_locality.rs
                // frees such a block first thing in a new thread.)
                let slot = SegmentHeader::page_slot(os::root_provenance(ptr));
                // Relaxed: a hint (see `Span::owner`).
                let held = (*slot).owner.load(Ordering::Relaxed) != NO_OWNER;
                list = if held { FreeList::Others } else { FreeList::Own };
            }
        }
        // SAFETY: forwarded: this thread's cache, a block of `class` given up.
        os::keeping_errno(|| unsafe { self.dealloc_slow(cache, class, ptr, list) });
    }

    /// [`PinAlloc::free_if_owned`] for everything but a small block on the fast path.
    ///
    /// # Safety
    /// As for [`PinAlloc::free_if_owned`].
    #[cold]
    #[inline(never)]
    unsafe extern "C" fn free_if_owned_slow(&self, ptr: *mut u8) -> bool {
        if !self.owns(ptr) {
            return false;
        }
        // SAFETY: ours, hence (contract) live and given up.
        unsafe { self.free_slow(ptr) };
        true
    }

    /// Every other free: large blocks, small blocks of a segment the map could not
    /// register, and all of them under the debug checks.
    ///
    /// # Safety
    /// As for [`PinAlloc::free`].
    #[cold]
    #[inline(never)]
    unsafe extern "C" fn free_slow(&self, ptr: *mut u8) {
        // SAFETY: forwarded; the equivalent layout reaches the block as its own would.
        os::keeping_errno(|| unsafe { self.dealloc(ptr, equivalent_layout(os::root_provenance(ptr))) });
    }

    /// Resizes the block at `ptr` to `new_size` bytes without its layout, as C's `realloc`
    /// (for a non-null pointer and a non-zero size): the contents up to the smaller size are
    /// kept; the block may move. Null, with the block untouched, when out of memory. The
    /// result is aligned to 16 at least (not to an over-alignment the block was made with).
    ///
    /// # Safety
    /// As for [`PinAlloc::free`]; on success the old pointer is dead.
    pub unsafe fn resize(&self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        // SAFETY: per the contract.
        let layout = unsafe { equivalent_layout(os::root_provenance(ptr)) };
        // Small blocks, large ones with at most 64-byte alignment, and large to large: the
        // layout-driven realloc (same class in place, large by `mremap` or the cache).
        if layout.align() <= 64 || class_of(new_size, 16).is_none() {
            if Layout::from_size_align(new_size, layout.align()).is_err() {
                return ptr::null_mut();
            }
            // SAFETY: the equivalent layout reaches the block as its own would have, and
            // `new_size` rounded up to its alignment fits in an `isize` (checked above).
            return unsafe { GlobalAlloc::realloc(self, ptr, layout, new_size) };
        }
        // A small size for an over-aligned large block: give up the alignment.
        let Ok(new_layout) = Layout::from_size_align(new_size, 16) else { return ptr::null_mut() };
        // SAFETY: the new block is fresh; the old one is ours to copy from and free.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                ptr::copy_nonoverlapping(ptr, new, new_size.min(layout.size()));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
