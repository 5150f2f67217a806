//! The quick comparison: every scenario against its peers in one run, printed as a table of
//! ratios (pinalloc's time / the peer's; below 1.0 means pinalloc is faster). Runs in well
//! under a minute: `cargo bench --bench quick`.
//!
//! Each figure is the median of several rounds, and the contenders alternate round by round
//! so that drift on a shared machine hits them alike.

use std::time::Duration;

mod workloads;
use workloads::stack::{CrossbeamArrayQueue, FreeList, Treiber, run_pairs};

/// Rounds of the thread scenarios (each takes milliseconds).
const ROUNDS: usize = 7;
/// Rounds of the arena scenarios: a round is 100-200 µs, so many are needed for a stable
/// median on a shared machine.
const ARENA_ROUNDS: usize = 101;

/// Nanoseconds per operation.
type Ns = f64;

fn median(mut samples: Vec<Ns>) -> Ns {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Measures `ours` and `peer` alternately, returning their medians.
fn duel(rounds: usize, mut ours: impl FnMut() -> Ns, mut peer: impl FnMut() -> Ns) -> (Ns, Ns) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(ours());
        b.push(peer());
    }
    (median(a), median(b))
}

fn row(scenario: &str, peer: &str, (ours, theirs): (Ns, Ns)) {
    println!("| {scenario:<40} | {peer:<22} | {ours:>9.2} | {theirs:>9.2} | {:>6.2} |", ours / theirs);
}

fn per_op(elapsed: Duration, ops: u64) -> Ns {
    elapsed.as_secs_f64() * 1e9 / ops as f64
}

fn free_list_rows() {
    let (treiber, queue) = (Treiber::new(), CrossbeamArrayQueue::new());
    for threads in [1, 2] {
        let pairs = 2_000_000;
        let result = duel(
            ROUNDS,
            || per_op(run_pairs(&treiber, threads, pairs), pairs),
            || per_op(run_pairs(&queue, threads, pairs), pairs),
        );
        row(&format!("free list take+return, {threads} thread(s)"), CrossbeamArrayQueue::NAME, result);
    }
}

fn arena_rows() {
    use workloads::arena::{self, OPS};
    let (mut ours, mut theirs) = (pinalloc::arena::Arena::new(), bumpalo::Bump::new());
    // One warm-up round each, so both have their chunks.
    arena::pinalloc_mixed(&mut ours);
    arena::bumpalo_mixed(&mut theirs);
    let ops = OPS as u64;
    row(
        "arena: 100k u64 allocations",
        "bumpalo",
        duel(
            ARENA_ROUNDS,
            || per_op(arena::pinalloc_small(&mut ours), ops),
            || per_op(arena::bumpalo_small(&mut theirs), ops),
        ),
    );
    row(
        "arena: 100k mixed 8-256 B allocations",
        "bumpalo",
        duel(
            ARENA_ROUNDS,
            || per_op(arena::pinalloc_mixed(&mut ours), ops),
            || per_op(arena::bumpalo_mixed(&mut theirs), ops),
        ),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and only wants
    // the binary to run, so a smoke run is enough there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("quick: run with `cargo bench --bench quick` for figures");
        return;
    }
    println!("| scenario | peer | pinalloc ns | peer ns | ratio |");
    println!("|---|---|---:|---:|---:|");
    free_list_rows();
    arena_rows();
}
