//! [`NodePool`]: the storage of a family of Treiber stacks, and [`Owned`], the token that
//! proves a node is held by exactly one owner.
//!
//! Nodes live in slabs of geometrically growing size mapped from the OS layer: slab `k`
//! holds `4096 << k` nodes and starts at index `4096 * (2^k - 1)`, so an index finds its
//! slab with one leading-zero count, the directory is a fixed array that can live in a
//! static, and 20 slabs cover every 32-bit index. Most pools never leave slab 0, and an
//! index there is found with one predictable branch and no bit scan (baseline x86-64 has
//! only the slow `bsr`, which measurably lengthened the pop path). A large first slab costs
//! address space, not memory: pages are faulted in as nodes are created. Slabs are never unmapped while the pool lives, so
//! a thread holding a stale index can always read that node's `next` safely: that is what
//! makes the stack's optimistic read sound without hazard pointers or epochs.
//!
//! Every node is in exactly one of three places: on one stack, held by one [`Owned`], or on
//! the pool's list of released nodes (an [`Owned`] that was dropped), from which
//! [`NodePool::insert`] reuses it before creating more.

use super::tagged::NIL;
use super::treiber::Head;
use crate::os::{MapOptions, Mapping, OsError, PageTier, RawMapping, page_size};
use crate::sync::{AtomicPtr, AtomicU32, Ordering};
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use core::{fmt, mem};

/// Slab 0 holds `1 << FIRST_SLAB_SHIFT` nodes.
const FIRST_SLAB_SHIFT: u32 = 12;
/// Enough slabs to address every index below [`MAX_NODES`].
const SLABS: usize = 32 - FIRST_SLAB_SHIFT as usize;
/// Indices `0..MAX_NODES` are addressable (the slabs' total); the index that marks the end
/// of a chain lies above them.
pub const MAX_NODES: u32 = ((1u64 << 32) - (1u64 << FIRST_SLAB_SHIFT)) as u32;

/// One node: the link a stack threads through it, and the value it carries. Aligned to a
/// cache line so nodes held by different threads never share one (false sharing).
#[repr(align(64))]
pub(crate) struct Node<T> {
    /// Index of the node below this one on its stack, or [`NIL`]. Atomic because a popper
    /// may read it while the node's owner rewrites it (the popper then fails its CAS).
    pub(crate) next: AtomicU32,
    value: UnsafeCell<T>,
}

/// Why [`NodePool::insert`] could not make a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodePoolError {
    /// The pool holds its limit of nodes, all in use.
    Exhausted {
        /// The limit it was built with.
        limit: u32,
    },
    /// The OS would not map another slab.
    Os(OsError),
}

impl fmt::Display for NodePoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodePoolError::Exhausted { limit } => {
                write!(f, "node pool exhausted: all {limit} nodes are in use")
            }
            NodePoolError::Os(error) => write!(f, "node pool cannot grow: {error}"),
        }
    }
}

impl core::error::Error for NodePoolError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            NodePoolError::Os(error) => Some(error),
            NodePoolError::Exhausted { .. } => None,
        }
    }
}

/// Storage for nodes carrying a `T`, shared by any number of [`TreiberStack`]s.
///
/// Invariants: an index is handed out (in an [`Owned`]) only after its slab is installed and
/// its node written, and it reaches any other thread only through a Release push or a token
/// hand-off, so whoever holds an index — in a token, a head, or a stale read of a head — has
/// its node's initialisation happen-before (or, for a stale read, only reads `next`, which
/// is always initialised by then); every slab pointer, once installed, stays valid until the
/// pool drops; an index in `released` (or on a stack built over this pool) belongs to it.
///
/// [`TreiberStack`]: super::TreiberStack
pub struct NodePool<T> {
    slabs: [AtomicPtr<Node<T>>; SLABS],
    /// How many nodes exist. Only ever grows, by CAS, after the slab for the new index is
    /// installed.
    created: AtomicU32,
    limit: u32,
    /// Nodes whose [`Owned`] was dropped, reused by [`NodePool::insert`].
    released: Head,
    /// The pool owns `T`s and hands them between threads.
    _values: PhantomData<UnsafeCell<T>>,
}

// SAFETY: the pool owns its nodes' values (dropping them where the pool drops), so sending it
// sends `T`s.
unsafe impl<T: Send> Send for NodePool<T> {}
// SAFETY: through `&NodePool` threads insert values and exchange `Owned` tokens, each of
// which gives exclusive access to one value to one thread at a time, as a `Mutex<T>` does;
// so `T: Send` suffices.
unsafe impl<T: Send> Sync for NodePool<T> {}

impl<T> Default for NodePool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> NodePool<T> {
    /// An empty pool that can grow to [`MAX_NODES`] nodes. Maps nothing until the first insert.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self::with_limit(MAX_NODES)
    }

    /// An empty pool that will not hold more than `limit` nodes (clamped to [`MAX_NODES`]).
    #[cfg(not(loom))]
    pub const fn with_limit(limit: u32) -> Self {
        NodePool {
            slabs: [const { AtomicPtr::new(ptr::null_mut()) }; SLABS],
            created: AtomicU32::new(0),
            limit: if limit < MAX_NODES { limit } else { MAX_NODES },
            released: Head::new(),
            _values: PhantomData,
        }
    }

    /// An empty pool that can grow to [`MAX_NODES`] nodes (loom build: not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self::with_limit(MAX_NODES)
    }

    /// An empty pool of at most `limit` nodes (loom build: not `const`).
    #[cfg(loom)]
    pub fn with_limit(limit: u32) -> Self {
        NodePool {
            slabs: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            created: AtomicU32::new(0),
            limit: limit.min(MAX_NODES),
            released: Head::new(),
            _values: PhantomData,
        }
    }

    /// How many nodes this pool has created (held, stacked or released).
    pub fn created(&self) -> u32 {
        // Relaxed: a count; the nodes themselves are reached through stacks and tokens.
        self.created.load(Ordering::Relaxed)
    }

    /// The limit the pool was built with.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Puts `value` in a node and returns the token for it: a released node if there is one
    /// (its previous value is dropped), otherwise a new one.
    pub fn insert(&self, value: T) -> Result<Owned<'_, T>, NodePoolError> {
        // SAFETY: `released` holds only indices of this pool (invariant).
        if let Some(index) = unsafe { self.released.pop(self) } {
            // SAFETY: popping gave us the only claim on the node; it is initialised.
            let old = unsafe { ptr::replace(self.node(index).value.get(), value) };
            let owned = Owned { pool: self, index };
            // Dropped after the token exists, so a panicking `Drop` cannot lose the node.
            drop(old);
            return Ok(owned);
        }
        let index = self.claim_new_index()?;
        // SAFETY: the slab holding `index` is installed (claim_new_index) and nobody else can
        // reach the fresh index before we hand it out, so writing the whole node is exclusive.
        unsafe {
            ptr::write(
                self.node_ptr(index),
                Node { next: AtomicU32::new(NIL), value: UnsafeCell::new(value) },
            )
        };
        Ok(Owned { pool: self, index })
    }

    /// Reserves the next unused index, mapping its slab first if needed.
    fn claim_new_index(&self) -> Result<u32, NodePoolError> {
        // Relaxed: `created` hands out distinct indices; the slab the index needs is
        // published by its own Release/Acquire pair (install_slab / node_ptr).
        let mut created = self.created.load(Ordering::Relaxed);
        loop {
            if created >= self.limit {
                return Err(NodePoolError::Exhausted { limit: self.limit });
            }
            self.install_slab(locate(created).0)?;
            match self.created.compare_exchange_weak(
                created,
                created + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(created),
                Err(now) => created = now,
            }
        }
    }

    /// Makes sure slab `k` is mapped. Two threads may race to map it; the loser unmaps its copy.
    fn install_slab(&self, k: usize) -> Result<(), NodePoolError> {
        // Acquire pairs with the Release of the winning compare_exchange below.
        if !self.slabs[k].load(Ordering::Acquire).is_null() {
            return Ok(());
        }
        let bytes = slab_bytes::<T>(k).ok_or(NodePoolError::Exhausted { limit: self.limit })?;
        let mapping = match Mapping::new(bytes, &slab_options::<T>()) {
            Ok(mapping) => mapping,
            // Another thread may have installed the slab while we failed (it may even have
            // taken the memory we could not get): then there is nothing to report.
            // Acquire as above.
            Err(_) if !self.slabs[k].load(Ordering::Acquire).is_null() => return Ok(()),
            Err(error) => return Err(NodePoolError::Os(error)),
        };
        debug_assert_eq!(mapping.len(), slab_mapping_len::<T>(k), "Drop recomputes this length");
        debug_assert_eq!(mapping.tier(), PageTier::Base, "Drop assumes base pages");
        let fresh = mapping.as_ptr().cast::<Node<T>>();
        // Release publishes the mapping to every thread that loads the slab pointer with
        // Acquire (node_ptr, install_slab); Acquire on failure pairs with the winner's Release.
        match self.slabs[k].compare_exchange(ptr::null_mut(), fresh, Ordering::Release, Ordering::Acquire) {
            Ok(_) => {
                mapping.into_raw();
            }
            Err(_) => drop(mapping),
        }
        Ok(())
    }

    /// Pointer to node `index`.
    ///
    /// # Safety
    /// `index` was handed out by this pool, and the installation of its slab happens-before
    /// this call (true for every index obtained through a token or a head: see the type's
    /// invariants).
    #[inline]
    pub(crate) unsafe fn node_ptr(&self, index: u32) -> *mut Node<T> {
        let (slab, offset) = locate(index);
        // Acquire pairs with install_slab's Release: the slab's mapping is visible.
        let base = self.slabs[slab].load(Ordering::Acquire);
        debug_assert!(!base.is_null(), "node {index} used before its slab was installed");
        // SAFETY: slab `slab` holds `4096 << slab` nodes and `offset` is below that (locate).
        unsafe { base.add(offset) }
    }

    /// Node `index`.
    ///
    /// # Safety
    /// As for [`NodePool::node_ptr`], and the node's initialisation happens-before this call,
    /// or the caller reads only its `next` (initialised before any head can name the index).
    #[inline]
    pub(crate) unsafe fn node(&self, index: u32) -> &Node<T> {
        // SAFETY: initialised per the contract, and slabs outlive `&self`.
        unsafe { &*self.node_ptr(index) }
    }
}

impl<T> Drop for NodePool<T> {
    fn drop(&mut self) {
        // Relaxed loads suffice here and below: `&mut self` means every other thread's use
        // of the pool happened before this drop.
        let created = self.created.load(Ordering::Relaxed);
        for index in 0..created {
            // SAFETY: nodes below `created` are initialised, and `&mut self` proves no token
            // or stack refers to them anymore.
            unsafe { ptr::drop_in_place(self.node_ptr(index)) };
        }
        for (k, slab) in self.slabs.iter().enumerate() {
            let Some(ptr) = NonNull::new(slab.load(Ordering::Relaxed)) else {
                continue;
            };
            let raw = RawMapping {
                ptr: ptr.cast(),
                len: slab_mapping_len::<T>(k),
                align: mem::align_of::<Node<T>>().max(page_size()),
                tier: PageTier::Base,
            };
            // SAFETY: install_slab took this mapping apart with `into_raw` and recorded it
            // only here; its length and alignment are recomputed exactly as it was made.
            drop(unsafe { Mapping::from_raw(raw) });
        }
    }
}

/// The slab and the offset in it of node `index`.
#[inline]
fn locate(index: u32) -> (usize, usize) {
    if index < 1 << FIRST_SLAB_SHIFT {
        return (0, index as usize);
    }
    let biased = index as u64 + (1 << FIRST_SLAB_SHIFT);
    let slab = 63 - biased.leading_zeros() - FIRST_SLAB_SHIFT;
    let offset = biased - (1u64 << (slab + FIRST_SLAB_SHIFT));
    (slab as usize, offset as usize)
}

/// Bytes of slab `k`, or `None` if that does not fit the address space.
fn slab_bytes<T>(k: usize) -> Option<usize> {
    (1usize << (k as u32 + FIRST_SLAB_SHIFT)).checked_mul(mem::size_of::<Node<T>>())
}

/// The length of slab `k`'s mapping, as `Mapping::new` rounds it (only asked of installed
/// slabs, whose size did fit).
fn slab_mapping_len<T>(k: usize) -> usize {
    slab_bytes::<T>(k).unwrap_or(usize::MAX).next_multiple_of(page_size())
}

fn slab_options<T>() -> MapOptions {
    MapOptions::new().align(mem::align_of::<Node<T>>())
}

/// How a [`TreiberStack`] reaches its pool.
///
/// # Safety
/// Every call to `deref` on one value returns the same pool, which stays alive at least as
/// long as the value. (A stack compares a pushed node's pool with its own and then trusts
/// the indices on its head to belong to it; a handle that answered with different pools
/// could make it read another pool's memory.)
///
/// [`TreiberStack`]: super::TreiberStack
pub unsafe trait PoolRef<T>: Deref<Target = NodePool<T>> {}

// SAFETY: a shared reference always points at the same pool, alive for 'a.
unsafe impl<T> PoolRef<T> for &NodePool<T> {}
// SAFETY: an `Arc` always derefs to its one allocation, alive while any clone is.
unsafe impl<T> PoolRef<T> for Arc<NodePool<T>> {}
// SAFETY: a `Box` always derefs to its one allocation, alive while the box is.
unsafe impl<T> PoolRef<T> for Box<NodePool<T>> {}
#[cfg(loom)]
// SAFETY: as for `Arc`.
unsafe impl<T> PoolRef<T> for loom::sync::Arc<NodePool<T>> {}

/// The token for one node of a [`NodePool`]: whoever holds it is the node's only owner and
/// may use its value mutably. Push it on a stack to give it up; drop it to release the node
/// to the pool for reuse (its value stays until the node is reused or the pool drops).
pub struct Owned<'pool, T> {
    pool: &'pool NodePool<T>,
    index: u32,
}

// SAFETY: an `Owned` is exclusive access to one `T` (like `&mut T`, or a `Box<T>` whose
// storage the pool keeps); sending it sends that access.
unsafe impl<T: Send> Send for Owned<'_, T> {}
// SAFETY: `&Owned` gives `&T` (hence `T: Sync`) and `&NodePool<T>` through `pool()`, with
// which another thread can insert and drop `T`s (hence `T: Send`, as `NodePool: Sync` needs).
unsafe impl<T: Send + Sync> Sync for Owned<'_, T> {}

/// An [`Owned`] taken apart into its index, to be kept where a lifetime cannot be (a thread
/// cache) and turned back with [`Owned::from_raw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawNode(u32);

impl RawNode {
    /// The node's index in its pool.
    pub fn index(self) -> u32 {
        self.0
    }
}

impl<'pool, T> Owned<'pool, T> {
    /// A token for node `index` of `pool`.
    ///
    /// # Safety
    /// Node `index` is initialised and the caller has the only claim on it.
    pub(crate) unsafe fn new(pool: &'pool NodePool<T>, index: u32) -> Self {
        Owned { pool, index }
    }

    /// The node's index in its pool.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The pool the node belongs to.
    pub fn pool(&self) -> &'pool NodePool<T> {
        self.pool
    }

    /// Gives up the token without releasing the node; only [`Owned::from_raw`] can use it again.
    pub fn into_raw(self) -> RawNode {
        let raw = RawNode(self.index);
        mem::forget(self);
        raw
    }

    /// Turns a [`RawNode`] back into its token.
    ///
    /// # Safety
    /// `raw` came from [`Owned::into_raw`] on a token of this same `pool`, and this is the only
    /// `from_raw` for it since.
    pub unsafe fn from_raw(pool: &'pool NodePool<T>, raw: RawNode) -> Self {
        Owned { pool, index: raw.0 }
    }

    /// Gives the token up, returning its index; the caller now holds the claim in raw form.
    pub(crate) fn leak_index(self) -> u32 {
        self.into_raw().0
    }
}

impl<T> Deref for Owned<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the token proves the node is initialised and exclusively ours.
        unsafe { &*self.pool.node(self.index).value.get() }
    }
}

impl<T> DerefMut for Owned<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes the access unique.
        unsafe { &mut *self.pool.node(self.index).value.get() }
    }
}

impl<T> Drop for Owned<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the node is ours to give up, and it belongs to this pool.
        unsafe { self.pool.released.push(self.pool, self.index) };
    }
}

impl<T: fmt::Debug> fmt::Debug for Owned<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owned").field("index", &self.index).field("value", &**self).finish()
    }
}

impl<T> fmt::Debug for NodePool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodePool").field("created", &self.created()).field("limit", &self.limit).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_walks_the_slabs_in_order() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(4095), (0, 4095));
        assert_eq!(locate(4096), (1, 0));
        assert_eq!(locate(3 * 4096 - 1), (1, 8191));
        assert_eq!(locate(3 * 4096), (2, 0));
        assert_eq!(locate(7 * 4096), (3, 0));
        let (last_slab, last_offset) = locate(MAX_NODES - 1);
        assert_eq!(last_slab, SLABS - 1);
        assert_eq!(last_offset, (1usize << (SLABS as u32 - 1 + FIRST_SLAB_SHIFT)) - 1);
    }
}
