//! Bump allocation: pinalloc's `Arena` against `bumpalo::Bump`, small and mixed requests,
//! reset between rounds.

use pinalloc::arena::Arena;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Allocations per round.
pub const OPS: usize = 100_000;

/// Sizes of the mixed workload: 8..=256 bytes, varied.
fn mixed_size(i: usize) -> usize {
    8 + (i.wrapping_mul(2_654_435_761) >> 7) % 249
}

pub fn pinalloc_small(arena: &mut Arena) -> Duration {
    arena.reset();
    let start = Instant::now();
    for i in 0..OPS as u64 {
        black_box(arena.alloc(i));
    }
    start.elapsed()
}

pub fn bumpalo_small(bump: &mut bumpalo::Bump) -> Duration {
    bump.reset();
    let start = Instant::now();
    for i in 0..OPS as u64 {
        black_box(bump.alloc(i));
    }
    start.elapsed()
}

pub fn pinalloc_mixed(arena: &mut Arena) -> Duration {
    arena.reset();
    let start = Instant::now();
    for i in 0..OPS {
        let layout = std::alloc::Layout::from_size_align(mixed_size(i), 8).unwrap();
        black_box(arena.try_alloc_layout(layout).unwrap());
    }
    start.elapsed()
}

pub fn bumpalo_mixed(bump: &mut bumpalo::Bump) -> Duration {
    bump.reset();
    let start = Instant::now();
    for i in 0..OPS {
        let layout = std::alloc::Layout::from_size_align(mixed_size(i), 8).unwrap();
        black_box(bump.alloc_layout(layout));
    }
    start.elapsed()
}
