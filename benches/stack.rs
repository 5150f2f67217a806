//! Criterion: the Treiber stack's pop+push pair against `crossbeam_queue::ArrayQueue`, on one
//! thread and on two threads hammering the same structure.

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;

mod workloads;
use workloads::stack::{CrossbeamArrayQueue, FreeList, Treiber};

fn one_thread<L: FreeList>(c: &mut Criterion) {
    let list = L::new();
    c.bench_function(&format!("free list take+return, 1 thread/{}", L::NAME), |b| {
        b.iter(|| list.take_and_return())
    });
}

fn two_threads<L: FreeList>(c: &mut Criterion) {
    let list = L::new();
    c.bench_function(&format!("free list take+return, 2 threads/{}", L::NAME), |b| {
        // Each thread runs `iters` pairs; the wall time over `iters` is the time per pair
        // as one thread sees it.
        b.iter_custom(|iters| workloads::stack::run_pairs(&list, 2, iters))
    });
}

fn benches(c: &mut Criterion) {
    one_thread::<Treiber>(c);
    one_thread::<CrossbeamArrayQueue>(c);
    two_threads::<Treiber>(c);
    two_threads::<CrossbeamArrayQueue>(c);
}

criterion_group! {
    name = stack;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(stack);
