//! Shared-memory IPC as a table: `CircularBuffer` bandwidth between processes next to a
//! same-run single-thread `memcpy`, and 64 B one-way latency next to iceoryx2.
//!
//! `cargo run --release --manifest-path peers/Cargo.toml --bin ipc [ROUNDS [NODE_BYTES NODES]]`
//! (default 3 rounds, every row; medians over alternating rounds). Naming a node size and
//! count measures that row's bandwidth alone, without the latency table.

use pinalloc_peers::ipc::{
    Latency, iceoryx2_latency, memcpy_gbps, ring_gbps, ring_latency, serve_child_role,
};
use pinalloc_peers::{measure_alternating, median};

fn main() {
    serve_child_role();
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("a number")).collect();
    let rounds = args.first().copied().unwrap_or(3);
    let only = args.get(1).zip(args.get(2)).map(|(&size, &nodes)| (size, nodes));
    println!("bandwidth: payload GB/s between processes (each byte counted once) vs single-thread memcpy");
    println!(
        "(medians; the ratio is the median of each round's ring / memcpy, robust to the machine's drift)"
    );
    println!("| node | nodes | writers/readers | ring GB/s | memcpy GB/s | ratio |");
    println!("|---|---:|---|---:|---:|---:|");
    for node_size in [1 << 10, 1 << 20] {
        let total = if node_size == 1 << 20 { 2 << 30 } else { 256 << 20 };
        for nodes in [2, 20, 50] {
            if only.is_some_and(|only| only != (node_size, nodes)) {
                continue;
            }
            for (writers, readers) in [(1, 1), (2, 2)] {
                let measured = measure_alternating(&["ring", "memcpy"], rounds, |name| match name {
                    "ring" => ring_gbps(nodes, node_size, writers, readers, total),
                    _ => memcpy_gbps(nodes, node_size, total),
                });
                let [ring, copy] = measured.medians()[..] else { unreachable!("two contenders") };
                let size = if node_size == 1 << 20 { "1 MiB" } else { "1 KiB" };
                println!(
                    "| {size} | {nodes} | {writers}/{readers} | {ring:.2} | {copy:.2} | {:.2} |",
                    measured.ratio("ring", "memcpy")
                );
            }
        }
    }
    if only.is_some() {
        return;
    }
    println!();
    println!("latency: 64 B one-way between two pinned processes, ns (200k messages 2 µs apart)");
    let mut ours = Vec::new();
    let mut iox = Vec::new();
    for _ in 0..rounds {
        ours.push(ring_latency(200_000));
        iox.push(iceoryx2_latency(200_000));
    }
    let pick = |v: &[Latency], f: fn(&Latency) -> f64| median(v.iter().map(f).collect());
    let (p50, iox50) = (pick(&ours, |l| l.p50), pick(&iox, |l| l.p50));
    let (p99, iox99) = (pick(&ours, |l| l.p99), pick(&iox, |l| l.p99));
    println!("| | pinalloc ring | iceoryx2 0.10 pub/sub | ratio |");
    println!("|---|---:|---:|---:|");
    println!("| p50 | {p50:.0} | {iox50:.0} | {:.2} |", p50 / iox50);
    println!("| p99 | {p99:.0} | {iox99:.0} | {:.2} |", p99 / iox99);
}
