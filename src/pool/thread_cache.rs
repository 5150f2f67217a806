//! Thread caches: per thread and per pool, a small stack of free buffers for each class,
//! used without atomic read-modify-writes, refilled from and flushed to the class's shared
//! stack half a cache at a time, as one magazine (one CAS per batch).
//!
//! # Finding this thread's cache for a pool
//! A thread keeps a one-entry memo `(pool, cache)` in a `const` thread-local with no
//! destructor, so the fast path is one TLS load and one compare. On a miss (first use of a
//! pool on this thread, or alternating between pools) the slow path looks the pool up in
//! the thread's list of caches, creating and registering one if needed.
//!
//! A cache holds an `Arc` of its pool's shared state, so a pool's address cannot be reused
//! by another pool while any thread's memo may still name it: the pointer comparison in
//! the memo is exact. When the pool handle drops, caches for it are retired the next time
//! their thread takes a slow path, or when the thread exits.
//!
//! # Counters
//! Each class cache counts in atomics that only its own thread writes, with a Relaxed load
//! and store (no read-modify-write: as cheap as a plain increment). The fast path counts
//! only returns; the gets served by the cache are derived from what entered and left it
//! (see [`CacheCounters`]). [`LockFreeBufferPool::stats`](super::LockFreeBufferPool::stats) reads them
//! Relaxed through the pool's registry of caches; a retiring cache folds them into the
//! class's shared counters, under the registry lock, so a snapshot never counts an
//! operation twice or loses it.
//!
//! # Thread exit
//! A second thread-local, holding the thread's caches, flushes every one back to its pool
//! when the thread exits. Guards dropped later in that thread's teardown go straight to the
//! shared stacks.

use super::class::ClassPool;
use super::config::{ClassConfig, MAX_THREAD_CACHE};
use super::pool::Shared;
use crate::sync::{AtomicI64, AtomicPtr, AtomicU64, Ordering};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::ptr::{self, NonNull};

/// Adds one to a counter only this thread writes. Relaxed load and store: readers (stats)
/// need an untorn value, not an ordering; no other thread writes it, so no update is lost.
#[inline(always)]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

/// [`bump`] for the signed count of buffers drawn.
#[inline(always)]
fn draw(counter: &AtomicI64, by: i64) {
    counter.store(counter.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

/// The counters of one class cache (see the module docs). The fast path bumps only
/// `cached_returns`; the gets served from the cache are derived, exactly, from what
/// entered and left the cache: every buffer that entered (`filled` by slow paths,
/// `cached_returns` by drops) either left (`flushed`, or taken by a get) or is still there.
#[derive(Default)]
#[repr(C)] // `cached_returns` first: on the cache line of the fast paths
pub(crate) struct CacheCounters {
    /// Guards dropped into the cache (the fast path).
    cached_returns: AtomicU64,
    /// Guards dropped otherwise (full cache, fallbacks).
    other_returns: AtomicU64,
    /// Gets served by a refill from the shared stacks.
    shared_hits: AtomicU64,
    /// Gets served by a fallback allocation.
    misses: AtomicU64,
    /// Buffers put into the cache by slow paths (refills, the return after a flush).
    filled: AtomicU64,
    /// Buffers moved out of the cache to the shared stacks.
    flushed: AtomicU64,
    /// Buffers this cache took from the shared stacks, net of those it gave back.
    drawn: AtomicI64,
}

/// A class cache's counters as the statistics report them.
#[derive(Clone, Copy, Default)]
pub(crate) struct Snapshot {
    pub cache_hits: u64,
    pub shared_hits: u64,
    pub misses: u64,
    pub returns: u64,
}

/// One class's part of a thread cache: a stack of free buffers, `floor..top` of a slot
/// array that ends at `ceiling`.
///
/// Invariant: `floor <= top <= ceiling`, all in (or one past) one slot allocation owned by
/// the cache; `floor..top` hold pointers to distinct free buffers of the class, owned by
/// this cache; only the owning thread touches the slots or writes `top`.
///
/// The fast paths are a handful of plain loads and stores on the first cache line:
/// [`pop`](Self::pop) and [`try_push`](Self::try_push) compare `top` with one bound, move
/// one pointer, store `top`. The slots hold buffer pointers, not indices, so neither path
/// computes an address. A class that zeroes buffers on reuse has `fast_ceiling == floor`:
/// every return takes the slow path, which zeroes the buffer before caching it.
#[repr(C, align(64))]
pub(crate) struct ClassCache {
    /// Written by the owner (Relaxed store), read by stats (Relaxed load).
    top: AtomicPtr<NonNull<u8>>,
    floor: *mut NonNull<u8>,
    /// Where the fast push stops: `ceiling`, or `floor` for a class zeroed on reuse.
    fast_ceiling: *mut NonNull<u8>,
    counters: CacheCounters,
    ceiling: *mut NonNull<u8>,
    /// Buffers moved per refill or flush: half the capacity, at least one.
    batch: u32,
}

impl ClassCache {
    fn new(config: &ClassConfig) -> Self {
        let capacity = config.thread_cache_size() as usize;
        let slots = Box::into_raw(alloc::vec![NonNull::<u8>::dangling(); capacity].into_boxed_slice());
        let floor = slots.cast::<NonNull<u8>>();
        // SAFETY: one past the end of the slot allocation.
        let ceiling = unsafe { floor.add(capacity) };
        ClassCache {
            top: AtomicPtr::new(floor),
            floor,
            fast_ceiling: if config.zero_on_reuse() { floor } else { ceiling },
            counters: CacheCounters::default(),
            ceiling,
            batch: (capacity as u32 / 2).max(1),
        }
    }

    /// Slots from `floor` up to `end` (one of `top`, `ceiling`).
    fn slots_below(&self, end: *mut NonNull<u8>) -> usize {
        (end.addr() - self.floor.addr()) / size_of::<NonNull<u8>>()
    }

    fn capacity(&self) -> usize {
        self.slots_below(self.ceiling)
    }

    /// Free buffers held, as last stored by the owner.
    pub(crate) fn len(&self) -> u32 {
        // Relaxed: a snapshot for statistics.
        self.slots_below(self.top.load(Ordering::Relaxed)) as u32
    }

    /// Takes a cached buffer: the fast path of `get`.
    ///
    /// # Safety
    /// Called on the cache's own thread.
    #[inline(always)]
    pub(crate) unsafe fn pop(&self) -> Option<NonNull<u8>> {
        // Relaxed: only this thread writes `top` (contract).
        let top = self.top.load(Ordering::Relaxed);
        if top == self.floor {
            return None;
        }
        // SAFETY: `floor < top <= ceiling` (invariant), so `top - 1` is a cached buffer's slot,
        // which only this thread touches (contract).
        let (top, buffer) = unsafe {
            let top = top.sub(1);
            (top, top.read())
        };
        self.top.store(top, Ordering::Relaxed);
        Some(buffer)
    }

    /// Caches a returned buffer if the fast path may: the cache has room and the class
    /// does not zero buffers. The fast path of a guard's drop.
    ///
    /// # Safety
    /// Called on the cache's own thread; `buffer` is a free buffer of the class, given up.
    #[inline(always)]
    pub(crate) unsafe fn try_push(&self, buffer: NonNull<u8>) -> bool {
        // SAFETY: forwarded contract; `fast_ceiling <= ceiling`.
        unsafe { self.push_below(self.fast_ceiling, buffer) }
    }

    /// Caches `buffer` if `top` is below `bound`: [`try_push`](Self::try_push) with the
    /// fast path's bound, [`push_slow`](Self::push_slow) with the cache's own.
    ///
    /// # Safety
    /// As for [`ClassCache::try_push`], and `bound <= ceiling`.
    #[inline(always)]
    unsafe fn push_below(&self, bound: *mut NonNull<u8>, buffer: NonNull<u8>) -> bool {
        let top = self.top.load(Ordering::Relaxed);
        if top >= bound {
            return false;
        }
        // SAFETY: `top < bound <= ceiling`: a free slot of ours (invariant, contract).
        let top = unsafe {
            top.write(buffer);
            top.add(1)
        };
        self.top.store(top, Ordering::Relaxed);
        bump(&self.counters.cached_returns, 1);
        true
    }

    /// Caches a returned buffer (already zeroed if the class zeroes), flushing the oldest
    /// half of the cache to the shared stack of this thread's node first if it is full.
    ///
    /// # Safety
    /// As for [`ClassCache::try_push`].
    pub(crate) unsafe fn push_slow(&self, class: &ClassPool, buffer: NonNull<u8>) {
        // SAFETY: forwarded contract; the cache's own bound. If it fails the cache is full.
        if !unsafe { self.push_below(self.ceiling, buffer) } {
            // SAFETY: forwarded contract; the cache is full.
            unsafe { self.flush_and_push(class, buffer) };
        }
    }

    /// The slow path of `get`: takes a batch from the shared stacks (growing the class if
    /// they are empty) and returns one of it; `None` if the class is at its maximum with
    /// nothing free.
    ///
    /// # Safety
    /// Called on the cache's own thread, with the cache empty, for `class`'s cache.
    #[cold]
    pub(crate) unsafe fn refill(&self, class: &ClassPool) -> Option<NonNull<u8>> {
        let mut indices = [0u32; MAX_THREAD_CACHE / 2];
        let want = if self.capacity() == 0 { 1 } else { self.batch as usize };
        let got = class.take_shared(current_node(), &mut indices[..want]) as usize;
        if got == 0 {
            return None;
        }
        draw(&self.counters.drawn, got as i64);
        bump(&self.counters.shared_hits, 1);
        let (&last, cached) = indices[..got].split_last().expect("got > 0");
        // SAFETY: the cache is empty (contract) and `cached.len()` slots follow `floor`:
        // with capacity 0 nothing is cached (`want == 1`), otherwise
        // `got - 1 < batch <= capacity`; only this thread touches them.
        unsafe {
            for (i, &index) in cached.iter().enumerate() {
                self.floor.add(i).write(class.buffer(index));
            }
            self.top.store(self.floor.add(cached.len()), Ordering::Relaxed);
        }
        bump(&self.counters.filled, cached.len() as u64);
        Some(class.buffer(last))
    }

    /// Returns the cached buffers `floor..floor + count` to the shared stack of this
    /// thread's node.
    ///
    /// # Safety
    /// Called on the cache's own thread, with `count` at most the cached buffers, which
    /// leave the cache: the caller moves or discards those slots.
    unsafe fn give_up_oldest(&self, class: &ClassPool, count: usize) {
        let mut indices = [0u32; MAX_THREAD_CACHE];
        for (i, index) in indices[..count].iter_mut().enumerate() {
            // SAFETY: `i < count <= len` (contract): a cached buffer's slot.
            *index = class.index_of(unsafe { self.floor.add(i).read() });
        }
        // SAFETY: the cached buffers are ours (invariant) and leave the cache (contract).
        unsafe { class.push_batch(current_node(), &indices[..count]) };
        draw(&self.counters.drawn, -(count as i64));
        bump(&self.counters.flushed, count as u64);
    }

    /// The slow path of a return with a full cache: flushes the oldest half of the cache to
    /// the shared stack of this thread's node, then caches `buffer`.
    ///
    /// # Safety
    /// As for [`ClassCache::try_push`], and the cache is full (`top == ceiling`): the shift
    /// below moves `len - batch` slots.
    #[cold]
    unsafe fn flush_and_push(&self, class: &ClassPool, buffer: NonNull<u8>) {
        bump(&self.counters.other_returns, 1);
        if self.capacity() == 0 {
            // SAFETY: `buffer` is ours to give up (contract).
            unsafe { class.push_batch(current_node(), &[class.index_of(buffer)]) };
            draw(&self.counters.drawn, -1);
            return;
        }
        let len = self.len() as usize;
        let batch = self.batch as usize;
        // SAFETY: `batch <= len` (the cache is full); the flushed slots are overwritten below.
        unsafe { self.give_up_oldest(class, batch) };
        // SAFETY: `floor..floor + len` are our slots; the kept ones move down, then `buffer`
        // takes the first free slot.
        unsafe {
            ptr::copy(self.floor.add(batch), self.floor, len - batch);
            self.floor.add(len - batch).write(buffer);
            self.top.store(self.floor.add(len - batch + 1), Ordering::Relaxed);
        }
        bump(&self.counters.filled, 1);
    }

    /// Moves every cached buffer to the shared stacks.
    ///
    /// # Safety
    /// Called on the cache's own thread (or after it, once the cache is unreachable from it).
    unsafe fn flush_all(&self, class: &ClassPool) {
        let len = self.len() as usize;
        if len > 0 {
            // SAFETY: all cached buffers leave; the cache is emptied below.
            unsafe { self.give_up_oldest(class, len) };
            self.top.store(self.floor, Ordering::Relaxed);
        }
    }

    /// The counters as reported. Relaxed loads: a snapshot, exact when the owner is idle.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let cached_returns = load(&c.cached_returns);
        let entered = load(&c.filled) + cached_returns;
        let left = load(&c.flushed) + u64::from(self.len());
        Snapshot {
            cache_hits: entered.saturating_sub(left),
            shared_hits: load(&c.shared_hits),
            misses: load(&c.misses),
            returns: cached_returns + load(&c.other_returns),
        }
    }

    /// Adds the counters to the class's shared counters and resets them. Called with the
    /// cache empty, under the pool's registry lock (see the module docs).
    fn fold_into(&self, class: &ClassPool) {
        let mine = self.snapshot();
        let shared = &class.counters;
        // Relaxed: statistics; the registry lock orders folds against snapshots.
        shared.cache_hits.fetch_add(mine.cache_hits, Ordering::Relaxed);
        shared.hits.fetch_add(mine.shared_hits, Ordering::Relaxed);
        shared.misses.fetch_add(mine.misses, Ordering::Relaxed);
        shared.returns.fetch_add(mine.returns, Ordering::Relaxed);
        shared.drawn.fetch_add(self.counters.drawn.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        let c = &self.counters;
        for counter in [&c.cached_returns, &c.other_returns, &c.shared_hits, &c.misses, &c.filled, &c.flushed]
        {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Buffers this cache has taken from the shared stacks, net (Relaxed: a snapshot).
    pub(crate) fn drawn(&self) -> i64 {
        self.counters.drawn.load(Ordering::Relaxed)
    }

    /// Counts a fallback buffer's return.
    pub(crate) fn count_other_return(&self) {
        bump(&self.counters.other_returns, 1);
    }

    /// Counts a fallback allocation.
    pub(crate) fn count_miss(&self) {
        bump(&self.counters.misses, 1);
    }
}

impl Drop for ClassCache {
    fn drop(&mut self) {
        let slots = ptr::slice_from_raw_parts_mut(self.floor, self.capacity());
        // SAFETY: the slots came from `Box::into_raw` in `new`, and nothing uses them after.
        drop(unsafe { Box::from_raw(slots) });
    }
}

/// A thread's cache for one pool.
pub(crate) struct PoolCache {
    pub shared: Arc<Shared>,
    pub classes: [ClassCache; 3],
}

impl PoolCache {
    /// Flushes every class, folds the counters and leaves the pool's registry.
    ///
    /// # Safety
    /// Called on the cache's thread, which no longer reaches it through its memo.
    unsafe fn retire(&self) {
        let mut registry = self.shared.registry.lock().unwrap_or_else(|poison| poison.into_inner());
        for (cache, class) in self.classes.iter().zip(&self.shared.classes) {
            // SAFETY: per the contract, the slots are ours alone.
            unsafe { cache.flush_all(class) };
            cache.fold_into(class);
        }
        registry.retain(|entry| !ptr::eq(entry.0.as_ptr(), self));
    }
}

/// A registered cache, as the pool's registry holds it.
#[derive(Clone, Copy)]
pub(crate) struct CacheRef(NonNull<PoolCache>);

// SAFETY: the registry only reads the cache's atomics through it (statistics), under the
// registry lock, and the owning thread unregisters the cache under that lock before freeing it.
unsafe impl Send for CacheRef {}

impl CacheRef {
    /// The cache.
    ///
    /// # Safety
    /// The registry lock is held (so the cache is not freed meanwhile).
    pub(crate) unsafe fn get(&self) -> &PoolCache {
        // SAFETY: registered caches stay allocated until unregistered under the lock.
        unsafe { self.0.as_ref() }
    }
}

#[derive(Clone, Copy)]
struct Memo {
    pool: *const Shared,
    cache: *const PoolCache,
}

/// The thread's caches; retires them all when the thread exits.
///
/// Held as raw pointers from `Box::into_raw`, never as `Box`es: the memo and the pool's
/// registry point into each cache, and moving a `Box` (as a growing list does) would assert
/// unique access to it and invalidate those pointers under the aliasing rules.
struct ThreadCaches(Vec<NonNull<PoolCache>>);

impl ThreadCaches {
    /// Retires and frees the cache at `position`.
    fn remove(&mut self, position: usize) {
        let cache = self.0.swap_remove(position);
        MEMO.set(Memo { pool: ptr::null(), cache: ptr::null() });
        // SAFETY: the list owned the cache (from `Box::into_raw`), which is now out of the
        // list and no longer memoised; it belongs to this thread.
        unsafe {
            cache.as_ref().retire();
            drop(Box::from_raw(cache.as_ptr()));
        }
    }
}

impl Drop for ThreadCaches {
    fn drop(&mut self) {
        while !self.0.is_empty() {
            self.remove(self.0.len() - 1);
        }
    }
}

std::thread_local! {
    static MEMO: Cell<Memo> = const { Cell::new(Memo { pool: ptr::null(), cache: ptr::null() }) };
    static CACHES: RefCell<ThreadCaches> = const { RefCell::new(ThreadCaches(Vec::new())) };
}

/// This thread's cache for `shared` if the memo names it: the inlined part of [`current`].
#[inline(always)]
pub(crate) fn memoised(shared: &Shared) -> Option<&PoolCache> {
    let memo = MEMO.get();
    // SAFETY: the memo names a live cache of this thread (it is cleared before any of them
    // is retired), which holds an `Arc` of `shared`, so the match is exact.
    ptr::eq(memo.pool, shared).then(|| unsafe { &*memo.cache })
}

/// This thread's cache for `shared`, or `None` while the thread is exiting.
///
/// The reference stays valid until this thread next calls [`current`]'s slow path,
/// [`retire_current`] or exits; the pool code uses it within one operation only.
#[inline(always)]
pub(crate) fn current(shared: &Shared) -> Option<&PoolCache> {
    match memoised(shared) {
        Some(cache) => Some(cache),
        None => current_slow(shared),
    }
}

#[cold]
fn current_slow(shared: &Shared) -> Option<&PoolCache> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            // Retire caches of pools whose handle has dropped, so their memory can go.
            let mut i = 0;
            while i < caches.0.len() {
                // SAFETY: caches in the list are alive (freed only by `remove`).
                if unsafe { caches.0[i].as_ref() }.shared.is_closed() {
                    caches.remove(i);
                } else {
                    i += 1;
                }
            }
            // SAFETY: as above.
            let found = caches.0.iter().find(|c| ptr::eq(&*unsafe { c.as_ref() }.shared, shared));
            let cache = match found {
                Some(&cache) => cache,
                None => {
                    let cache = NonNull::from(Box::leak(Box::new(PoolCache {
                        shared: shared.arc(),
                        classes: core::array::from_fn(|c| ClassCache::new(&shared.classes[c].config)),
                    })));
                    caches.0.push(cache);
                    shared.registry.lock().unwrap_or_else(|poison| poison.into_inner()).push(CacheRef(cache));
                    cache
                }
            };
            let cache = cache.as_ptr().cast_const();
            MEMO.set(Memo { pool: shared, cache });
            // SAFETY: the cache is boxed in this thread's list and stays there until retired.
            Some(unsafe { &*cache })
        })
        .ok()
        .flatten()
}

/// Retires this thread's cache for `shared`, if it has one.
pub(crate) fn retire_current(shared: &Shared) {
    let _ = CACHES.try_with(|caches| {
        let Ok(mut caches) = caches.try_borrow_mut() else { return };
        // SAFETY: caches in the list are alive (freed only by `remove`).
        if let Some(i) = caches.0.iter().position(|c| ptr::eq(&*unsafe { c.as_ref() }.shared, shared)) {
            caches.remove(i);
        }
    });
}

/// The NUMA node whose shared stacks this thread uses: the node it was pinned to with
/// [`pin_current_thread`](crate::pin_current_thread), or the one it runs on.
fn current_node() -> usize {
    crate::global::current_thread_node()
}
