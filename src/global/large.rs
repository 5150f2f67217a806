//! Large allocations (above the size classes): each is its own mapping from the OS layer.
//!
//! The mapping is aligned to [`SEGMENT`] and starts with a [`LargeHeader`], so a pointer
//! alone leads to its header the same way a small block leads to its segment's header (for
//! [`super::usable_size`]); the user's bytes start `max(64, align)` bytes in. Fresh mappings
//! are zero, so `alloc_zeroed` skips the memset, and growing uses `mremap`, which moves
//! page tables instead of copying bytes.

use super::segment::{SEGMENT, SegmentKind};
use crate::os::{HugePages, MapOptions, Mapping, RawMapping};
use core::alloc::Layout;
use core::ptr;

pub(crate) const LARGE_MAGIC: u64 = 0x4c41_5247_4550_494e; // "LARGEPIN"

/// The start of every large mapping. Shares its first two fields with the segment header,
/// so either can be told apart from the other.
#[repr(C)]
pub(crate) struct LargeHeader {
    pub magic: u64,
    pub kind: SegmentKind,
    /// Where the user's bytes start, from the mapping's start.
    pub offset: usize,
    pub mapping: RawMapping,
}

const _: () = assert!(core::mem::size_of::<LargeHeader>() <= 64);

fn offset_for(align: usize) -> usize {
    align.max(64)
}

/// Maps a large block for `layout`; null if the OS refuses.
pub(crate) fn alloc(layout: Layout, huge_pages: HugePages) -> *mut u8 {
    let offset = offset_for(layout.align());
    let Some(total) = layout.size().checked_add(offset) else {
        return ptr::null_mut();
    };
    let options = MapOptions::new()
        .align(layout.align().max(SEGMENT))
        .huge_pages(huge_pages);
    let Ok(mapping) = Mapping::new(total, &options) else {
        return ptr::null_mut();
    };
    let raw = mapping.into_raw();
    let header: *mut LargeHeader = raw.ptr.as_ptr().cast();
    // SAFETY: the mapping is fresh and at least `offset >= 64` bytes long; the header fits.
    unsafe {
        header.write(LargeHeader {
            magic: LARGE_MAGIC,
            kind: SegmentKind::Large,
            offset,
            mapping: raw,
        });
        raw.ptr.as_ptr().add(offset)
    }
}

/// The header of the large block at `ptr`, allocated with alignment `align`.
///
/// # Safety
/// `ptr` came from [`alloc`] (or [`realloc`]) with this alignment and is live.
unsafe fn header(ptr: *mut u8, align: usize) -> *mut LargeHeader {
    // SAFETY: per the contract the header sits `offset_for(align)` bytes before `ptr`.
    unsafe { ptr.sub(offset_for(align)).cast() }
}

/// Unmaps the large block at `ptr`.
///
/// # Safety
/// `ptr` came from [`alloc`]/[`realloc`] with `layout`'s alignment, and is not used again.
pub(crate) unsafe fn dealloc(ptr: *mut u8, layout: Layout) {
    // SAFETY: per the contract; the mapping was taken apart in `alloc` and is rebuilt once.
    unsafe { drop(Mapping::from_raw((*header(ptr, layout.align())).mapping)) };
}

/// Resizes the large block at `ptr` to `new_size` (also large) with `mremap`; null (and the
/// block untouched) if the OS refuses.
///
/// # Safety
/// As for [`dealloc`]; on success the old pointer is dead.
pub(crate) unsafe fn realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    let offset = offset_for(layout.align());
    let Some(total) = new_size.checked_add(offset) else {
        return ptr::null_mut();
    };
    // SAFETY: per the contract the header is live and ours.
    unsafe {
        let header = header(ptr, layout.align());
        let mut mapping = Mapping::from_raw((*header).mapping);
        let result = mapping.resize(total);
        let raw = mapping.into_raw();
        if result.is_err() {
            return ptr::null_mut();
        }
        let header: *mut LargeHeader = raw.ptr.as_ptr().cast();
        (*header).mapping = raw;
        raw.ptr.as_ptr().add(offset)
    }
}

/// Bytes usable at the large block whose header is `header`.
///
/// # Safety
/// `header` is a live large block's header.
pub(crate) unsafe fn usable_size(header: *const LargeHeader) -> usize {
    // SAFETY: per the contract.
    unsafe { (*header).mapping.len - (*header).offset }
}
