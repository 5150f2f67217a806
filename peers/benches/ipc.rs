//! Criterion: `CircularBuffer` bandwidth between processes (1 MiB and 1 KiB nodes, 20 nodes,
//! one writer and one reader) next to a single-thread `memcpy` of the same bytes.
//! Latency percentiles are in the `ipc` binary (criterion measures means).

use criterion::{Criterion, Throughput};
use pinalloc_peers::ipc::{memcpy_gbps, ring_gbps, serve_child_role};
use std::time::Duration;

fn bandwidth(c: &mut Criterion) {
    for (label, node_size, total) in [("1MiB", 1 << 20, 512 << 20), ("1KiB", 1 << 10, 64 << 20)] {
        let mut group = c.benchmark_group(format!("ipc_bandwidth_{label}_x20"));
        group.throughput(Throughput::Bytes(total as u64)).sample_size(10);
        // Each iteration moves `total` bytes; report the time criterion asks for.
        group.bench_function("pinalloc_ring_1w1r", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        Duration::from_secs_f64(total as f64 / (ring_gbps(20, node_size, 1, 1, total) * 1e9))
                    })
                    .sum()
            })
        });
        group.bench_function("memcpy", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        Duration::from_secs_f64(total as f64 / (memcpy_gbps(20, node_size, total) * 1e9))
                    })
                    .sum()
            })
        });
        group.finish();
    }
}

fn main() {
    serve_child_role();
    let mut criterion = Criterion::default().configure_from_args();
    bandwidth(&mut criterion);
    criterion.final_summary();
}
