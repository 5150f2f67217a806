//! The per-thread cache: the allocator's fast path.
//!
//! For every size class a thread holds two lists of free blocks (a `Bin`: one that
//! allocations pop, one that frees push) and one spare full magazine. The fast paths touch
//! only this thread's state: no atomics, no locks, one TLS access. When the allocation list
//! runs dry the blocks freed since take its place, or the spare, or a magazine from the
//! depot, or one the central layer carves; when the freed list is full it becomes the spare
//! and the old spare goes to the depot. Every exchange moves a whole batch in O(1). Fresh
//! blocks from the central layer arrive as a [`Carve`], linked into the list a few at a
//! time (about 4 KiB) as they are needed; they come from a span the cache holds, one per
//! class, which no other thread carves.
//!
//! `free` by pointer, which looks the span up anyway, keeps one more list per class for
//! blocks of spans other threads hold (`remote`, bins of which only the freed side is
//! used): those are never reused by this thread, where they would share cache lines with
//! the other thread's blocks, but go back to their spans a batch at a time, where only the
//! holder takes them again. The layout-driven `dealloc` does not look at the span and puts
//! every block on the thread's own list.
//!
//! The cache is a `const`-initialised thread-local without a destructor, so reaching it costs
//! no lazy-initialisation check. Its empty state (no blocks, limits of zero) is the sentinel
//! that sends a thread's first call to the slow path, which sets the cache up and registers
//! a second thread-local whose destructor returns the cache to the depots at thread exit.
//! After that the cache is `Dead`: allocations made by later destructors still work, served
//! one block at a time by the central layer.

use super::central::{self, Carve, Carver, Chain, Refill};
use super::counters::{self, Miss};
use super::depot;
use super::segment::{Block, NO_OWNER, SegmentOptions, Span};
use super::size_class::{CLASSES, SMALL_SLOTS, block_size, class_at_slot, small_slot};
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

/// One class's free blocks in a thread cache, on two lists: allocations pop `head`, frees
/// push `freed`. When `head` runs dry an allocation takes `freed` over whole
/// ([`Bin::pop_or_recycle`], O(1)); when `freed` reaches the limit the free slow path moves
/// it out (to the spare, or back to its spans). A refill installs a chain on `head`
/// whatever its length (a span's whole free list), so only `freed` is bounded by the limit.
///
/// Why two lists (mimalloc, too, splits a page's free list into `free` and `local_free`):
/// with one, a `free` stores the word that the next allocation of its class loads. The
/// free's pointer often arrives late (after the program's cache miss or division that
/// produced it), its store's address with it, and an allocation whose size is known early
/// must then wait for that store or be replayed when it turns out to alias (what the CPU
/// does here cannot be counted on this machine; the measured effect fits). On larson, a
/// random replacement per step with one 64-bit division each, the single list ran 6%
/// behind mimalloc and the split runs 12% ahead. The two fast paths share no word: `pop`
/// touches `head` and `alloc_hits`, `try_push` touches `freed` and `room`.
///
/// Hits are counted without a second counter on the free side: a free hit is the one
/// change that lowers `room` on its own, so `base - room` counts them, as long as every
/// other change of `room` moves `base` with it ([`Bin::uncounted`]).
///
/// Invariants: `head` holds `head_end - alloc_hits` blocks (wrapping), `freed` holds
/// `limit - room` blocks (so `room` is negative only after [`Bin::set_limit`] lowered the
/// limit below the list's length); both lists link free blocks of the bin's class through
/// their first word.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub(crate) struct Bin {
    /// The allocation side. Kept in the first 16 bytes, and the free side in the next 16,
    /// so that each fast path touches one cache line (bins are 48 bytes, 16-aligned).
    head: *mut Block,
    /// Allocations served by this list since the last fold into the class's statistics
    /// (see [`super::counters`]).
    alloc_hits: u64,
    /// The free side.
    freed: *mut Block,
    /// Blocks `freed` may still take before it is moved out: the limit less its length.
    room: i32,
    /// What `room` is counted from; 0 while the cache is not set up.
    limit: u32,
    /// `alloc_hits` when `head` will be empty, if only `pop` takes from it.
    head_end: u64,
    /// `room + free hits`: the free hits not folded yet are `base - room`.
    base: i64,
}

const _: () = assert!(size_of::<Bin>() == 48, "a fast path's fields share a cache line");

impl Bin {
    /// Empty, with a limit of zero: every push and pop goes to the slow path. All zero
    /// bytes, as static TLS starts (see `static_tls.rs`).
    #[cfg_attr(all(feature = "initial-exec-tls", not(test)), allow(dead_code))]
    const UNSET: Bin = Bin {
        head: ptr::null_mut(),
        alloc_hits: 0,
        freed: ptr::null_mut(),
        room: 0,
        limit: 0,
        head_end: 0,
        base: 0,
    };

    /// Takes the head block, if any: the allocation fast path.
    ///
    /// # Safety
    /// The bin belongs to this thread's cache and is well formed (its blocks are free blocks
    /// of its class, linked through their first word).
    #[inline(always)]
    pub(crate) unsafe fn pop(&mut self) -> Option<*mut u8> {
        let block = self.head;
        if block.is_null() {
            return None;
        }
        // SAFETY: per the contract `block` is a free block whose first word is the link.
        self.head = unsafe { (*block).next };
        prefetch_for_write(self.head);
        self.alloc_hits += 1;
        Some(block.cast())
    }

    /// Puts `block` on the freed list if it has room: the free fast path.
    ///
    /// # Safety
    /// As for [`Bin::pop`], and `block` is a block of the bin's class that the caller gives up.
    #[inline(always)]
    pub(crate) unsafe fn try_push(&mut self, block: *mut u8) -> bool {
        if self.room <= 0 {
            return false;
        }
        self.room -= 1;
        // SAFETY: per the contract.
        unsafe { self.link(block) };
        true
    }

    /// Links `block`, possibly the program's own pointer (see [`Block::link`]), in at the
    /// freed list's head.
    ///
    /// # Safety
    /// As for [`Bin::try_push`].
    #[inline(always)]
    unsafe fn link(&mut self, block: *mut u8) {
        // SAFETY: per the contract the block is ours to link.
        self.freed = unsafe { Block::link(block, self.freed) };
    }

    /// The blocks on `head`.
    fn head_len(&self) -> u32 {
        self.head_end.wrapping_sub(self.alloc_hits) as u32
    }

    /// The blocks on `freed`.
    fn freed_len(&self) -> u32 {
        (i64::from(self.limit) - i64::from(self.room)) as u32
    }

    /// The blocks on both lists.
    pub(crate) fn len(&self) -> u32 {
        self.head_len() + self.freed_len()
    }

    /// Whether the freed list has reached its limit.
    fn is_full(&self) -> bool {
        self.room <= 0
    }

    /// Free hits since the last [`Bin::take_hits`].
    pub(crate) fn free_hits(&self) -> u64 {
        (self.base - i64::from(self.room)) as u64
    }

    /// Allocation hits of the list since the last call, free hits, and zero for both.
    pub(crate) fn take_hits(&mut self) -> (u64, u64) {
        let hits = (self.alloc_hits, self.free_hits());
        self.head_end = self.head_end.wrapping_sub(self.alloc_hits);
        self.alloc_hits = 0;
        self.base = i64::from(self.room);
        hits
    }

    /// Applies `change`, a change of `room` that is no hit, keeping the free hits counted.
    #[inline(always)]
    fn uncounted(&mut self, change: impl FnOnce(&mut Bin)) {
        let free_hits = self.free_hits() as i64;
        change(self);
        self.base = i64::from(self.room) + free_hits;
    }

    /// Sets the number of blocks the freed list may hold (0: none, every call is a miss).
    fn set_limit(&mut self, limit: u32) {
        self.uncounted(|bin| {
            bin.room = (i64::from(limit) - i64::from(bin.freed_len())) as i32;
            bin.limit = limit;
        });
    }

    /// Puts `block` on the freed list, room or not (the slow path, uncounted).
    ///
    /// # Safety
    /// As for [`Bin::try_push`].
    unsafe fn push(&mut self, block: *mut u8) {
        self.uncounted(|bin| {
            bin.room -= 1;
            // SAFETY: per the contract.
            unsafe { bin.link(block) };
        });
    }

    /// Makes `chain` the (empty) allocation list's contents.
    fn install(&mut self, chain: Chain) {
        debug_assert!(self.head.is_null());
        self.head = chain.head;
        self.head_end = self.alloc_hits.wrapping_add(u64::from(chain.count));
    }

    /// [`Bin::pop`], or, when the allocation list has run dry, the freed list taken over
    /// and its head popped: what the allocation paths try before the slow path. Taking the
    /// freed list over is no miss (no statistics folded): the blocks only change sides,
    /// about once per `limit` allocations of a class that is also freed.
    ///
    /// # Safety
    /// As for [`Bin::pop`].
    #[inline(always)]
    pub(crate) unsafe fn pop_or_recycle(&mut self) -> Option<*mut u8> {
        // SAFETY: per the contract.
        if let Some(block) = unsafe { self.pop() } {
            return Some(block);
        }
        if self.freed.is_null() {
            return None;
        }
        let freed = self.take_freed();
        self.install(freed);
        // SAFETY: per the contract.
        unsafe { self.pop() }
    }

    /// Takes the freed list out, leaving it empty.
    fn take_freed(&mut self) -> Chain {
        let chain = Chain { head: self.freed, count: self.freed_len() };
        self.uncounted(|bin| (bin.freed, bin.room) = (ptr::null_mut(), bin.limit as i32));
        chain
    }

    /// Takes both lists out, leaving them empty.
    fn take_all(&mut self) -> [Chain; 2] {
        let allocation_side = Chain { head: self.head, count: self.head_len() };
        self.head = ptr::null_mut();
        self.head_end = self.alloc_hits;
        [allocation_side, self.take_freed()]
    }
}

/// Asks for the line at `block` in exclusive state, ahead of the next allocation that reads
/// its link and the program that writes it. Blocks freed by another thread (a consumer) sit
/// modified in that core's cache; without this, the next `pop` stalls on the transfer. A
/// prefetch never faults, so a null or stale pointer is harmless.
#[inline(always)]
fn prefetch_for_write(block: *const Block) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use core::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
        // SAFETY: `prefetch` needs SSE, which every x86-64 CPU has; it reads nothing and
        // cannot fault, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_ET0>(block.cast()) };
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = block;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum State {
    /// Never used: the first call sets the cache up. Zero, so that all-zero bytes are a
    /// fresh cache (see `static_tls.rs`, where only those bytes construct it).
    #[cfg_attr(feature = "initial-exec-tls", allow(dead_code))]
    Fresh = 0,
    Active,
    /// The thread-exit flush has run.
    Dead,
}

pub(crate) struct ThreadCache {
    pub bins: [Bin; CLASSES],
    /// Blocks freed by pointer that came from spans other threads hold, per class: given
    /// back to their spans a batch at a time, never reused by this thread (see
    /// `by_pointer.rs`).
    pub remote: [Bin; CLASSES],
    /// Names this cache in [`Span::owner`]; [`NO_OWNER`] until set up.
    pub token: u32,
    spares: [Chain; CLASSES],
    /// Fresh blocks not linked yet, per class.
    carves: [Carve; CLASSES],
    /// The span each class carves from, held by this cache (or null).
    carving: [*mut Span; CLASSES],
    /// Bytes of fresh blocks this cache carved in its life: whether the segments mapped for
    /// it may use huge pages (see `huge_pages.rs`).
    carved_bytes: usize,
    /// The NUMA node whose depots the cache uses, once `node_chosen`.
    node: usize,
    node_chosen: bool,
    state: State,
}

impl ThreadCache {
    /// A thread's cache before its first call. Under `initial-exec-tls` its zero bytes, in
    /// static TLS, stand for it.
    #[cfg_attr(all(feature = "initial-exec-tls", not(test)), allow(dead_code))]
    const FRESH: ThreadCache = ThreadCache {
        bins: [Bin::UNSET; CLASSES],
        remote: [Bin::UNSET; CLASSES],
        token: NO_OWNER,
        spares: [Chain::EMPTY; CLASSES],
        carves: [Carve::EMPTY; CLASSES],
        carving: [ptr::null_mut(); CLASSES],
        carved_bytes: 0,
        node: 0,
        node_chosen: false,
        state: State::Fresh,
    };

    /// The node whose depots the cache uses, choosing the one the thread runs on now if
    /// none was set (by `pin_current_thread`).
    fn node(&mut self) -> usize {
        if !self.node_chosen {
            (self.node, self.node_chosen) = (super::topology::current_node(), true);
        }
        self.node
    }
}

#[cfg(not(all(feature = "initial-exec-tls", target_arch = "x86_64", target_os = "linux", not(miri))))]
std::thread_local! {
    static CACHE: core::cell::UnsafeCell<ThreadCache> =
        const { core::cell::UnsafeCell::new(ThreadCache::FRESH) };
}

std::thread_local! {
    static FLUSH_AT_EXIT: FlushAtExit = const { FlushAtExit };
}

/// This thread's cache.
#[cfg(not(all(feature = "initial-exec-tls", target_arch = "x86_64", target_os = "linux", not(miri))))]
#[inline(always)]
pub(crate) fn current() -> *mut ThreadCache {
    CACHE.with(core::cell::UnsafeCell::get)
}

#[cfg(all(feature = "initial-exec-tls", target_arch = "x86_64", target_os = "linux", not(miri)))]
pub(crate) use super::static_tls::current;

/// Blocks per magazine of `class`: about 32 KiB of blocks, between 4 and 128 of them.
pub(crate) const fn magazine_blocks(class: usize) -> u32 {
    let blocks = (32 << 10) / super::size_class::BLOCK_SIZE[class] as usize;
    if blocks < 4 {
        4
    } else if blocks > 128 {
        128
    } else {
        blocks as u32
    }
}

/// What the slow paths need from the allocator's configuration.
#[derive(Clone, Copy)]
pub(crate) struct SlowPathContext {
    pub segments: SegmentOptions,
    pub now_ms: fn() -> u64,
}

/// Sets the cache up on the thread's first call.
///
/// # Safety
/// `cache` is this thread's cache, not borrowed elsewhere.
#[cold]
unsafe fn set_up(cache: *mut ThreadCache) {
    // SAFETY: per the contract.
    let cache = unsafe { &mut *cache };
    for class in 0..CLASSES {
        cache.bins[class].set_limit(magazine_blocks(class));
        cache.remote[class].set_limit(magazine_blocks(class));
    }
    cache.token = next_token();
    cache.node();
    cache.state = State::Active;
    // Registering the destructor may allocate (std keeps a list on some platforms); the
    // cache is already usable, so such a nested call takes the ordinary paths. `try_with`:
    // never panic, even if called during thread teardown.
    let _ = FLUSH_AT_EXIT.try_with(|_| ());
}

/// The byte offset of `class`'s list in [`ThreadCache::bins`] (and in
/// [`ThreadCache::remote`]): what a span keeps in [`Span::bin`].
pub(crate) const fn bin_offset(class: usize) -> u16 {
    const { assert!(CLASSES * size_of::<Bin>() <= u16::MAX as usize) };
    (class * size_of::<Bin>()) as u16
}

/// The class whose list lies at `offset` ([`bin_offset`]'s inverse).
pub(crate) const fn class_at(offset: u16) -> usize {
    offset as usize / size_of::<Bin>()
}

/// The list at byte `offset` of `lists` (a [`bin_offset`]).
///
/// # Safety
/// `lists` points to live lists; `offset` is a [`bin_offset`].
#[inline(always)]
pub(crate) unsafe fn bin_at(lists: *mut [Bin; CLASSES], offset: u16) -> *mut Bin {
    debug_assert!(
        usize::from(offset) < CLASSES * size_of::<Bin>() && usize::from(offset) % size_of::<Bin>() == 0
    );
    // SAFETY: per the contract the offset is a whole list's within the array.
    unsafe { lists.byte_add(usize::from(offset)).cast::<Bin>() }
}

/// [`bin_offset`] of the class of the requests at each [`small_slot`]: the fast paths'
/// one table load gives the list's place without scaling a class. A `const`, not a
/// `static`, so the crate that inlines the fast path gets its own copy (no GOT load).
const SMALL_BINS: [u16; SMALL_SLOTS] = {
    let mut table = [0; SMALL_SLOTS];
    let mut slot = 0;
    while slot < SMALL_SLOTS {
        table[slot] = bin_offset(class_at_slot(slot));
        slot += 1;
    }
    table
};

/// The [`bin_offset`] of the class serving `size` bytes aligned to `align`, for a request
/// of at most 1024 bytes aligned to at most 16 (see [`small_slot`]).
#[inline(always)]
pub(crate) fn small_bin(size: usize, align: usize) -> Option<u16> {
    small_slot(size, align).map(|slot| SMALL_BINS[slot])
}

/// A token for a new thread cache: the top bit set ([`TOKEN_MARK`]), unique until the
/// counter below it wraps past 2^31 threads, and so never [`NO_OWNER`]. A repeated token
/// would only blur whose blocks are whose, a hint.
fn next_token() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Relaxed, no partner: only the counter's atomicity matters.
    TOKEN_MARK | NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The bit every token has. `free` tells a block of a span another thread holds by the
/// sign of `holder ^ token` alone (see [`held_by_others`]).
pub(crate) const TOKEN_MARK: u32 = 1 << 31;

/// Whether a span whose holder is `holder` (a token or [`NO_OWNER`]) is held by a thread
/// other than the one whose cache has `token`: `holder != token && holder != NO_OWNER`, as
/// one test. Two tokens share [`TOKEN_MARK`], so the xor of different ones is positive; the
/// xor of equal ones is zero, and that of a token and `NO_OWNER` has the mark, a negative
/// sign. A cache not set up (`token == NO_OWNER`) sees no holder as another's.
#[inline(always)]
pub(crate) fn held_by_others(holder: u32, token: u32) -> bool {
    const { assert!(NO_OWNER == 0) };
    ((holder ^ token) as i32) > 0
}

/// `alloc` found the class's list empty.
///
/// # Safety
/// `cache` is this thread's cache (from [`current`]), not borrowed elsewhere.
#[cold]
pub(crate) unsafe fn alloc_slow(cache: *mut ThreadCache, class: usize, cx: &SlowPathContext) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe {
        counters::miss(class, &mut (*cache).bins[class], Miss::Alloc);
        match (*cache).state {
            State::Fresh => set_up(cache),
            State::Dead => return alloc_uncached(class, (*cache).node, cx),
            State::Active => {}
        }
        let cache = &mut *cache;
        // The list may have been refilled since the caller found it empty: setting up (the
        // exit hook's registration) and configuring (`pthread_atfork`) can allocate, and
        // such a nested call comes back through this cache.
        if let Some(block) = cache.bins[class].pop_or_recycle() {
            return block;
        }
        let spare = &mut cache.spares[class];
        let carve = &mut cache.carves[class];
        // Warm blocks first (this thread's spare, then the depot's), fresh ones last.
        let chain = if !spare.is_empty() {
            core::mem::replace(spare, Chain::EMPTY)
        } else if let Some(chain) = depot::pop(cache.node, class) {
            chain
        } else {
            if carve.left == 0 {
                let mut carver = Carver { token: cache.token, span: cache.carving[class] };
                let options = cx.segments.for_thread(cache.carved_bytes);
                let Refill { chain, carve: fresh } =
                    central::refill(class, cache.node, magazine_blocks(class), options, &mut carver);
                cache.carving[class] = carver.span;
                cache.carved_bytes += fresh.left as usize * block_size(class);
                *carve = fresh;
                if !chain.is_empty() {
                    return pop_and_install(&mut cache.bins[class], chain);
                }
            }
            // The carve's blocks are ours (`refill` counted them out of their span).
            carve.take(class, extend_blocks(class))
        };
        pop_and_install(&mut cache.bins[class], chain)
    }
}

/// Hands out the chain's first block and makes the rest the (empty) bin's list. An empty
/// chain means the OS refused memory: null.
///
/// # Safety
/// The chain is a well-formed chain of free blocks of the bin's class, owned by the caller.
unsafe fn pop_and_install(bin: &mut Bin, mut chain: Chain) -> *mut u8 {
    // SAFETY: per the contract.
    let block = unsafe { chain.pop() }.unwrap_or(ptr::null_mut());
    bin.install(chain);
    block.cast()
}

/// Fresh blocks linked into a list at a time: about 4 KiB of them (at least one), as
/// mimalloc extends a page's free list, so the lines written are the ones about to be used.
/// Linking writes each block's first word, so a block of 4 KiB or more costs a page fault
/// when linked: those are linked one at a time, as they are asked for (a program that
/// allocates one stdio buffer touches one page, not four).
const fn extend_blocks(class: usize) -> u32 {
    let blocks = 4096 / super::size_class::BLOCK_SIZE[class];
    let most = magazine_blocks(class);
    if blocks < 1 {
        1
    } else if blocks > most {
        most
    } else {
        blocks
    }
}

/// Which of a class's two free lists a freed block goes on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)] // passed to an `extern "C"` slow path
pub(crate) enum FreeList {
    /// The thread's own list ([`ThreadCache::bins`]), reused by its next allocations.
    Own,
    /// Blocks of spans other threads hold ([`ThreadCache::remote`]), for their spans.
    Others,
}

/// A free found `list` full (or the cache not set up). A full own list becomes the spare
/// (the old spare goes to the depot); a full list of others' blocks goes back to their
/// spans, for their holders. Then `block` goes on the list.
///
/// # Safety
/// `cache` is this thread's cache; `block` is a block of `class` the caller owned.
#[cold]
pub(crate) unsafe fn dealloc_slow(
    cache: *mut ThreadCache,
    class: usize,
    block: *mut u8,
    list: FreeList,
    cx: &SlowPathContext,
) {
    // SAFETY: per the contract.
    unsafe {
        let bin = match list {
            FreeList::Own => &raw mut (*cache).bins[class],
            FreeList::Others => &raw mut (*cache).remote[class],
        };
        counters::miss(class, &mut *bin, Miss::Free);
        match (*cache).state {
            State::Fresh => set_up(cache),
            State::Dead => return dealloc_uncached(class, block, cx),
            State::Active => {}
        }
        let cache = &mut *cache;
        let bin = &mut *bin;
        if bin.is_full() {
            let full = bin.take_freed();
            match list {
                FreeList::Own => {
                    let old_spare = core::mem::replace(&mut cache.spares[class], full);
                    if !old_spare.is_empty() {
                        flush(cache.node, class, old_spare, cx);
                    }
                }
                FreeList::Others => hand_back(class, full, cx),
            }
        }
        bin.push(block);
    }
}

/// Returns other threads' blocks to their spans, for their holders.
///
/// # Safety
/// The chain's blocks are free blocks of `class` owned by the caller.
unsafe fn hand_back(class: usize, chain: Chain, cx: &SlowPathContext) {
    // SAFETY: per the contract.
    if unsafe { central::give_back(class, chain, (cx.now_ms)()) } {
        super::purge::memory_freed();
    }
}

/// Sends a full magazine to the depot, or to its spans if the depot is full.
///
/// # Safety
/// The chain's blocks are free blocks of `class` owned by the caller.
unsafe fn flush(node: usize, class: usize, chain: Chain, cx: &SlowPathContext) {
    if let Err(chain) = depot::push(node, class, chain, magazine_blocks(class)) {
        // SAFETY: per the contract.
        if unsafe { central::give_back(class, chain, (cx.now_ms)()) } {
            super::purge::memory_freed();
        }
    }
}

/// One block, for a thread whose cache is gone.
fn alloc_uncached(class: usize, node: usize, cx: &SlowPathContext) -> *mut u8 {
    let mut chain = depot::pop(node, class).unwrap_or_else(|| {
        let mut carver = Carver { token: NO_OWNER, span: ptr::null_mut() };
        let options = cx.segments.for_thread(0);
        let Refill { mut chain, mut carve } = central::refill(class, node, 1, options, &mut carver);
        if chain.is_empty() {
            // SAFETY: the carve's blocks are ours, counted out of their span by `refill`.
            chain = unsafe { carve.take(class, 1) };
        }
        debug_assert_eq!(carve.left, 0, "a refill of one block returns one block");
        chain
    });
    // SAFETY: the chain is a well-formed chain of free blocks we own.
    let block = unsafe { chain.pop() }.unwrap_or(ptr::null_mut());
    if !chain.is_empty() {
        // SAFETY: the rest of the chain is still ours.
        unsafe { flush(node, class, chain, cx) };
    }
    block.cast()
}

/// # Safety
/// `block` is a block of `class` the caller owned.
unsafe fn dealloc_uncached(class: usize, block: *mut u8, cx: &SlowPathContext) {
    let mut chain = Chain::EMPTY;
    // SAFETY: per the contract.
    unsafe {
        chain.push(block.cast());
        if central::give_back(class, chain, (cx.now_ms)()) {
            super::purge::memory_freed();
        }
    }
}

/// The NUMA node whose depots this thread's cache uses, choosing it now if unset.
pub(crate) fn node() -> usize {
    // SAFETY: this thread's cache; no other borrow of it is live here.
    unsafe { (*current()).node() }
}

/// Sets the NUMA node whose depots this thread's cache uses.
pub(crate) fn set_node(node: usize) {
    // SAFETY: this thread's cache; no other borrow of it is live here.
    unsafe { ((*current()).node, (*current()).node_chosen) = (node, true) };
}

/// Empties this thread's cache into the depots (or spans); it refills on the next call.
pub(crate) fn flush_current_thread() {
    // SAFETY: this thread's cache; its blocks are free blocks we own.
    unsafe { empty(current(), false) }
}

/// Moves every block of `cache` out; `dead` leaves the cache unusable (limits of zero).
///
/// # Safety
/// `cache` is this thread's cache, not borrowed elsewhere.
unsafe fn empty(cache: *mut ThreadCache, dead: bool) {
    let cx = super::slow_path_context();
    // SAFETY: per the contract.
    let cache = unsafe { &mut *cache };
    if cache.state != State::Active {
        return;
    }
    for class in 0..CLASSES {
        let (bin, remote) = (&mut cache.bins[class], &mut cache.remote[class]);
        counters::fold(class, bin);
        counters::fold(class, remote);
        debug_assert!(remote.head.is_null(), "nothing allocates from other threads' blocks");
        let others = remote.take_freed();
        if !others.is_empty() {
            // SAFETY: the list held free blocks of the class, now taken out of the cache.
            unsafe { hand_back(class, others, &cx) };
        }
        let [allocation_side, freed] = bin.take_all();
        let chains = [allocation_side, freed, core::mem::replace(&mut cache.spares[class], Chain::EMPTY), {
            let mut carve = core::mem::replace(&mut cache.carves[class], Carve::EMPTY);
            // SAFETY: the carve's blocks are the cache's, counted out of their span; those
            // it cannot give back uncarved it links up.
            unsafe {
                if central::uncarve(class, &mut carve) { Chain::EMPTY } else { carve.take(class, u32::MAX) }
            }
        }];
        if dead {
            bin.set_limit(0);
            remote.set_limit(0);
        }
        for chain in chains {
            if !chain.is_empty() {
                // SAFETY: the chains held the cache's free blocks, now taken out of it.
                unsafe { flush(cache.node, class, chain, &cx) };
            }
        }
        let held = cache.carving[class];
        if dead && !held.is_null() {
            cache.carving[class] = ptr::null_mut();
            // SAFETY: the cache held this span of `class`; it lets go of it here, once.
            if unsafe { central::release(class, held, (cx.now_ms)()) } {
                super::purge::memory_freed();
            }
        }
    }
    if dead {
        cache.state = State::Dead;
    }
}

/// The destructor that empties the thread's cache into the depots when the thread exits.
struct FlushAtExit;

impl Drop for FlushAtExit {
    fn drop(&mut self) {
        // SAFETY: this thread's cache, not borrowed (destructors run outside allocator calls).
        unsafe { empty(current(), true) }
    }
}

/// This thread's hits of `class` not folded into the global counters yet.
pub(crate) fn unfolded_hits(class: usize) -> (u64, u64) {
    // SAFETY: this thread's cache, read without other borrows live.
    let cache = unsafe { &*current() };
    (cache.bins[class].alloc_hits, cache.bins[class].free_hits() + cache.remote[class].free_hits())
}

/// Blocks held by this thread's cache, per class (for statistics and tests).
pub(crate) fn cached_bytes() -> usize {
    // SAFETY: this thread's cache, read without other borrows live.
    let cache = unsafe { &*current() };
    (0..CLASSES)
        .map(|class| {
            let blocks = cache.bins[class].len()
                + cache.remote[class].len()
                + cache.spares[class].count
                + cache.carves[class].left;
            blocks as usize * block_size(class)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Operations on a bin, as a property test drives them.
    #[derive(Clone, Debug)]
    enum Op {
        Pop,
        /// What the allocation paths try before the slow path.
        PopOrRecycle,
        TryPush,
        Push,
        /// What the free slow path does when the freed list is full.
        TakeFreed,
        /// Takes both lists out and installs a chain of this many blocks.
        Reinstall(u8),
        SetLimit(u8),
        Fold,
    }

    proptest! {
        // Under miri: few cases, and no failure file (its isolation forbids the file system).
        #![proptest_config(if cfg!(miri) {
            ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() }
        } else {
            ProptestConfig::with_cases(256)
        })]

        /// The two lists' lengths and the derived hit counts stay exact through every
        /// change of the bin (hits, slow-path pushes, recycling, spills, refills, new
        /// limits, folds), and every block popped is one that went in.
        #[test]
        fn bins_count_their_blocks_and_hits_exactly(ops in proptest::collection::vec(
            prop_oneof![
                4 => Just(Op::Pop),
                2 => Just(Op::PopOrRecycle),
                4 => Just(Op::TryPush),
                1 => Just(Op::Push),
                1 => Just(Op::TakeFreed),
                1 => (0u8..40).prop_map(Op::Reinstall),
                1 => (0u8..40).prop_map(Op::SetLimit),
                1 => Just(Op::Fold),
            ],
            0..if cfg!(miri) { 50 } else { 200 },
        )) {
            // Blocks are words of this pool; a free block's first word is its link.
            // Enough for every operation to take 40 blocks.
            let mut pool: Vec<Block> = (0..40 * ops.len() + 1).map(|_| Block { next: ptr::null_mut() }).collect();
            let mut spare: Vec<*mut u8> = pool.iter_mut().map(|b| ptr::from_mut(b).cast()).collect();
            let mut bin = Bin::UNSET;
            bin.set_limit(10);
            // The model: each list's blocks, front first.
            let (mut head, mut freed) = (Vec::<*mut u8>::new(), Vec::<*mut u8>::new());
            let (mut allocs, mut frees) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Pop | Op::PopOrRecycle => {
                        let recycle = matches!(op, Op::PopOrRecycle);
                        // SAFETY: here and below, the bin's blocks and `spare`'s are distinct
                        // words of `pool`, which outlives the bin.
                        let popped = unsafe { if recycle { bin.pop_or_recycle() } else { bin.pop() } };
                        if recycle && head.is_empty() {
                            head = core::mem::take(&mut freed);
                        }
                        prop_assert_eq!(popped, (!head.is_empty()).then(|| head.remove(0)));
                        if let Some(block) = popped {
                            allocs += 1;
                            spare.push(block);
                        }
                    }
                    Op::TryPush => {
                        let block = spare.pop().unwrap();
                        // SAFETY: as above.
                        if unsafe { bin.try_push(block) } {
                            frees += 1;
                            freed.insert(0, block);
                        } else {
                            prop_assert!(freed.len() >= bin.limit as usize);
                            spare.push(block);
                        }
                    }
                    Op::Push => {
                        let block = spare.pop().unwrap();
                        // SAFETY: as above.
                        unsafe { bin.push(block) };
                        freed.insert(0, block);
                    }
                    Op::TakeFreed => {
                        let chain = bin.take_freed();
                        let front = freed.first().copied().unwrap_or(ptr::null_mut());
                        prop_assert_eq!((chain.head.cast(), chain.count as usize), (front, freed.len()));
                        spare.append(&mut freed);
                    }
                    Op::Reinstall(n) => {
                        let [a, b] = bin.take_all();
                        prop_assert_eq!((a.count as usize, b.count as usize), (head.len(), freed.len()));
                        spare.append(&mut head);
                        spare.append(&mut freed);
                        let mut chain = Chain::EMPTY;
                        for _ in 0..n {
                            let block = spare.pop().unwrap();
                            // SAFETY: as above.
                            unsafe { chain.push(block.cast()) };
                            head.insert(0, block);
                        }
                        bin.install(chain);
                    }
                    Op::SetLimit(limit) => bin.set_limit(u32::from(limit)),
                    Op::Fold => {
                        prop_assert_eq!(bin.take_hits(), (allocs, frees));
                        (allocs, frees) = (0, 0);
                    }
                }
                let lengths = (bin.head_len() as usize, bin.freed_len() as usize);
                prop_assert_eq!(lengths, (head.len(), freed.len()));
                prop_assert_eq!((bin.alloc_hits, bin.free_hits()), (allocs, frees));
            }
        }

        /// `free`'s one-test holder check agrees with the two tests it replaces, for every
        /// pair of tokens (any counter values below the mark) and the absent holder.
        #[test]
        fn holder_test_is_two_comparisons(a in 0..TOKEN_MARK, b in 0..TOKEN_MARK, holder_absent: bool) {
            let token = TOKEN_MARK | a;
            let holder = if holder_absent { NO_OWNER } else { TOKEN_MARK | b };
            prop_assert_eq!(held_by_others(holder, token), holder != NO_OWNER && holder != token);
            // A cache not set up counts no holder as another's (its slow path sorts them).
            prop_assert!(!held_by_others(holder, NO_OWNER));
        }
    }

    #[test]
    fn list_offsets_name_the_class_list() {
        let mut cache = ThreadCache::FRESH;
        for class in 0..CLASSES {
            let offset = bin_offset(class);
            assert_eq!(class_at(offset), class);
            // SAFETY: a live array and one of its lists' offsets.
            let bin = unsafe { bin_at(&raw mut cache.remote, offset) };
            assert!(ptr::eq(bin, &cache.remote[class]));
        }
        for size in 0..=1024 {
            let class = super::super::size_class::class_of(size, 16).unwrap();
            assert_eq!(small_bin(size, 16), Some(bin_offset(class)));
        }
        assert_eq!((small_bin(1025, 16), small_bin(16, 32)), (None, None));
    }

    #[test]
    fn tokens_carry_the_mark() {
        let (a, b) = (next_token(), next_token());
        assert!(a & b & TOKEN_MARK != 0 && a != b);
        assert!(held_by_others(a, b) && held_by_others(b, a) && !held_by_others(a, a));
    }

    /// Static TLS starts as zero bytes (see `static_tls.rs`): they must read as a fresh cache.
    #[test]
    fn all_zero_bytes_are_a_fresh_cache() {
        // SAFETY: every field is a pointer, integer, bool or `State` (whose 0 is `Fresh`).
        let zeroed: ThreadCache = unsafe { core::mem::zeroed() };
        let fresh = ThreadCache::FRESH;
        assert_eq!((zeroed.state, zeroed.token, zeroed.node_chosen), (fresh.state, fresh.token, false));
        for class in 0..CLASSES {
            for (a, b) in
                [(zeroed.bins[class], fresh.bins[class]), (zeroed.remote[class], fresh.remote[class])]
            {
                assert_eq!(
                    (a.head, a.alloc_hits, a.freed, a.room, a.limit, a.head_end, a.base),
                    (b.head, b.alloc_hits, b.freed, b.room, b.limit, b.head_end, b.base)
                );
            }
            assert!(zeroed.spares[class].is_empty() && zeroed.spares[class].count == 0);
            assert!(zeroed.carves[class].next.is_null() && zeroed.carves[class].left == 0);
            assert!(zeroed.carving[class].is_null());
        }
    }
}
