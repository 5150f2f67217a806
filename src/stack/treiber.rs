//! The Treiber stack: [`Head`], the lock-free algorithm over node indices, and
//! [`TreiberStack`], the safe stack of [`Owned`] nodes built on it.
//!
//! Orderings (each names its partner):
//!
//! * push's successful CAS is **Release**: it publishes the node's `next` and its value to
//!   the thread that pops it;
//! * pop's head load and CAS, and pop_all's CAS, are **Acquire**: they pair with the Release
//!   of the push that put the node there. Pushes and pops are all read-modify-writes of the
//!   head, so they continue each other's release sequences: acquiring the current head
//!   synchronises with every push whose node is still below it, which is what lets pop_all
//!   walk the whole chain;
//! * `next` is stored and loaded Relaxed: a node's `next` is written only by its owner before
//!   the Release CAS, and a popper that reads it for a node it does not own yet (the race
//!   the tag exists for) only needs an untorn value, because its CAS then fails;
//! * the retry counter is Relaxed: statistics, publishing nothing.

use super::node_pool::{NodePool, Owned, PoolRef};
use super::tagged::{NIL, Tagged};
use crate::sync::{AtomicU64, Ordering, spin_hint};
use core::fmt;
use core::marker::PhantomData;
use core::ptr;
use crossbeam_utils::CachePadded;

/// A stack head: the tagged top index, and how often a CAS on it had to be retried. Each on
/// its own cache line, so counting contention does not add to it.
pub(crate) struct Head {
    top: CachePadded<AtomicU64>,
    retries: CachePadded<AtomicU64>,
}

/// Exponential backoff after a failed CAS: spinning `2^step` pauses lets the winner finish and
/// the cache line settle, instead of every loser hammering it at once. Retries are counted
/// locally and added to the stack's counter once per operation.
struct Backoff {
    retries: u32,
}

impl Backoff {
    /// At most `2^MAX_STEP` pauses between two attempts.
    const MAX_STEP: u32 = 6;

    #[inline]
    fn new() -> Self {
        Backoff { retries: 0 }
    }

    #[cold]
    fn retry(&mut self) {
        for _ in 0..1u32 << self.retries.min(Self::MAX_STEP) {
            spin_hint();
        }
        self.retries = self.retries.saturating_add(1);
    }

    /// Adds this operation's retries to `head`'s counter.
    #[inline]
    fn finish(self, head: &Head) {
        if self.retries > 0 {
            head.count_retries(self.retries);
        }
    }
}

impl Head {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Head {
            top: CachePadded::new(AtomicU64::new(Tagged::EMPTY.bits())),
            retries: CachePadded::new(AtomicU64::new(0)),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Head {
            top: CachePadded::new(AtomicU64::new(Tagged::EMPTY.bits())),
            retries: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Relaxed: statistics, publishing nothing.
    #[cold]
    fn count_retries(&self, retries: u32) {
        self.retries.fetch_add(u64::from(retries), Ordering::Relaxed);
    }

    /// Pushes node `index`.
    ///
    /// # Safety
    /// `index` is a node of `pool` that the caller owns exclusively (it is on no stack), and
    /// every index on this head belongs to `pool`.
    #[inline]
    pub(crate) unsafe fn push<T>(&self, pool: &NodePool<T>, index: u32) {
        // SAFETY: `index` is a node of `pool` (contract).
        let node = unsafe { pool.node(index) };
        // Relaxed: only the value to compare against; the CAS below carries the ordering.
        let mut top = Tagged::from_bits(self.top.load(Ordering::Relaxed));
        let mut backoff = Backoff::new();
        loop {
            node.next.store(top.index(), Ordering::Relaxed);
            // Release pairs with the Acquire in pop/pop_all: whoever takes the node sees
            // `next` and everything the owner wrote to the value.
            match self.top.compare_exchange_weak(
                top.bits(),
                top.successor(index).bits(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return backoff.finish(self),
                Err(now) => {
                    top = Tagged::from_bits(now);
                    backoff.retry();
                }
            }
        }
    }

    /// Pops the top node; the caller then owns it exclusively.
    ///
    /// # Safety
    /// Every index on this head belongs to `pool`.
    #[inline]
    pub(crate) unsafe fn pop<T>(&self, pool: &NodePool<T>) -> Option<u32> {
        // Acquire pairs with push's Release: the node's `next` and value are visible.
        let mut top = Tagged::from_bits(self.top.load(Ordering::Acquire));
        let mut backoff = Backoff::new();
        loop {
            if top.index() == NIL {
                backoff.finish(self);
                return None;
            }
            // The node may have been popped (and even pushed again) by another thread since we
            // read `top`; its slab is never unmapped, so the read is safe, and if it changed hands
            // the tag has moved on and the CAS below fails. This is the ABA guard.
            // SAFETY: indices on this head belong to `pool` (contract).
            let next = unsafe { pool.node(top.index()) }.next.load(Ordering::Relaxed);
            // Acquire (both outcomes) pairs with push's Release, as the load above.
            match self.top.compare_exchange_weak(
                top.bits(),
                top.successor(next).bits(),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    backoff.finish(self);
                    return Some(top.index());
                }
                Err(now) => {
                    top = Tagged::from_bits(now);
                    backoff.retry();
                }
            }
        }
    }

    /// Detaches the whole chain at once and returns its top index ([`NIL`] if empty); the
    /// caller owns every node on it and walks it through `next`.
    pub(crate) fn take_all(&self) -> u32 {
        // Relaxed first read: the CAS below acquires.
        let mut top = Tagged::from_bits(self.top.load(Ordering::Relaxed));
        let mut backoff = Backoff::new();
        loop {
            if top.index() == NIL {
                backoff.finish(self);
                return NIL;
            }
            // Acquire pairs with the Release of every push still on the chain (one release
            // sequence, see the module docs).
            match self.top.compare_exchange_weak(
                top.bits(),
                top.successor(NIL).bits(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    backoff.finish(self);
                    return top.index();
                }
                Err(now) => {
                    top = Tagged::from_bits(now);
                    backoff.retry();
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        // Relaxed: a snapshot that may be stale at once; it hands out no node.
        Tagged::from_bits(self.top.load(Ordering::Relaxed)).index() == NIL
    }

    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// A lock-free LIFO stack of nodes from a [`NodePool`], safe against ABA.
///
/// `P` is how the stack reaches its pool ([`PoolRef`]): a zero-sized handle to a static
/// pool (the allocator's depots), `&NodePool<T>` for scoped use, `Arc<NodePool<T>>` for owned
/// pools (the buffer pools). Any number of stacks can share one pool, and nodes move between them
/// as [`Owned`] tokens; a stack accepts only nodes of its own pool.
///
/// Every operation is one CAS on a cache-padded head word in the uncontended case; a failed
/// CAS backs off exponentially before retrying.
pub struct TreiberStack<T, P: PoolRef<T>> {
    head: Head,
    pool: P,
    /// The values belong to the pool, not the stack.
    _values: PhantomData<fn() -> T>,
}

impl<T, P: PoolRef<T>> TreiberStack<T, P> {
    /// An empty stack over `pool`.
    #[cfg(not(loom))]
    pub const fn new(pool: P) -> Self {
        TreiberStack { head: Head::new(), pool, _values: PhantomData }
    }

    /// An empty stack over `pool` (loom build: not `const`).
    #[cfg(loom)]
    pub fn new(pool: P) -> Self {
        TreiberStack { head: Head::new(), pool, _values: PhantomData }
    }

    /// The pool the stack's nodes come from.
    pub fn pool(&self) -> &NodePool<T> {
        &self.pool
    }

    /// Pushes a node on top.
    ///
    /// # Panics
    /// If `node` belongs to another pool (a programming error: its index means nothing here).
    #[inline]
    pub fn push(&self, node: Owned<'_, T>) {
        assert!(
            ptr::eq(node.pool(), self.pool()),
            "TreiberStack::push: node belongs to a different NodePool"
        );
        let index = node.leak_index();
        // SAFETY: the token proved exclusive ownership of a node of our pool, and was
        // consumed; our head holds only our pool's indices (checked on every push).
        unsafe { self.head.push(self.pool(), index) };
    }

    /// Pops the top node, if any.
    #[inline]
    pub fn pop(&self) -> Option<Owned<'_, T>> {
        // SAFETY: our head holds only our pool's indices (checked on every push).
        let index = unsafe { self.head.pop(self.pool()) }?;
        // SAFETY: a successful pop makes us the node's only owner.
        Some(unsafe { Owned::new(self.pool(), index) })
    }

    /// Takes every node at once (one CAS), to be walked from top to bottom.
    pub fn pop_all(&self) -> Drain<'_, T> {
        Drain { pool: self.pool(), next: self.head.take_all() }
    }

    /// Whether the stack was empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty()
    }

    /// How many compare-and-swaps on this stack failed and were retried (contention).
    pub fn cas_retries(&self) -> u64 {
        self.head.retries()
    }
}

impl<T, P: PoolRef<T>> fmt::Debug for TreiberStack<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreiberStack")
            .field("empty", &self.is_empty())
            .field("cas_retries", &self.cas_retries())
            .finish()
    }
}

/// The nodes taken by [`TreiberStack::pop_all`], top first. Nodes not walked are released
/// to the pool when the drain drops.
pub struct Drain<'pool, T> {
    pool: &'pool NodePool<T>,
    next: u32,
}

impl<'pool, T> Iterator for Drain<'pool, T> {
    type Item = Owned<'pool, T>;

    fn next(&mut self) -> Option<Owned<'pool, T>> {
        if self.next == NIL {
            return None;
        }
        let index = self.next;
        // Read the link before handing the node out: its new owner may relink it at once.
        // Relaxed: take_all's Acquire already made every `next` on the chain visible.
        // SAFETY: chain nodes belong to our pool (they came off one of its stacks).
        self.next = unsafe { self.pool.node(index) }.next.load(Ordering::Relaxed);
        // SAFETY: take_all made us the only owner of the whole chain; each node is handed
        // out once, as we walk past it.
        Some(unsafe { Owned::new(self.pool, index) })
    }
}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        self.for_each(drop);
    }
}
