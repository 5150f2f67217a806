//! Operation sequences on a `LockFreeBufferPool` with fuzzer-chosen small classes: gets,
//! try_gets, drops in any order, cache flushes, and guards handed to a second thread that
//! drops them. Checks that live guards never overlap, that each holds what its holder
//! wrote, that `try_get` fails only at the maximum, and that the statistics add up.
//! Run: `cargo +nightly fuzz run pool_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinalloc::pool::{BufferClass, BufferGuard, ClassConfig, LockFreeBufferPool, LockFreeBufferPoolConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&[initial, extra, cache, size], ops)) = data.split_first_chunk::<4>() else { return };
    let (initial, max) = (u32::from(initial % 8), u32::from(initial % 8) + 1 + u32::from(extra % 8));
    let size = 32 * (1 + usize::from(size % 16));
    let class = ClassConfig::new(size, 32).initial(initial).max(max).thread_cache(u32::from(cache % 17));
    let config = LockFreeBufferPoolConfig::new().class(BufferClass::Compression, class);
    let pool = LockFreeBufferPool::with_config(config).expect("valid configuration");
    let (to_other, from_main) = std::sync::mpsc::channel::<(u8, BufferGuard<'_>)>();
    std::thread::scope(|s| {
        s.spawn(move || {
            for (mark, guard) in from_main {
                assert!(guard.iter().all(|&b| b == mark), "a passed buffer was overwritten");
            }
        });
        let mut held: Vec<(u8, BufferGuard<'_>)> = Vec::new();
        // Pool buffers sent to the other thread: alive there, or parked in its cache after
        // it dropped them; either way out of this thread's reach.
        let mut sent = 0u32;
        for (step, &op) in ops.iter().enumerate() {
            let mark = step as u8;
            match op % 5 {
                0 | 1 => {
                    let pool_held = held.iter().filter(|(_, g)| !g.is_fallback()).count() as u32;
                    let guard = if op % 5 == 0 {
                        Some(pool.get(BufferClass::Compression))
                    } else {
                        pool.try_get(BufferClass::Compression)
                    };
                    match guard {
                        Some(mut guard) => {
                            if guard.is_fallback() {
                                assert!(pool_held + sent >= max, "a fallback below the maximum");
                            }
                            guard.fill(mark);
                            held.push((mark, guard));
                        }
                        None => assert!(pool_held + sent >= max, "try_get failed below the maximum"),
                    }
                }
                2 if !held.is_empty() => {
                    let (mark, guard) = held.swap_remove(usize::from(op / 5) % held.len());
                    assert!(guard.iter().all(|&b| b == mark), "a held buffer was overwritten");
                }
                3 if !held.is_empty() => {
                    let passed = held.swap_remove(usize::from(op / 5) % held.len());
                    sent += u32::from(!passed.1.is_fallback());
                    to_other.send(passed).expect("receiver alive");
                }
                4 => pool.flush_thread_cache(),
                _ => {}
            }
            let mut ranges: Vec<(usize, usize)> =
                held.iter().map(|(_, g)| (g.as_ptr() as usize, g.len())).collect();
            ranges.sort_unstable();
            assert!(ranges.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "live guards overlap");
        }
        drop(to_other);
        drop(held);
    });
    let stats = pool.stats().compression;
    assert_eq!(stats.hits + stats.misses, stats.returns, "{stats:?}");
    assert_eq!(stats.buffers_in_use, 0);
});
