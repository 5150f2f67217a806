//! One buffer class's shared state: the region its buffers live in, the per-NUMA-node
//! Treiber stacks of magazines of free buffers, and the counters that thread caches fold
//! into.
//!
//! A buffer is named by its index: buffer `i` starts at `region + i * stride`. The region
//! is reserved for the class's maximum count up front and committed as buffers are created,
//! so buffers never move and are never unmapped while the pool lives.
//!
//! Free buffers travel between thread caches in **magazines**: a node of the class's
//! [`NodePool`] holding up to [`MAGAZINE`] indices. A thread cache refills by popping one
//! magazine and flushes by pushing one, so a batch costs one CAS and touches one node.
//! (Linking the buffers themselves into a chain would make the other thread read every
//! buffer's link: one cache miss per buffer instead of one per batch, which measured at
//! 60 ns per buffer passed between two threads.) An empty magazine goes back to the node
//! pool's released list, which the next flush reuses.
//!
//! Invariants: every index below `created()` names a created buffer and is in exactly one
//! place: in one magazine on one node's stack, in one thread cache, held by one
//! [`BufferGuard`](super::BufferGuard), or in the spill list. (Thread caches and guards
//! hold the buffer's address, [`ClassPool::buffer`]; [`ClassPool::index_of`] maps it back.)

use super::config::ClassConfig;
use super::error::PoolError;
use crate::os::{Mapping, page_size};
use crate::stack::treiber::Head;
use crate::stack::{NodePool, Owned};
use crate::sync::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;
use crossbeam_utils::CachePadded;
use std::sync::Mutex;

/// Buffer indices per magazine: the most a thread cache moves in one exchange.
pub const MAGAZINE: usize = 64;

/// A batch of free buffer indices, `slots[..count]`.
pub(crate) struct Magazine {
    count: u32,
    slots: [u32; MAGAZINE],
}

impl Magazine {
    const EMPTY: Magazine = Magazine { count: 0, slots: [0; MAGAZINE] };
}

/// The allocator fallback buffers come from.
static FALLBACK_HEAP: crate::PinAlloc = crate::PinAlloc::new();

/// Counters shared by every thread. Updated Relaxed: statistics, publishing nothing; the
/// buffers themselves are published by the stacks' Release/Acquire.
#[derive(Default)]
pub(crate) struct SharedCounters {
    /// Operations folded in from retired thread caches or made without one.
    pub hits: AtomicU64,
    pub cache_hits: AtomicU64,
    pub misses: AtomicU64,
    pub returns: AtomicU64,
    /// Created buffers taken out of the shared stacks, net, by threads without a cache and
    /// by retired caches (live caches keep their own count, so the exchanges of a batch
    /// touch no shared counter).
    pub drawn: AtomicI64,
    /// Fallback buffers not freed yet.
    pub fallbacks: AtomicI64,
    /// The most buffers that existed at once: created pool buffers plus fallbacks alive.
    pub peak: AtomicI64,
}

/// One class's shared state (see the module docs).
pub(crate) struct ClassPool {
    pub config: ClassConfig,
    pub stride: usize,
    region: Mapping,
    /// Buffers created: indices `0..created` are handed out.
    created: AtomicU32,
    /// Magazines: on the `free` stacks, held during an exchange, or released (empty).
    magazines: NodePool<Magazine>,
    /// Magazines of free buffers, one stack per NUMA node.
    free: Box<[CachePadded<Head>]>,
    /// Free buffers that found no magazine (the OS refused to map more magazine nodes):
    /// kept here rather than lost, and taken first when the stacks run dry.
    spill: Mutex<Vec<u32>>,
    pub counters: CachePadded<SharedCounters>,
}

impl ClassPool {
    /// Reserves the class's region, creates its initial buffers (committed and touched, so
    /// the first use of each does not page-fault) and spreads them over the node stacks.
    pub(crate) fn new(config: ClassConfig, nodes: usize) -> Result<ClassPool, PoolError> {
        let stride = config.stride().expect("validated configuration");
        let bytes = stride * config.max_count() as usize;
        let region = Mapping::reserve(bytes, config.alignment().max(page_size())).map_err(PoolError::Os)?;
        let class = ClassPool {
            config,
            stride,
            region,
            created: AtomicU32::new(0),
            magazines: NodePool::new(),
            free: (0..nodes.max(1)).map(|_| CachePadded::new(Head::new())).collect(),
            spill: Mutex::new(Vec::new()),
            counters: CachePadded::new(SharedCounters::default()),
        };
        let initial = config.initial_count();
        if initial > 0 {
            class.commit(0, initial)?;
            class.prefault(initial as usize * stride);
            // Relaxed: the pool is not shared yet.
            class.created.store(initial, Ordering::Relaxed);
            class.note_peak();
            let indices: Vec<u32> = (0..initial).collect();
            let per_node = (initial as usize).div_ceil(class.free.len());
            for (node, chunk) in indices.chunks(per_node).enumerate() {
                // SAFETY: fresh buffers, owned by us, of this class, each once.
                unsafe { class.push_batch(node, chunk) };
            }
        }
        Ok(class)
    }

    /// Makes buffers `first..first + count` accessible.
    fn commit(&self, first: u32, count: u32) -> Result<(), PoolError> {
        self.region.commit(first as usize * self.stride, count as usize * self.stride).map_err(PoolError::Os)
    }

    /// Touches every page of the first `bytes` of the region, so they are resident.
    fn prefault(&self, bytes: usize) {
        let page = page_size();
        let base = self.region.as_ptr();
        for offset in (0..bytes).step_by(page) {
            // SAFETY: `offset < bytes`, which is committed and not yet handed to anyone; a
            // zero written over the zero fill changes nothing a later holder could see.
            unsafe { base.add(offset).write_volatile(0) };
        }
    }

    /// Creates one more buffer, committed; `None` at the maximum or if the OS refuses.
    pub(crate) fn grow(&self) -> Option<u32> {
        // Relaxed: the counter hands out distinct indices; the buffer's memory is committed
        // below by the thread that will hold it, and reaches others through the stacks.
        let index = self
            .created
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.config.max_count()).then_some(n + 1)
            })
            .ok()?;
        // A failed commit leaves an index with no memory: keep it out of circulation (it is
        // counted as created but never handed out) rather than hand out a faulting buffer.
        self.commit(index, 1).ok()?;
        self.note_peak();
        Some(index)
    }

    /// Buffers created so far.
    pub(crate) fn created(&self) -> u32 {
        // Relaxed: a count.
        self.created.load(Ordering::Relaxed)
    }

    /// Start of buffer `index`.
    #[inline(always)]
    pub(crate) fn buffer(&self, index: u32) -> NonNull<u8> {
        debug_assert!(index < self.created());
        // SAFETY: `index < created <= max_count`, so the offset lies inside the region,
        // which is reserved for `max_count` strides.
        unsafe { self.region.as_non_null().add(index as usize * self.stride) }
    }

    /// The index of the buffer that starts at `buffer`: the inverse of [`ClassPool::buffer`].
    #[inline]
    pub(crate) fn index_of(&self, buffer: NonNull<u8>) -> u32 {
        let offset = buffer.as_ptr().addr().wrapping_sub(self.region.as_ptr().addr());
        debug_assert!(offset.is_multiple_of(self.stride) && offset / self.stride < self.created() as usize);
        (offset / self.stride) as u32
    }

    /// Pops one magazine from `node`'s stack and moves up to `out.len()` of its buffers into
    /// `out` (a remainder goes back on the stack); returns how many.
    fn pop_batch(&self, node: usize, out: &mut [u32]) -> u32 {
        let head = &self.free[node % self.free.len()];
        // SAFETY: the class's heads hold only indices of `self.magazines` (invariant).
        let Some(index) = (unsafe { head.pop(&self.magazines) }) else {
            return 0;
        };
        // SAFETY: the pop made us the magazine's only owner.
        let mut magazine = unsafe { Owned::new(&self.magazines, index) };
        let count = (magazine.count as usize).min(out.len());
        let left = magazine.count as usize - count;
        out[..count].copy_from_slice(&magazine.slots[left..left + count]);
        if left > 0 {
            magazine.count = left as u32;
            // SAFETY: our magazine, of this pool; its buffers stay free.
            unsafe { head.push(&self.magazines, magazine.into_raw().index()) };
        }
        // An emptied magazine drops here, back to the node pool's released list.
        count as u32
    }

    /// Puts free buffers on `node`'s stack, in magazines (one CAS per [`MAGAZINE`]).
    ///
    /// # Safety
    /// The caller owns every buffer in `indices` (each an index of this class, none twice)
    /// and gives them up.
    pub(crate) unsafe fn push_batch(&self, node: usize, indices: &[u32]) {
        let head = &self.free[node % self.free.len()];
        for chunk in indices.chunks(MAGAZINE) {
            let Ok(mut magazine) = self.magazines.insert(Magazine::EMPTY) else {
                self.spill.lock().unwrap_or_else(|poison| poison.into_inner()).extend_from_slice(chunk);
                continue;
            };
            magazine.count = chunk.len() as u32;
            magazine.slots[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: a magazine of this pool that we own; the push's Release publishes its
            // contents (and the buffers' last writes) to the thread that pops it.
            unsafe { head.push(&self.magazines, magazine.into_raw().index()) };
        }
    }

    /// Zeroes `buffer` if the class says so.
    ///
    /// # Safety
    /// The caller owns `buffer`, a buffer of this class.
    #[inline]
    pub(crate) unsafe fn scrub(&self, buffer: NonNull<u8>) {
        if self.config.zero_on_reuse() {
            // SAFETY: the buffer is ours (contract) and `buffer_size` bytes long.
            unsafe { buffer.as_ptr().write_bytes(0, self.config.buffer_size()) };
        }
    }

    /// Takes up to `out.len()` free buffers into `out`: a magazine from `node`'s stack or,
    /// if empty, the other nodes' stacks; then the spill; then a new buffer if the class is
    /// below its maximum. Returns how many (0: at the maximum with nothing free).
    pub(crate) fn take_shared(&self, node: usize, out: &mut [u32]) -> u32 {
        for step in 0..self.free.len() {
            let got = self.pop_batch(node + step, out);
            if got > 0 {
                return got;
            }
        }
        if let Some(index) = self.spill.lock().unwrap_or_else(|poison| poison.into_inner()).pop() {
            out[0] = index;
            return 1;
        }
        match self.grow() {
            Some(index) => {
                out[0] = index;
                1
            }
            None => 0,
        }
    }

    /// The layout of a fallback buffer.
    fn fallback_layout(&self) -> Layout {
        Layout::from_size_align(self.config.buffer_size(), self.config.alignment())
            .expect("validated configuration")
    }

    /// Allocates a fallback buffer, zeroed: `None` if out of memory.
    ///
    /// Zeroed even for a class that does not zero on reuse: a guard hands its bytes out as
    /// `&[u8]`, which must be initialised, and a recycled allocation need not be. (Pool
    /// buffers start as the region's zero pages.) A fresh mapping costs nothing to zero.
    pub(crate) fn allocate_fallback(&self) -> Option<NonNull<u8>> {
        let layout = self.fallback_layout();
        // SAFETY: validated: non-zero size, power-of-two alignment, size fits isize.
        let ptr = unsafe { core::alloc::GlobalAlloc::alloc_zeroed(&FALLBACK_HEAP, layout) };
        NonNull::new(ptr)
    }

    /// Frees a fallback buffer.
    ///
    /// # Safety
    /// `ptr` came from [`ClassPool::allocate_fallback`] of this class and is given up.
    pub(crate) unsafe fn free_fallback(&self, ptr: NonNull<u8>) {
        // SAFETY: allocated by FALLBACK_HEAP with this layout (contract).
        unsafe { core::alloc::GlobalAlloc::dealloc(&FALLBACK_HEAP, ptr.as_ptr(), self.fallback_layout()) };
    }

    /// Notes `delta` created buffers leaving (positive) or re-entering (negative) the free
    /// stacks outside a thread cache.
    pub(crate) fn draw(&self, delta: i64) {
        // Relaxed: statistics (see SharedCounters).
        self.counters.drawn.fetch_add(delta, Ordering::Relaxed);
    }

    /// Notes `delta` fallback buffers allocated (positive) or freed (negative).
    pub(crate) fn fallbacks_alive(&self, delta: i64) {
        // Relaxed: statistics (see SharedCounters).
        self.counters.fallbacks.fetch_add(delta, Ordering::Relaxed);
        if delta > 0 {
            self.note_peak();
        }
    }

    /// Raises the peak to the buffers existing now (slow paths only: growth, fallbacks).
    fn note_peak(&self) {
        // Relaxed: statistics; two counters read one after the other, so under concurrent
        // updates the peak is a close estimate.
        let now = i64::from(self.created()) + self.counters.fallbacks.load(Ordering::Relaxed);
        self.counters.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Failed CAS attempts on this class's stacks.
    pub(crate) fn cas_retries(&self) -> u64 {
        self.free.iter().map(|head| head.retries()).sum()
    }
}
