//! The allocator's debug checks (cargo feature `debug-checks`): misuse is reported and the
//! process aborted at the call that commits it, instead of corrupting the heap silently.
//!
//! * Every free small block carries a mark in its second word and a poison pattern in the
//!   rest (the first word is the free-list link). Blocks get them when the program frees
//!   them and when fresh blocks are linked into a thread's list, so every block a list hands
//!   out must still have them: a changed byte means the block was written after its free.
//! * A block handed out is filled with junk, so a program relying on fresh memory being zero
//!   or holding old contents fails visibly.
//! * A free is checked against the segment's metadata: the pointer must lie in a segment of
//!   this allocator, at the start of a block of the class its layout names (a wrong layout
//!   is caught), and must not carry the free mark (a double free). A large free must find
//!   its header where its alignment puts it.
//!
//! Without the feature, [`ENABLED`] is `false` and every call site folds away.

use super::large::{self, LARGE_MAGIC};
use super::segment::{MAGIC, SegmentHeader, SegmentKind};
use super::size_class::{block_size, class_of};
use crate::os::fatal;
use core::alloc::Layout;

/// Whether the checks are compiled in.
pub(crate) const ENABLED: bool = cfg!(feature = "debug-checks");

/// The second word of every free small block.
const FREE_MARK: u64 = 0xF4EE_B10C_F4EE_B10C;
/// Bytes 16.. of every free small block.
const POISON: u8 = 0xDF;
/// Every byte of a freshly handed-out block.
const JUNK: u8 = 0xA5;

/// Marks a small block of `size` bytes (at least 16) free.
///
/// # Safety
/// `block` is a block of `size` bytes owned by the caller and unused.
pub(crate) unsafe fn poison(block: *mut u8, size: usize) {
    // SAFETY: per the contract; blocks are 16-aligned and at least 16 bytes.
    unsafe {
        block.add(8).cast::<u64>().write(FREE_MARK);
        block.add(16).write_bytes(POISON, size - 16);
    }
}

/// Checks that a small block leaving a thread's list was not written since it was freed,
/// then fills it with junk.
///
/// # Safety
/// `block` is a block of `size` bytes just taken from this thread's list.
pub(crate) unsafe fn unpoison(block: *mut u8, size: usize) {
    // SAFETY: per the contract the block is ours, `size >= 16` bytes.
    unsafe {
        let intact = block.add(8).cast::<u64>().read() == FREE_MARK
            && core::slice::from_raw_parts(block.add(16), size - 16).iter().all(|&b| b == POISON);
        if !intact {
            fatal("pinalloc debug check: a free block was written after it was freed (use after free)\n");
        }
        block.write_bytes(JUNK, size);
    }
}

/// Fills a block (small or large) handed out by a path that does not poison, with junk.
///
/// # Safety
/// `block` has `size` writable bytes owned by the caller.
pub(crate) unsafe fn junk(block: *mut u8, size: usize) {
    // SAFETY: per the contract.
    unsafe { block.write_bytes(JUNK, size) }
}

/// Checks a free of `ptr` with `layout` against the allocator's metadata, aborting with a
/// message on misuse.
///
/// # Safety
/// `ptr` is non-null and points into memory this process can read (a pointer from some
/// allocator); what can be checked without that is checked.
pub(crate) unsafe fn check_free(ptr: *mut u8, layout: Layout) {
    match class_of(layout.size(), layout.align()) {
        Some(class) => {
            // The span fields read here (class, start) are written only when the span is made,
            // before any of its blocks is handed out, so they do not race with this read.
            // SAFETY: the segment-aligned address below `ptr` is readable if `ptr` came from
            // this allocator; its magic tells whether it did.
            unsafe {
                let header = SegmentHeader::of(ptr);
                if (*header).magic != MAGIC {
                    fatal("pinalloc debug check: free of a pointer this allocator did not hand out\n");
                }
                if (*header).kind != SegmentKind::Small {
                    fatal("pinalloc debug check: a large block freed with a small layout\n");
                }
                let span = SegmentHeader::span_of(ptr);
                if (*span).class() != class || (*span).start.is_null() {
                    fatal("pinalloc debug check: a block freed with a layout of another size class\n");
                }
                let size = block_size(class);
                if ptr.addr() < (*span).start.addr()
                    || !(ptr.addr() - (*span).start.addr()).is_multiple_of(size)
                {
                    fatal("pinalloc debug check: free of a pointer inside a block, not its start\n");
                }
                if ptr.add(8).cast::<u64>().read() == FREE_MARK {
                    fatal("pinalloc debug check: double free\n");
                }
            }
        }
        None => {
            // SAFETY: as above: a large block's header sits where its alignment puts it.
            unsafe {
                let header = large::header(ptr, layout.align());
                if (*header).magic != LARGE_MAGIC || (*header).kind != SegmentKind::Large {
                    fatal("pinalloc debug check: free of a large layout that is not a live large block\n");
                }
                if large::usable_size(header) < layout.size() {
                    fatal("pinalloc debug check: a large block freed with a larger layout than it has\n");
                }
            }
        }
    }
}
