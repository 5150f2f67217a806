//! `PinAlloc` through the `Allocator` trait (not as the global allocator): sizes, usable
//! lengths, growth and shrinking, zeroing, alignment changes, and random operation
//! sequences. Runs under miri too (against the heap-backed OS fake), which checks the size
//! classes, spans, thread caches and depots for undefined behaviour.
#![cfg(not(loom))]

use allocator_api2::alloc::Allocator;
use core::alloc::Layout;
use core::ptr::NonNull;
use pinalloc::PinAlloc;
use proptest::prelude::*;

mod common;

static ALLOC: PinAlloc = PinAlloc::new();

fn fill(ptr: NonNull<u8>, len: usize, seed: u8) {
    // SAFETY: callers pass a live block of at least `len` bytes.
    unsafe { common::stamp(ptr.as_ptr(), len, seed) }
}

fn check(ptr: NonNull<u8>, len: usize, seed: u8) -> bool {
    // SAFETY: callers pass a live block of at least `len` bytes.
    unsafe { common::is_stamped(ptr.as_ptr(), len, seed) }
}

#[test]
fn allocate_reports_the_usable_size() {
    // Under miri a large block is still exercised, but a smaller one (every byte is filled).
    let large = if cfg!(miri) { 40_000 } else { 1 << 20 };
    for (size, align) in [(1, 1), (17, 8), (100, 16), (1000, 64), (4096, 4096), (40_000, 8), (large, 64)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        let block = ALLOC.allocate(layout).unwrap();
        assert!(block.len() >= size, "{size}: usable {}", block.len());
        assert_eq!(block.cast::<u8>().as_ptr() as usize % align, 0);
        // The whole usable length is ours to write, and any fitting size may free it.
        fill(block.cast(), block.len(), 3);
        let fitting = Layout::from_size_align(block.len(), align).unwrap();
        // SAFETY: allocated just above; `fitting` is a size between requested and usable.
        unsafe { ALLOC.deallocate(block.cast(), fitting) };
    }
}

#[test]
fn zero_sized_requests_touch_nothing() {
    let layout = Layout::from_size_align(0, 64).unwrap();
    let block = ALLOC.allocate(layout).unwrap();
    assert_eq!(block.len(), 0);
    assert_eq!(block.cast::<u8>().as_ptr() as usize % 64, 0);
    // SAFETY: zero-sized "block" from allocate.
    let grown =
        unsafe { ALLOC.grow(block.cast(), layout, Layout::from_size_align(32, 64).unwrap()) }.unwrap();
    // SAFETY: live block of 32 bytes.
    unsafe { ALLOC.deallocate(grown.cast(), Layout::from_size_align(32, 64).unwrap()) };
}

#[test]
fn grow_zeroed_zeroes_everything_past_the_old_size() {
    let old = Layout::from_size_align(24, 8).unwrap();
    for new_size in [30, 200, 5000, if cfg!(miri) { 40_000 } else { 100_000 }] {
        let block = ALLOC.allocate(old).unwrap();
        fill(block.cast(), block.len(), 0xEE); // dirty the slack too
        let new = Layout::from_size_align(new_size, 8).unwrap();
        // SAFETY: `block` is live with `old`.
        let grown = unsafe { ALLOC.grow_zeroed(block.cast(), old, new) }.unwrap();
        // SAFETY: the grown block has `grown.len()` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(grown.cast::<u8>().as_ptr(), grown.len()) };
        assert!(check(grown.cast(), 24, 0xEE));
        assert!(common::is_filled(&bytes[24..], 0), "grow_zeroed to {new_size}");
        // SAFETY: live with `new`.
        unsafe { ALLOC.deallocate(grown.cast(), new) };
    }
}

#[test]
fn alloc_zeroed_covers_the_slack() {
    let layout = Layout::from_size_align(100, 8).unwrap();
    // Dirty a block of the class, free it, then ask for zeroed memory of the same class.
    let dirty = ALLOC.allocate(layout).unwrap();
    fill(dirty.cast(), dirty.len(), 0xAB);
    // SAFETY: live with `layout`.
    unsafe { ALLOC.deallocate(dirty.cast(), layout) };
    let zeroed = ALLOC.allocate_zeroed(layout).unwrap();
    // SAFETY: `zeroed.len()` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(zeroed.cast::<u8>().as_ptr(), zeroed.len()) };
    assert!(common::is_filled(bytes, 0));
    // SAFETY: live with `layout`.
    unsafe { ALLOC.deallocate(zeroed.cast(), layout) };
}

#[test]
fn shrink_and_realign_keep_contents() {
    let old = Layout::from_size_align(3000, 8).unwrap();
    let block = ALLOC.allocate(old).unwrap();
    fill(block.cast(), 3000, 9);
    let new = Layout::from_size_align(100, 256).unwrap();
    // SAFETY: live with `old`; new size is smaller.
    let shrunk = unsafe { ALLOC.shrink(block.cast(), old, new) }.unwrap();
    assert_eq!(shrunk.cast::<u8>().as_ptr() as usize % 256, 0);
    assert!(check(shrunk.cast(), 100, 9));
    // SAFETY: live with `new`.
    unsafe { ALLOC.deallocate(shrunk.cast(), new) };
}

#[derive(Clone, Debug)]
enum Op {
    Allocate { size: usize, align_shift: u32 },
    Grow { slot: usize, extra: usize },
    Shrink { slot: usize, keep: usize },
    Free { slot: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let max: usize = if cfg!(miri) { 3000 } else { 70_000 };
    prop_oneof![
        (1..max, 0u32..8).prop_map(|(size, align_shift)| Op::Allocate { size, align_shift }),
        (any::<usize>(), 1..max).prop_map(|(slot, extra)| Op::Grow { slot, extra }),
        (any::<usize>(), 1..max).prop_map(|(slot, keep)| Op::Shrink { slot, keep }),
        any::<usize>().prop_map(|slot| Op::Free { slot }),
    ]
}

proptest! {
    #![proptest_config(common::proptest_config(64, 2))]

    /// Random sequences of allocate/grow/shrink/free: every block keeps its bytes, is
    /// aligned, and is at least as long as asked.
    #[test]
    fn random_operations_keep_every_byte(ops in proptest::collection::vec(op(), 1..if cfg!(miri) { 25 } else { 120 })) {
        let mut live: Vec<(NonNull<u8>, Layout, u8)> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            let seed = step as u8;
            match op {
                Op::Allocate { size, align_shift } => {
                    let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
                    let block = ALLOC.allocate(layout).unwrap();
                    prop_assert!(block.len() >= size);
                    prop_assert_eq!(block.cast::<u8>().as_ptr() as usize % layout.align(), 0);
                    fill(block.cast(), size, seed);
                    live.push((block.cast(), layout, seed));
                }
                Op::Grow { slot, extra } if !live.is_empty() => {
                    let i = slot % live.len();
                    let (ptr, old, s) = live[i];
                    let new = Layout::from_size_align(old.size() + extra, old.align()).unwrap();
                    // SAFETY: live with `old`; new is larger.
                    let grown = unsafe { ALLOC.grow(ptr, old, new) }.unwrap();
                    prop_assert!(check(grown.cast(), old.size(), s));
                    fill(grown.cast(), new.size(), seed);
                    live[i] = (grown.cast(), new, seed);
                }
                Op::Shrink { slot, keep } if !live.is_empty() => {
                    let i = slot % live.len();
                    let (ptr, old, s) = live[i];
                    let new = Layout::from_size_align(keep.min(old.size()), old.align()).unwrap();
                    // SAFETY: live with `old`; new is not larger.
                    let shrunk = unsafe { ALLOC.shrink(ptr, old, new) }.unwrap();
                    prop_assert!(check(shrunk.cast(), new.size(), s));
                    live[i] = (shrunk.cast(), new, s);
                }
                Op::Free { slot } if !live.is_empty() => {
                    let (ptr, layout, s) = live.swap_remove(slot % live.len());
                    prop_assert!(check(ptr, layout.size(), s));
                    // SAFETY: live with `layout`.
                    unsafe { ALLOC.deallocate(ptr, layout) };
                }
                _ => {}
            }
        }
        for (ptr, layout, s) in live {
            prop_assert!(check(ptr, layout.size(), s));
            // SAFETY: live with `layout`.
            unsafe { ALLOC.deallocate(ptr, layout) };
        }
    }
}

#[test]
fn purge_returns_free_spans() {
    let layout = Layout::from_size_align(200, 8).unwrap();
    let n = if cfg!(miri) { 400 } else { 50_000 };
    let before = ALLOC.stats().purged_bytes_total;
    let blocks: Vec<_> = (0..n).map(|_| ALLOC.allocate(layout).unwrap()).collect();
    for block in blocks {
        // SAFETY: live with `layout`.
        unsafe { ALLOC.deallocate(block.cast(), layout) };
    }
    ALLOC.purge();
    let stats = ALLOC.stats();
    assert_eq!(stats.thread_cache_bytes, 0, "purge empties the calling thread's cache");
    // Other tests run concurrently and may park blocks in the depots again at any moment, so
    // only what this test caused is checked: its spans were freed and their pages purged.
    if !cfg!(miri) {
        assert!(
            stats.purged_bytes_total > before,
            "purge gave pages back: {before} -> {}",
            stats.purged_bytes_total
        );
    }
}

#[test]
fn stats_count_cache_hits_misses_and_blocks_out() {
    use pinalloc::global::size_class::{block_size, class_of};
    let layout = Layout::from_size_align(3000, 8).unwrap();
    let class = class_of(3000, 8).unwrap();
    let n = if cfg!(miri) { 60 } else { 5_000 };
    let before = ALLOC.stats();
    let blocks: Vec<_> = (0..n).map(|_| ALLOC.allocate(layout).unwrap()).collect();
    let during = ALLOC.stats();
    // Other tests run concurrently: every figure below is a lower bound of what this test
    // itself caused (counters only grow, and our blocks stay out while we hold them).
    assert!(during.classes[class].out_blocks >= n, "our blocks are out of their spans");
    assert!(during.allocated_bytes >= n * block_size(class), "{} bytes", during.allocated_bytes);
    assert!(during.active_bytes >= n * block_size(class), "{} bytes", during.active_bytes);
    for block in blocks {
        // SAFETY: live with `layout`.
        unsafe { ALLOC.deallocate(block.cast(), layout) };
    }
    // Then as many allocations each freed at once: warm blocks.
    for _ in 0..n {
        let block = ALLOC.allocate(layout).unwrap();
        // SAFETY: live with `layout`.
        unsafe { ALLOC.deallocate(block.cast(), layout) };
    }
    let after = ALLOC.stats();
    let (b, a) = (&before.classes[class], &after.classes[class]);
    let allocs = (a.alloc_hits + a.alloc_misses) - (b.alloc_hits + b.alloc_misses);
    let frees = (a.free_hits + a.free_misses) - (b.free_hits + b.free_misses);
    assert!(allocs >= 2 * n as u64 && frees >= 2 * n as u64, "{allocs} allocations, {frees} frees counted");
    // Fresh blocks of this class are linked one at a time, so the first allocations miss,
    // and a list holds ten of them, so a tenth of the first frees miss; the pairs hit.
    assert!(a.alloc_hits - b.alloc_hits >= n as u64 / 2, "{} alloc hits", a.alloc_hits - b.alloc_hits);
    assert!(a.free_hits - b.free_hits >= n as u64 / 2, "{} free hits", a.free_hits - b.free_hits);
    assert!(a.alloc_misses > b.alloc_misses && a.free_misses > b.free_misses);
}
