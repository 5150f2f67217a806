//! Criterion: PinAlloc against the system allocator, called through `GlobalAlloc` from a
//! non-inlined function (as `#[global_allocator]` calls go through a shim). The comparison
//! with mimalloc, snmalloc and jemalloc lives in `peers/`, which builds them.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pinalloc::PinAlloc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::Duration;

static PINALLOC: PinAlloc = PinAlloc::new();

#[inline(never)]
fn pair<A: GlobalAlloc>(a: &A, layout: Layout) {
    // SAFETY: non-zero layout; freed once with it.
    unsafe {
        let p = black_box(a.alloc(layout));
        p.write(1);
        a.dealloc(p, layout);
    }
}

#[inline(never)]
fn mixed_round<A: GlobalAlloc>(a: &A, blocks: &mut Vec<(*mut u8, Layout)>) {
    for i in 0..10_000usize {
        let layout = Layout::from_size_align(16 + (i.wrapping_mul(2_654_435_761) >> 5) % 4081, 8).unwrap();
        // SAFETY: non-zero layout.
        let p = unsafe { a.alloc(layout) };
        // SAFETY: at least one byte.
        unsafe { p.write(1) };
        blocks.push((p, layout));
    }
    // Free in an order unrelated to allocation.
    let n = blocks.len();
    for k in 0..n {
        let (p, layout) = blocks[(k * 7919) % n];
        // SAFETY: each block freed once ((k * 7919) % n is a permutation for prime 7919 ∤ n).
        unsafe { a.dealloc(p, layout) };
    }
    blocks.clear();
}

fn allocators(c: &mut Criterion) {
    let layout = Layout::from_size_align(64, 8).unwrap();
    let mut group = c.benchmark_group("64 B pair, one block kept alive");
    // SAFETY: non-zero layouts; kept blocks freed at the end.
    let keep = unsafe { (PINALLOC.alloc(layout), System.alloc(layout)) };
    group.bench_function(BenchmarkId::from_parameter("pinalloc"), |b| b.iter(|| pair(&PINALLOC, layout)));
    group.bench_function(BenchmarkId::from_parameter("system"), |b| b.iter(|| pair(&System, layout)));
    group.finish();
    // SAFETY: allocated above with `layout`.
    unsafe {
        PINALLOC.dealloc(keep.0, layout);
        System.dealloc(keep.1, layout);
    }

    let mut group = c.benchmark_group("10k mixed 16 B-4 KiB, alloc all then free all");
    let mut blocks = Vec::with_capacity(10_000);
    group.bench_function(BenchmarkId::from_parameter("pinalloc"), |b| {
        b.iter(|| mixed_round(&PINALLOC, &mut blocks))
    });
    group.bench_function(BenchmarkId::from_parameter("system"), |b| {
        b.iter(|| mixed_round(&System, &mut blocks))
    });
    group.finish();
}

criterion_group! {
    name = alloc;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = allocators
}
criterion_main!(alloc);
