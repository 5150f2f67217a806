//! One buffer class's shared state: the region its buffers live in, the per-NUMA-node
//! Treiber stacks of free buffers, and the counters that thread caches fold into.
//!
//! A buffer is named by its index: buffer `i` starts at `region + i * stride`, and node `i`
//! of the class's [`NodePool`] is its link on the free stacks. The region is reserved for
//! the class's maximum count up front and committed as buffers are created, so buffers
//! never move and are never unmapped while the pool lives.
//!
//! Invariants: every index below `nodes.created()` names a created buffer and is in exactly
//! one place: on one node's free stack, in one thread cache, or held by one
//! [`BufferGuard`](super::BufferGuard); the fallback marker [`FALLBACK`] is never an index.

use super::config::ClassConfig;
use super::error::PoolError;
use crate::os::{Mapping, page_size};
use crate::stack::NodePool;
use crate::stack::treiber::Head;
use crate::sync::{AtomicI64, AtomicU64, Ordering};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;
use crossbeam_utils::CachePadded;

/// The index a guard carries for a fallback buffer (allocated because the class was at its
/// maximum with nothing free); such a buffer is freed, not pushed, when it comes back.
pub(crate) const FALLBACK: u32 = u32::MAX;

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
    /// Created buffers outside the free stacks (in thread caches or held).
    pub drawn: AtomicI64,
    /// Fallback buffers not freed yet.
    pub fallbacks: AtomicI64,
    /// The high-water mark of `drawn + fallbacks`: the most buffers the class's users had
    /// out of the shared stacks at once.
    pub peak_drawn: AtomicI64,
}

/// One class's shared state (see the module docs).
pub(crate) struct ClassPool {
    pub config: ClassConfig,
    pub stride: usize,
    region: Mapping,
    nodes: NodePool<()>,
    /// Free buffers, one stack per NUMA node.
    free: Box<[CachePadded<Head>]>,
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
            nodes: NodePool::with_limit(config.max_count()),
            free: (0..nodes.max(1)).map(|_| CachePadded::new(Head::new())).collect(),
            counters: CachePadded::new(SharedCounters::default()),
        };
        let initial = config.initial_count();
        if initial > 0 {
            class.commit(0, initial)?;
            class.prefault(initial as usize * stride);
            let per_node = initial.div_ceil(class.free.len() as u32);
            let mut created = Vec::with_capacity(initial as usize);
            for _ in 0..initial {
                created.push(class.create_node()?.expect("the initial count is within the maximum"));
            }
            for (node, chunk) in created.chunks(per_node as usize).enumerate() {
                // SAFETY: fresh buffers, owned by us, of this class.
                unsafe { class.push_chain(node, chunk) };
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

    /// Claims a new node (and so a new buffer index), or `None` at the maximum.
    fn create_node(&self) -> Result<Option<u32>, PoolError> {
        match self.nodes.insert(()) {
            Ok(owned) => Ok(Some(owned.into_raw().index())),
            Err(crate::stack::NodePoolError::Exhausted { .. }) => Ok(None),
            Err(crate::stack::NodePoolError::Os(error)) => Err(PoolError::Os(error)),
        }
    }

    /// Creates one more buffer, committed; `None` at the maximum or if the OS refuses.
    pub(crate) fn grow(&self) -> Option<u32> {
        let index = self.create_node().ok()??;
        // A failed commit leaves an index with no memory: keep it out of circulation (it is
        // counted as created but never handed out) rather than hand out a faulting buffer.
        self.commit(index, 1).ok()?;
        Some(index)
    }

    /// Buffers created so far.
    pub(crate) fn created(&self) -> u32 {
        self.nodes.created()
    }

    /// Start of buffer `index`.
    #[inline(always)]
    pub(crate) fn buffer(&self, index: u32) -> NonNull<u8> {
        debug_assert!(index < self.created());
        // SAFETY: `index < created <= max_count`, so the offset lies inside the region,
        // which is reserved for `max_count` strides.
        unsafe { self.region.as_non_null().add(index as usize * self.stride) }
    }

    /// Pops up to `max` free buffers from `node`'s stack into `out`; returns how many.
    pub(crate) fn pop_batch(&self, node: usize, max: u32, out: &mut [u32]) -> u32 {
        let head = &self.free[node % self.free.len()];
        // SAFETY: the class's heads hold only indices of `self.nodes` (invariant).
        let Some((mut index, count)) = (unsafe { head.pop_chain(&self.nodes, max) }) else {
            return 0;
        };
        for slot in out.iter_mut().take(count as usize) {
            *slot = index;
            // Relaxed: pop_chain's Acquire made the chain's links visible, and they are ours.
            // SAFETY: `index` is a node of `self.nodes` that we now own.
            index = unsafe { self.nodes.node(index) }.next.load(Ordering::Relaxed);
        }
        count
    }

    /// Pushes `indices` (owned by the caller, at least one) onto `node`'s stack in one CAS.
    ///
    /// # Safety
    /// The caller owns every buffer in `indices` (each an index of this class, none twice)
    /// and gives them up.
    pub(crate) unsafe fn push_chain(&self, node: usize, indices: &[u32]) {
        let (Some(&first), Some(&last)) = (indices.first(), indices.last()) else { return };
        for pair in indices.windows(2) {
            // Relaxed: published by push_chain's Release. SAFETY: we own node `pair[0]`.
            unsafe { self.nodes.node(pair[0]) }.next.store(pair[1], Ordering::Relaxed);
        }
        let head = &self.free[node % self.free.len()];
        // SAFETY: the chain is ours and linked first → last (contract and loop above).
        unsafe { head.push_chain(&self.nodes, first, last) };
    }

    /// Zeroes buffer `index` if the class says so.
    ///
    /// # Safety
    /// The caller owns buffer `index`.
    #[inline]
    pub(crate) unsafe fn scrub(&self, index: u32) {
        if self.config.zero_on_reuse() {
            // SAFETY: the buffer is ours (contract) and `buffer_size` bytes long.
            unsafe { self.buffer(index).as_ptr().write_bytes(0, self.config.buffer_size()) };
        }
    }

    /// Pops a free buffer from `node`'s stack or, if empty, the other nodes' stacks; grows
    /// the class if all are empty. `None` at the maximum with nothing free.
    pub(crate) fn take_shared(&self, node: usize, want: u32, out: &mut [u32]) -> u32 {
        let nodes = self.free.len();
        for step in 0..nodes {
            let got = self.pop_batch(node + step, want, out);
            if got > 0 {
                return got;
            }
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

    /// Allocates a fallback buffer (zeroed if the class zeroes): `None` if out of memory.
    pub(crate) fn allocate_fallback(&self) -> Option<NonNull<u8>> {
        let layout = self.fallback_layout();
        // SAFETY: validated: non-zero size, power-of-two alignment, size fits isize.
        let ptr = unsafe {
            if self.config.zero_on_reuse() {
                core::alloc::GlobalAlloc::alloc_zeroed(&FALLBACK_HEAP, layout)
            } else {
                core::alloc::GlobalAlloc::alloc(&FALLBACK_HEAP, layout)
            }
        };
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
    /// stacks.
    pub(crate) fn draw(&self, delta: i64) {
        Self::count_out(&self.counters.drawn, &self.counters.fallbacks, &self.counters.peak_drawn, delta);
    }

    /// Notes `delta` fallback buffers allocated (positive) or freed (negative).
    pub(crate) fn fallbacks_alive(&self, delta: i64) {
        Self::count_out(&self.counters.fallbacks, &self.counters.drawn, &self.counters.peak_drawn, delta);
    }

    fn count_out(counter: &AtomicI64, other: &AtomicI64, peak: &AtomicI64, delta: i64) {
        // Relaxed: statistics (see SharedCounters). The peak is of two counters read one
        // after the other, so under concurrent updates it is a close estimate.
        let now = counter.fetch_add(delta, Ordering::Relaxed) + delta;
        if delta > 0 {
            peak.fetch_max(now + other.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Failed CAS attempts on this class's stacks.
    pub(crate) fn cas_retries(&self) -> u64 {
        self.free.iter().map(|head| head.retries()).sum()
    }
}
