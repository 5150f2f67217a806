//! The allocator addressed by pointer alone (what the C ABI builds on): `owns`, `free`,
//! `resize` and `usable_size` on blocks of every kind (small, medium, over-aligned, large,
//! aligned to 4 MiB and more), mixed with the layout-driven API. Runs under miri too.
#![cfg(not(loom))]

use core::alloc::{GlobalAlloc, Layout};
use pinalloc::PinAlloc;
use pinalloc::global::usable_size;
use proptest::prelude::*;

mod common;

static ALLOC: PinAlloc = PinAlloc::new();

fn fill(ptr: *mut u8, len: usize, seed: u8) {
    // SAFETY: callers pass a live block of at least `len` bytes.
    unsafe { common::stamp(ptr, len, seed) }
}

fn intact(ptr: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: callers pass a live block of at least `len` bytes.
    unsafe { common::is_stamped(ptr, len, seed) }
}

/// Sizes and alignments covering every kind of block; miri gets the smaller large ones.
fn kinds() -> Vec<(usize, usize)> {
    let mut kinds =
        vec![(0, 1), (1, 16), (24, 8), (1000, 16), (5000, 16), (32 << 10, 16), (100, 64), (100, 4096)];
    kinds.extend([(100, 64 << 10), (40_000, 64), (0, 128 << 10), (40_000, 128 << 10)]);
    if !cfg!(miri) {
        kinds.extend([(3 << 20, 16), (0, 4 << 20), (100, 4 << 20), (5 << 20, 8 << 20)]);
    }
    kinds
}

#[test]
fn foreign_pointers_are_not_owned() {
    let local = 7u64;
    let boxed = Box::new(7u64); // the test's global allocator is the system's
    assert!(!ALLOC.owns(core::ptr::null()));
    assert!(!ALLOC.owns((&raw const local).cast()));
    assert!(!ALLOC.owns((&raw const *boxed).cast()));
    assert!(!ALLOC.owns(core::ptr::without_provenance(usize::MAX)));
}

#[test]
fn free_if_owned_frees_ours_and_leaves_the_rest_alone() {
    let mut local = 7u64;
    let mut boxed = Box::new(7u64); // the test's global allocator is the system's
    // SAFETY: foreign pointers (and null) are allowed, and must not be touched.
    unsafe {
        assert!(!ALLOC.free_if_owned(core::ptr::null_mut()));
        assert!(!ALLOC.free_if_owned((&raw mut local).cast()));
        assert!(!ALLOC.free_if_owned((&raw mut *boxed).cast()));
    }
    assert_eq!((local, *boxed), (7, 7));
    for (size, align) in kinds() {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: a valid layout.
        let ptr = unsafe { ALLOC.alloc(layout) };
        fill(ptr, size, 5);
        // SAFETY: live, not used again.
        assert!(unsafe { ALLOC.free_if_owned(ptr) }, "{size}/{align}");
    }
    // A small block really goes back: onto the thread's list of freed blocks, which the
    // allocations take over once the blocks before it are used up.
    let layout = Layout::from_size_align(48, 16).unwrap();
    // SAFETY: a valid layout; every block is freed once.
    unsafe {
        let ptr = ALLOC.alloc(layout);
        assert!(ALLOC.free_if_owned(ptr));
        let mut taken = Vec::new();
        while taken.len() < 1 << 16 && taken.last() != Some(&ptr) {
            taken.push(ALLOC.alloc(layout));
        }
        assert_eq!(taken.last(), Some(&ptr));
        for block in taken {
            ALLOC.dealloc(block, layout);
        }
    }
    // More frees than a list holds (its slow path), from this thread and from another (the
    // list for other threads' spans): every block is reusable afterwards, none twice.
    let n = if cfg!(miri) { 300 } else { 3000 };
    /// Blocks handed to another thread (raw pointers are not `Send`).
    struct Handed(Vec<*mut u8>);
    // SAFETY: the blocks are plain memory the receiving thread owns from then on.
    unsafe impl Send for Handed {}
    // SAFETY: a valid layout.
    let mut mine: Vec<*mut u8> = (0..n).map(|_| unsafe { ALLOC.alloc(layout) }).collect();
    let theirs = Handed(mine.split_off(n / 2));
    std::thread::spawn(move || {
        let theirs = theirs;
        for &ptr in &theirs.0 {
            // SAFETY: live blocks of this allocator, handed to this thread, freed once.
            assert!(unsafe { ALLOC.free_if_owned(ptr) });
        }
    })
    .join()
    .unwrap();
    for ptr in mine {
        // SAFETY: as above.
        assert!(unsafe { ALLOC.free_if_owned(ptr) });
    }
    // SAFETY: a valid layout; each block is freed once below.
    let again: Vec<*mut u8> = (0..n).map(|_| unsafe { ALLOC.alloc(layout) }).collect();
    let mut distinct: Vec<usize> = again.iter().map(|p| p.addr()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), n, "a block handed out twice");
    for ptr in again {
        // SAFETY: live, not used again.
        unsafe { ALLOC.dealloc(ptr, layout) };
    }
}

#[test]
fn every_kind_of_block_is_owned_sized_and_freed_by_pointer() {
    for (size, align) in kinds() {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: a non-zero-size layout (size 0 is served as 16 bytes by size classes).
        let ptr = unsafe { ALLOC.alloc(layout) };
        assert!(!ptr.is_null() && ptr.addr().is_multiple_of(align), "{size}/{align}");
        assert!(ALLOC.owns(ptr), "{size}/{align}");
        // SAFETY: `ptr` is live.
        let usable = unsafe { usable_size(ptr) };
        // Even a zero-size block owns a byte: a block at the very end of its mapping would
        // lie in the next 4 MiB chunk, perhaps a segment's, whose `owns` bit its free clears.
        assert!(usable >= size.max(1), "{size}/{align}: usable {usable}");
        fill(ptr, usable, 3);
        // SAFETY: `ptr` is live and not used again.
        unsafe { ALLOC.free(ptr) };
    }
}

#[test]
fn blocks_on_every_page_of_a_multi_page_span_find_their_span() {
    // 20,000 bytes is served from a class whose spans cover several 64 KiB pages; a block
    // past the first page finds its span through its own page's slot (`Span::back`).
    let layout = Layout::from_size_align(20_000, 16).unwrap();
    let blocks: Vec<*mut u8> = (0..24)
        .map(|_| {
            // SAFETY: a non-zero-size layout.
            let ptr = unsafe { ALLOC.alloc(layout) };
            assert!(!ptr.is_null());
            ptr
        })
        .collect();
    let page = |ptr: *mut u8| (ptr.addr() / (64 << 10)) % 64;
    let pages: std::collections::BTreeSet<usize> = blocks.iter().map(|&ptr| page(ptr)).collect();
    // 24 blocks of 20 KiB or more cover at least 480,000 bytes: more than 7 pages.
    assert!(pages.len() >= 7, "the blocks lie on many pages: {pages:?}");
    for &ptr in &blocks {
        // SAFETY: `ptr` is live.
        let usable = unsafe { usable_size(ptr) };
        assert!((20_000..=32 << 10).contains(&usable), "usable {usable}");
        fill(ptr, usable, 5);
    }
    for ptr in blocks {
        // SAFETY: `ptr` is live and not used again.
        unsafe { ALLOC.free(ptr) };
    }
}
#[test]
fn a_freed_large_block_is_no_longer_owned() {
    let layout = Layout::from_size_align(if cfg!(miri) { 40_000 } else { 1 << 20 }, 16).unwrap();
    // SAFETY: a non-zero-size layout.
    let ptr = unsafe { ALLOC.alloc(layout) };
    assert!(ALLOC.owns(ptr));
    // SAFETY: live, not used again.
    unsafe { ALLOC.free(ptr) };
    assert!(!ALLOC.owns(ptr));
}

#[test]
fn resize_keeps_contents_across_every_kind() {
    let sizes: Vec<usize> = if cfg!(miri) {
        vec![1, 5000, 40_000] // tiny, small and large
    } else {
        kinds().into_iter().map(|(size, _)| size.max(1)).collect()
    };
    for (size, align) in kinds() {
        for &new_size in &sizes {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a valid layout.
            let ptr = unsafe { ALLOC.alloc(layout) };
            fill(ptr, size, 9);
            // SAFETY: `ptr` is live; on success it is dead and `new` replaces it.
            let new = unsafe { ALLOC.resize(ptr, new_size) };
            assert!(!new.is_null() && new.addr().is_multiple_of(16), "{size}/{align} -> {new_size}");
            assert!(intact(new, size.min(new_size), 9), "{size}/{align} -> {new_size}");
            // SAFETY: `new` is live.
            assert!(unsafe { usable_size(new) } >= new_size);
            // SAFETY: live, not used again.
            unsafe { ALLOC.free(new) };
        }
    }
}

#[test]
fn blocks_from_the_layout_api_free_by_pointer_and_back() {
    // Small blocks cross between the two APIs in both directions through the thread cache.
    let layout = Layout::from_size_align(48, 8).unwrap();
    let blocks: Vec<*mut u8> = (0..if cfg!(miri) { 50 } else { 5000 })
        // SAFETY: a valid layout.
        .map(|_| unsafe { ALLOC.alloc(layout) })
        .collect();
    for &block in &blocks {
        // SAFETY: live, not used again.
        unsafe { ALLOC.free(block) };
    }
    let again: Vec<*mut u8> = blocks
        .iter()
        // SAFETY: a valid layout.
        .map(|_| unsafe { ALLOC.alloc(layout) })
        .collect();
    for block in again {
        // SAFETY: live, allocated with `layout`.
        unsafe { ALLOC.dealloc(block, layout) };
    }
}

proptest! {
    #![proptest_config(common::proptest_config(64, 4))]

    /// Random allocate / resize / free sequences: contents survive, blocks never overlap.
    #[test]
    fn random_sequences_keep_every_block_intact(
        ops in proptest::collection::vec((0usize..if cfg!(miri) { 3000 } else { 70_000 }, 4u32..17, 0u8..3), 1..if cfg!(miri) { 12 } else { 200 })
    ) {
        let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
        for (i, (size, align_shift, op)) in ops.into_iter().enumerate() {
            let seed = i as u8;
            match op {
                0 | 1 if live.len() < 50 || op == 0 => {
                    let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
                    // SAFETY: a valid layout.
                    let ptr = unsafe { ALLOC.alloc(layout) };
                    prop_assert!(!ptr.is_null() && ALLOC.owns(ptr));
                    fill(ptr, size, seed);
                    live.push((ptr, size, seed));
                }
                1 if !live.is_empty() => {
                    let (ptr, old, old_seed) = live.swap_remove(size % live.len());
                    let new_size = size.max(1);
                    // SAFETY: live; replaced by the result.
                    let new = unsafe { ALLOC.resize(ptr, new_size) };
                    prop_assert!(intact(new, old.min(new_size), old_seed));
                    fill(new, new_size, seed);
                    live.push((new, new_size, seed));
                }
                _ if !live.is_empty() => {
                    let (ptr, len, seed) = live.swap_remove(size % live.len());
                    prop_assert!(intact(ptr, len, seed));
                    // SAFETY: live, not used again.
                    unsafe { ALLOC.free(ptr) };
                }
                _ => {}
            }
        }
        for (ptr, len, seed) in live {
            prop_assert!(intact(ptr, len, seed));
            // SAFETY: live, not used again.
            unsafe { ALLOC.free(ptr) };
        }
    }
}
