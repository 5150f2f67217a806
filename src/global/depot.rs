//! Depots: per NUMA node and size class, a Treiber stack of full magazines.
//!
//! A magazine is a [`Chain`] of blocks behind one node of [`MAGAZINES`]; moving it between a
//! thread cache and a depot is one compare-and-swap on the depot's head, however many blocks
//! it carries (plus one on the node pool's free list, to get or return the node). A producer
//! thread that frees and a consumer thread that allocates therefore meet here once per batch.
//!
//! A depot holds at most [`DEPOT_BYTES`] worth of blocks per class and node; beyond that,
//! magazines go back to their spans (the central layer), so memory a program freed can be
//! returned to the OS instead of parking in a depot forever.

use super::central::Chain;
use super::size_class::{CLASSES, block_size};
use core::ops::Deref;

use crate::stack::{BoundedStack, NodePool, PoolRef, Weighed};

/// NUMA nodes with a depot of their own; a machine with more shares them by `node % DEPOT_NODES`.
pub const DEPOT_NODES: usize = 8;

/// Upper bound on the bytes of blocks one depot (class × node) keeps.
pub(crate) const DEPOT_BYTES: usize = 4 << 20;

/// A batch of blocks in transit. The blocks are free memory owned by whoever holds the
/// magazine.
#[derive(Clone, Copy)]
pub(crate) struct Magazine(Chain);

// SAFETY: the chain's blocks are free memory, owned by the magazine's holder alone; moving
// the magazine to another thread moves that ownership.
unsafe impl Send for Magazine {}

impl Weighed for Magazine {
    fn weight(&self) -> u32 {
        self.0.count
    }
}

static MAGAZINES: NodePool<Magazine> = NodePool::new();

/// How a depot reaches [`MAGAZINES`]: zero-sized, so that a depot holds no pointer and
/// [`DEPOTS`] is all zero bytes. It then lives in `.bss`, where only the pages of depots in
/// use become resident. (With a `&'static` per depot it was 160 KiB of `.data`, every page of
/// which the dynamic loader's relocations wrote in every process that loaded the library.)
#[derive(Clone, Copy)]
struct Magazines;

impl Deref for Magazines {
    type Target = NodePool<Magazine>;

    #[inline]
    fn deref(&self) -> &NodePool<Magazine> {
        &MAGAZINES
    }
}

// SAFETY: always derefs to the same static pool.
unsafe impl PoolRef<Magazine> for Magazines {}

/// One depot: the stack and its counts (see [`BoundedStack`] for why the counts never
/// fall below the contents).
type Depot = BoundedStack<Magazine, Magazines>;

static DEPOTS: [[Depot; CLASSES]; DEPOT_NODES] =
    [const { [const { BoundedStack::new(Magazines) }; CLASSES] }; DEPOT_NODES];

fn depot(node: usize, class: usize) -> &'static Depot {
    &DEPOTS[node % DEPOT_NODES][class]
}

/// Blocks a depot of `class` takes magazines until: `DEPOT_BYTES` of them, or four
/// magazines' worth for the largest classes.
fn capacity(class: usize, magazine_blocks: u32) -> u32 {
    ((DEPOT_BYTES / block_size(class)) as u32).max(4 * magazine_blocks)
}

/// Puts a magazine in node `node`'s depot for `class`; gives the chain back if the depot is
/// full (or no magazine node can be had).
pub(crate) fn push(node: usize, class: usize, chain: Chain, magazine_blocks: u32) -> Result<(), Chain> {
    depot(node, class).push(Magazine(chain), capacity(class, magazine_blocks)).map_err(|m| m.0)
}

/// Takes a magazine from node `node`'s depot for `class`.
pub(crate) fn pop(node: usize, class: usize) -> Option<Chain> {
    depot(node, class).pop().map(|m| m.0)
}

/// Takes every magazine of every depot of `class`, for purging.
pub(crate) fn drain(class: usize, mut each: impl FnMut(Chain)) {
    for node in 0..DEPOT_NODES {
        depot(node, class).drain(|m| each(m.0));
    }
}

/// Failed compare-and-swaps on the depots of `class`, all nodes together.
pub(crate) fn cas_retries(class: usize) -> u64 {
    (0..DEPOT_NODES).map(|node| depot(node, class).cas_retries()).sum()
}

/// Magazines parked in the depot of `class` on each node.
pub(crate) fn parked_magazines(class: usize) -> [u32; DEPOT_NODES] {
    core::array::from_fn(|node| depot(node, class).entries())
}

/// Blocks parked in the depots of `class`, all nodes together.
pub(crate) fn parked_blocks(class: usize) -> usize {
    (0..DEPOT_NODES).map(|node| depot(node, class).weight() as usize).sum()
}
