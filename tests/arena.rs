//! The bump arena: alignment, no overlap, reset and scopes reusing chunks, the memory
//! limit, collections on `&Arena`. Runs under miri too.

use allocator_api2::vec::Vec as ApiVec;
use core::alloc::Layout;
use pinalloc::arena::{Arena, ArenaError, ArenaOptions};
use proptest::prelude::*;

mod common;

#[test]
fn values_strings_and_slices() {
    let arena = Arena::new();
    let a = arena.alloc(7u8);
    let b = arena.alloc(0x1122_3344_5566_7788u64);
    let s = arena.alloc_str("hello, arena");
    let v = arena.alloc_slice_copy(&[1u32, 2, 3, 4]);
    *a += 1;
    v[3] = 40;
    assert_eq!((*a, *b, &*s, &*v), (8, 0x1122_3344_5566_7788, "hello, arena", &[1, 2, 3, 40][..]));
    assert_eq!(b as *const u64 as usize % 8, 0);
    assert!(arena.allocated_bytes() >= 1 + 8 + 12 + 16);
}

#[test]
fn reset_and_scope_reuse_chunks() {
    // Each round spans several chunks; miri gets smaller chunks and fewer rounds.
    let (first_chunk, per_round, rounds) =
        if cfg!(miri) { (4 << 10, 2_500u32, 3) } else { (16 << 10, 5_000, 10) };
    let mut arena = Arena::with_options(ArenaOptions::new().first_chunk(first_chunk));
    let round = |arena: &Arena| {
        for i in 0..per_round {
            arena.alloc(i);
        }
    };
    round(&arena);
    let chunks = arena.chunks();
    assert!(chunks >= 2, "a round spans chunks");
    for _ in 0..rounds {
        arena.reset();
        assert_eq!(arena.allocated_bytes(), 0);
        round(&arena);
    }
    assert_eq!(arena.chunks(), chunks, "reset keeps and reuses the chunks");
    let kept = arena.alloc(99u64) as *const u64;
    for _ in 0..rounds {
        let sum = arena.scope(|scratch| {
            round(scratch);
            scratch.alloc_slice_copy(&[1u64, 2, 3]).iter().sum::<u64>()
        });
        assert_eq!(sum, 6);
    }
    // SAFETY: allocated before the scopes, which rewind only what they allocated.
    assert_eq!(unsafe { *kept }, 99);
    assert!(arena.chunks() <= chunks + 2, "scopes reuse chunks: {} vs {chunks}", arena.chunks());
}

#[test]
fn the_limit_fails_cleanly() {
    let mut arena =
        Arena::with_options(ArenaOptions::new().first_chunk(8 << 10).max_chunk(8 << 10).limit(64 << 10));
    let mut served = 0usize;
    let err = loop {
        match arena.try_alloc([0u8; 1000]) {
            Ok(_) => served += 1000,
            Err(e) => break e,
        }
    };
    assert_eq!(err, ArenaError::LimitExceeded { limit: 64 << 10 });
    assert!(err.to_string().contains("limit"));
    assert!(
        served >= 48 << 10 && arena.chunk_bytes() <= 64 << 10,
        "served {served}, chunks {}",
        arena.chunk_bytes()
    );
    assert!(matches!(
        arena.try_alloc_layout(Layout::from_size_align(usize::MAX / 2, 1).unwrap()),
        Err(ArenaError::TooLarge { .. } | ArenaError::LimitExceeded { .. })
    ));
    // Nothing was lost: after a reset the same chunks serve again, within the limit.
    arena.reset();
    for _ in 0..(served / 1000) {
        arena.try_alloc([1u8; 1000]).unwrap();
    }
    assert!(arena.chunk_bytes() <= 64 << 10);
}

#[test]
fn a_request_larger_than_a_chunk_gets_its_own() {
    let arena = Arena::with_options(ArenaOptions::new().first_chunk(4096).max_chunk(8192));
    let big = arena.alloc_slice_copy(&[7u8; 100_000][..]);
    assert!(big.iter().all(|&b| b == 7));
    let small = arena.alloc(1u16);
    assert_eq!(*small, 1);
}

#[test]
fn collections_live_in_an_arena() {
    let arena = Arena::new();
    let mut prices: ApiVec<u64, &Arena> = ApiVec::new_in(&arena);
    for i in 0..(if cfg!(miri) { 200 } else { 10_000 }) {
        prices.push(i * 3);
    }
    let n = prices.len() as u64;
    assert_eq!(prices.iter().sum::<u64>(), 3 * n * (n - 1) / 2);
    assert_eq!(prices[7], 21);
}

proptest! {
    #![proptest_config(common::proptest_config(64, 3))]

    /// Every allocation is aligned, inside no other, and keeps its bytes until reset.
    #[test]
    fn allocations_are_aligned_and_disjoint(requests in proptest::collection::vec((1usize..3000, 0u32..10), 1..if cfg!(miri) { 30 } else { 300 })) {
        let arena = Arena::with_options(ArenaOptions::new().first_chunk(8 << 10));
        let mut blocks: Vec<(core::ptr::NonNull<u8>, usize, u8)> = Vec::new();
        for (i, (size, align_shift)) in requests.into_iter().enumerate() {
            let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
            let ptr = arena.try_alloc_layout(layout).unwrap();
            prop_assert_eq!(ptr.as_ptr() as usize % layout.align(), 0);
            // SAFETY: `size` fresh bytes.
            unsafe { ptr.as_ptr().write_bytes(i as u8, size) };
            blocks.push((ptr, size, i as u8));
        }
        let mut ranges: Vec<(usize, usize)> = blocks.iter().map(|&(p, size, _)| (p.as_ptr().addr(), size)).collect();
        ranges.sort();
        for pair in ranges.windows(2) {
            prop_assert!(pair[0].0 + pair[0].1 <= pair[1].0, "overlap: {:?}", pair);
        }
        for (ptr, size, byte) in blocks {
            // SAFETY: still live (no reset yet).
            let bytes = unsafe { core::slice::from_raw_parts(ptr.as_ptr(), size) };
            prop_assert!(common::is_filled(bytes, byte));
        }
    }
}
