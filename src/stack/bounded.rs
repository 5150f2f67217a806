//! A Treiber stack with a bound and running counts: the shape of the allocator's depots.
//!
//! The stack itself stays lock-free and exact; the counts beside it (entries, and the total
//! [`Weighed::weight`] of the entries, e.g. blocks in magazines) are `Relaxed` counters that
//! bound the stack and feed statistics. They are never *below* the stack's true contents:
//! a push counts before it publishes, a pop uncounts after it takes. That order is a
//! happens-before chain (count → push's Release CAS → pop's Acquire CAS → uncount), so by
//! coherence every decrement lands after its increment in the counter's modification order
//! and the counts never wrap below zero. They may briefly exceed the contents (a push
//! counted but not yet published), which only makes the bound conservative.

use super::{NodePool, PoolRef, TreiberStack};
use crate::sync::{AtomicU32, Ordering};
use crossbeam_utils::CachePadded;

/// What an entry counts for in a [`BoundedStack`]'s weight (a magazine: its blocks).
pub trait Weighed {
    /// The entry's weight (a magazine: its block count).
    fn weight(&self) -> u32;
}

/// A [`TreiberStack`] of `Copy` entries, refusing pushes once their total weight reaches a
/// bound.
pub struct BoundedStack<T, P: PoolRef<T>> {
    stack: TreiberStack<T, P>,
    counts: CachePadded<Counts>,
}

struct Counts {
    entries: AtomicU32,
    weight: AtomicU32,
}

impl<T: Copy + Weighed, P: PoolRef<T>> BoundedStack<T, P> {
    /// An empty stack over `pool`.
    #[cfg(not(loom))]
    pub const fn new(pool: P) -> Self {
        BoundedStack {
            stack: TreiberStack::new(pool),
            counts: CachePadded::new(Counts { entries: AtomicU32::new(0), weight: AtomicU32::new(0) }),
        }
    }

    /// An empty stack over `pool` (loom build: not `const`).
    #[cfg(loom)]
    pub fn new(pool: P) -> Self {
        BoundedStack {
            stack: TreiberStack::new(pool),
            counts: CachePadded::new(Counts { entries: AtomicU32::new(0), weight: AtomicU32::new(0) }),
        }
    }

    /// Pushes `value` if the stack's weight (as counted) is below `max_weight` and the pool
    /// has a node; otherwise gives it back. The weight can exceed the bound by at most one
    /// entry per pushing thread.
    pub fn push(&self, value: T, max_weight: u32) -> Result<(), T> {
        // Relaxed: a bound, not a synchronisation (see the module docs).
        if self.counts.weight.load(Ordering::Relaxed) >= max_weight {
            return Err(value);
        }
        let pool: &NodePool<T> = self.stack.pool();
        let Ok(node) = pool.insert(value) else { return Err(value) };
        // Counted before the push publishes the entry; the pop that takes it uncounts after
        // its Acquire, so this increment comes first in each counter's order.
        self.counts.entries.fetch_add(1, Ordering::Relaxed);
        self.counts.weight.fetch_add(value.weight(), Ordering::Relaxed);
        self.stack.push(node);
        Ok(())
    }

    /// Takes the top entry, if any.
    pub fn pop(&self) -> Option<T> {
        let node = self.stack.pop()?;
        let value = *node;
        self.uncount(&value);
        Some(value)
        // Dropping the token releases the node to the pool for the next push.
    }

    /// Takes every entry at once, handing each to `each`.
    pub fn drain(&self, mut each: impl FnMut(T)) {
        for node in self.stack.pop_all() {
            let value = *node;
            self.uncount(&value);
            each(value);
        }
    }

    /// Removes a taken entry from the counts. Partner: the increments of the push that
    /// published it, which happen before the Acquire that took it (see the module docs).
    fn uncount(&self, value: &T) {
        self.counts.entries.fetch_sub(1, Ordering::Relaxed);
        self.counts.weight.fetch_sub(value.weight(), Ordering::Relaxed);
    }

    /// Entries on the stack, as counted (at least the true number at that moment).
    pub fn entries(&self) -> u32 {
        self.counts.entries.load(Ordering::Relaxed)
    }

    /// The entries' total weight, as counted.
    pub fn weight(&self) -> u32 {
        self.counts.weight.load(Ordering::Relaxed)
    }

    /// Failed compare-and-swaps on the stack's head (contention).
    pub fn cas_retries(&self) -> u64 {
        self.stack.cas_retries()
    }
}
