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
use crate::stack::{NodePool, TreiberStack};
use crate::sync::{AtomicU32, Ordering};
use crossbeam_utils::CachePadded;

/// NUMA nodes with a depot of their own; a machine with more shares them by `node % DEPOT_NODES`.
pub const DEPOT_NODES: usize = 8;

/// Upper bound on the bytes of blocks one depot (class × node) keeps.
pub(crate) const DEPOT_BYTES: usize = 4 << 20;

/// A batch of blocks in transit. The blocks are free memory owned by whoever holds the
/// magazine.
pub(crate) struct Magazine(Chain);

// SAFETY: the chain's blocks are free memory, owned by the magazine's holder alone; moving
// the magazine to another thread moves that ownership.
unsafe impl Send for Magazine {}

static MAGAZINES: NodePool<Magazine> = NodePool::new();

struct Depot {
    stack: TreiberStack<Magazine, &'static NodePool<Magazine>>,
    /// Magazines and blocks on the stack (approximate under races; they bound the depot
    /// and feed statistics, and order nothing: `Relaxed`, no partner).
    counts: CachePadded<Counts>,
}

struct Counts {
    magazines: AtomicU32,
    blocks: AtomicU32,
}

static DEPOTS: [[Depot; CLASSES]; DEPOT_NODES] = [const {
    [const {
        Depot {
            stack: TreiberStack::new(&MAGAZINES),
            counts: CachePadded::new(Counts { magazines: AtomicU32::new(0), blocks: AtomicU32::new(0) }),
        }
    }; CLASSES]
}; DEPOT_NODES];

fn depot(node: usize, class: usize) -> &'static Depot {
    &DEPOTS[node % DEPOT_NODES][class]
}

/// Magazines a depot of `class` holds at most.
fn capacity(class: usize, magazine_blocks: u32) -> u32 {
    (DEPOT_BYTES / (block_size(class) * magazine_blocks as usize)).max(4) as u32
}

/// Puts a magazine in node `node`'s depot for `class`; gives the chain back if the depot is
/// full (or no magazine node can be had).
pub(crate) fn push(node: usize, class: usize, chain: Chain, magazine_blocks: u32) -> Result<(), Chain> {
    let depot = depot(node, class);
    // Relaxed: a bound, not a synchronisation; the stack's own Release/Acquire publishes
    // the blocks.
    if depot.counts.magazines.load(Ordering::Relaxed) >= capacity(class, magazine_blocks) {
        return Err(chain);
    }
    match MAGAZINES.insert(Magazine(chain)) {
        Ok(node) => {
            // Counted before the push, so a racing pop never takes a count below zero.
            depot.counts.magazines.fetch_add(1, Ordering::Relaxed);
            depot.counts.blocks.fetch_add(chain.count, Ordering::Relaxed);
            depot.stack.push(node);
            Ok(())
        }
        Err(_) => Err(chain),
    }
}

/// Takes a magazine from node `node`'s depot for `class`.
pub(crate) fn pop(node: usize, class: usize) -> Option<Chain> {
    let depot = depot(node, class);
    let magazine = depot.stack.pop()?;
    depot.counts.magazines.fetch_sub(1, Ordering::Relaxed);
    depot.counts.blocks.fetch_sub(magazine.0.count, Ordering::Relaxed);
    Some(magazine.0)
    // Dropping the token releases the node to the pool for the next push.
}

/// Takes every magazine of every depot of `class`, for purging.
pub(crate) fn drain(class: usize, mut each: impl FnMut(Chain)) {
    for node in 0..DEPOT_NODES {
        let depot = depot(node, class);
        for magazine in depot.stack.pop_all() {
            depot.counts.magazines.fetch_sub(1, Ordering::Relaxed);
            depot.counts.blocks.fetch_sub(magazine.0.count, Ordering::Relaxed);
            each(magazine.0);
        }
    }
}

/// Failed compare-and-swaps on the depots of `class`, all nodes together.
pub(crate) fn cas_retries(class: usize) -> u64 {
    (0..DEPOT_NODES).map(|node| depot(node, class).stack.cas_retries()).sum()
}

/// Magazines parked in the depot of `class` on each node.
pub(crate) fn parked_magazines(class: usize) -> [u32; DEPOT_NODES] {
    core::array::from_fn(|node| depot(node, class).counts.magazines.load(Ordering::Relaxed))
}

/// Blocks parked in the depots of `class`, all nodes together.
pub(crate) fn parked_blocks(class: usize) -> usize {
    (0..DEPOT_NODES).map(|node| depot(node, class).counts.blocks.load(Ordering::Relaxed) as usize).sum()
}
