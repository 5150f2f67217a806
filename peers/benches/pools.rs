//! Criterion benches of pinalloc's `LockFreeBufferPool` against an `ArrayQueue` pool,
//! lockfree-object-pool, opool and `Vec` allocation (`src/pools.rs`): a get+drop pair on
//! one thread, and buffers passed from one thread to another. The one-run ratio table is
//! `cargo run --release --manifest-path peers/Cargo.toml --bin pools`. Run:
//! `cargo bench --manifest-path peers/Cargo.toml --bench pools`.

use criterion::{Criterion, criterion_group, criterion_main};
use pinalloc_peers::pools::NAMES;
use pinalloc_peers::with_pool;
use std::time::Duration;

fn pair(c: &mut Criterion) {
    let mut group = c.benchmark_group("get+drop pair, one thread");
    for name in NAMES {
        group.bench_function(name, |b| {
            b.iter_custom(|n| {
                let ns = with_pool!(name, |pool| get_drop_pair(&pool, n));
                Duration::from_secs_f64(ns * n as f64 / 1e9)
            })
        });
    }
    group.finish();
}

fn pass(c: &mut Criterion) {
    let mut group = c.benchmark_group("passed between 2 threads");
    group.sample_size(20);
    for name in NAMES {
        group.bench_function(name, |b| {
            b.iter_custom(|n| {
                let ns = with_pool!(name, |pool| pass_between_threads(&pool, n.max(1000)));
                Duration::from_secs_f64(ns * n as f64 / 1e9)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pair, pass);
criterion_main!(benches);
