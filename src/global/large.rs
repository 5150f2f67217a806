//! Large allocations (above the size classes): each is its own mapping from the OS layer.
//!
//! The mapping is aligned to [`SEGMENT`] and starts with a [`LargeHeader`], so a pointer
//! alone leads to its header the same way a small block leads to its segment's header (for
//! [`super::usable_size`]); the user's bytes start `max(64, align)` bytes in.
//!
//! Freed mappings wait in a small cache ([`CACHE_SLOTS`] entries) for the purge delay before
//! they are unmapped. Their pages are already faulted in, so reusing one is much cheaper than
//! a fresh mapping, whose every page the kernel must fault and zero; that is also why a
//! block grows by copying into a cached mapping when one fits, and by `mremap` (which moves
//! page tables, but leaves the new part to be faulted) otherwise. Fresh mappings are zero,
//! so `alloc_zeroed` skips the memset for them.

use super::segment::{SEGMENT, SegmentKind};
use super::segment_map::{self, Chunk};
use crate::os::{HugePages, MapOptions, Mapping, RawMapping};
use crate::sync::SpinLock;
use core::alloc::Layout;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of the mappings behind live large blocks. `Relaxed`, no partner: a statistic; a
/// block's addition happens before its subtraction because the program hands the pointer
/// from `alloc` to `dealloc`, so the count never goes below zero.
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes of the mappings behind live large blocks.
pub(crate) fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Freed large mappings kept for reuse.
pub(crate) const CACHE_SLOTS: usize = 16;
/// Mappings larger than this are unmapped at once rather than cached.
const CACHE_MAX_BYTES: usize = 256 << 20;

/// A cached mapping and when it was freed (purge clock, ms).
#[derive(Clone, Copy)]
struct Cached {
    mapping: RawMapping,
    freed_ms: u64,
}

struct Cache {
    slots: [Option<Cached>; CACHE_SLOTS],
    /// Bytes held in `slots`.
    bytes: usize,
}

// SAFETY: the cached mappings are unused memory owned by the cache, guarded by its lock.
unsafe impl Send for Cache {}

static CACHE: SpinLock<Cache> = SpinLock::new(Cache { slots: [None; CACHE_SLOTS], bytes: 0 });

/// The smallest cached mapping of at least `len` bytes (and at most four times that, so a
/// small request does not pin a huge mapping), aligned to `align`; taken out of the cache.
fn take_cached(len: usize, align: usize) -> Option<RawMapping> {
    let mut cache = CACHE.lock();
    let fits = |c: &Cached| {
        c.mapping.len >= len
            && c.mapping.len / 4 <= len
            && c.mapping.ptr.as_ptr().addr().is_multiple_of(align)
    };
    let best = (0..CACHE_SLOTS)
        .filter(|&i| cache.slots[i].as_ref().is_some_and(fits))
        .min_by_key(|&i| cache.slots[i].map_or(usize::MAX, |c| c.mapping.len))?;
    let taken = cache.slots[best].take()?;
    cache.bytes -= taken.mapping.len;
    Some(taken.mapping)
}

/// Keeps a freed mapping for reuse, or unmaps it (or the oldest cached one) if the cache
/// is full.
fn give_to_cache(mapping: RawMapping, now_ms: u64) {
    LIVE_BYTES.fetch_sub(mapping.len, Ordering::Relaxed);
    let evicted = {
        let mut cache = CACHE.lock();
        if mapping.len > CACHE_MAX_BYTES {
            Some(mapping)
        } else {
            let slot = match cache.slots.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    (0..CACHE_SLOTS).min_by_key(|&i| cache.slots[i].map_or(0, |c| c.freed_ms)).unwrap_or(0)
                }
            };
            let old = cache.slots[slot].replace(Cached { mapping, freed_ms: now_ms });
            cache.bytes += mapping.len;
            if let Some(old) = old {
                cache.bytes -= old.mapping.len;
            }
            old.map(|c| c.mapping)
        }
    };
    // Unmapped outside the lock.
    if let Some(raw) = evicted {
        // SAFETY: the mapping was taken apart by `alloc` and is owned by nobody else now.
        drop(unsafe { Mapping::from_raw(raw) });
    }
}

/// Unmaps cached mappings freed at or before `deadline_ms`; returns whether any remain.
pub(crate) fn purge_due(deadline_ms: u64) -> bool {
    let mut due = [None; CACHE_SLOTS];
    let remaining = {
        let mut cache = CACHE.lock();
        for (slot, out) in cache.slots.iter_mut().zip(&mut due) {
            if slot.is_some_and(|c| c.freed_ms <= deadline_ms) {
                *out = slot.take();
            }
        }
        let freed: usize = due.iter().flatten().map(|c| c.mapping.len).sum();
        cache.bytes -= freed;
        cache.slots.iter().any(Option::is_some)
    };
    for cached in due.into_iter().flatten() {
        // SAFETY: taken out of the cache: owned by nobody else.
        drop(unsafe { Mapping::from_raw(cached.mapping) });
    }
    remaining
}

/// Bytes of freed large mappings waiting in the cache.
pub(crate) fn cached_bytes() -> usize {
    CACHE.lock().bytes
}

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

/// Bytes of mapping behind a block of `size` bytes at `offset`. Even a zero-size block gets
/// a byte: one lying at the very end of its mapping would sit in the next 4 MiB chunk
/// (perhaps a segment's) when `offset` is [`SEGMENT`] or more, and its registration in the
/// segment map would be that chunk's, cleared when the block is freed.
fn mapping_len(size: usize, offset: usize) -> Option<usize> {
    size.max(1).checked_add(offset)
}

/// A large block for `layout`, from the cache or a fresh mapping; null if the OS refuses.
/// `zeroed`: the block must read as zero (a cached mapping is cleared; a fresh one is).
/// A fresh mapping asks `huge_pages` only if it is bulk (see `huge_pages.rs`).
pub(crate) fn alloc(layout: Layout, huge_pages: HugePages, zeroed: bool) -> *mut u8 {
    let offset = offset_for(layout.align());
    let Some(total) = mapping_len(layout.size(), offset) else { return ptr::null_mut() };
    let align = layout.align().max(SEGMENT);
    let raw = match take_cached(total, align) {
        Some(raw) => {
            if zeroed {
                // SAFETY: the cached mapping is ours and at least `offset + size` long.
                unsafe { raw.ptr.as_ptr().add(offset).write_bytes(0, layout.size()) };
            }
            raw
        }
        None => {
            let huge_pages = super::huge_pages::for_bulk(huge_pages, layout.size());
            let options = MapOptions::new().align(align).huge_pages(huge_pages);
            let Ok(mapping) = Mapping::new(total, &options) else { return ptr::null_mut() };
            mapping.into_raw()
        }
    };
    // SAFETY: the mapping is ours and at least `offset >= 64` bytes long; the header fits.
    unsafe { install(raw, offset) }
}

/// Writes the header of a large block into `raw`, registers the block in the segment map
/// and returns it.
///
/// # Safety
/// `raw` is a mapping owned by the caller, longer than `offset >= 64` bytes.
unsafe fn install(raw: RawMapping, offset: usize) -> *mut u8 {
    LIVE_BYTES.fetch_add(raw.len, Ordering::Relaxed);
    let header: *mut LargeHeader = raw.ptr.as_ptr().cast();
    // SAFETY: per the contract.
    unsafe {
        header.write(LargeHeader { magic: LARGE_MAGIC, kind: SegmentKind::Large, offset, mapping: raw });
        let block = raw.ptr.as_ptr().add(offset);
        if offset >= SEGMENT {
            // The block starts a chunk of its own: leave the way back to the header just
            // below it, in the alignment gap (see `header_of`).
            block.cast::<*mut LargeHeader>().sub(1).write(header);
        }
        // An uncovered address only makes the block read as foreign to `free`.
        let _ = segment_map::insert(block.addr(), Chunk::Large);
        block
    }
}

/// The header of the large block at `ptr`, allocated with alignment `align`.
///
/// # Safety
/// `ptr` came from [`alloc`] (or [`realloc`]) with this alignment and is live.
pub(crate) unsafe fn header(ptr: *mut u8, align: usize) -> *mut LargeHeader {
    // SAFETY: per the contract the header sits `offset_for(align)` bytes before `ptr`.
    unsafe { ptr.sub(offset_for(align)).cast() }
}

/// The header of the large block at `ptr`, knowing only the pointer: the chunk's start,
/// except for a block aligned to 4 MiB or more, which starts a chunk itself and finds its
/// header through the pointer stored just below it. (A small block never starts a chunk:
/// the segment's header does.)
///
/// # Safety
/// `ptr` is a live large block.
pub(crate) unsafe fn header_of(ptr: *mut u8) -> *mut LargeHeader {
    if ptr.addr() & (SEGMENT - 1) == 0 {
        // SAFETY: per the contract and `install`, the pointer below the block is its header.
        unsafe { ptr.cast::<*mut LargeHeader>().sub(1).read() }
    } else {
        ptr.map_addr(|addr| addr & !(SEGMENT - 1)).cast()
    }
}

/// Frees the large block at `ptr`: its mapping goes to the cache (unmapped after the purge
/// delay).
///
/// # Safety
/// `ptr` came from [`alloc`]/[`realloc`] with `layout`'s alignment, and is not used again.
pub(crate) unsafe fn dealloc(ptr: *mut u8, layout: Layout, now_ms: u64) {
    // SAFETY: per the contract the header is live; the block is dead from here on.
    let mapping = unsafe { (*header(ptr, layout.align())).mapping };
    segment_map::remove(ptr.addr(), Chunk::Large);
    give_to_cache(mapping, now_ms);
}

/// Resizes the large block at `ptr` to `new_size` (also large): in place if its mapping
/// still fits, into a cached mapping by copying if one fits, else with `mremap`. Null (and
/// the block untouched) if the OS refuses.
///
/// # Safety
/// As for [`dealloc`]; on success the old pointer is dead.
pub(crate) unsafe fn realloc(ptr: *mut u8, layout: Layout, new_size: usize, now_ms: u64) -> *mut u8 {
    let offset = offset_for(layout.align());
    let Some(total) = mapping_len(new_size, offset) else { return ptr::null_mut() };
    // SAFETY: per the contract the header is live and ours; the cached mapping is ours.
    unsafe {
        let current = (*header(ptr, layout.align())).mapping;
        if total <= current.len && total > current.len / 4 {
            return ptr;
        }
        if total > current.len
            && let Some(warm) = take_cached(total, current.align)
        {
            let new = install(warm, offset);
            ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            segment_map::remove(ptr.addr(), Chunk::Large);
            give_to_cache(current, now_ms);
            return new;
        }
        // Unregistered before the resize: once `mremap` moves the block, its old range is
        // free, and another thread may map a segment there and register it first.
        segment_map::remove(ptr.addr(), Chunk::Large);
        let mut mapping = Mapping::from_raw(current);
        let result = mapping.resize(total);
        let raw = mapping.into_raw();
        if result.is_err() {
            // Untouched: registered again.
            let _ = segment_map::insert(ptr.addr(), Chunk::Large);
            return ptr::null_mut();
        }
        LIVE_BYTES.fetch_sub(current.len, Ordering::Relaxed);
        install(raw, offset)
    }
}

/// Bytes usable at the large block `ptr`, allocated with alignment `align`.
///
/// # Safety
/// `ptr` is a live large block allocated with `align`.
pub(crate) unsafe fn usable_size_of(ptr: *mut u8, align: usize) -> usize {
    // SAFETY: per the contract.
    unsafe { usable_size(header(ptr, align)) }
}

/// Bytes usable at the large block whose header is `header`.
///
/// # Safety
/// `header` is a live large block's header.
pub(crate) unsafe fn usable_size(header: *const LargeHeader) -> usize {
    // SAFETY: per the contract.
    unsafe { (*header).mapping.len - (*header).offset }
}
