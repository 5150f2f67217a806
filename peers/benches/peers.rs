//! Criterion benches of pinalloc against mimalloc, snmalloc, jemalloc and glibc, on the
//! scenarios of the ratio table (`src/lib.rs`). All allocators share this one process, so
//! their heaps coexist; the ratio table (`cargo run --release`) runs each allocator in fresh
//! processes and is the figure to quote. Run: `cargo bench --manifest-path peers/Cargo.toml`.

use criterion::{Criterion, criterion_group, criterion_main};
use pinalloc_peers::{larson, mixed_all_free_all, pair_64, producer_consumer, vec_growth};
use std::alloc::{GlobalAlloc, System};
use std::time::Duration;

static PINALLOC: pinalloc::PinAlloc = pinalloc::PinAlloc::new();
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
static SNMALLOC: snmalloc_rs::SnMalloc = snmalloc_rs::SnMalloc;
static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Benches `scenario` (one run = one measured iteration) on every allocator, in one group.
macro_rules! group {
    ($c:expr, $name:expr, $scenario:expr) => {{
        let mut group = $c.benchmark_group($name);
        group.sample_size(10).measurement_time(Duration::from_secs(3));
        fn each<A: GlobalAlloc + Sync>(a: &'static A, iters: u64) -> Duration {
            (0..iters).map(|_| $scenario(a)).sum()
        }
        group.bench_function("pinalloc", |b| b.iter_custom(|n| each(&PINALLOC, n)));
        group.bench_function("mimalloc", |b| b.iter_custom(|n| each(&MIMALLOC, n)));
        group.bench_function("snmalloc", |b| b.iter_custom(|n| each(&SNMALLOC, n)));
        group.bench_function("jemalloc", |b| b.iter_custom(|n| each(&JEMALLOC, n)));
        group.bench_function("glibc", |b| b.iter_custom(|n| each(&System, n)));
        group.finish();
    }};
}

fn pair(c: &mut Criterion) {
    let mut group = c.benchmark_group("64 B alloc+free pair");
    group.bench_function("pinalloc", |b| b.iter_custom(|n| pair_64(&PINALLOC, n)));
    group.bench_function("mimalloc", |b| b.iter_custom(|n| pair_64(&MIMALLOC, n)));
    group.bench_function("snmalloc", |b| b.iter_custom(|n| pair_64(&SNMALLOC, n)));
    group.bench_function("jemalloc", |b| b.iter_custom(|n| pair_64(&JEMALLOC, n)));
    group.bench_function("glibc", |b| b.iter_custom(|n| pair_64(&System, n)));
    group.finish();
}

fn scenarios(c: &mut Criterion) {
    group!(c, "100k mixed 16 B-4 KiB alloc-all free-all", mixed_all_free_all);
    group!(c, "producer-consumer 2M remote frees", producer_consumer);
    group!(c, "larson 2 threads", larson);
    group!(c, "Vec growth by realloc", vec_growth);
}

criterion_group!(benches, pair, scenarios);
criterion_main!(benches);
