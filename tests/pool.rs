//! The lock-free buffer pool: configuration checks, guards and classes, zeroing, fallback,
//! statistics that add up, thread caches flushed at exit, and a cross-thread stress test in
//! which no buffer is ever held twice. Iteration counts shrink under miri.
#![cfg(all(feature = "std", not(loom)))]

use pinalloc::pool::{
    BufferClass, BufferGuard, ClassConfig, ClassStats, ConfigError, ConfigErrorKind, LockFreeBufferPool,
    LockFreeBufferPoolConfig, PoolError,
};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::mpsc;
use std::thread;

mod common;

/// Small classes, so tests stay quick under miri.
fn small(initial: u32, max: u32, cache: u32) -> LockFreeBufferPoolConfig {
    LockFreeBufferPoolConfig::new()
        .class(
            BufferClass::Serialization,
            ClassConfig::new(256, 64).initial(initial).max(max).thread_cache(cache),
        )
        .class(
            BufferClass::Compression,
            ClassConfig::new(128, 16).initial(initial).max(max).thread_cache(cache),
        )
        .class(BufferClass::Simd, ClassConfig::new(32 * 8, 64).initial(initial).max(max).thread_cache(cache))
}

fn pool(initial: u32, max: u32, cache: u32) -> LockFreeBufferPool {
    LockFreeBufferPool::with_config(small(initial, max, cache)).expect("valid configuration")
}

fn refused(config: LockFreeBufferPoolConfig) -> ConfigError {
    match LockFreeBufferPool::with_config(config) {
        Err(PoolError::Config(error)) => error,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn the_defaults_are_the_seeds_classes() {
    let config = LockFreeBufferPoolConfig::default();
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.get(BufferClass::Serialization).buffer_size(), 128 << 10);
    assert_eq!(config.get(BufferClass::Compression).buffer_size(), 64 << 10);
    assert_eq!(config.get(BufferClass::Simd).alignment(), 64);
}

#[test]
fn bad_configurations_are_refused_with_the_class_and_reason() {
    let ser = BufferClass::Serialization;
    let cases = [
        (ClassConfig::new(0, 8), ConfigErrorKind::ZeroSize),
        (ClassConfig::new(64, 24), ConfigErrorKind::AlignmentNotPowerOfTwo { alignment: 24 }),
        (ClassConfig::new(64, 0), ConfigErrorKind::AlignmentNotPowerOfTwo { alignment: 0 }),
        (ClassConfig::new(64, 8).initial(0).max(0), ConfigErrorKind::ZeroMaximum),
        (
            ClassConfig::new(64, 8).initial(9).max(8),
            ConfigErrorKind::MaximumBelowInitial { initial: 9, max: 8 },
        ),
        (ClassConfig::new(64, 8).initial(0).max(u32::MAX), ConfigErrorKind::TooManyBuffers { max: u32::MAX }),
        (ClassConfig::new(usize::MAX / 2, 8).initial(0).max(4), ConfigErrorKind::TooLarge),
    ];
    for (class_config, kind) in cases {
        let error = refused(LockFreeBufferPoolConfig::new().class(ser, class_config));
        assert_eq!(error, ConfigError { class: ser, kind });
        assert!(error.to_string().starts_with("buffer class serialization: "), "{error}");
    }
    let simd = refused(LockFreeBufferPoolConfig::new().class(BufferClass::Simd, ClassConfig::new(100, 64)));
    assert_eq!(simd.kind, ConfigErrorKind::NotSimdLanes { lane: 32 });
    let message = PoolError::Config(simd).to_string();
    assert!(message.contains("simd") && message.contains("32"), "{message}");
}

#[test]
fn guards_have_their_class_size_and_alignment_and_go_back_to_it() {
    let pool = pool(4, 8, 2);
    let before = pool.counts();
    let a = pool.get(BufferClass::Serialization);
    let b = pool.get(BufferClass::Compression);
    let c = pool.get_simd_buffer_guard();
    assert_eq!((a.class(), a.len()), (BufferClass::Serialization, 256));
    assert_eq!((b.class(), b.len()), (BufferClass::Compression, 128));
    assert_eq!(c.len(), 8); // 256 bytes of [f64; 4]
    assert_eq!(a.as_ptr() as usize % 64, 0);
    assert_eq!(b.as_ptr() as usize % 16, 0);
    assert_eq!(c.as_ptr() as usize % 64, 0);
    let during = pool.counts();
    assert_eq!(during.serialization, before.serialization - 1);
    assert_eq!(during.compression, before.compression - 1);
    assert_eq!(during.simd, before.simd - 1);
    drop((a, b, c));
    assert_eq!(pool.counts(), before);
}

#[test]
fn live_guards_never_share_memory() {
    let pool = pool(3, 16, 4);
    let guards: Vec<BufferGuard<'_>> = (0..16).map(|_| pool.get(BufferClass::Compression)).collect();
    let mut starts: Vec<usize> = guards.iter().map(|g| g.as_ptr() as usize).collect();
    starts.sort_unstable();
    assert!(starts.windows(2).all(|w| w[1] - w[0] >= 128), "buffers overlap: {starts:x?}");
    assert!(guards.iter().all(|g| !g.is_fallback()), "16 is within the maximum");
    assert_eq!(pool.stats().compression.created, 16);
}

#[test]
fn buffers_are_zeroed_on_reuse_only_when_configured() {
    for zeroed in [false, true] {
        let config = LockFreeBufferPoolConfig::new().class(
            BufferClass::Compression,
            ClassConfig::new(512, 64).initial(1).max(1).thread_cache(4).zeroed(zeroed),
        );
        let pool = LockFreeBufferPool::with_config(config).unwrap();
        let mut first = pool.get(BufferClass::Compression);
        assert!(common::is_filled(&first, 0), "fresh buffers are zero");
        first.fill(0xAB);
        let address = first.as_ptr();
        drop(first);
        let again = pool.get(BufferClass::Compression);
        assert_eq!(again.as_ptr(), address, "one buffer: the same one comes back");
        assert_eq!(common::is_filled(&again, 0), zeroed);
        assert_eq!(common::is_filled(&again, 0xAB), !zeroed);
    }
}

#[test]
fn an_exhausted_class_falls_back_and_try_get_says_none() {
    let pool = pool(2, 2, 0);
    let held = [pool.get(BufferClass::Serialization), pool.get(BufferClass::Serialization)];
    assert!(pool.try_get(BufferClass::Serialization).is_none());
    let mut extra = pool.get(BufferClass::Serialization);
    assert!(extra.is_fallback());
    assert_eq!((extra.len(), extra.as_ptr() as usize % 64), (256, 0));
    extra.fill(7);
    let stats = pool.stats().serialization;
    assert_eq!((stats.hits, stats.misses, stats.allocations, stats.buffers_in_use), (2, 1, 3, 3));
    assert_eq!(stats.peak_buffers, 3);
    drop(extra);
    drop(held);
    let stats = pool.stats().serialization;
    assert_eq!((stats.returns, stats.buffers_in_use, stats.bytes_in_use), (3, 0, 0));
    assert_eq!(pool.counts().serialization, 2, "fallbacks are freed, not pooled");
    // A fallback's bytes are initialised (zero) even when the class does not zero on reuse
    // and the allocator hands back the block the 7s were written to.
    let held = [pool.get(BufferClass::Serialization), pool.get(BufferClass::Serialization)];
    let again = pool.get(BufferClass::Serialization);
    assert!(again.is_fallback() && again.iter().all(|&b| b == 0));
    drop((again, held));
    // Other classes were untouched.
    assert_eq!(pool.stats().compression.hits, 0);
}

#[test]
fn the_class_grows_to_its_maximum() {
    let pool = pool(0, 3, 2);
    assert_eq!(pool.stats().simd.created, 0);
    let held: Vec<_> = (0..3).map(|_| pool.get_simd_buffer_guard()).collect();
    assert_eq!(pool.stats().simd.created, 3);
    assert!(pool.try_get(BufferClass::Simd).is_none());
    drop(held);
    assert_eq!(pool.counts().simd, 3);
}

#[test]
fn stats_add_up_and_count_thread_cache_hits() {
    let pool = pool(8, 8, 4);
    let rounds = if cfg!(miri) { 20 } else { 1000 };
    for _ in 0..rounds {
        let a = pool.get(BufferClass::Serialization);
        let b = pool.get(BufferClass::Serialization);
        drop(a);
        drop(b);
    }
    let stats = pool.stats().serialization;
    assert_eq!(stats.hits, 2 * rounds);
    assert_eq!(stats.returns, 2 * rounds);
    assert_eq!(stats.misses, 0);
    assert_eq!(stats.buffers_in_use, 0);
    // The first get refilled the cache from the shared stack; all the others hit the cache.
    assert_eq!(stats.thread_cache_hits, 2 * rounds - 1);
    assert!(stats.peak_buffers >= 2 && stats.peak_buffers <= 8, "{stats:?}");
    assert!((pool.stats().hit_ratio() - 1.0).abs() < f64::EPSILON);
    // Flushing folds the counters in without changing them.
    pool.flush_thread_cache();
    // (CAS retries may grow: the flush is a CAS, and a weak CAS may fail spuriously.)
    let flushed = pool.stats().serialization;
    assert_eq!(ClassStats { cas_retries: stats.cas_retries, ..flushed }, stats);
    assert_eq!(pool.counts().serialization, 8);
}

#[test]
fn thread_caches_are_flushed_when_their_thread_exits() {
    // Four buffers in all, and a cache that holds all four: if the worker's cache were not
    // flushed at its exit, the main thread would find the class empty.
    let pool = pool(4, 4, 8);
    thread::scope(|s| {
        // Joined explicitly: a scope's end waits for the closure, not for the thread's exit
        // (and so its thread-local destructors); `join` waits for the exit.
        s.spawn(|| {
            let held: Vec<_> = (0..4).map(|_| pool.get(BufferClass::Compression)).collect();
            drop(held);
            assert!(pool.try_get(BufferClass::Compression).is_some());
        })
        .join()
        .unwrap();
    });
    let held: Vec<_> = (0..4).filter_map(|_| pool.try_get(BufferClass::Compression)).collect();
    assert_eq!(held.len(), 4, "the exited thread's cached buffers are back on the shared stack");
    drop(held);
    let stats = pool.stats().compression;
    assert_eq!((stats.hits, stats.returns, stats.buffers_in_use), (9, 9, 0));
}

#[test]
fn a_guard_can_be_returned_on_another_thread() {
    let pool = pool(2, 4, 2);
    let (send, receive) = mpsc::channel();
    thread::scope(|s| {
        let pool = &pool;
        s.spawn(move || {
            for i in 0..4u8 {
                let mut guard = pool.get(BufferClass::Serialization);
                guard[0] = i;
                send.send(guard).unwrap();
            }
            drop(send);
        });
        s.spawn(move || {
            for (i, guard) in receive.iter().enumerate() {
                assert_eq!(guard[0], i as u8);
            }
        });
    });
    let stats = pool.stats().serialization;
    assert_eq!((stats.hits + stats.misses, stats.returns, stats.buffers_in_use), (4, 4, 0));
}

#[test]
fn one_thread_can_use_several_pools_and_outlive_them() {
    let first = pool(2, 2, 2);
    let second = pool(2, 2, 2);
    for _ in 0..3 {
        let a = first.get(BufferClass::Serialization);
        let b = second.get(BufferClass::Serialization);
        assert_ne!(a.as_ptr(), b.as_ptr());
    }
    // A worker caches buffers of a pool that is then dropped; it goes on with a new pool.
    thread::scope(|s| {
        let (ready, wait) = mpsc::channel();
        let (go, gone) = mpsc::channel::<()>();
        let first = &first;
        s.spawn(move || {
            drop(first.get(BufferClass::Compression));
            ready.send(()).unwrap();
            gone.recv().unwrap();
            let third = pool(1, 1, 1);
            assert_eq!(third.get(BufferClass::Compression).len(), 128);
        });
        wait.recv().unwrap();
        go.send(()).unwrap();
    });
    drop(first);
    assert_eq!(second.counts().serialization, 2);
}

#[test]
fn typed_views_check_alignment_and_size() {
    let pool = pool(1, 2, 1);
    let bytes = pool.get(BufferClass::Compression); // 128 bytes aligned to 16
    let words = bytes.cast::<u64>().expect("128 bytes of u64 at 16-byte alignment");
    assert_eq!(words.len(), 16);
    let bytes = pool.get(BufferClass::Compression);
    let refused = bytes.cast::<[u64; 3]>().expect_err("128 is not a multiple of 24");
    assert_eq!(refused.len(), 128);
    let too_aligned = refused.cast::<pinalloc::pool::SimdLane>();
    assert!(too_aligned.is_ok(), "[f64; 4] needs only 8-byte alignment");
    drop((words, too_aligned));
    assert_eq!(pool.stats().compression.buffers_in_use, 0);
}

/// Threads take buffers, write their id and a sequence number over the whole buffer, pass
/// some to the next thread, and check before returning that the buffer still says what
/// its holder wrote: a buffer handed to two holders at once would be overwritten.
#[test]
fn no_buffer_is_ever_held_twice() {
    let threads = 3;
    let rounds = if cfg!(miri) { 30 } else { 20_000 };
    // A small class and caches, so buffers churn through the shared stacks and fallbacks.
    let pool = LockFreeBufferPool::with_config(small(4, 12, 4)).unwrap();
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..threads).map(|_| mpsc::channel::<(u8, u64, BufferGuard<'_>)>()).unzip();
    thread::scope(|s| {
        for (me, receiver) in receivers.into_iter().enumerate() {
            let next = senders[(me + 1) % threads].clone();
            let pool = &pool;
            s.spawn(move || {
                let me = me as u8 + 1;
                let mut held: Vec<(u64, BufferGuard<'_>)> = Vec::new();
                for seq in 0..rounds as u64 {
                    let mut guard = pool.get(BufferClass::Serialization);
                    stamp(&mut guard, me, seq);
                    held.push((seq, guard));
                    // Check and return some, pass some on, receive what others passed.
                    if held.len() > 3 || seq % 5 == 0 {
                        let (seq, guard) = held.remove(seq as usize % held.len());
                        check(&guard, me, seq);
                        if seq % 3 == 0 {
                            let _ = next.send((me, seq, guard));
                        }
                    }
                    while let Ok((from, seq, mut guard)) = receiver.try_recv() {
                        check(&guard, from, seq);
                        stamp(&mut guard, me, seq);
                        check(&guard, me, seq);
                    }
                }
                for (seq, guard) in held {
                    check(&guard, me, seq);
                }
            });
        }
        drop(senders);
    });
    let stats = pool.stats().serialization;
    assert_eq!(stats.hits + stats.misses, stats.returns, "{stats:?}");
    assert_eq!(stats.buffers_in_use, 0);
}

fn stamp(buffer: &mut [u8], holder: u8, seq: u64) {
    buffer.fill(holder);
    buffer[..8].copy_from_slice(&seq.to_le_bytes());
}

fn check(buffer: &[u8], holder: u8, seq: u64) {
    assert_eq!(buffer[..8], seq.to_le_bytes(), "buffer rewritten by another holder");
    assert!(common::is_filled(&buffer[8..], holder), "buffer rewritten by another holder");
}

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    TryGet(u8),
    Drop(u8),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::Get),
        (0u8..3).prop_map(Op::TryGet),
        any::<u8>().prop_map(Op::Drop),
        Just(Op::Flush),
    ]
}

proptest! {
    #![proptest_config(common::proptest_config(128, 3))]

    /// Any sequence of gets, drops and flushes on random small classes: live guards never
    /// overlap, try_get fails only at the maximum, and the counters match a model.
    #[test]
    fn any_sequence_keeps_the_books(
        initial in 0u32..4, extra in 1u32..4, cache in 0u32..5,
        ops in proptest::collection::vec(op(), 0..if cfg!(miri) { 24 } else { 150 }),
    ) {
        let pool = pool(initial, initial + extra, cache);
        let max = u64::from(initial + extra);
        let mut held: Vec<BufferGuard<'_>> = Vec::new();
        let (mut gets, mut misses, mut returns) = (0u64, 0u64, 0u64);
        for op in ops {
            match op {
                Op::Get(c) | Op::TryGet(c) => {
                    let class = BufferClass::ALL[usize::from(c)];
                    let pool_held = held.iter().filter(|g| g.class() == class && !g.is_fallback()).count() as u64;
                    let guard = if matches!(op, Op::Get(_)) { Some(pool.get(class)) } else { pool.try_get(class) };
                    match guard {
                        Some(guard) => {
                            prop_assert_eq!(guard.is_fallback(), pool_held == max);
                            if guard.is_fallback() { misses += 1 } else { gets += 1 }
                            held.push(guard);
                        }
                        None => prop_assert_eq!(pool_held, max, "try_get failed below the maximum"),
                    }
                }
                Op::Drop(i) => if !held.is_empty() {
                    drop(held.swap_remove(usize::from(i) % held.len()));
                    returns += 1;
                },
                Op::Flush => pool.flush_thread_cache(),
            }
            let mut ranges: Vec<(usize, usize)> = held.iter().map(|g| (g.as_ptr() as usize, g.len())).collect();
            ranges.sort_unstable();
            prop_assert!(ranges.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "live guards overlap");
            let stats = pool.stats();
            let (hits, miss, ret) = BufferClass::ALL.iter().map(|&c| stats.class(c)).fold((0, 0, 0), |(h, m, r), s| (h + s.hits, m + s.misses, r + s.returns));
            prop_assert_eq!((hits, miss, ret), (gets, misses, returns));
        }
        let distinct: HashSet<usize> = held.iter().map(|g| g.as_ptr() as usize).collect();
        prop_assert_eq!(distinct.len(), held.len());
    }
}
