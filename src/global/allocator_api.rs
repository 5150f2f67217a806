//! `PinAlloc` as an [`Allocator`](allocator_api2::alloc::Allocator) for collections.
//!
//! `allocate` returns the block's real usable size (the size class, or the large mapping),
//! so a collection can use the slack without asking again; `grow` and `shrink` stay in
//! place while the new size has the same size class (and large blocks grow with `mremap` or
//! into a warm cached mapping). Zero-sized requests get a dangling, aligned pointer and
//! touch nothing. Any size between the requested and the returned one may be given back
//! to `deallocate`: it maps to the same class (or the same large mapping).
//!
//! The same implementation is generated for allocator-api2 0.4 (the `allocator-api2`
//! dependency) and, with the `allocator-api2-02` feature, for 0.2, which hashbrown and
//! bumpalo use.

use super::{PinAlloc, large, size_class};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

/// The bytes usable at `ptr`, a live block allocated with `layout` (non-zero size).
///
/// # Safety
/// `ptr` was allocated by `PinAlloc` with `layout` (or a size it fits) and is live.
unsafe fn usable(ptr: NonNull<u8>, layout: Layout) -> usize {
    match size_class::class_of(layout.size(), layout.align()) {
        Some(class) => size_class::block_size(class),
        // SAFETY: per the contract, a live large block with this alignment.
        None => unsafe { large::usable_size_of(ptr.as_ptr(), layout.align()) },
    }
}

/// A zero-sized allocation: dangling, aligned, never dereferenced.
fn dangling(layout: Layout) -> NonNull<[u8]> {
    // SAFETY: alignments are non-zero.
    let ptr = unsafe { NonNull::new_unchecked(ptr::without_provenance_mut::<u8>(layout.align())) };
    NonNull::slice_from_raw_parts(ptr, 0)
}

/// Allocates for `layout`, or `None` when out of memory.
fn allocate(alloc: &PinAlloc, layout: Layout, zeroed: bool) -> Option<NonNull<[u8]>> {
    if layout.size() == 0 {
        return Some(dangling(layout));
    }
    // SAFETY: non-zero size.
    let ptr = NonNull::new(unsafe { if zeroed { alloc.alloc_zeroed(layout) } else { alloc.alloc(layout) } })?;
    // SAFETY: just allocated with `layout`.
    let len = unsafe { usable(ptr, layout) };
    if zeroed && len > layout.size() {
        // The slack is handed out too, so it must read as zero as well.
        // SAFETY: the block has `len` writable bytes.
        unsafe { ptr.as_ptr().add(layout.size()).write_bytes(0, len - layout.size()) };
    }
    Some(NonNull::slice_from_raw_parts(ptr, len))
}

/// # Safety
/// As for `Allocator::deallocate`.
unsafe fn deallocate(alloc: &PinAlloc, ptr: NonNull<u8>, layout: Layout) {
    if layout.size() != 0 {
        // SAFETY: forwarded; any fitting size maps to the block's class (module docs).
        unsafe { alloc.dealloc(ptr.as_ptr(), layout) };
    }
}

/// Moves a block to `new` (larger or smaller), in place when possible.
///
/// # Safety
/// As for `Allocator::grow`/`shrink`: `ptr` is live with `old`.
unsafe fn resize(
    alloc: &PinAlloc,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
    zero_tail: bool,
) -> Option<NonNull<[u8]>> {
    if old.size() == 0 {
        return allocate(alloc, new, zero_tail);
    }
    if new.size() == 0 {
        // SAFETY: forwarded.
        unsafe { deallocate(alloc, ptr, old) };
        return Some(dangling(new));
    }
    // SAFETY: forwarded: realloc keeps the alignment, so use it only when that is all.
    let moved = unsafe {
        if new.align() == old.align() {
            alloc.realloc(ptr.as_ptr(), old, new.size())
        } else {
            let fresh = alloc.alloc(new);
            if !fresh.is_null() {
                ptr::copy_nonoverlapping(ptr.as_ptr(), fresh, old.size().min(new.size()));
                alloc.dealloc(ptr.as_ptr(), old);
            }
            fresh
        }
    };
    let moved = NonNull::new(moved)?;
    // SAFETY: `moved` is live with `new`.
    let len = unsafe { usable(moved, new) };
    if zero_tail && len > old.size() {
        // SAFETY: bytes `old.size()..len` of the block are ours and must read as zero.
        unsafe { moved.as_ptr().add(old.size()).write_bytes(0, len - old.size()) };
    }
    Some(NonNull::slice_from_raw_parts(moved, len))
}

macro_rules! impl_allocator {
    ($api:ident) => {
        // SAFETY: blocks are valid until deallocated, never handed out twice, and usable
        // for the length returned (module docs); `grow`/`shrink` keep the contents up to the
        // smaller size; nothing panics.
        unsafe impl $api::alloc::Allocator for PinAlloc {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                allocate(self, layout, false).ok_or($api::alloc::AllocError)
            }

            fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                allocate(self, layout, true).ok_or($api::alloc::AllocError)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                // SAFETY: forwarded.
                unsafe { deallocate(self, ptr, layout) }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded.
                unsafe { resize(self, ptr, old, new, false) }.ok_or($api::alloc::AllocError)
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded.
                unsafe { resize(self, ptr, old, new, true) }.ok_or($api::alloc::AllocError)
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded.
                unsafe { resize(self, ptr, old, new, false) }.ok_or($api::alloc::AllocError)
            }
        }
    };
}

impl_allocator!(allocator_api2);
#[cfg(feature = "allocator-api2-02")]
impl_allocator!(allocator_api2_02);
