//! Per-class cache statistics, kept off the fast path's critical work.
//!
//! A hit (an allocation or free served by the thread's own list) is counted by the fast path
//! in the thread's [`Bin`], on the cache line it touches anyway: one increment, no atomic,
//! for an allocation; none for a free, whose hits the bin derives from its length.
//! Every slow path of the thread (a miss) folds the bin's hits into the class's global
//! counters here and counts itself, so a thread's figures reach [`snapshot`] at its next
//! miss or at its exit; [`super::PinAlloc::stats`] adds the calling thread's own unfolded
//! hits. The counters are `Relaxed` and have no partner: they order nothing, and a reader
//! sees each one's latest folded value.

use super::size_class::CLASSES;
use super::thread_cache::Bin;
use core::sync::atomic::{AtomicU64, Ordering};

struct ClassCounters {
    alloc_hits: AtomicU64,
    alloc_misses: AtomicU64,
    free_hits: AtomicU64,
    free_misses: AtomicU64,
}

static COUNTERS: [ClassCounters; CLASSES] = [const {
    ClassCounters {
        alloc_hits: AtomicU64::new(0),
        alloc_misses: AtomicU64::new(0),
        free_hits: AtomicU64::new(0),
        free_misses: AtomicU64::new(0),
    }
}; CLASSES];

/// Which slow path ran.
#[derive(Clone, Copy)]
pub(crate) enum Miss {
    Alloc,
    Free,
}

/// Moves `bin`'s hits into the class's counters.
pub(crate) fn fold(class: usize, bin: &mut Bin) {
    let c = &COUNTERS[class];
    let (alloc_hits, free_hits) = bin.take_hits();
    if alloc_hits != 0 {
        c.alloc_hits.fetch_add(alloc_hits, Ordering::Relaxed);
    }
    if free_hits != 0 {
        c.free_hits.fetch_add(free_hits, Ordering::Relaxed);
    }
}

/// Counts a slow-path call of `class`, folding the bin's hits first.
pub(crate) fn miss(class: usize, bin: &mut Bin, miss: Miss) {
    fold(class, bin);
    let c = &COUNTERS[class];
    match miss {
        Miss::Alloc => c.alloc_misses.fetch_add(1, Ordering::Relaxed),
        Miss::Free => c.free_misses.fetch_add(1, Ordering::Relaxed),
    };
}

/// `(alloc_hits, alloc_misses, free_hits, free_misses)` of `class`, as folded so far.
pub(crate) fn snapshot(class: usize) -> [u64; 4] {
    let c = &COUNTERS[class];
    [&c.alloc_hits, &c.alloc_misses, &c.free_hits, &c.free_misses].map(|a| a.load(Ordering::Relaxed))
}
