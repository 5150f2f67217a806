//! The central layer: per size class, the spans that still have blocks to give.
//!
//! Thread caches and depots exchange blocks in batches; only when both are dry does a
//! thread come here, take its class's lock and carve a batch (`refill`). Blocks come back
//! here only when the depot is full or memory is being purged (`give_back`): each block is
//! returned to its own span, found from its address, and a span whose every block is back
//! releases its pages to the segment for purging.
//!
//! Fresh blocks come from spans a thread cache *holds* (see `Span::owner`): each thread
//! carves its own spans, one per class at a time, as mimalloc gives each thread its own
//! pages. So blocks that different threads received fresh never share a cache line, and a
//! thread's frees can tell another thread's fresh blocks by the span's holder, and send
//! them back to their span, where only the holder takes them again (as mimalloc returns a
//! block freed by another thread to its page's owner). A span is on its class's partial
//! list when nobody holds it and it has returned or uncarved blocks; a refill takes the
//! returned blocks of its own held span first, then those of listed spans, and adopts a
//! listed span with uncarved blocks before mapping a new one.

use super::segment::{Block, NO_OWNER, SEGMENTS, SegmentOptions, Span};
use super::size_class::{CLASSES, block_size};
use crate::sync::SpinLock;
use core::ptr;
use core::sync::atomic::Ordering;

/// A batch of blocks of one class, linked through their first word; the last links to null.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain {
    pub head: *mut Block,
    pub count: u32,
}

impl Chain {
    pub const EMPTY: Chain = Chain { head: ptr::null_mut(), count: 0 };

    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Adds `block` at the front.
    ///
    /// # Safety
    /// As for [`Block::link`].
    #[inline]
    pub unsafe fn push(&mut self, block: *mut Block) {
        // SAFETY: per the contract.
        self.head = unsafe { Block::link(block.cast(), self.head) };
        self.count += 1;
    }

    /// Takes the front block.
    ///
    /// # Safety
    /// The chain is well formed (its blocks are free and linked as built by `push`).
    #[inline]
    pub unsafe fn pop(&mut self) -> Option<*mut Block> {
        if self.head.is_null() {
            return None;
        }
        let block = self.head;
        // SAFETY: well-formed chain: `block` is a free block whose first word is the link.
        self.head = unsafe { (*block).next };
        self.count -= 1;
        Some(block)
    }
}

/// One class's spans with blocks to give, as an intrusive doubly linked list.
pub(crate) struct Central {
    partial: *mut Span,
    /// Blocks of the class out of their spans: in the program's hands, thread caches and
    /// depots (for statistics).
    out_blocks: usize,
}

// SAFETY: the spans the list points to are guarded by the lock this value lives in.
unsafe impl Send for Central {}

pub(crate) static CENTRAL: [SpinLock<Central>; CLASSES] =
    [const { SpinLock::new(Central { partial: ptr::null_mut(), out_blocks: 0 }) }; CLASSES];

/// Blocks of `class` out of their spans (see [`Central`]).
pub(crate) fn out_blocks(class: usize) -> usize {
    CENTRAL[class].lock().out_blocks
}

impl Central {
    /// # Safety
    /// `span` is a live span of this class, not listed; we hold this class's lock.
    unsafe fn link(&mut self, span: *mut Span) {
        // SAFETY: per the contract.
        unsafe {
            (*span).prev = ptr::null_mut();
            (*span).next = self.partial;
            if !self.partial.is_null() {
                (*self.partial).prev = span;
            }
            (*span).listed = true;
        }
        self.partial = span;
    }

    /// # Safety
    /// `span` is on this list; we hold this class's lock.
    unsafe fn unlink(&mut self, span: *mut Span) {
        // SAFETY: per the contract the span and its neighbours are live list members.
        unsafe {
            let (prev, next) = ((*span).prev, (*span).next);
            if prev.is_null() {
                self.partial = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*span).listed = false;
        }
    }

    /// Puts `span` on the list or takes it off, as [`Span::wants_listing`] says.
    ///
    /// # Safety
    /// `span` is a live span of this class; we hold this class's lock.
    unsafe fn relist(&mut self, span: *mut Span) {
        // SAFETY: per the contract.
        unsafe {
            match ((*span).wants_listing(), (*span).listed) {
                (true, false) => self.link(span),
                (false, true) => self.unlink(span),
                _ => {}
            }
        }
    }

    /// After blocks came back to `span` or its holder let go: frees it if it is unused and
    /// unheld, else relists it. Returns whether it was freed.
    ///
    /// # Safety
    /// As for [`Central::relist`].
    unsafe fn settle(&mut self, span: *mut Span, now_ms: u64) -> bool {
        // SAFETY: per the contract; an unused, unheld span has nothing out and nobody who
        // will carve it, so its pages can go.
        unsafe {
            if (*span).is_unused() && !(*span).is_held() {
                if (*span).listed {
                    self.unlink(span);
                }
                SEGMENTS.lock().free_span(span, now_ms);
                true
            } else {
                self.relist(span);
                false
            }
        }
    }
}

/// Blocks of one class never handed out before, `left` of them from `next` at the class's
/// stride. Nothing is written into them until they are used: the thread cache links a few
/// at a time as it needs them (as mimalloc extends a page's free list), so a refill does not
/// pull a whole batch of cold lines into the cache ahead of use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Carve {
    pub next: *mut u8,
    pub left: u32,
}

impl Carve {
    pub const EMPTY: Carve = Carve { next: ptr::null_mut(), left: 0 };

    /// Links the first `n` (at most `left`) blocks into a chain and advances past them.
    ///
    /// # Safety
    /// The carve's blocks are free blocks of `class`, at least a pointer in size, owned by
    /// the caller.
    pub unsafe fn take(&mut self, class: usize, n: u32) -> Chain {
        let n = n.min(self.left);
        let size = block_size(class);
        let mut chain = Chain::EMPTY;
        // Link back to front so the chain hands the blocks out in address order.
        for i in (0..n as usize).rev() {
            // SAFETY: block `i < left` lies in the carve, which is ours.
            unsafe {
                let block = self.next.add(i * size);
                if super::debug_checks::ENABLED {
                    super::debug_checks::poison(block, size);
                }
                chain.push(block.cast());
            }
        }
        // SAFETY: `n <= left` blocks lie in the carve; one past its end at most.
        self.next = unsafe { self.next.add(n as usize * size) };
        self.left -= n;
        chain
    }
}

/// What a refill hands a thread cache: returned blocks, already linked, and a carve of
/// fresh ones. Both empty means the OS refused memory.
#[derive(Debug)]
pub(crate) struct Refill {
    pub chain: Chain,
    pub carve: Carve,
}

/// How many times the wanted number of blocks a refill may return to splice a span's list
/// whole rather than walk it.
const SPLICE_SLACK: u32 = 4;

/// The span a thread cache carves fresh blocks of one class from (see [`Span::owner`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Carver {
    /// The cache's token (which carries `thread_cache::TOKEN_MARK`, as [`Span::owner`]
    /// requires), or [`NO_OWNER`] for a thread without a cache (whose spans stay unheld).
    pub token: u32,
    /// The span the cache holds, or null.
    pub span: *mut Span,
}

/// About `want` blocks of `class` (up to `SPLICE_SLACK` times as many) for a thread on NUMA
/// node `node`: the returned blocks of the class's listed spans first (a span's whole list
/// is spliced in O(1) when it fits), then a carve of untouched blocks from the span
/// `carver` holds: the one it held already, else an unheld span met on the way (adopted),
/// else a new one. Each thread thus carves spans of its own, so blocks handed out fresh to
/// different threads never share a cache line.
pub(crate) fn refill(
    class: usize,
    node: usize,
    want: u32,
    options: SegmentOptions,
    carver: &mut Carver,
) -> Refill {
    let mut refill = Refill { chain: Chain::EMPTY, carve: Carve::EMPTY };
    let chain = &mut refill.chain;
    let mut central = CENTRAL[class].lock();
    if !carver.span.is_null() {
        // SAFETY: the span the carver holds is live (held spans are never freed) and of this
        // class, whose lock we hold; its returned blocks are the holder's alone.
        unsafe { take_returned(&mut *carver.span, chain, want) };
    }
    let mut cursor = central.partial;
    while chain.count < want && !cursor.is_null() {
        let span = cursor;
        // SAFETY: listed spans are live, unheld and guarded by the class lock, which we
        // hold; their returned and uncarved blocks are ours to hand out.
        unsafe {
            let s = &mut *span;
            cursor = s.next;
            take_returned(s, chain, want);
            if carver.span.is_null() && s.carved < u32::from(s.capacity) {
                s.owner.store(carver.token, Ordering::Relaxed);
                carver.span = span;
            }
            central.relist(span);
        }
    }
    let fresh = want.saturating_sub(chain.count);
    if fresh > 0 {
        if carver.span.is_null()
            && let Some(span) = SEGMENTS.lock().allocate_span(class, node, options)
        {
            // SAFETY: a fresh span of this class, known to nobody else yet.
            unsafe { (*span.as_ptr()).owner.store(carver.token, Ordering::Relaxed) };
            carver.span = span.as_ptr();
        }
        let span = carver.span;
        if !span.is_null() {
            // SAFETY: the span the carver holds is live (held spans are never freed) and of
            // this class, whose lock we hold; its uncarved blocks are the carver's.
            unsafe {
                let s = &mut *span;
                let (next, run) = s.next_carve();
                let fresh = fresh.min(run);
                refill.carve = Carve { next: s.start.add(next as usize * block_size(class)), left: fresh };
                s.carved += fresh;
                s.outstanding += fresh;
                if s.carved == u32::from(s.capacity) {
                    // Carved out: the cache lets go of it.
                    s.owner.store(NO_OWNER, Ordering::Relaxed);
                }
                if !s.is_held() {
                    carver.span = ptr::null_mut();
                }
                central.relist(span);
            }
        }
    }
    central.out_blocks += (refill.chain.count + refill.carve.left) as usize;
    refill
}

/// Moves returned blocks of `s` onto `chain`, up to `want` in all (or more, when splicing
/// the span's whole list is cheaper: walking a list is a chain of dependent cache misses,
/// splicing it is one write).
///
/// # Safety
/// `s` is a live span whose class lock the caller holds, and its returned blocks are the
/// caller's to take.
unsafe fn take_returned(s: &mut Span, chain: &mut Chain, want: u32) {
    let wanted = want.saturating_sub(chain.count);
    let take = if s.free_count <= wanted * SPLICE_SLACK { s.free_count } else { wanted };
    // SAFETY: per the contract the span's list holds `free_count` free blocks, linked.
    unsafe {
        if take > 0 && take == s.free_count {
            (*s.free_tail).next = chain.head;
            chain.head = s.free;
            chain.count += take;
            (s.free, s.free_tail, s.free_count) = (ptr::null_mut(), ptr::null_mut(), 0);
        } else {
            for _ in 0..take {
                let block = s.free;
                s.free = (*block).next;
                chain.push(block);
            }
            s.free_count -= take;
        }
    }
    s.outstanding += take;
}

/// Gives the blocks of `carve`, which a thread cache never used, back to their span as never
/// carved, if they are the span's latest carve (a thread cache's carve is: only its holder
/// carves a span, and it carves again only once its carve is used up). Nothing is written
/// into them, where linking them up to flush them would touch each one's line, perhaps
/// for the first time. Returns `false`, leaving the carve as it was, if they are not.
///
/// # Safety
/// `carve` holds free blocks of `class` that `refill` counted out of their span and that
/// the caller owns and gives up.
pub(crate) unsafe fn uncarve(class: usize, carve: &mut Carve) -> bool {
    if carve.left == 0 {
        return true;
    }
    let mut central = CENTRAL[class].lock();
    // SAFETY: per the contract the carve lies in a live span of `class`, guarded by the
    // class lock we hold.
    unsafe {
        let span = super::segment::SegmentHeader::span_of(carve.next);
        let s = &mut *span;
        if s.carved < carve.left {
            return false;
        }
        let index = (carve.next.addr() - s.start.addr()) / block_size(class);
        // The carve order's position of the carve's first block, were it the latest.
        let latest = (s.first_carved() + s.carved - carve.left) % u32::from(s.capacity);
        if index as u32 != latest {
            return false;
        }
        s.carved -= carve.left;
        s.outstanding -= carve.left;
        central.out_blocks -= carve.left as usize;
        central.relist(span);
    }
    *carve = Carve::EMPTY;
    true
}

/// Lets go of the span a thread cache held (at the thread's exit): it becomes any thread's
/// to carve, or goes back to its segment if every block is back already. Returns whether
/// it was freed.
///
/// # Safety
/// `span` is a span of `class` held by the caller's cache.
#[must_use = "freed spans must be reported to the purger"]
pub(crate) unsafe fn release(class: usize, span: *mut Span, now_ms: u64) -> bool {
    let mut central = CENTRAL[class].lock();
    // SAFETY: per the contract the span is live (held spans are never freed); we hold the
    // class lock that guards it.
    unsafe {
        (*span).owner.store(NO_OWNER, Ordering::Relaxed);
        central.settle(span, now_ms)
    }
}

/// Returns a chain of `class` blocks to their spans; spans left with no block outstanding
/// give their pages back to their segments (dirty, purged later). Returns whether any span
/// was freed.
///
/// # Safety
/// Every block on the chain is a free block of `class` from this allocator, owned by the
/// caller.
#[must_use = "freed spans must be reported to the purger"]
pub(crate) unsafe fn give_back(class: usize, mut chain: Chain, now_ms: u64) -> bool {
    let mut freed = false;
    let mut central = CENTRAL[class].lock();
    // SAFETY: per the contract; spans are found from block addresses and guarded by the lock.
    unsafe {
        while let Some(block) = chain.pop() {
            let span = super::segment::SegmentHeader::span_of(block.cast());
            let s = &mut *span;
            debug_assert_eq!(s.class(), class, "block given back to the wrong class");
            (*block).next = s.free;
            if s.free.is_null() {
                s.free_tail = block;
            }
            s.free = block;
            s.free_count += 1;
            s.outstanding -= 1;
            central.out_blocks -= 1;
            freed |= central.settle(span, now_ms);
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::HugePages;

    #[test]
    fn an_unused_carve_goes_back_uncarved_only_while_it_is_the_latest() {
        // 1280-byte blocks: between the powers of two that growing vectors, the class's
        // other users in this binary (its buffer pools), ask for.
        let class = super::super::size_class::class_of(1200, 16).unwrap();
        let options = SegmentOptions { huge_pages: HugePages::Forbid };
        let mut carver = Carver { token: super::super::thread_cache::TOKEN_MARK | 7, span: ptr::null_mut() };
        let mut refill_of = |want| {
            let Refill { chain, carve } = refill(class, 0, want, options, &mut carver);
            assert!(chain.is_empty() && (1..=want).contains(&carve.left), "a fresh span carves up to {want}");
            carve
        };
        // SAFETY: the carves' blocks are ours, of `class`, from the span `carver` holds;
        // what is taken out of a carve is given back once.
        unsafe {
            let mut first = refill_of(8);
            let mut aside = Chain::EMPTY;
            if first.left < 4 {
                // The carve stopped at the span's end: the next one starts over at block 0.
                aside = first.take(class, u32::MAX);
                first = refill_of(8);
            }
            let taken = first.take(class, 3);
            let left = first.left;
            let mut second = refill_of(8);
            let span = carver.span;
            assert!(!uncarve(class, &mut first), "the first carve is not the latest");
            assert_eq!(first.left, left, "a refused carve is left as it was");
            assert!(uncarve(class, &mut second));
            assert_eq!(second.left, 0);
            assert!(uncarve(class, &mut first), "with the second back, the first is the latest");
            let out = 3 + aside.count;
            assert_eq!(((*span).carved, (*span).outstanding), (out, out), "carved and out: the taken blocks");
            // The blocks handed out come back, and the span, let go, is free again.
            assert!(!give_back(class, taken, 0) && !give_back(class, aside, 0), "a held span stays");
            assert!(release(class, span, 0), "an unused span is freed when let go");
        }
    }
}
