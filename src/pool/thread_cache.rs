//! Thread caches: per thread and per pool, a small stack of free buffer indices for each
//! class, used without atomic read-modify-writes, refilled from and flushed to the class's
//! shared stack half a cache at a time, as one magazine (one CAS per batch).
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
use super::pool::Shared;
use crate::sync::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell, UnsafeCell};
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

/// One class's part of a thread cache.
///
/// Invariant: `slots[..len]` are indices of free buffers of the class, owned by this cache;
/// only the owning thread touches `slots` or writes `len`.
pub(crate) struct ClassCache {
    slots: UnsafeCell<Box<[u32]>>,
    /// Written by the owner (Relaxed store), read by stats (Relaxed load).
    len: AtomicU32,
    /// Buffers moved per refill or flush: half the capacity, at least one.
    batch: u32,
    counters: CacheCounters,
}

impl ClassCache {
    fn new(capacity: u32) -> Self {
        ClassCache {
            slots: UnsafeCell::new(alloc::vec![0; capacity as usize].into_boxed_slice()),
            len: AtomicU32::new(0),
            batch: (capacity / 2).max(1),
            counters: CacheCounters::default(),
        }
    }

    /// Free buffers held, as last stored by the owner.
    pub(crate) fn len(&self) -> u32 {
        // Relaxed: a snapshot for statistics.
        self.len.load(Ordering::Relaxed)
    }

    /// Takes a cached buffer: the fast path of `get`.
    ///
    /// # Safety
    /// Called on the cache's own thread.
    #[inline(always)]
    pub(crate) unsafe fn pop(&self) -> Option<u32> {
        // Relaxed: only this thread writes `len` (contract).
        let len = self.len.load(Ordering::Relaxed);
        if len == 0 {
            return None;
        }
        // SAFETY: only this thread touches the slots (contract).
        let slots = unsafe { &*self.slots.get() };
        // SAFETY: `len - 1 < len <= capacity` (invariant).
        let index = unsafe { *slots.get_unchecked(len as usize - 1) };
        self.len.store(len - 1, Ordering::Relaxed);
        Some(index)
    }

    /// Caches a returned buffer if there is room: the fast path of a guard's drop.
    ///
    /// # Safety
    /// Called on the cache's own thread; `index` is a free buffer of the class, given up.
    #[inline(always)]
    pub(crate) unsafe fn try_push(&self, index: u32) -> bool {
        let len = self.len.load(Ordering::Relaxed);
        // SAFETY: only this thread touches the slots (contract).
        let slots = unsafe { &mut *self.slots.get() };
        let Some(slot) = slots.get_mut(len as usize) else { return false };
        *slot = index;
        self.len.store(len + 1, Ordering::Relaxed);
        bump(&self.counters.cached_returns, 1);
        true
    }

    /// The slow path of `get`: takes a batch from the shared stacks (growing the class if
    /// they are empty) and returns one of it; `None` if the class is at its maximum with
    /// nothing free.
    ///
    /// # Safety
    /// Called on the cache's own thread, with the cache empty, for `class`'s cache.
    #[cold]
    pub(crate) unsafe fn refill(&self, class: &ClassPool) -> Option<u32> {
        // SAFETY: only this thread touches the slots (contract).
        let slots = unsafe { &mut *self.slots.get() };
        let mut single = [0u32];
        let out: &mut [u32] = if slots.is_empty() { &mut single } else { &mut slots[..self.batch as usize] };
        let got = class.take_shared(current_node(), out);
        if got == 0 {
            return None;
        }
        draw(&self.counters.drawn, i64::from(got));
        let index = out[got as usize - 1];
        if !slots.is_empty() {
            self.len.store(got - 1, Ordering::Relaxed);
            bump(&self.counters.filled, u64::from(got - 1));
        }
        bump(&self.counters.shared_hits, 1);
        Some(index)
    }

    /// The slow path of a return with a full cache: flushes the oldest half of the cache to
    /// the shared stack of this thread's node, then caches `index`.
    ///
    /// # Safety
    /// As for [`ClassCache::try_push`].
    #[cold]
    pub(crate) unsafe fn flush_and_push(&self, class: &ClassPool, index: u32) {
        // SAFETY: only this thread touches the slots (contract).
        let slots = unsafe { &mut *self.slots.get() };
        bump(&self.counters.other_returns, 1);
        if slots.is_empty() {
            // SAFETY: `index` is ours to give up (contract).
            unsafe { class.push_batch(current_node(), &[index]) };
            draw(&self.counters.drawn, -1);
            return;
        }
        let len = self.len.load(Ordering::Relaxed) as usize;
        let batch = self.batch as usize;
        // SAFETY: the cache's buffers are ours (invariant); the flushed ones leave it below.
        unsafe { class.push_batch(current_node(), &slots[..batch]) };
        draw(&self.counters.drawn, -(batch as i64));
        bump(&self.counters.flushed, batch as u64);
        slots.copy_within(batch..len, 0);
        slots[len - batch] = index;
        self.len.store((len - batch + 1) as u32, Ordering::Relaxed);
        bump(&self.counters.filled, 1);
    }

    /// Moves every cached buffer to the shared stacks.
    ///
    /// # Safety
    /// Called on the cache's own thread (or after it, once the cache is unreachable from it).
    unsafe fn flush_all(&self, class: &ClassPool) {
        // SAFETY: per the contract, nobody else touches the slots.
        let slots = unsafe { &*self.slots.get() };
        let len = self.len.load(Ordering::Relaxed) as usize;
        if len > 0 {
            // SAFETY: the cached buffers are ours (invariant) and leave the cache now.
            unsafe { class.push_batch(current_node(), &slots[..len]) };
            draw(&self.counters.drawn, -(len as i64));
            bump(&self.counters.flushed, len as u64);
            self.len.store(0, Ordering::Relaxed);
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
                        classes: core::array::from_fn(|c| {
                            ClassCache::new(shared.classes[c].config.thread_cache_size())
                        }),
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
