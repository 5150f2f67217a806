//! Segments and spans: where small blocks live, and how a block finds its metadata.
//!
//! A **segment** is a [`SEGMENT`] (4 MiB) mapping aligned to its own size, cut into 64 pages
//! of [`PAGE`] (64 KiB). Page 0 holds the [`SegmentHeader`]; the other 63 are handed out in
//! runs, one run per **span**. A span serves one size class: its blocks are carved from its
//! pages in address order. Because segments are aligned, the header of any block's segment
//! is at `address & !(SEGMENT - 1)` and its span is found through the page index, in O(1)
//! and without a lookup table.
//!
//! The segment list, the page bitmaps and the purge state are guarded by one lock
//! ([`SEGMENTS`]); a span's block accounting is guarded by its class's central lock
//! (`central.rs`). Neither is touched by the allocation fast path.
//!
//! Freed pages are *dirty* until purged: [`Segments::purge_due`] gives the pages that have
//! been free for longer than the purge delay back to the OS with `MADV_DONTNEED`, and
//! unmaps segments that are entirely free, keeping one in reserve.

use super::size_class::{CLASSES, block_size};
use super::thread_cache::{bin_offset, class_at};
use crate::os::{HugePages, MapOptions, Mapping, Purge, RawMapping};
use crate::sync::SpinLock;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, Ordering};

/// Bytes in a segment (and its alignment).
pub const SEGMENT: usize = 4 << 20;
/// Bytes in a page: the granule of spans and of purging.
pub const PAGE: usize = 64 << 10;
/// Pages in a segment; page 0 is the header.
pub const PAGES: usize = SEGMENT / PAGE;

pub(crate) const MAGIC: u64 = 0x5049_4e41_4c4c_4f43; // "PINALLOC"

/// A free block: its first word links it into a free list.
#[repr(C)]
pub(crate) struct Block {
    pub next: *mut Block,
}

impl Block {
    /// Links the free block at `block` to `next` and returns it as a list keeps it.
    ///
    /// `block` may be the pointer as the program gave it back: the link is written through
    /// it, and the result has the mapping's root provenance, from which the block is handed
    /// out again (the identity but under miri). A free can happen while a caller's frame
    /// still protects the program's pointer (a `Box` passed by value and dropped, as std's
    /// thread start does); a write through the root would then remove that protected tag,
    /// which miri rightly reports.
    ///
    /// # Safety
    /// `block` is a free block of at least a pointer's size that nobody else uses.
    #[inline(always)]
    pub(crate) unsafe fn link(block: *mut u8, next: *mut Block) -> *mut Block {
        // SAFETY: per the contract the block is ours to write.
        unsafe { (*block.cast::<Block>()).next = next };
        crate::os::root_provenance(block).cast()
    }

    /// The pointer to hand [`Block::link`] for the program's `ptr` to a block it asked
    /// `size` bytes of: `ptr` itself, unless its borrow covers fewer bytes than the link
    /// (under miri, a `Layout` under a pointer's size), where the root's is the only one.
    #[inline(always)]
    pub(crate) fn linkable(ptr: *mut u8, size: usize) -> *mut u8 {
        if cfg!(miri) && size < size_of::<Block>() { crate::os::root_provenance(ptr) } else { ptr }
    }
}

/// The metadata of one span (or of an unused page run), kept in its segment's span table at
/// the index of its first page. Guarded by the central lock of `class` while in use.
#[repr(C, align(64))]
pub(crate) struct Span {
    /// First byte of the span's pages.
    pub start: *mut u8,
    /// Returned blocks, linked through their first word.
    pub free: *mut Block,
    /// The last block on `free` (whose link is null), so the whole list splices in O(1).
    pub free_tail: *mut Block,
    /// Neighbours in the class's list of spans with blocks to give.
    pub next: *mut Span,
    pub prev: *mut Span,
    /// Blocks the span holds in all (at most 4096: a page of 16-byte blocks).
    pub capacity: u16,
    /// The span's class, as where its list lies in a thread cache's lists, in bytes
    /// ([`super::thread_cache::bin_offset`]; [`Span::class`] reads it back): `free` indexes
    /// the lists by it without scaling a class first. In a span's own slot and its later
    /// pages'.
    pub bin: u16,
    /// Blocks carved so far (in the order [`Span::next_carve`] gives): handed out at least
    /// once. The rest have never been written by this span (zero if the pages are fresh or
    /// purged, stale if they were reused dirty).
    pub carved: u32,
    /// Blocks out of the span: in thread caches, depots or the program's hands.
    pub outstanding: u32,
    /// Blocks on `free`.
    pub free_count: u32,
    /// The token of the thread cache that *holds* this span to carve it, or [`NO_OWNER`] (never
    /// any other value: `free` tells holders apart by the tokens' common mark, see
    /// `thread_cache::held_by_others`). Only the holder carves a held span, reaching it through
    /// its cache rather than the partial list, and the span stays even when all its blocks are
    /// back; the holder lets go when it has carved the last block or exits. `free` by pointer
    /// compares the token with its own, to keep other threads' fresh blocks out of its list
    /// (see `by_pointer.rs`). Written under the class lock, read without it by `free`, hence
    /// atomic; `Relaxed` on both sides, no partner: the value is a hint that orders nothing,
    /// and the lock orders the writers.
    pub owner: AtomicU32,
    pub pages: u8,
    /// Whether the span is on its class's partial list.
    pub listed: bool,
    /// How many pages this slot lies past the first page of the span covering its page: 0
    /// in a span's own slot, `i` in the slot of its page `first + i`. Such a later slot
    /// holds only `back`, a copy of the span's `bin` and an `owner` of [`NO_OWNER`]: what
    /// `free` reads ([`SegmentHeader::page_slot`]). Set when the span is made, before any of
    /// its blocks exists, and read without a lock.
    pub back: u8,
}

// `free` by pointer reads a span's list offset and holder: one line.
const _: () = assert!(core::mem::size_of::<Span>() == 64);

/// [`Span::owner`] of a span no thread cache carves.
pub(crate) const NO_OWNER: u32 = 0;

impl Span {
    const fn empty() -> Span {
        Span {
            start: ptr::null_mut(),
            free: ptr::null_mut(),
            free_tail: ptr::null_mut(),
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            capacity: 0,
            bin: 0,
            carved: 0,
            outstanding: 0,
            free_count: 0,
            owner: AtomicU32::new(NO_OWNER),
            pages: 0,
            listed: false,
            back: 0,
        }
    }

    /// The span's class.
    pub fn class(&self) -> usize {
        class_at(self.bin)
    }

    /// Whether every block has come back.
    pub fn is_unused(&self) -> bool {
        self.outstanding == 0
    }

    /// The index of the next block to carve and how many can be carved from it on without
    /// wrapping. Carving starts at block [`Span::first_carved`] and wraps around to 0.
    pub fn next_carve(&self) -> (u32, u32) {
        let (first, carved, capacity) = (self.first_carved(), self.carved, u32::from(self.capacity));
        if first + carved < capacity {
            (first + carved, capacity - first - carved)
        } else {
            (first + carved - capacity, capacity - carved)
        }
    }

    /// Where carving starts: a block index drawn from the span's address. Spans that
    /// threads carve at the same pace would otherwise all have their blocks in use at the
    /// same offsets from a 64 KiB boundary, which map to the same sets of an L2 cache
    /// indexed by the address bits below 64 KiB, and evict each other (larson ran 16%
    /// slower so). Only the order changes: every block keeps its place and alignment.
    pub fn first_carved(&self) -> u32 {
        // The page number times the golden ratio, modulo 1 (Fibonacci hashing): spans on
        // consecutive pages start as far apart as a sequence of fractions can be.
        let fraction = (self.start.addr() as u64 >> 16).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((u128::from(fraction) * u128::from(self.capacity)) >> 64) as u32
    }

    /// Whether a thread cache holds this span (see [`Span::owner`]).
    pub fn is_held(&self) -> bool {
        self.owner.load(Ordering::Relaxed) != NO_OWNER
    }

    /// Whether the span belongs on its class's partial list: no thread holds it, and it
    /// has returned or uncarved blocks. A held span's blocks are its holder's.
    pub fn wants_listing(&self) -> bool {
        !self.is_held() && (self.free_count > 0 || self.carved < u32::from(self.capacity))
    }
}

/// What occupies a segment-aligned mapping: small-block pages, or one large allocation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum SegmentKind {
    Small = 1,
    Large = 2,
}

/// The header at the start of every segment-aligned mapping the allocator makes. A small
/// segment's span table follows it in the header page, at the segment's colour offset
/// ([`SegmentHeader::spans`]).
#[repr(C)]
pub(crate) struct SegmentHeader {
    pub magic: u64,
    pub kind: SegmentKind,
    /// The mapping, to unmap it.
    pub mapping: RawMapping,
    /// NUMA node the segment's pages are bound to.
    pub node: usize,
    /// Next segment in [`Segments`]' list.
    next: *mut SegmentHeader,
    /// Bit `i` set: page `i` belongs to no span.
    free_pages: u64,
    /// Bit `i` set: page `i` is free but its memory has not been purged yet.
    dirty_pages: u64,
    /// When each dirty page was freed (the purge clock, in milliseconds).
    dirty_since: [u64; PAGES],
}

/// A small segment's span metadata: slot `i` describes the span whose first page is `i`,
/// or says how far back that span starts (see [`Span::back`]).
type SpanTable = [Span; PAGES];

/// Where the span tables of all colours lie: the header page's second half, past the
/// header's fields.
const SPAN_TABLE_BASE: usize = PAGE / 2;
/// Span tables come in this many positions (*colours*), one table's size apart, so that
/// colour and page together index one array of `COLOURS * PAGES` slots (see
/// [`SegmentHeader::page_slot`]).
const COLOURS: usize = 8;

const _: () = assert!(size_of::<SegmentHeader>() <= SPAN_TABLE_BASE);
const _: () = assert!(SPAN_TABLE_BASE + COLOURS * size_of::<SpanTable>() <= PAGE);

/// All pages except the header page.
const ALL_PAGES: u64 = !1;

impl SegmentHeader {
    /// The header of the segment holding `ptr`, if `ptr` is inside a small-block segment.
    ///
    /// # Safety
    /// `ptr` points into a mapping made by this allocator (a small segment or a large
    /// allocation), so the segment-aligned address below it holds a header.
    #[inline]
    pub(crate) unsafe fn of(ptr: *const u8) -> *mut SegmentHeader {
        ptr.map_addr(|addr| addr & !(SEGMENT - 1)).cast_mut().cast()
    }

    /// The span table of the small segment at `segment`, at an offset that depends on the
    /// segment's address: cache colouring (Bonwick, "The Slab Allocator", USENIX 1994).
    ///
    /// Segments are aligned to 4 MiB, so metadata at one fixed offset in every header lands
    /// in the same few sets of every cache indexed by lower address bits (L2 by the bits
    /// below 64 KiB, L3 by those below 2 MiB). With the metadata at one offset, 24
    /// segments' competed for 64 of the L2's 1024 sets, and `free`'s lookups missed a
    /// simulated 4 MiB last-level cache on about a third of its calls in mixed-small
    /// (callgrind); with the tables at sixteen offsets, on 1% of them. Eight colours, each a
    /// whole table (4 KiB) after the last, spread them over half the sets, and let
    /// [`SegmentHeader::page_slot`] find a slot without a multiplication.
    #[inline(always)]
    pub(crate) fn spans(segment: *mut SegmentHeader) -> *mut Span {
        let colour = (segment.addr() / SEGMENT) % COLOURS;
        segment.wrapping_byte_add(SPAN_TABLE_BASE + colour * size_of::<SpanTable>()).cast()
    }

    /// The slot of the page holding block `ptr`: its span's on the span's first page (every
    /// span of blocks up to 8 KiB has only that one), else a later slot that carries the
    /// span's class (as its list offset) and [`NO_OWNER`] (see [`Span::back`]). `free` reads
    /// the class and holder here without first following `back`: that dependent load cost
    /// larson 6% of its time.
    ///
    /// The tables of all colours form one array, indexed by colour and page together: the
    /// address bits above the page offset, masked. `free` finds the slot in a shift, a mask
    /// and an add (with the colour a multiple of an odd step, it took a multiplication too,
    /// on the chain to the slot's load).
    ///
    /// # Safety
    /// `ptr` is a block of a small segment.
    #[inline(always)]
    pub(crate) unsafe fn page_slot(ptr: *const u8) -> *mut Span {
        let index = (ptr.addr() / PAGE) % (COLOURS * PAGES);
        debug_assert_eq!(
            index % PAGES,
            (ptr.addr() % SEGMENT) / PAGE,
            "colour and page index the array together"
        );
        // SAFETY: per the contract the block's segment is a small one, whose span table
        // exists: `index` is its colour's table's slot for the block's page.
        unsafe { Self::of(ptr).byte_add(SPAN_TABLE_BASE).cast::<Span>().add(index) }
    }

    /// The span holding block `ptr`.
    ///
    /// # Safety
    /// `ptr` is a block of a small segment.
    #[inline]
    pub(crate) unsafe fn span_of(ptr: *const u8) -> *mut Span {
        // SAFETY: per the contract; the slot of the block's page says how far back its span
        // starts (set before any block of the span was handed out).
        unsafe {
            let slot = Self::page_slot(ptr);
            slot.sub((*slot).back as usize)
        }
    }
}

/// Where new segments come from and whether they may use huge pages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentOptions {
    pub huge_pages: HugePages,
}

impl SegmentOptions {
    /// The options for a segment mapped for a thread that has carved `carved` bytes of fresh
    /// blocks in its life: [`HugePages::Transparent`] applies only past
    /// [`BULK_BYTES`](super::huge_pages::BULK_BYTES) (see [`super::huge_pages`]).
    pub(crate) fn for_thread(self, carved: usize) -> SegmentOptions {
        SegmentOptions { huge_pages: super::huge_pages::for_bulk(self.huge_pages, carved) }
    }
}

/// The list of small-block segments. Guarded by [`SEGMENTS`].
pub(crate) struct Segments {
    head: *mut SegmentHeader,
    /// Number of segments and how many of their pages are resident (in spans, or dirty).
    pub segments: usize,
    pub resident_pages: usize,
    /// Pages purged since start.
    pub purged_pages: usize,
    /// Pages in spans (the rest of the segments' pages are free).
    pub span_pages: usize,
    /// Whether some page is dirty (so the purger has work).
    pub dirty: bool,
}

// SAFETY: the raw pointers lead to segment headers owned by the list, which only the
// holder of the lock touches.
unsafe impl Send for Segments {}

pub(crate) static SEGMENTS: SpinLock<Segments> = SpinLock::new(Segments {
    head: ptr::null_mut(),
    segments: 0,
    resident_pages: 0,
    purged_pages: 0,
    span_pages: 0,
    dirty: false,
});

/// Pages a span of `class` takes: one page, or enough for at least 8 blocks.
pub(crate) fn span_pages(class: usize) -> usize {
    (block_size(class) * 8).div_ceil(PAGE).max(1)
}

const _: () = assert!(span_pages_max() < PAGES, "the largest span must fit in a segment");
const fn span_pages_max() -> usize {
    (super::size_class::MAX_SMALL * 8).div_ceil(PAGE)
}

impl Segments {
    /// A span of `class` on node `node`: its pages taken from a segment with room (mapping a
    /// new segment if none has), its metadata initialised. `None` if the OS has no memory.
    ///
    /// Headers are only ever touched through raw place expressions on their fields, never
    /// through a reference to the whole header: other threads may be using other spans of
    /// the same header under their own class locks, and span pointers handed out earlier
    /// must stay valid.
    pub(crate) fn allocate_span(
        &mut self,
        class: usize,
        node: usize,
        options: SegmentOptions,
    ) -> Option<NonNull<Span>> {
        debug_assert!(class < CLASSES);
        let pages = span_pages(class);
        let mask_of = |first: usize| ((1u64 << pages) - 1) << first;
        let mut segment = self.head;
        let (segment, first) = loop {
            if segment.is_null() {
                let fresh = self.map_segment(node, options)?;
                break (fresh, 1);
            }
            // SAFETY: segments on the list are live; their page bitmaps are guarded by our lock.
            let (same_node, free, next) =
                unsafe { ((*segment).node == node, (*segment).free_pages, (*segment).next) };
            let fits = |first: &usize| free & mask_of(*first) == mask_of(*first);
            if same_node && let Some(first) = (1..=PAGES - pages).find(fits) {
                break (segment, first);
            }
            segment = next;
        };
        let mask = mask_of(first);
        // SAFETY: as above; the pages `first..first + pages` were free, so no span uses them
        // or their metadata slot, which we now initialise.
        unsafe {
            (*segment).free_pages &= !mask;
            let reused_dirty = ((*segment).dirty_pages & mask).count_ones() as usize;
            (*segment).dirty_pages &= !mask;
            self.resident_pages += pages - reused_dirty;
            self.span_pages += pages;
            let span = SegmentHeader::spans(segment).add(first);
            for later in 1..pages {
                let slot = span.add(later);
                (*slot).back = later as u8;
                (*slot).bin = bin_offset(class);
                // Relaxed, no partner: a later slot's holder never changes (see `Span::owner`).
                (*slot).owner.store(NO_OWNER, Ordering::Relaxed);
            }
            let start = (*segment).mapping.ptr.as_ptr().add(first * PAGE);
            span.write(Span {
                start,
                capacity: ((pages * PAGE) / block_size(class)) as u16,
                bin: bin_offset(class),
                pages: pages as u8,
                ..Span::empty()
            });
            Some(NonNull::new_unchecked(span))
        }
    }

    fn map_segment(&mut self, node: usize, options: SegmentOptions) -> Option<*mut SegmentHeader> {
        let map = MapOptions::new().align(SEGMENT).huge_pages(options.huge_pages);
        let mapping = Mapping::new(SEGMENT, &map).ok()?;
        if crate::os::numa::node_count() > 1 {
            // Best effort: an unbound segment still works, just without locality.
            let _ = mapping.bind_to_node(node);
        }
        let raw = mapping.into_raw();
        let header: *mut SegmentHeader = raw.ptr.as_ptr().cast();
        // SAFETY: the mapping is fresh, ours and aligned; its header page holds the header
        // and, at any colour, the span table (asserted above), both suitably aligned.
        unsafe {
            header.write(SegmentHeader {
                magic: MAGIC,
                kind: SegmentKind::Small,
                mapping: raw,
                node,
                next: self.head,
                free_pages: ALL_PAGES,
                dirty_pages: 0,
                dirty_since: [0; PAGES],
            });
            let spans: SpanTable = [const { Span::empty() }; PAGES];
            SegmentHeader::spans(header).cast::<SpanTable>().write(spans);
        }
        // An uncovered address only makes the segment's blocks read as foreign to `free`.
        let _ = super::segment_map::insert(header.addr(), super::segment_map::Chunk::Small);
        self.head = header;
        self.segments += 1;
        // The header page.
        self.resident_pages += 1;
        Some(header)
    }

    /// Gives a span's pages back to its segment. They stay resident (dirty) until
    /// [`Segments::purge_due`] finds them older than the delay.
    ///
    /// # Safety
    /// `span` is a span of a segment on this list, with no block outstanding, and off its
    /// class's partial list.
    pub(crate) unsafe fn free_span(&mut self, span: *mut Span, now_ms: u64) {
        // SAFETY: per the contract the span and its segment header are live; we hold the lock,
        // which guards the header's page fields (touched as raw places, see `allocate_span`).
        unsafe {
            let segment = SegmentHeader::of((*span).start);
            let first = ((*span).start.addr() - segment.addr()) / PAGE;
            let pages = (*span).pages as usize;
            let mask = ((1u64 << pages) - 1) << first;
            (*segment).free_pages |= mask;
            (*segment).dirty_pages |= mask;
            self.span_pages -= pages;
            for page in first..first + pages {
                (*segment).dirty_since[page] = now_ms;
            }
            *span = Span::empty();
        }
        self.dirty = true;
    }

    /// Purges every dirty page freed at or before `deadline_ms`, and unmaps segments left
    /// entirely free and clean (keeping one in reserve). Returns whether dirty pages remain.
    pub(crate) fn purge_due(&mut self, deadline_ms: u64) -> bool {
        let mut still_dirty = false;
        let mut spare_kept = false;
        let mut link: *mut *mut SegmentHeader = &raw mut self.head;
        // SAFETY: we hold the lock; every segment on the list is live and ours.
        unsafe {
            while !(*link).is_null() {
                let segment = *link;
                let mut page = 1;
                while page < PAGES {
                    let bit = 1u64 << page;
                    if (*segment).dirty_pages & bit == 0 {
                        page += 1;
                        continue;
                    }
                    if (*segment).dirty_since[page] > deadline_ms {
                        still_dirty = true;
                        page += 1;
                        continue;
                    }
                    // Coalesce the run of due dirty pages into one madvise.
                    let run_start = page;
                    while page < PAGES
                        && (*segment).dirty_pages & (1u64 << page) != 0
                        && (*segment).dirty_since[page] <= deadline_ms
                    {
                        (*segment).dirty_pages &= !(1u64 << page);
                        page += 1;
                    }
                    let run = page - run_start;
                    let mapping = Mapping::from_raw((*segment).mapping);
                    // SAFETY: free pages hold no live block. A refusal leaves them resident.
                    if mapping.purge(run_start * PAGE, run * PAGE, Purge::Discard).is_ok() {
                        self.resident_pages -= run;
                        self.purged_pages += run;
                    }
                    let _ = mapping.into_raw();
                }
                let unused = (*segment).free_pages == ALL_PAGES && (*segment).dirty_pages == 0;
                if unused && spare_kept {
                    *link = (*segment).next;
                    self.segments -= 1;
                    self.resident_pages -= 1;
                    super::segment_map::remove(segment.addr(), super::segment_map::Chunk::Small);
                    drop(Mapping::from_raw((*segment).mapping));
                    continue;
                }
                spare_kept |= unused;
                link = &raw mut (*segment).next;
            }
        }
        self.dirty = still_dirty;
        still_dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_span_capacity_fits_its_field() {
        for class in 0..CLASSES {
            let capacity = span_pages(class) * PAGE / block_size(class);
            assert!(u16::try_from(capacity).is_ok(), "class {class}: {capacity} blocks");
        }
    }
}
