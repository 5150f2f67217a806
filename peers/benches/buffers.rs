//! Criterion benches of pinalloc's `BufferPool` against buffer_sv2 3.0.1, pinalloc's
//! `BufferFromSystemMemory`, a mutex-protected pool, `bytes::BytesMut`, the sequential-write
//! floor and the do-nothing bound, on buffer_sv2's scenarios (`src/buffers.rs`) and the 64 B
//! frame cycle. The ratio table is `cargo run --release --manifest-path peers/Cargo.toml
//! --bin buffers`. Run: `cargo bench --manifest-path peers/Cargo.toml --bench buffers`.

use criterion::{Criterion, criterion_group, criterion_main};
use pinalloc_peers::buffers::{Input, NAMES};
use pinalloc_peers::with_contender;
use std::time::Duration;

fn scenarios(c: &mut Criterion) {
    let input = Input::new();
    for (title, scenario) in [("single thread", 0), ("sent to a thread", 1), ("sent, waiting for both", 2)] {
        let mut group = c.benchmark_group(title);
        group.sample_size(20).measurement_time(Duration::from_secs(4));
        for name in NAMES {
            group.bench_function(name, |b| {
                b.iter_custom(|n| {
                    (0..n)
                        .map(|_| {
                            with_contender!(name, |make| match scenario {
                                0 => single_thread(make, &input),
                                1 => send_to_thread(make, &input, false),
                                _ => send_to_thread(make, &input, true),
                            })
                        })
                        .sum()
                })
            });
        }
        group.finish();
    }
}

fn cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("64 B frame cycle");
    for name in NAMES {
        group.bench_function(name, |b| {
            b.iter_custom(|n| {
                let ns = with_contender!(name, |make| frame_cycle(make, n as usize));
                Duration::from_secs_f64(ns * n as f64 / 1e9)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scenarios, cycle);
criterion_main!(benches);
