//! `PinAlloc`: a global allocator with core-pinned per-thread caches over lock-free depots.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: pinalloc::PinAlloc = pinalloc::PinAlloc::new();
//!
//! let v: Vec<u64> = (0..1000).collect();
//! assert_eq!(v.iter().sum::<u64>(), 499_500);
//! ```
//!
//! # Layers, from the fast path down
//!
//! | layer | file | touched |
//! |---|---|---|
//! | thread cache: a free list and a spare magazine per size class | `thread_cache.rs` | every call; no atomics |
//! | by pointer alone (C's `free`): segment map, then the span's class | `by_pointer.rs`, `segment_map.rs` | C ABI calls |
//! | depot: per NUMA node and class, a Treiber stack of magazines | `depot.rs` | once per batch of blocks |
//! | central: per class, the spans with blocks to give, under a lock | `central.rs` | when depots are dry or full |
//! | segments: 4 MiB aligned mappings cut into 64 KiB pages and spans | `segment.rs` | once per span |
//! | large blocks: one mapping each, grown with `mremap` | `large.rs` | every large call |
//! | purge: free pages back to the OS after a delay | `purge.rs` | in the background |
//!
//! Sizes map to 40 classes ([`size_class`]); `dealloc` recomputes the class from the
//! `Layout` it is given instead of looking the block up. A thread's first call sets up its
//! cache and registers a thread-exit destructor that returns the cache to the depots.
//!
//! # Rules this allocator keeps
//! It never panics or unwinds (out of memory returns null), never allocates through itself
//! while serving a call (the OS layer reads sysfs into stack buffers; the purger thread is
//! spawned outside any allocator state), and keeps working in a thread after that thread's
//! cache has been flushed at exit. After `fork()` the child's locks are reset.
//!
//! # Configuration
//! In code, with [`PinAlloc::with_config`] and the `const` builder [`Config`]; from the
//! environment, read once when the allocator is first used (environment wins):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PINALLOC_PURGE_DELAY_MS` | how long free pages stay resident before they are purged; `0` purges at once | 250 |
//! | `PINALLOC_THP` | `never` (forbid transparent huge pages), `always` (ask for them; the first two small-block segments, 8 MiB, still follow the kernel's setting), `default` (leave it to the kernel's setting) | `always` |
//! | `PINALLOC_HUGE_PAGES` | `1`: back segments with hugetlbfs pages where reserved (1 GiB → 2 MiB → THP → 4 KiB) | `0` |
//!
//! All `PinAlloc` values share one process-wide heap; the configuration of the first one
//! used (plus the environment) applies.
//!
//! # Debug checks
//! With the cargo feature `debug-checks`, every call is validated against the segment
//! metadata and free blocks are poisoned: double frees, frees with the wrong layout, frees
//! of interior pointers and writes after free abort the process with a message (see the
//! `debug_checks` module). Without the feature the checks compile away entirely.

mod allocator_api;
mod by_pointer;
mod central;
mod counters;
mod debug_checks;
mod depot;
mod huge_pages;
mod large;
mod purge;
mod segment;
mod segment_map;
pub mod size_class;
#[cfg(all(feature = "initial-exec-tls", target_arch = "x86_64", target_os = "linux", not(miri)))]
mod static_tls;
mod thread_cache;
mod topology;

pub use by_pointer::usable_size;
pub use depot::DEPOT_NODES;
pub use purge::DEFAULT_PURGE_DELAY_MS;
pub use topology::{
    current_thread_node, numa_node_count, pin_current_thread, simulate_topology, use_numa_node,
};

use crate::os::{self, HugePages};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};
use segment::{Block, SegmentOptions};
use size_class::{CLASSES, block_size, class_of};
use thread_cache::SlowPathContext;

/// Settings of the allocator, built in `const` context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    purge_delay_ms: u64,
    huge_pages: HugePages,
    purge_thread: bool,
}

impl Config {
    /// The defaults: a 250 ms purge delay; memory that comes in bulk asks for transparent
    /// huge pages (`MADV_HUGEPAGE`), which on large heaps cuts page faults and TLB misses
    /// several-fold (measured: 9.6k instead of 56k faults, and a third less time, for 100k
    /// mixed blocks), at the price of RSS moving in 2 MiB steps until purged: the segments
    /// mapped for a thread that has carved 8 MiB of blocks, and large blocks of 8 MiB or
    /// more. The rest follows the kernel's setting, so that small heaps, even many of them,
    /// stay small (see `huge_pages.rs`).
    pub const fn new() -> Self {
        Config {
            purge_delay_ms: DEFAULT_PURGE_DELAY_MS,
            huge_pages: HugePages::Transparent,
            purge_thread: true,
        }
    }

    /// How long pages of freed spans stay resident before they are given back to the OS.
    pub const fn purge_delay_ms(mut self, ms: u64) -> Self {
        self.purge_delay_ms = ms;
        self
    }

    /// Whether due pages are purged by a background thread (the default), which a program
    /// that goes quiet needs to see its RSS fall, or only by the threads that free memory,
    /// at their slow paths. A library preloaded into programs that do not expect an extra
    /// thread (the C ABI) chooses the latter.
    pub const fn purge_thread(mut self, enabled: bool) -> Self {
        self.purge_thread = enabled;
        self
    }

    /// What backs segments and large blocks; see [`HugePages`].
    pub const fn huge_pages(mut self, huge_pages: HugePages) -> Self {
        self.huge_pages = huge_pages;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// The allocator. Put it in a static as `#[global_allocator]`, or use it as an
/// `allocator_api2` [`Allocator`](allocator_api2::alloc::Allocator).
#[derive(Debug)]
pub struct PinAlloc {
    config: Config,
}

impl Default for PinAlloc {
    fn default() -> Self {
        Self::new()
    }
}

/// 0: not configured; 1: configuring; 2: done. Acquire/Release between the configuring
/// thread's final store and readers of the settings below.
static CONFIGURED: AtomicU8 = AtomicU8::new(0);
/// The huge-page policy for segments and large blocks, as `HugePages as u8`. Relaxed:
/// published by CONFIGURED.
static HUGE_PAGES: AtomicU8 = AtomicU8::new(2);

fn huge_pages_setting() -> HugePages {
    match HUGE_PAGES.load(Ordering::Relaxed) {
        1 => HugePages::Forbid,
        2 => HugePages::Transparent,
        3 => HugePages::Best,
        _ => HugePages::KernelDefault,
    }
}

pub(crate) fn slow_path_context() -> SlowPathContext {
    SlowPathContext {
        segments: SegmentOptions { huge_pages: huge_pages_setting() },
        now_ms: os::monotonic_ms,
    }
}

impl PinAlloc {
    /// The allocator with the default [`Config`].
    pub const fn new() -> Self {
        PinAlloc { config: Config::new() }
    }

    /// The allocator with `config` (the environment still overrides it).
    pub const fn with_config(config: Config) -> Self {
        PinAlloc { config }
    }

    /// Applies the configuration once per process, on the first slow path.
    #[cold]
    fn configure(&self) {
        if CONFIGURED.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return;
        }
        let mut delay = self.config.purge_delay_ms;
        let mut huge = self.config.huge_pages;
        if let Some(ms) = os::env_var(c"PINALLOC_PURGE_DELAY_MS").and_then(parse_u64) {
            delay = ms;
        }
        match os::env_var(c"PINALLOC_THP") {
            Some(b"never") => huge = HugePages::Forbid,
            Some(b"always") => huge = HugePages::Transparent,
            Some(b"default") => huge = HugePages::KernelDefault,
            _ => {}
        }
        if os::env_var(c"PINALLOC_HUGE_PAGES") == Some(b"1") {
            huge = HugePages::Best;
        }
        purge::DELAY_MS.store(delay, Ordering::Relaxed);
        if !self.config.purge_thread {
            purge::purge_on_freeing_threads();
        }
        let code = match huge {
            HugePages::KernelDefault => 0,
            HugePages::Forbid => 1,
            HugePages::Transparent => 2,
            HugePages::Best => 3,
        };
        HUGE_PAGES.store(code, Ordering::Relaxed);
        os::at_fork(fork::prepare, fork::parent, fork::child);
        // Release pairs with the Acquire in `ensure_configured`.
        CONFIGURED.store(2, Ordering::Release);
    }

    #[inline]
    fn ensure_configured(&self) {
        // Acquire pairs with the Release at the end of `configure`.
        if CONFIGURED.load(Ordering::Acquire) != 2 {
            self.configure();
        }
    }

    /// Gives every free page back to the OS now: blocks parked in depots and in the calling
    /// thread's cache return to their spans, and free spans are purged at once.
    pub fn purge(&self) {
        self.ensure_configured();
        purge::purge_now();
    }

    /// A snapshot of the allocator's statistics.
    pub fn stats(&self) -> Stats {
        let classes: [ClassStats; CLASSES] = core::array::from_fn(|class| {
            let [alloc_hits, alloc_misses, free_hits, free_misses] = counters::snapshot(class);
            let (own_alloc_hits, own_free_hits) = thread_cache::unfolded_hits(class);
            ClassStats {
                block_size: block_size(class),
                out_blocks: central::out_blocks(class),
                depot_blocks: depot::parked_blocks(class),
                depot_magazines_per_node: depot::parked_magazines(class),
                depot_cas_retries: depot::cas_retries(class),
                alloc_hits: alloc_hits + own_alloc_hits,
                alloc_misses,
                free_hits: free_hits + own_free_hits,
                free_misses,
            }
        });
        let small_allocated: usize =
            classes.iter().map(|c| c.out_blocks.saturating_sub(c.depot_blocks) * c.block_size).sum();
        let large_live = large::live_bytes();
        let segments = segment::SEGMENTS.lock();
        let os = os::counters();
        Stats {
            allocated_bytes: small_allocated + large_live,
            active_bytes: segments.span_pages * segment::PAGE + large_live,
            mapped_bytes: os.mapped_bytes,
            small_resident_bytes: segments.resident_pages * segment::PAGE,
            segments: segments.segments,
            purged_bytes_total: segments.purged_pages * segment::PAGE,
            os_purged_bytes_total: os.purged_bytes_total,
            thread_cache_bytes: thread_cache::cached_bytes(),
            large_cached_bytes: large::cached_bytes(),
            classes,
        }
    }
}

/// A decimal number from an environment variable (no allocation: `str::parse` on a slice).
fn parse_u64(text: &[u8]) -> Option<u64> {
    core::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// What [`PinAlloc::stats`] reports.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Bytes of blocks out of the allocator's shared structures: held by the program or
    /// cached by its threads (small blocks at their class size, large ones at their
    /// mapping's length).
    pub allocated_bytes: usize,
    /// Bytes of pages given to spans of small blocks, plus the mappings of live large blocks:
    /// memory the allocator cannot purge now.
    pub active_bytes: usize,
    /// Bytes mapped from the OS by the whole crate (segments, large blocks, pools).
    pub mapped_bytes: usize,
    /// Bytes of small-block segments that are resident: pages in spans, free pages not yet
    /// purged, and segment headers.
    pub small_resident_bytes: usize,
    /// Small-block segments mapped.
    pub segments: usize,
    /// Bytes of free pages the allocator purged since start.
    pub purged_bytes_total: usize,
    /// Bytes purged by the whole crate's OS layer since start.
    pub os_purged_bytes_total: usize,
    /// Bytes of free blocks held by the calling thread's cache.
    pub thread_cache_bytes: usize,
    /// Bytes of freed large mappings kept for reuse until the purge delay passes.
    pub large_cached_bytes: usize,
    /// Per size class.
    pub classes: [ClassStats; CLASSES],
}

/// Per-class figures in [`Stats`].
#[derive(Clone, Copy, Debug)]
pub struct ClassStats {
    /// The class's block size.
    pub block_size: usize,
    /// Blocks out of their spans: with the program, in thread caches or in depots.
    pub out_blocks: usize,
    /// Blocks parked in the class's depots (all nodes).
    pub depot_blocks: usize,
    /// Allocations served by a thread's own list (the fast path). Each thread's counts are
    /// folded in at its next miss or exit; the calling thread's are always included.
    pub alloc_hits: u64,
    /// Allocations that took the slow path (spare, depot or central layer).
    pub alloc_misses: u64,
    /// Frees that went onto a thread's own list.
    pub free_hits: u64,
    /// Frees that took the slow path (the list was full).
    pub free_misses: u64,
    /// Magazines parked in the class's depot of each NUMA node (nodes beyond
    /// [`DEPOT_NODES`] share depots modulo this count).
    pub depot_magazines_per_node: [u32; DEPOT_NODES],
    /// Failed compare-and-swaps on the class's depots (contention).
    pub depot_cas_retries: u64,
}

// SAFETY: every path returns a block of at least `layout.size()` bytes aligned to
// `layout.align()` (size classes round both up; large blocks are mapped with the
// alignment), or null; blocks are handed out once until freed; nothing here panics.
unsafe impl GlobalAlloc for PinAlloc {
    /// The fast path: a size of at most 1 KiB and an alignment of at most 16 whose list has
    /// a block. Everything else is one tail call to an out-of-line general path, so this
    /// stays a leaf function with no prologue (a pair costs 28 instructions through
    /// `#[global_allocator]`, 26 with thin LTO; mimalloc's costs 79).
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if debug_checks::ENABLED {
            // SAFETY: forwarded contract.
            return unsafe { self.alloc_checked(layout) };
        }
        if let Some(block) = self.pop_cached(layout.size(), layout.align()) {
            return block;
        }
        // SAFETY: forwarded contract.
        unsafe { self.alloc_general(layout) }
    }

    /// The fast path's mirror: a small block goes on this thread's list if it has room.
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // `ptr` as given is what a free list links through (see `Block::link`).
        if debug_checks::ENABLED {
            // SAFETY: forwarded contract.
            return unsafe { self.dealloc_checked(os::root_provenance(ptr), layout) };
        }
        if let Some(bin) = thread_cache::small_bin(layout.size(), layout.align()) {
            let block = Block::linkable(ptr, layout.size());
            // SAFETY: this thread's cache; `bin` is a list's offset; `block` is a block of
            // the list's class (the same layout gives the same class) that the caller gives up.
            unsafe {
                if (*thread_cache::bin_at(&raw mut (*thread_cache::current()).bins, bin)).try_push(block) {
                    return;
                }
            }
        }
        // SAFETY: forwarded contract.
        unsafe { self.dealloc_general(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class_of(layout.size(), layout.align()).is_none() {
            self.ensure_configured();
            // Fresh mappings are zero: only a reused one is cleared.
            return large::alloc(layout, huge_pages_setting(), true);
        }
        // SAFETY: forwarded contract.
        let block = unsafe { self.alloc(layout) };
        if !block.is_null() {
            // SAFETY: the block has at least `layout.size()` writable bytes.
            unsafe { ptr::write_bytes(block, 0, layout.size()) };
        }
        block
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let ptr = os::root_provenance(ptr);
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        let old_class = class_of(layout.size(), layout.align());
        let new_class = class_of(new_size, layout.align());
        match (old_class, new_class) {
            // Same block size: nothing to do (dealloc will recompute the same class).
            (Some(a), Some(b)) if a == b => return ptr,
            (None, None) => {
                // SAFETY: both large: the block came from alloc_large with this alignment.
                let moved = unsafe { large::realloc(ptr, layout, new_size, os::monotonic_ms()) };
                if !moved.is_null() {
                    return moved;
                }
            }
            _ => {}
        }
        // SAFETY: forwarded contract; copy the smaller size, then free the old block.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

impl PinAlloc {
    /// The allocation fast path: a block of at least `size` bytes aligned to `align` from
    /// this thread's list, if the request is small (at most 1 KiB, aligned to at most 16)
    /// and the list has one.
    #[inline(always)]
    fn pop_cached(&self, size: usize, align: usize) -> Option<*mut u8> {
        let bin = thread_cache::small_bin(size, align)?;
        // SAFETY: this thread's cache; `bin` is a list's offset; a non-null head is a free
        // block of the list's class owned by the cache, whose first word links the next.
        unsafe { (*thread_cache::bin_at(&raw mut (*thread_cache::current()).bins, bin)).pop() }
    }

    /// `alloc` under the debug checks: the block must come out of its list intact.
    ///
    /// # Safety
    /// As for `GlobalAlloc::alloc`.
    #[inline(never)]
    unsafe fn alloc_checked(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract; the block returned is ours with its class's size.
        unsafe {
            let block = self.alloc_general(layout);
            if !block.is_null() {
                match class_of(layout.size(), layout.align()) {
                    Some(class) => debug_checks::unpoison(block, block_size(class)),
                    None => debug_checks::junk(block, layout.size()),
                }
            }
            block
        }
    }

    /// `dealloc` under the debug checks: the free is validated, the block poisoned.
    ///
    /// # Safety
    /// As for `GlobalAlloc::dealloc`.
    #[inline(never)]
    unsafe fn dealloc_checked(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract: `ptr` is (claimed to be) a live block of `layout`.
        unsafe {
            debug_checks::check_free(ptr, layout);
            if let Some(class) = class_of(layout.size(), layout.align()) {
                debug_checks::poison(ptr, block_size(class));
            }
            self.dealloc_general(ptr, layout)
        }
    }

    /// Every allocation the inlined fast path does not serve: medium sizes, over-aligned and
    /// large requests, and empty lists.
    ///
    /// # Safety
    /// As for `GlobalAlloc::alloc`.
    #[inline(never)]
    unsafe fn alloc_general(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout.size(), layout.align()) else { return self.alloc_large(layout) };
        let cache = thread_cache::current();
        // SAFETY: this thread's cache; `class < CLASSES`; as in the fast path.
        unsafe {
            match (*cache).bins.get_unchecked_mut(class).pop_or_recycle() {
                Some(block) => block,
                None => self.alloc_slow(cache, class),
            }
        }
    }

    /// Every free the inlined fast path does not take.
    ///
    /// # Safety
    /// As for `GlobalAlloc::dealloc`.
    #[inline(never)]
    unsafe fn dealloc_general(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout.size(), layout.align()) else {
            // SAFETY: forwarded: large layouts come from `alloc_large` with this alignment.
            return unsafe { self.dealloc_large(os::root_provenance(ptr), layout) };
        };
        let cache = thread_cache::current();
        let block = Block::linkable(ptr, layout.size());
        // SAFETY: this thread's cache; `block` is a block of `class` the caller gives up.
        unsafe {
            if !(*cache).bins.get_unchecked_mut(class).try_push(block) {
                self.dealloc_slow(cache, class, block, thread_cache::FreeList::Own)
            }
        }
    }

    /// # Safety
    /// `cache` is this thread's cache, not borrowed.
    #[cold]
    #[inline(never)]
    unsafe fn alloc_slow(&self, cache: *mut thread_cache::ThreadCache, class: usize) -> *mut u8 {
        self.ensure_configured();
        // SAFETY: forwarded.
        let block = unsafe { thread_cache::alloc_slow(cache, class, &slow_path_context()) };
        purge::start_if_wanted();
        block
    }

    /// # Safety
    /// `cache` is this thread's cache, not borrowed; `block` is a block of `class`.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_slow(
        &self,
        cache: *mut thread_cache::ThreadCache,
        class: usize,
        block: *mut u8,
        list: thread_cache::FreeList,
    ) {
        self.ensure_configured();
        // SAFETY: forwarded.
        unsafe { thread_cache::dealloc_slow(cache, class, block, list, &slow_path_context()) };
        purge::start_if_wanted();
    }

    /// Out of line, so the small-block fast paths stay leaf functions without a prologue.
    #[cold]
    #[inline(never)]
    fn alloc_large(&self, layout: Layout) -> *mut u8 {
        self.ensure_configured();
        large::alloc(layout, huge_pages_setting(), false)
    }

    /// # Safety
    /// `ptr` is a large block allocated with `layout`'s alignment, not used again.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_large(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { large::dealloc(ptr, layout, os::monotonic_ms()) };
        // No allocator state is borrowed here: a safe point to start the purger.
        purge::memory_freed();
        purge::start_if_wanted();
    }
}

/// `fork()` handlers: the parent holds every allocator lock across the fork, so the child
/// starts from consistent state, with the locks released and no purger thread.
mod fork {
    use super::central::CENTRAL;
    use super::segment::SEGMENTS;

    pub(super) extern "C" fn prepare() {
        for central in &CENTRAL {
            core::mem::forget(central.lock());
        }
        core::mem::forget(SEGMENTS.lock());
    }

    pub(super) extern "C" fn parent() {
        // SAFETY: `prepare` took every lock on this thread and forgot the guards; the fork
        // is over, so they are released exactly once.
        unsafe { release_all() };
    }

    pub(super) extern "C" fn child() {
        // SAFETY: as in `parent`; in the child only this thread exists.
        unsafe { release_all() };
        super::purge::forget_purger_after_fork();
    }

    /// # Safety
    /// Every lock is held by this thread through a forgotten guard.
    unsafe fn release_all() {
        // SAFETY: per the contract.
        unsafe {
            SEGMENTS.force_unlock();
            for central in &CENTRAL {
                central.force_unlock();
            }
        }
    }
}
