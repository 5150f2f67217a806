//! [`LockFreeBufferPool`]: the handle, and [`Shared`], the state its thread caches and
//! guards reach.

use super::SimdLane;
use super::class::ClassPool;
use super::config::{BufferClass, LockFreeBufferPoolConfig};
use super::error::PoolError;
use super::guard::BufferGuard;
use super::stats::{BufferCounts, BufferPoolStats, ClassStats};
use super::thread_cache::{self, CacheRef};
use crate::sync::{AtomicBool, Ordering};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;
use std::sync::Mutex;

/// What the pool handle, its guards and the thread caches share.
pub(crate) struct Shared {
    pub classes: [ClassPool; 3],
    /// The thread caches of this pool, for statistics; see `thread_cache`'s module docs.
    pub registry: Mutex<Vec<CacheRef>>,
    /// Set when the handle drops: thread caches for this pool retire on their next slow path.
    closed: AtomicBool,
    /// Our own `Arc`, handed to thread caches.
    this: Weak<Shared>,
}

impl Shared {
    pub(crate) fn arc(&self) -> Arc<Shared> {
        self.this.upgrade().expect("the pool handle keeps its shared state alive")
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Relaxed: a hint to let memory go sooner; retiring a cache is correct at any time.
        self.closed.load(Ordering::Relaxed)
    }

    /// Takes a buffer of `class` from the pool (thread cache, then shared stacks, growing
    /// the class up to its maximum); `None` if there is none to take.
    #[inline(always)]
    fn take(&self, class: BufferClass) -> Option<NonNull<u8>> {
        let pool = &self.classes[class.index()];
        match thread_cache::current(self) {
            Some(cache) => {
                let cache = &cache.classes[class.index()];
                // SAFETY: `current` gives this thread's own cache, for `class`'s cache.
                match unsafe { cache.pop() } {
                    Some(buffer) => Some(buffer),
                    // SAFETY: as above; the cache is empty.
                    None => unsafe { cache.refill(pool) },
                }
            }
            None => take_uncached(pool),
        }
    }

    /// Gives `buffer` of `class` (a fallback allocation if `fallback`) back. The common
    /// case, a pool buffer of a class that does not zero, into a cache with room, is inlined
    /// into the guard's drop; everything else is one out-of-line call.
    ///
    /// # Safety
    /// The caller held the buffer (as a guard of this pool) and gives it up.
    #[inline(always)]
    pub(crate) unsafe fn give_back(&self, class: BufferClass, buffer: NonNull<u8>, fallback: bool) {
        if !fallback
            && let Some(cache) = thread_cache::memoised(self)
            // SAFETY: this thread's cache for `class`; the buffer is given up (contract).
            && unsafe { cache.classes[class.index()].try_push(buffer) }
        {
            return;
        }
        // SAFETY: forwarded contract.
        unsafe { self.give_back_slow(class, buffer, fallback) };
    }

    /// [`Shared::give_back`] for fallbacks, zeroing classes, full caches and threads without a
    /// memoised cache.
    ///
    /// # Safety
    /// As for [`Shared::give_back`].
    #[cold]
    #[inline(never)]
    unsafe fn give_back_slow(&self, class: BufferClass, buffer: NonNull<u8>, fallback: bool) {
        let pool = &self.classes[class.index()];
        if fallback {
            // SAFETY: the guard's buffer came from allocate_fallback of this class (contract).
            unsafe { return_fallback(self, pool, class, buffer) };
            return;
        }
        // SAFETY: the buffer is ours to scrub (contract).
        unsafe { pool.scrub(buffer) };
        match thread_cache::current(self) {
            // SAFETY: this thread's cache for `class`; the buffer is given up (contract).
            Some(cache) => unsafe { cache.classes[class.index()].push_slow(pool, buffer) },
            None => {
                let index = pool.index_of(buffer);
                // SAFETY: as above.
                unsafe { pool.push_batch(crate::global::current_thread_node(), &[index]) };
                pool.draw(-1);
                // Relaxed: statistics.
                pool.counters.returns.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `take` for a thread without a cache (exiting): straight from the shared stacks.
#[cold]
fn take_uncached(pool: &ClassPool) -> Option<NonNull<u8>> {
    let mut out = [0u32];
    if pool.take_shared(crate::global::current_thread_node(), &mut out) == 0 {
        return None;
    }
    pool.draw(1);
    // Relaxed: statistics.
    pool.counters.hits.fetch_add(1, Ordering::Relaxed);
    Some(pool.buffer(out[0]))
}

/// Frees a fallback buffer and counts its return.
///
/// # Safety
/// `ptr` came from `pool.allocate_fallback()` and is given up.
#[cold]
unsafe fn return_fallback(shared: &Shared, pool: &ClassPool, class: BufferClass, ptr: NonNull<u8>) {
    // SAFETY: per the contract.
    unsafe { pool.free_fallback(ptr) };
    pool.fallbacks_alive(-1);
    match thread_cache::current(shared) {
        // Counted as the cache's return, so gets and returns add up per thread too.
        Some(cache) => cache.classes[class.index()].count_other_return(),
        // Relaxed: statistics.
        None => _ = pool.counters.returns.fetch_add(1, Ordering::Relaxed),
    }
}

/// A lock-free pool of fixed-size buffers in three classes (serialization, compression,
/// SIMD), each served by thread caches over per-NUMA-node Treiber stacks. See the
/// [module docs](super) for the design.
///
/// `Send + Sync`: share it by reference (scoped threads, a `static`) or in an `Arc`. Guards
/// borrow the pool, so it outlives every buffer it handed out.
pub struct LockFreeBufferPool {
    shared: Arc<Shared>,
    config: LockFreeBufferPoolConfig,
}

impl LockFreeBufferPool {
    /// A pool with the [default classes](LockFreeBufferPoolConfig).
    pub fn new() -> Result<Self, PoolError> {
        Self::with_config(LockFreeBufferPoolConfig::new())
    }

    /// A pool with `config`'s classes: validated, then each class's region reserved and its
    /// initial buffers created and touched.
    pub fn with_config(config: LockFreeBufferPoolConfig) -> Result<Self, PoolError> {
        config.validate().map_err(PoolError::Config)?;
        let nodes = crate::global::numa_node_count();
        let [serialization, compression, simd] =
            BufferClass::ALL.map(|class| ClassPool::new(*config.get(class), nodes));
        let classes = [serialization?, compression?, simd?];
        let shared = Arc::new_cyclic(|this| Shared {
            classes,
            registry: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            this: this.clone(),
        });
        Ok(LockFreeBufferPool { shared, config })
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> &LockFreeBufferPoolConfig {
        &self.config
    }

    /// A buffer of `class`, or `None` if the class has created its maximum and none is
    /// free here: in this thread's cache or on the shared stacks. Free buffers parked in
    /// other threads' caches (at most their cache size each) are theirs until they flush.
    /// Never blocks and never allocates outside the class's region.
    #[inline]
    pub fn try_get(&self, class: BufferClass) -> Option<BufferGuard<'_>> {
        let buffer = self.shared.take(class)?;
        // SAFETY: `take` handed us this buffer of `class`, held by nobody else.
        Some(unsafe { BufferGuard::new(&self.shared, class, buffer, false) })
    }

    /// A buffer of `class`: from the pool if it has one, otherwise a fresh allocation of the
    /// same size and alignment (counted as a miss, freed when the guard drops), so a hot
    /// path never waits for a buffer to come back.
    ///
    /// # Panics
    /// Aborts through [`alloc::alloc::handle_alloc_error`] if the fallback allocation fails,
    /// as `Box::new` does; [`try_get`](Self::try_get) never allocates.
    #[inline]
    pub fn get(&self, class: BufferClass) -> BufferGuard<'_> {
        // The guard is built here from the pointer either path returns: a guard returned
        // from the cold path would be built in memory, and the fast path's with it.
        let (buffer, fallback) = match self.shared.take(class) {
            Some(buffer) => (buffer, false),
            None => (self.allocate_fallback(class), true),
        };
        // SAFETY: `take` handed us this buffer of `class`, or `allocate_fallback` a fresh
        // allocation of its layout; nobody else holds it.
        unsafe { BufferGuard::new(&self.shared, class, buffer, fallback) }
    }

    /// A fallback buffer for `class`, counted as a miss.
    #[cold]
    fn allocate_fallback(&self, class: BufferClass) -> NonNull<u8> {
        let pool = &self.shared.classes[class.index()];
        let Some(ptr) = pool.allocate_fallback() else {
            let config = pool.config;
            let layout = core::alloc::Layout::from_size_align(config.buffer_size(), config.alignment())
                .expect("validated configuration");
            alloc::alloc::handle_alloc_error(layout)
        };
        pool.fallbacks_alive(1);
        match thread_cache::current(&self.shared) {
            Some(cache) => cache.classes[class.index()].count_miss(),
            // Relaxed: statistics.
            None => _ = pool.counters.misses.fetch_add(1, Ordering::Relaxed),
        }
        ptr
    }

    /// A serialization buffer (128 KiB by default).
    #[inline]
    pub fn get_serialization_buffer_guard(&self) -> BufferGuard<'_> {
        self.get(BufferClass::Serialization)
    }

    /// A compression buffer (64 KiB by default).
    #[inline]
    pub fn get_compression_buffer_guard(&self) -> BufferGuard<'_> {
        self.get(BufferClass::Compression)
    }

    /// A SIMD buffer, as `[f64; 4]` lanes (1024 of them by default), cache-line aligned.
    #[inline]
    pub fn get_simd_buffer_guard(&self) -> BufferGuard<'_, SimdLane> {
        self.get(BufferClass::Simd).cast().expect("validated: SIMD buffers are whole, aligned lanes")
    }

    /// Moves the calling thread's cached buffers of this pool back to the shared stacks and
    /// folds its counters in (also done when the thread exits).
    pub fn flush_thread_cache(&self) {
        thread_cache::retire_current(&self.shared);
    }

    /// Counters and memory use, per class (see [`BufferPoolStats`]).
    pub fn stats(&self) -> BufferPoolStats {
        let registry = self.shared.registry.lock().unwrap_or_else(|poison| poison.into_inner());
        let per_class = BufferClass::ALL.map(|class| {
            let pool = &self.shared.classes[class.index()];
            let shared = &pool.counters;
            // Relaxed loads: statistics (see SharedCounters).
            let mut cache_hits = shared.cache_hits.load(Ordering::Relaxed);
            let mut hits = shared.hits.load(Ordering::Relaxed) + cache_hits;
            let mut misses = shared.misses.load(Ordering::Relaxed);
            let mut returns = shared.returns.load(Ordering::Relaxed);
            for entry in registry.iter() {
                // SAFETY: the registry lock is held.
                let own = unsafe { entry.get() }.classes[class.index()].snapshot();
                cache_hits += own.cache_hits;
                hits += own.cache_hits + own.shared_hits;
                misses += own.misses;
                returns += own.returns;
            }
            let size = pool.config.buffer_size() as u64;
            let in_use = (hits + misses).saturating_sub(returns);
            let peak = shared.peak.load(Ordering::Relaxed).max(0) as u64;
            let created = u64::from(pool.created());
            ClassStats {
                hits,
                thread_cache_hits: cache_hits,
                misses,
                allocations: created + misses,
                returns,
                cas_retries: pool.cas_retries(),
                buffers_in_use: in_use,
                bytes_in_use: in_use * size,
                peak_buffers: peak,
                peak_bytes: peak * size,
                created,
            }
        });
        let [serialization, compression, simd] = per_class;
        BufferPoolStats { serialization, compression, simd }
    }

    /// Free buffers per class: on the shared stacks and in every thread's cache. A snapshot;
    /// exact when no thread is taking or returning buffers.
    pub fn counts(&self) -> BufferCounts {
        let registry = self.shared.registry.lock().unwrap_or_else(|poison| poison.into_inner());
        let [serialization, compression, simd] = BufferClass::ALL.map(|class| {
            let pool = &self.shared.classes[class.index()];
            // Relaxed: statistics.
            let mut drawn = pool.counters.drawn.load(Ordering::Relaxed);
            let mut cached = 0u64;
            for entry in registry.iter() {
                // SAFETY: the registry lock is held.
                let cache = &unsafe { entry.get() }.classes[class.index()];
                drawn += cache.drawn();
                cached += u64::from(cache.len());
            }
            u64::from(pool.created()).saturating_sub(drawn.max(0) as u64) + cached
        });
        BufferCounts { serialization, compression, simd }
    }
}

impl Drop for LockFreeBufferPool {
    fn drop(&mut self) {
        // Relaxed: a hint (see `is_closed`).
        self.shared.closed.store(true, Ordering::Relaxed);
        // This thread's cache can go now; other threads retire theirs on their next slow
        // path or at exit, releasing the shared state with their `Arc`.
        thread_cache::retire_current(&self.shared);
    }
}

impl fmt::Debug for LockFreeBufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFreeBufferPool")
            .field("config", &self.config)
            .field("free", &self.counts())
            .finish()
    }
}
